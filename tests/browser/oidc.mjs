// Signs in to the Sightline dashboard through a real OpenID provider (provider.mjs) in
// headless Chromium (Debian's /usr/bin/chromium) with playwright-core. Run by
// tests/tests/oidc.rs:
//
//   SIGHTLINE_URL      https://127.0.0.1:PORT (the collector's HTTP listener)
//   SIGHTLINE_ISSUER   http://127.0.0.1:PORT (the provider)
//   SIGHTLINE_ADMIN    an admin API token (the break-glass sign-in)
//   SIGHTLINE_SHOTS    where to save screenshots
//
// Exits 0 when every check passed; otherwise prints the failed check and exits 1.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const url = process.env.SIGHTLINE_URL;
const issuer = process.env.SIGHTLINE_ISSUER;
const admin = process.env.SIGHTLINE_ADMIN;
const shots = process.env.SIGHTLINE_SHOTS;
mkdirSync(shots, { recursive: true });

function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
  console.log("ok - " + what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});

// A browser of its own per person: no cookie, at the collector or the provider, carries over.
async function fresh() {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
  // Nothing leaves loopback (the provider's development pages import a web font).
  await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (r) => r.abort());
  const page = await context.newPage();
  const callbacks = [];
  page.on("response", (r) => {
    if (r.url().startsWith(url + "/ui/oidc/callback")) callbacks.push({ url: r.url(), status: r.status() });
  });
  return { context, page, callbacks };
}

// "Sign in with SSO" → the provider's login form → its consent page, if it asks.
async function ssoSignIn(page, account, shot) {
  await page.goto(url + "/ui/");
  await page.getByTestId("login").waitFor();
  const sso = page.getByTestId("sso");
  await sso.waitFor({ state: "visible" });
  await sso.click();
  await page.locator("input[name=login]").waitFor();
  check(page.url().startsWith(issuer + "/"), `the SSO button leads to the provider (${new URL(page.url()).origin})`);
  if (shot) await page.screenshot({ path: `${shots}/sso-provider-login.png` });
  await page.fill("input[name=login]", account);
  await page.fill("input[name=password]", "any password");
  await page.click("button[type=submit]");
  const consent = page.locator("button:has-text('Continue')");
  const landed = page.locator("[data-testid=devices-total], [data-testid=sso-error]");
  await consent.or(landed).first().waitFor();
  if (await consent.isVisible()) await consent.click();
}

let failed = false;
try {
  // ada is in sightline-admins: she lands on the dashboard as admin.
  {
    const { context, page, callbacks } = await fresh();
    await ssoSignIn(page, "ada", true);
    await page.getByTestId("devices-total").waitFor();
    check((await page.getByTestId("role").textContent()).includes("admin"), "ada is signed in as admin");
    check(callbacks.length === 1 && callbacks[0].status === 303, `the callback answered 303 (${JSON.stringify(callbacks)})`);
    const me = await page.evaluate(() => fetch("/api/v1/session").then((r) => r.json()));
    check(me.role === "admin", "the API sees the session as admin");
    const cookies = await context.cookies(url);
    const session = cookies.find((c) => c.name === "sightline_session");
    check(session && session.httpOnly && session.secure && session.sameSite === "Strict", "the session cookie is HttpOnly, Secure, SameSite=Strict");
    check(!cookies.some((c) => c.name === "sightline_oidc"), "the login cookie is gone once used");
    await page.screenshot({ path: `${shots}/sso-signed-in.png` });

    // The provider's answer cannot be replayed: the login it belonged to is used up.
    await page.goto(callbacks[0].url);
    await page.getByTestId("sso-error").waitFor();
    check((await page.textContent("h1")).includes("expired"), "a replayed callback is refused");

    // Sign-out ends the session on the server, not only in this browser.
    await page.goto(url + "/ui/");
    await page.getByTestId("devices-total").waitFor();
    await page.click("#signout");
    await page.getByTestId("login").waitFor();
    const after = await fetch(url + "/api/v1/session", { headers: { Cookie: `sightline_session=${session.value}` } });
    check(after.status === 401, `the signed-out session is refused by the API (${after.status})`);
    await context.close();
  }

  // eve is in no mapped group: the provider signs her in, Sightline refuses her, clearly.
  {
    const { context, page, callbacks } = await fresh();
    await ssoSignIn(page, "eve", false);
    await page.getByTestId("sso-error").waitFor();
    const text = await page.textContent("[data-testid=sso-error]");
    check(text.includes("eve@example.com") && text.includes("none of the groups"), "eve is told she is in no group that gives access");
    check(callbacks.length === 1 && callbacks[0].status === 403, `eve's callback answered 403 (${JSON.stringify(callbacks)})`);
    check(!(await context.cookies(url)).some((c) => c.name === "sightline_session"), "eve got no session cookie");
    const me = await page.evaluate(() => fetch("/api/v1/session").then((r) => r.status));
    check(me === 401, "the API does not know eve");
    await page.screenshot({ path: `${shots}/sso-refused.png` });
    await context.close();
  }

  // The API-token form still works beside SSO (break-glass).
  {
    const { context, page } = await fresh();
    await page.goto(url + "/ui/");
    await page.getByTestId("sso").waitFor({ state: "visible" });
    await page.screenshot({ path: `${shots}/sso-login.png` });
    await page.fill("#token", admin);
    await page.click("form.login button[type=submit]");
    await page.getByTestId("devices-total").waitFor();
    check((await page.getByTestId("role").textContent()).includes("admin"), "an admin API token still signs in");
    await context.close();
  }
} catch (e) {
  failed = true;
  console.error(String(e && e.stack || e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
