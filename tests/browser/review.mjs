// Drives a reviewer's page (/ui/review/#t=TOKEN) and the admins' campaign overview in
// headless Chromium with playwright-core. Run by tests/tests/dashboard.rs:
//
//   SIGHTLINE_URL       https://127.0.0.1:PORT (the collector's HTTP listener)
//   SIGHTLINE_LINK      the reviewer's link, as the reminder outbox gave it
//   SIGHTLINE_ADMIN     an admin API token
//   SIGHTLINE_EXPECT    JSON: campaign, token_key, token_name, tool_key, hostname, reviewer
//   SIGHTLINE_SHOTS     where to save screenshots
//
// Exits 0 when every check passed; otherwise prints the failed check and exits 1.
import { check, launch, shotsDir } from "./harness.mjs";

const url = process.env.SIGHTLINE_URL;
const reviewLink = process.env.SIGHTLINE_LINK;
const admin = process.env.SIGHTLINE_ADMIN;
const expect = JSON.parse(process.env.SIGHTLINE_EXPECT);
const shots = shotsDir();

const browser = await launch();
let failed = false;
let shown = null;
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 1000 } });
  const page = await context.newPage();
  shown = page;
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const sent = [];
  page.on("request", (r) => sent.push(r.url() + " " + JSON.stringify(r.headers())));

  // The link opens the reviewer's own items; the token leaves the address bar.
  await page.goto(reviewLink);
  await page.getByTestId("review-item").first().waitFor();
  check(!page.url().includes("#t="), "the token is taken out of the address bar");
  const token = reviewLink.split("#t=")[1];
  check(!sent.some((s) => s.startsWith(url + "/ui/") && s.includes(token)), "the page request carries no token (fragment only)");
  const items = page.getByTestId("review-item");
  check(await items.count() === 2, "the reviewer sees their two items");
  const card = page.locator(`[data-key="${expect.token_key}"]`);
  check((await card.locator("h2").textContent()).includes(expect.token_name), "the key is shown by its name");
  check((await card.getByTestId("devices").textContent()).includes(expect.hostname), "with the device it is on");
  check((await page.locator("main").textContent()).includes(expect.reviewer_name), "the page greets the reviewer");
  check((await card.textContent()).includes("its owner has left"), "and says why they review it");

  // A reason is required; then keep for 30 days.
  await card.getByTestId("keep").click();
  await card.locator(".error:not([hidden])").waitFor();
  check((await card.locator(".error").textContent()).includes("Say why"), "keeping without a reason is refused");
  await card.locator("input[name=reason]").fill("the data team still uses it");
  await card.locator("select[name=keep_for]").selectOption("30d");
  await card.getByTestId("keep").click();
  await card.getByTestId("answer").waitFor();
  check((await card.getByTestId("answer").textContent()).startsWith("Kept until"), "the key is kept, with its end date");

  const tool = page.locator(`[data-key="${expect.tool_key}"]`);
  await tool.locator("input[name=reason]").fill("not needed since she left");
  await tool.getByTestId("revoke").click();
  await tool.getByTestId("answer").waitFor();
  check((await tool.getByTestId("answer").textContent()).startsWith("Revoked"), "the tool is revoked");
  await page.screenshot({ path: `${shots}/review.png`, fullPage: true });

  // A reload keeps the tab's token and shows the answers.
  await page.reload();
  await page.getByTestId("answer").first().waitFor();
  check(await page.getByTestId("answer").count() === 2, "after a reload both answers show");
  check(errors.length === 0, "no script errors: " + errors.join("; "));

  // A made-up link is refused with a message.
  const stranger = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
  await stranger.goto(url + "/ui/review/#t=slrev_not-a-token");
  await stranger.getByTestId("error").waitFor();
  check((await stranger.getByTestId("error").textContent()).includes("not valid"), "a bad link is refused");

  // Admins see the campaign in the dashboard.
  const adminPage = await (await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } })).newPage();
  await adminPage.goto(url + "/ui/");
  await adminPage.fill("#token", admin);
  await adminPage.click("form.login button[type=submit]");
  await adminPage.getByTestId("devices-total").waitFor();
  await adminPage.click("a[data-nav=reviews]");
  await adminPage.getByTestId("campaign-row").first().waitFor();
  const row = await adminPage.getByTestId("campaign-row").first().textContent();
  check(row.includes(expect.campaign) && row.includes("2 of 2 answered"), "the overview lists the campaign and its progress: " + row);
  await adminPage.screenshot({ path: `${shots}/reviews.png` });
  await adminPage.getByTestId("campaign-row").first().locator("a").click();
  await adminPage.getByTestId("review-row").first().waitFor();
  const table = await adminPage.getByTestId("review-table").textContent();
  check(table.includes("kept") && table.includes("revoked") && table.includes(expect.reviewer), "the campaign page shows each answer and reviewer");
  await adminPage.screenshot({ path: `${shots}/review-campaign.png` });
} catch (e) {
  console.error(String(e && e.stack || e));
  // What the reviewer's page said, to see why.
  if (shown) console.error("page: " + await shown.locator("main").textContent().catch(() => "?"));
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
