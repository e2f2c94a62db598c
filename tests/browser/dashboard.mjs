// Drives the Sightline dashboard in headless Chromium (Debian's /usr/bin/chromium) with
// playwright-core. Run by tests/tests/dashboard.rs against a seeded collector:
//
//   SIGHTLINE_URL        https://127.0.0.1:PORT (the collector's HTTP listener)
//   SIGHTLINE_VIEWER     a viewer API token
//   SIGHTLINE_ADMIN      an admin API token
//   SIGHTLINE_EXPECT     JSON: what the seeded fleet holds (see the Rust test)
//   SIGHTLINE_SHOTS      where to save screenshots
//   SIGHTLINE_EMPTY_URL  a second collector with no policy and no devices
//   SIGHTLINE_EMPTY_VIEWER  a viewer API token for it
//
// Exits 0 when every check passed; otherwise prints the failed check and exits 1.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const url = process.env.SIGHTLINE_URL;
const viewer = process.env.SIGHTLINE_VIEWER;
const admin = process.env.SIGHTLINE_ADMIN;
const expect = JSON.parse(process.env.SIGHTLINE_EXPECT);
const shots = process.env.SIGHTLINE_SHOTS;
const emptyUrl = process.env.SIGHTLINE_EMPTY_URL;
const emptyViewer = process.env.SIGHTLINE_EMPTY_VIEWER;
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

// What the page renders, as a person sees it: elements with a box on screen that are not
// hidden by CSS (computed style and layout, not attributes).
async function visibleOutside(page, allowed) {
  return page.evaluate((allowed) => {
    const keep = document.querySelector(allowed);
    const out = [];
    for (const e of document.body.querySelectorAll("*")) {
      if (keep && (keep.contains(e) || e.contains(keep))) continue;
      const r = e.getBoundingClientRect();
      const st = getComputedStyle(e);
      if (r.width > 0 && r.height > 0 && st.visibility === "visible" && e.checkVisibility({ opacityProperty: true, visibilityProperty: true })) {
        out.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + ": " + (e.textContent || "").trim().slice(0, 40));
      }
    }
    return out;
  }, allowed);
}

async function signedOutShowsOnlyTheForm(page, what) {
  await page.getByTestId("login").waitFor();
  const stray = await visibleOutside(page, "[data-testid=login]");
  check(stray.length === 0, `${what}: nothing but the sign-in form is visible (${stray.join(" | ")})`);
  for (const sel of ["header", "#nav", "#signout"]) {
    const box = await page.locator(sel).boundingBox();
    check(box === null, `${what}: ${sel} has no box on screen`);
  }
}

// The header fits the viewport and every link in it lies on the header's dark background.
async function headerFits(page, what) {
  const r = await page.evaluate(() => {
    const h = document.querySelector("header").getBoundingClientRect();
    const bad = [];
    for (const a of document.querySelectorAll("header a, header button, #who")) {
      const b = a.getBoundingClientRect();
      if (b.left < h.left || b.right > h.right || b.top < h.top || b.bottom > h.bottom || b.right > window.innerWidth) bad.push(a.textContent);
    }
    return { bad, pageWidth: document.documentElement.scrollWidth, viewport: window.innerWidth };
  });
  check(r.bad.length === 0, `${what}: every header link is inside the header (${r.bad.join(", ")})`);
  check(r.pageWidth <= r.viewport, `${what}: the page is no wider than the viewport (page ${r.pageWidth} px, viewport ${r.viewport} px)`);
}

