// Shared by the console's browser tests: the server under test (from ./run's environment),
// API calls as admin or another user, and the browser. ./run runs console.test.js against
// `verity serve` (VERITY_URL, with authentication) and then dev.test.js against `verity dev`
// (VERITY_DEV_URL and VERITY_DEV_GATEWAY, insecure: no sign-in).
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const URL_ = process.env.VERITY_URL;
export const ADMIN = { user: "admin", password: process.env.VERITY_ADMIN_PASSWORD };
export const BIN = process.env.VERITY_BIN;
export const CA = process.env.VERITY_CA;
// UI is where the console is served; VERITY_UI overrides it (e.g. a dev proxy).
export const UI = process.env.VERITY_UI || URL_ + "/ui/";
export const DEV_URL = process.env.VERITY_DEV_URL;
export const DEV_GATEWAY = process.env.VERITY_DEV_GATEWAY;
if (!(URL_ && ADMIN.password) && !(DEV_URL && DEV_GATEWAY)) {
  throw new Error("run these tests with console/e2e/run (VERITY_URL and VERITY_ADMIN_PASSWORD, or VERITY_DEV_URL and VERITY_DEV_GATEWAY, are unset)");
}

const artifacts = join(dirname(fileURLToPath(import.meta.url)), "..", "artifacts");
mkdirSync(artifacts, { recursive: true });

// A run id keeps the names of one run apart from another's on a reused server.
export const RUN = Date.now().toString(36);

// call makes one API call; it throws on an unexpected status with the server's answer.
export async function call(method, path, body, { as = ADMIN, expect = [200, 201, 204] } = {}) {
  const headers = { Authorization: "Basic " + Buffer.from(`${as.user}:${as.password}`).toString("base64") };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(URL_ + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!expect.includes(res.status)) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export const appendEvent = (stream, ev) => call("POST", "/streams/" + encodeURIComponent(stream), ev);

// waitFor polls cond until it returns a truthy value, or fails after ms.
export async function waitFor(what, cond, ms = 10000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}` + (last ? `: ${last.message}` : ""));
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function launch() {
  return chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
}

// newPage opens a fresh context (no session) on a laptop-sized screen; browser errors are
// collected so a test can assert none happened.
export async function newPage(browser, { colorScheme = "light" } = {}) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 860 }, colorScheme });
  const page = await ctx.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  // A Content-Security-Policy violation is only a console message: count it as an error.
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) page.errors.push(m.text());
  });
  return page;
}

export async function signIn(page, who = ADMIN) {
  await page.goto(UI + "#/signin");
  await page.getByLabel("User").fill(who.user);
  await page.getByLabel("Password").fill(who.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#who .user").filter({ hasText: who.user }).waitFor();
}

export async function shot(page, name) {
  // from the top: a page scrolled by a click would draw its sticky header mid-picture
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(artifacts, name + ".png"), fullPage: true });
}
