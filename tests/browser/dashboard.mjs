// Drives the Sightline dashboard in headless Chromium (Debian's /usr/bin/chromium) with
// playwright-core. Run by tests/tests/dashboard.rs against a seeded collector:
//
//   SIGHTLINE_URL        https://127.0.0.1:PORT (the collector's HTTP listener)
//   SIGHTLINE_VIEWER     a viewer API token
//   SIGHTLINE_ADMIN      an admin API token
//   SIGHTLINE_EXPECT     JSON: what the seeded fleet holds (see the Rust test)
//   SIGHTLINE_SHOTS      where to save screenshots
//
// Exits 0 when every check passed; otherwise prints the failed check and exits 1.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const url = process.env.SIGHTLINE_URL;
const viewer = process.env.SIGHTLINE_VIEWER;
const admin = process.env.SIGHTLINE_ADMIN;
const expect = JSON.parse(process.env.SIGHTLINE_EXPECT);
const shots = process.env.SIGHTLINE_SHOTS;
mkdirSync(shots, { recursive: true });

function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
  console.log("ok - " + what);
}

async function api(path, token) {
  const r = await fetch(url + path, { headers: { Authorization: "Bearer " + token } });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

async function signIn(page, token) {
  await page.goto(url + "/ui/");
  await page.getByTestId("login").waitFor();
  await page.fill("#token", token);
  await page.click("form.login button[type=submit]");
  await page.getByTestId("devices-total").waitFor();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
let failed = false;
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  const consoleErrors = [];
  // Script errors, not the 401s a signed-out page gets by design.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().includes("status of 401")) consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  // Sign-in: a bad token is refused with a message, a viewer token gets in.
  await page.goto(url + "/ui/");
  await page.getByTestId("login").waitFor();
  await page.fill("#token", "sla_not-a-token");
  await page.click("form.login button[type=submit]");
  await page.locator(".login .error").waitFor();
  check((await page.locator(".login .error").textContent()).includes("unknown"), "a bad token is refused on the sign-in page");
  await page.screenshot({ path: `${shots}/login.png` });
  await signIn(page, viewer);
  check((await page.getByTestId("role").textContent()).includes("viewer"), "signed in as viewer");

  // Overview numbers match the API.
  const o = await api("/api/v1/views/overview", viewer);
  const shownDevices = Number(await page.getByTestId("devices-total").textContent());
  check(shownDevices === o.devices.total && shownDevices === expect.devices, `overview shows ${expect.devices} devices (${shownDevices})`);
  const shownConnectors = Number(await page.getByTestId("connectors-total").textContent());
  check(shownConnectors === o.connectors.total, `overview connectors match the API (${shownConnectors})`);
  const shownFindings = Number(await page.getByTestId("findings-total").textContent());
  check(shownFindings === o.findings.total, `overview findings match the API (${shownFindings})`);
  check(await page.locator("[data-testid=trend] rect").count() === 30, "the trend chart has 30 days");
  await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });

  // Devices: paged and sorted by the server.
  await page.click("a[data-nav=devices]");
  await page.getByTestId("devices-table").waitFor();
  await page
    .waitForFunction((want) => document.querySelector("[data-testid=range]")?.textContent === want, `1–50 of ${expect.devices}`, {
      timeout: 15000,
    })
    .catch(() => {});
  check((await page.getByTestId("range").textContent()) === `1–50 of ${expect.devices}`, "devices page 1 of the fleet");
  check(await page.locator("[data-testid=devices-table] tbody tr").count() === 50, "50 rows per page");
  await page.click("text=Next ›");
  await page.waitForFunction(() => document.querySelector("[data-testid=range]")?.textContent.startsWith("51–"));
  check(true, "next page");
  await page.click("th[data-sort=hostname]");
  await page.waitForFunction(() => location.hash.includes("sort=hostname"));
  await page.click("th[data-sort=hostname]");
  await page.waitForFunction(() => location.hash.includes("order=desc"));
  await page.getByTestId("devices-table").waitFor();
  // The URL changes before the sorted page arrives: wait for the table itself (a busy
  // machine can take a while), then check.
  await page
    .waitForFunction(
      (want) => document.querySelector("[data-testid=devices-table] tbody tr td a")?.textContent === want,
      expect.last_hostname,
      { timeout: 15000 },
    )
    .catch(() => {});
  const firstHost = await page.locator("[data-testid=devices-table] tbody tr td a").first().textContent();
  check(firstHost === expect.last_hostname, `sorted by hostname, descending: ${firstHost}`);
  await page.screenshot({ path: `${shots}/devices.png`, fullPage: true });

  // A device page: identity, assurance, who is logged in, what is present.
  await page.goto(`${url}/ui/#/device/${encodeURIComponent(expect.alice_device)}`);
  await page.getByTestId("device-title").waitFor();
  check((await page.getByTestId("device-title").textContent()).includes(expect.alice_host), "device page title");
  const facts = await page.getByTestId("device-facts").textContent();
  check(facts.includes("software"), "device assurance shown: " + facts);
  await page.getByTestId("presence").first().waitFor();
  check((await page.locator("main").textContent()).includes(expect.ext_label), "the extension is on the device page");
  await page.screenshot({ path: `${shots}/device.png`, fullPage: true });

  // Triage: one search box and a time.
  await page.click("a[data-nav=triage]");
  await page.getByTestId("triage-q").fill(expect.alice_email);
  await page.getByTestId("triage-at").fill(expect.inside_local);
  await page.click("text=Look up");
  await page.getByTestId("triage-device").waitFor({ timeout: 10000 }).catch(async () => {
    throw new Error("triage showed: " + (await page.locator("main").textContent()) + " at " + page.url());
  });
  const triage = await page.getByTestId("triage-result").textContent();
  check(triage.includes(expect.alice_host) && triage.includes(expect.ext_label) && triage.includes("openai"),
    "triage by email and time finds her laptop, the extension and the token");
  check(triage.includes("inferred"), "attribution confidence is shown");
  await page.screenshot({ path: `${shots}/triage.png`, fullPage: true });

  // Findings with filters.
  await page.goto(`${url}/ui/#/findings?kind=shadow_ai`);
  await page.getByTestId("findings-table").waitFor();
  const rows = await page.locator("[data-testid=findings-table] tbody tr").count();
  check(rows > 0 && (await page.locator("[data-testid=findings-table] tbody").textContent()).includes("shadow_ai"), "shadow-AI findings listed");
  await page.screenshot({ path: `${shots}/findings.png`, fullPage: true });

  // A person page: deprovisioned people stand out.
  await page.goto(`${url}/ui/#/person/${encodeURIComponent(expect.bob_email)}`);
  await page.getByTestId("deprovisioned").waitFor();
  check(true, "a deprovisioned person is flagged");
  await page.goto(`${url}/ui/#/people?status=deprovisioned`);
  await page.locator(".deprovisioned-row").first().waitFor();
  await page.screenshot({ path: `${shots}/people.png`, fullPage: true });

  // A viewer sees no revoke button.
  await page.goto(`${url}/ui/#/connector/${encodeURIComponent(expect.live_ext_key)}`);
  await page.getByTestId("connector-title").waitFor();
  check(await page.getByTestId("revoke").count() === 0, "a viewer gets no revoke button");

  // An admin revokes the live agent's extension and watches its state change.
  await page.click("#signout");
  await page.getByTestId("login").waitFor();
  await signIn(page, admin);
  await page.goto(`${url}/ui/#/connector/${encodeURIComponent(expect.live_ext_key)}`);
  await page.getByTestId("revoke").waitFor();
  const before = await page.getByTestId("status").textContent();
  page.once("dialog", (d) => d.accept("unsanctioned AI extension"));
  await page.getByTestId("revoke").click();
  await page.getByTestId("revocation-state").waitFor();
  check(true, `revocation issued (status was ${before})`);
  let status = "";
  for (let i = 0; i < 60 && status !== "revoked"; i++) {
    await page.waitForTimeout(500);
    await page.reload();
    await page.getByTestId("status").waitFor();
    status = (await page.getByTestId("status").textContent()).trim();
  }
  check(status === "revoked", "the agent enforced it and the connector shows revoked");
  check((await page.getByTestId("outcomes").textContent()).includes("enforced"), "the agent's outcome is shown");
  await page.screenshot({ path: `${shots}/connector-revoked.png`, fullPage: true });

  // Approve from the dashboard.
  await page.goto(`${url}/ui/#/connector/${encodeURIComponent(expect.approve_key)}`);
  await page.getByTestId("approve").click();
  await page.waitForFunction(() => document.querySelector("[data-testid=status]")?.textContent.trim() === "approved");
  check(true, "an admin approves a connector");

  check(consoleErrors.length === 0, "no errors in the browser console: " + consoleErrors.join(" | "));
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