// Devices and connectors are shown by name, their ids on hover.
async function namesNotIds(page, what) {
  const links = await page.evaluate(() => [...document.querySelectorAll("main a[href^='#/device/'], main a[href^='#/connector/']")]
    .map((a) => ({ href: a.getAttribute("href"), text: a.textContent, title: a.getAttribute("title") })));
  check(links.length > 0, `${what}: devices or connectors are linked`);
  const bad = links.filter((l) => {
    const id = decodeURIComponent(l.href.replace(/^#\/(device|connector)\//, ""));
    if (l.title !== id) return true;
    if (l.href.startsWith("#/device/")) return l.text === id || l.text.endsWith("…");
    return l.text === id;
  });
  check(bad.length === 0, `${what}: every device and connector link shows a name with its id as title (${bad.map((b) => b.text).slice(0, 5).join(", ")})`);
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

  // Signed out, only the sign-in form shows. Sign-in: a bad token is refused with a
  // message, a viewer token gets in.
  await page.goto(url + "/ui/");
  await signedOutShowsOnlyTheForm(page, "desktop");
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
  check(o.policy_judges && await page.getByTestId("no-policy").count() === 0, "with a policy, no policy explanation");
  await headerFits(page, "desktop");
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
  // The second click must land on the re-rendered, ascending table, or it asks for
  // ascending again.
  await page.locator("th[data-sort=hostname].sorted-asc").waitFor({ timeout: 15000 });
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
  await namesNotIds(page, "devices");
  await page.screenshot({ path: `${shots}/devices.png`, fullPage: true });

  // A device page: identity, assurance, who is logged in, what is present.
  await page.goto(`${url}/ui/#/device/${encodeURIComponent(expect.alice_device)}`);
  await page.getByTestId("device-title").waitFor();
  check((await page.getByTestId("device-title").textContent()).includes(expect.alice_host), "device page title");
  const facts = await page.getByTestId("device-facts").textContent();
  check(facts.includes("software"), "device assurance shown: " + facts);
  await page.getByTestId("presence").first().waitFor();
  check((await page.locator("main").textContent()).includes(expect.ext_label), "the extension is on the device page");
  // Its findings, from the API filtered by device, each about this device.
  const own = await api(`/api/v1/views/findings?limit=500&device=${encodeURIComponent(expect.alice_device)}`, viewer);
  check(own.total > 0 && own.items.every((f) => f.device_id === expect.alice_device && f.hostname === expect.alice_host),
    `the API lists the device's own findings, with its hostname (${own.total})`);
  await page.getByTestId("device-findings").waitFor();
  const shownOwn = await page.locator("[data-testid=device-findings] tbody tr").count();
  check(shownOwn === own.total, `the device page lists its ${own.total} findings (${shownOwn})`);
  check((await page.getByTestId("device-findings").textContent()).includes(expect.ext_label), "the shadow-AI extension is among them");
  await namesNotIds(page, "device page");
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
  const findingsText = await page.locator("[data-testid=findings-table] tbody").textContent();
  check(findingsText.includes("laptop-0") && !findingsText.includes("…"), "findings name devices by hostname, not truncated ids");
  check(findingsText.includes(expect.cursor_name) && !/\btool:cursor\b/.test(findingsText), "findings name tools from the catalog");
  await namesNotIds(page, "findings");
  await page.screenshot({ path: `${shots}/findings.png`, fullPage: true });

  // Connectors: tools by the catalog's name, the id on hover; uncatalogued ones as reported.
  await page.goto(`${url}/ui/#/connectors`);
  await page.getByTestId("connectors-table").waitFor();
  const cursor = page.locator("[data-testid=connectors-table] a[title='tool:cursor']");
  check((await cursor.textContent()) === expect.cursor_name, `tool:cursor is shown as "${expect.cursor_name}"`);
  const copilot = page.locator(`[data-testid=connectors-table] a[title='tool:${expect.uncatalogued_tool}']`);
  check((await copilot.textContent()) === expect.uncatalogued_tool, "a tool the catalog does not know keeps its reported id");
  const header = await page.locator("[data-testid=connectors-table] thead").textContent();
  check(header.includes("Owner"), "the connectors table has an owner column");
  const cursorRow = await page.locator("[data-testid=connectors-table] tr", { has: page.locator("a[title='tool:cursor']") }).first().textContent();
  check(/shared|unknown/.test(cursorRow) && !cursorRow.includes("@example.com"), `a tool on many people's laptops has no single owner: ${cursorRow}`);
  await page.goto(`${url}/ui/#/connectors?q=${encodeURIComponent(expect.owner)}`);
  await page.locator(`[data-testid=connectors-table] a[title='${expect.owned_key}']`).waitFor();
  const ownedRow = await page.locator("[data-testid=connectors-table] tr", { has: page.locator(`a[title='${expect.owned_key}']`) }).first().textContent();
  check(ownedRow.includes(expect.owner), `searching by owner finds her key, with her as owner: ${ownedRow}`);
  await namesNotIds(page, "connectors");
  await page.screenshot({ path: `${shots}/connectors.png`, fullPage: true });

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
  await namesNotIds(page, "revoked connector");
  await page.screenshot({ path: `${shots}/connector-revoked.png`, fullPage: true });

  // Approve from the dashboard.
  await page.goto(`${url}/ui/#/connector/${encodeURIComponent(expect.approve_key)}`);
  await page.getByTestId("register").waitFor();
  // Two prompts: the reason, then for how long.
  const answers = ["pilot approved by security", "30d"];
  const answer = (d) => { d.accept(answers.shift()); if (answers.length) page.once("dialog", answer); };
  page.once("dialog", answer);
  await page.getByTestId("approve").click();
  await page.waitForFunction(() => document.querySelector("[data-testid=status]")?.textContent.trim() === "approved");
  const decision = await page.getByTestId("decision").textContent();
  check(decision.includes("until") && decision.includes("pilot approved by security"), `the approval shows its expiry and reason: ${decision}`);
  const history = await page.getByTestId("history").textContent();
  check(history.includes("approved") && history.includes("admin:token:"), `the history records who approved: ${history}`);
  await page.screenshot({ path: `${shots}/connector-register.png`, fullPage: true });

  // A phone (390 px wide): the same pages, nothing overflowing, readable header.
  const phone = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const p = await phone.newPage();
  p.on("pageerror", (e) => consoleErrors.push(String(e)));
  await p.goto(url + "/ui/");
  await signedOutShowsOnlyTheForm(p, "phone");
  await p.screenshot({ path: `${shots}/phone-login.png`, fullPage: true });
  await signIn(p, viewer);
  await headerFits(p, "phone overview");
  await p.screenshot({ path: `${shots}/phone-overview.png`, fullPage: true });
  const phonePages = [
    ["devices", "#/devices", "devices-table"],
    ["device", `#/device/${encodeURIComponent(expect.alice_device)}`, "device-findings"],
    ["connectors", "#/connectors", "connectors-table"],
    ["findings", "#/findings", "findings-table"],
    ["connector", `#/connector/${encodeURIComponent(expect.live_ext_key)}`, "outcomes"],
  ];
  for (const [name, hash, testid] of phonePages) {
    await p.goto(`${url}/ui/${hash}`);
    await p.getByTestId(testid).waitFor();
    await headerFits(p, "phone " + name);
    await namesNotIds(p, "phone " + name);
    await p.screenshot({ path: `${shots}/phone-${name}.png`, fullPage: true });
  }
  await p.click("#signout");
  await signedOutShowsOnlyTheForm(p, "phone, signed out again");
  await phone.close();

  // An empty collector without a policy: each page says what to do.
  const fresh = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 1000 } });
  const e = await fresh.newPage();
  e.on("pageerror", (err) => consoleErrors.push(String(err)));
  await e.goto(emptyUrl + "/ui/");
  await e.getByTestId("login").waitFor();
  await e.fill("#token", emptyViewer);
  await e.click("form.login button[type=submit]");
  await e.getByTestId("devices-total").waitFor();
  await e.getByTestId("no-policy").waitFor();
  const noPolicy = await e.getByTestId("no-policy").textContent();
  check(noPolicy.includes("policy.toml") && noPolicy.includes("approve"), "no policy: what a policy is and where to put it");
  check(await e.locator("[data-testid=trend]").count() === 0, "no policy: no blank chart");
  check((await e.getByTestId("empty-devices").textContent()).includes("sightline-agent enroll"), "no devices: how to enroll one");
  await e.screenshot({ path: `${shots}/empty-overview.png`, fullPage: true });
  const emptyPages = [
    ["devices", "sightline-agent enroll"],
    ["connectors", "No AI connector has been reported"],
    ["findings", "No findings"],
  ];
  for (const [name, says] of emptyPages) {
    await e.goto(`${emptyUrl}/ui/#/${name}`);
    // Only the hash changes: wait for this page's text, not the previous page's empty state.
    await e.waitForFunction((says) => document.querySelector("main")?.textContent.includes(says), says, { timeout: 10000 }).catch(() => {});
    const text = await e.locator("main").textContent();
    check(text.includes(says) && !text.includes("0–0"), `empty ${name}: "${says}", no "0–0 of 0"`);
    await e.screenshot({ path: `${shots}/empty-${name}.png`, fullPage: true });
  }
  await e.goto(`${emptyUrl}/ui/#/findings?kind=shadow_ai`);
  await e.waitForFunction(() => document.querySelector("main")?.textContent.includes("Nothing matches"), null, { timeout: 10000 }).catch(() => {});
  check((await e.locator("main").textContent()).includes("Nothing matches these filters"), "an empty filtered table says so");
  await fresh.close();

  check(consoleErrors.length === 0, "no errors in the browser console: " + consoleErrors.join(" | "));
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
