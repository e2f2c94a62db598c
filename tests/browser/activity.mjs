// The dashboard's AI activity: the Activity page (rows newest first, filters that live in
// the address, links to people, devices and connectors, unknown connectors marked) and the
// recent AI use on the device, connector and person pages, in headless Chromium with
// playwright-core. Run by tests/tests/dashboard.rs against a seeded collector:
//
//   SIGHTLINE_URL     https://127.0.0.1:PORT (the collector's HTTP listener)
//   SIGHTLINE_VIEWER  a viewer API token
//   SIGHTLINE_EXPECT  JSON: the seeded sessions (see the Rust test)
//   SIGHTLINE_SHOTS   where to save screenshots
//
// Exits 0 when every check passed; otherwise prints the failed check and exits 1.
import { check, launch, shotsDir } from "./harness.mjs";

const url = process.env.SIGHTLINE_URL;
const viewer = process.env.SIGHTLINE_VIEWER;
const expect = JSON.parse(process.env.SIGHTLINE_EXPECT);
const shots = shotsDir();

// The session ids of the activity rows on screen, top to bottom.
async function rows(page) {
  return page.getByTestId("activity-row").evaluateAll((rs) => rs.map((r) => r.dataset.session));
}

// Opens a dashboard address and waits for what it renders (rows, the empty state or an
// error); the page is cleared first, so nothing of the one before can be taken for it.
async function open(page, hash) {
  await page.evaluate(() => document.getElementById("main").replaceChildren());
  await page.goto(url + "/ui/" + hash);
  await page.locator("[data-testid=activity-row], [data-testid=empty], [data-testid=recent-activity-none], [data-testid=error]").first().waitFor();
}

