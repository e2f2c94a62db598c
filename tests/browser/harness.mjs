// What the browser scripts share: Debian's Chromium launched headless as the tests need it,
// and a check that prints what passed and throws on what did not.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

export function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
  console.log("ok - " + what);
}

// SIGHTLINE_SHOTS, made to exist: where screenshots go.
export function shotsDir() {
  const shots = process.env.SIGHTLINE_SHOTS;
  mkdirSync(shots, { recursive: true });
  return shots;
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
}
