// A reviewer keeps one item for 30 days from their review page (/ui/review/#t=TOKEN), in
// headless Chromium with playwright-core. Run by tests/tests/story.rs:
//
//   SIGHTLINE_LINK      the reviewer's link, as the reminder outbox gave it
//   SIGHTLINE_KEY       the connector key of the item to keep
//   SIGHTLINE_REASON    the reason to give
//   SIGHTLINE_SHOTS     where to save the screenshot
//
// Exits 0 when every check passed; otherwise prints the failed check and exits 1.
import { check, launch, shotsDir } from "./harness.mjs";

const link = process.env.SIGHTLINE_LINK;
const key = process.env.SIGHTLINE_KEY;
const shots = shotsDir();

const browser = await launch();
let failed = false;
try {
  const page = await (await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 1000 } })).newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(link);
  await page.getByTestId("review-item").first().waitFor();
  const card = page.locator(`[data-key="${key}"]`);
  check(await card.count() === 1, "the item is on the reviewer's page");
  await card.locator("input[name=reason]").fill(process.env.SIGHTLINE_REASON);
  await card.locator("select[name=keep_for]").selectOption("30d");
  await card.getByTestId("keep").click();
  await card.getByTestId("answer").waitFor();
  check((await card.getByTestId("answer").textContent()).startsWith("Kept until"), "kept, with its end date");
  await page.screenshot({ path: `${shots}/story-review.png`, fullPage: true });
  check(errors.length === 0, "no script errors: " + errors.join("; "));
} catch (e) {
  failed = true;
  console.log(String(e && e.stack || e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