const browser = await launch();
let failed = false;
let page = null;
try {
  page = await (await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } })).newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url + "/ui/");
  await page.fill("#token", viewer);
  await page.click("form.login button[type=submit]");
  await page.getByTestId("devices-total").waitFor();

  // The page from the navigation: every session, newest first.
  await page.click("a[data-nav=activity]");
  await page.getByTestId("activity-row").first().waitFor();
  check(JSON.stringify(await rows(page)) === JSON.stringify(expect.newest_first), "all sessions, newest first: " + (await rows(page)).join(", "));
  check((await page.getByTestId("activity-range").textContent()).startsWith(`${expect.newest_first.length} sessions`), "the count is shown");
  const first = page.locator(`[data-session="${expect.mcp_session}"]`);
  const cell = (col) => first.locator(`td[data-col=${col}]`);
  check(await cell("person").locator("a").getAttribute("href") === "#/person/" + encodeURIComponent(expect.alice_email), "the person links to their page");
  check((await cell("person").textContent()).includes("Alice Ng"), "the person is shown by name");
  check((await cell("account").textContent()) === "alice", "the OS account is shown");
  check(await cell("device").locator("a").getAttribute("href") === "#/device/" + encodeURIComponent(expect.alice_device), "the device links to its page");
  check((await cell("device").textContent()) === expect.alice_host, "the device is shown by hostname");
  const linked = await cell("connectors").locator("a").evaluateAll((as) => as.map((a) => a.dataset.id));
  check(linked.includes("tool:claude_code") && linked.includes(expect.github_key), "known connectors link to their pages: " + linked.join(", "));
  const unknown = cell("connectors").getByTestId("unknown-connector");
  check(await unknown.count() === 1 && (await unknown.textContent()).includes("jira") && (await unknown.textContent()).includes("unknown"), "an unknown MCP server is marked, not linked");
  check((await cell("prompts").textContent()) === "4" && (await cell("calls").textContent()) === String(expect.mcp_session_calls), "prompts and tool calls");
  check((await cell("mcp").textContent()) === "github (3), jira (1)", "MCP servers with their calls: " + await cell("mcp").textContent());
  const bobRow = page.locator(`[data-session="${expect.bob_session}"]`);
  check((await bobRow.locator("td[data-col=person]").textContent()).includes("deprovisioned"), "use by a deprovisioned person is marked");
  await page.screenshot({ path: `${shots}/activity.png`, fullPage: true });

  // Filters: typed in, they land in the address, so the view can be shared.
  await page.getByTestId("activity-user").fill(expect.alice_email);
  await page.getByTestId("activity-filters").locator("button[type=submit]").click();
  await page.waitForFunction(() => location.hash.includes("user="));
  await page.waitForFunction((n) => document.querySelectorAll("[data-testid=activity-row]").length === n, expect.alice_sessions.length);
  check(page.url().includes("user=" + encodeURIComponent(expect.alice_email)), "the user filter is in the address: " + page.url());
  check(JSON.stringify(await rows(page)) === JSON.stringify(expect.alice_sessions), "only alice's sessions");
  await page.screenshot({ path: `${shots}/activity-filtered.png`, fullPage: true });
  // The shared address, opened fresh: the same answer, the filter filled in.
  await open(page, "#/activity?connector=mcp%3Agithub");
  check(JSON.stringify(await rows(page)) === JSON.stringify([expect.mcp_session]), "a connector prefix finds the session that called github");
  check(await page.getByTestId("activity-connector").inputValue() === "mcp:github", "the filter shows what the address asks");
  await open(page, "#/activity?device=" + encodeURIComponent(expect.bob_host));
  check(JSON.stringify(await rows(page)) === JSON.stringify([expect.bob_session]), "a hostname finds that device's sessions");
  await open(page, "#/activity?since=" + encodeURIComponent(expect.between));
  check(JSON.stringify(await rows(page)) === JSON.stringify(expect.newest_first.slice(0, 2)), "since: the two recent sessions");
  await open(page, "#/activity?since=" + encodeURIComponent("1d ago"));
  check(JSON.stringify(await rows(page)) === JSON.stringify(expect.newest_first.slice(0, 2)), "since, relative: the same two");
  await open(page, "#/activity?until=" + encodeURIComponent(expect.between));
  check(JSON.stringify(await rows(page)) === JSON.stringify([expect.mcp_session]), "until: the old one");
  await open(page, "#/activity?user=nobody%40example.com");
  check(await page.getByTestId("empty").count() === 1, "no match says so");
  await open(page, "#/activity?since=yesterday-ish");
  check((await page.getByTestId("error").textContent()).includes("since"), "a bad instant is explained");

  // From a row to the device: its recent AI use.
  await open(page, "#/activity");
  await first.locator("td[data-col=device] a").click();
  await page.getByTestId("device-title").waitFor();
  await page.getByTestId("recent-activity").waitFor();
  check(JSON.stringify(await rows(page)) === JSON.stringify(expect.alice_sessions), "the device page lists its sessions");

  // The connector page: last used, and its sessions.
  await open(page, "#/activity");
  await first.locator(`td[data-col=connectors] a[data-id="${expect.github_key}"]`).click();
  await page.getByTestId("connector-title").waitFor();
  await page.getByTestId("recent-activity").waitFor();
  check((await page.getByTestId("last-used").textContent()) === expect.github_last_used, "last used: " + await page.getByTestId("last-used").textContent());
  check(JSON.stringify(await rows(page)) === JSON.stringify([expect.mcp_session]), "the connector page lists the sessions through it");
  await page.screenshot({ path: `${shots}/activity-connector.png`, fullPage: true });

  // The person page: their AI use, with a link to all of it.
  await open(page, "#/person/" + encodeURIComponent(expect.alice_email));
  await page.getByTestId("recent-activity").waitFor();
  check(JSON.stringify(await rows(page)) === JSON.stringify(expect.alice_sessions), "the person page lists their sessions");
  check((await page.getByTestId("activity-all").getAttribute("href")) === "#/activity?user=" + encodeURIComponent(expect.alice_email), "and links to all of them");

  // Triage at an instant: the AI in use then.
  await open(page, "#/triage?" + new URLSearchParams({ q: expect.alice_email, at: expect.during_recent }).toString());
  check(JSON.stringify(await rows(page)) === JSON.stringify([expect.recent_session]), "triage shows the session active then");
  await page.screenshot({ path: `${shots}/activity-triage.png`, fullPage: true });

  // A phone: the table scrolls in its box, the page does not widen.
  await page.setViewportSize({ width: 390, height: 844 });
  await open(page, "#/activity");
  const wide = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  check(!wide, "on a phone the page is not wider than the screen");
  await page.screenshot({ path: `${shots}/phone-activity.png`, fullPage: true });
  check(errors.length === 0, "no script errors: " + errors.join("; "));
} catch (e) {
  console.error(String(e && e.stack || e));
  if (page) console.error("page: " + await page.locator("main").textContent().catch(() => "?"));
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
