// The web console in a real browser (Chromium through playwright-core) against a real
// server with authentication on. Run by ../run.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { randomUUID } from "node:crypto";
import { ADMIN, BIN, CA, RUN, UI, URL_, call, appendEvent, waitFor, launch, newPage, signIn, shot } from "./helpers.js";

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test("a visitor without credentials is asked to sign in, and an admin sees the overview", async () => {
  const page = await newPage(browser);
  await page.goto(UI);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await shot(page, "signin");
  await page.getByLabel("User").fill("admin");
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "unauthenticated" }).waitFor();

  await signIn(page);
  await page.goto(UI + "#/");
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await appendEvent(`overview-${RUN}`, { type: "Touched", data: { n: 1 } });
  // the live figures arrive over SSE, once a second
  await page.locator(".status .badge", { hasText: "live" }).waitFor();
  await page.locator(".figure", { hasText: "Last position" }).waitFor();
  // a little traffic, until the rate chart shows it
  const rate = page.locator(".chart", { hasText: "Events appended / s" }).locator(".now");
  await waitFor("a non-zero append rate", async () => {
    await appendEvent(`overview-${RUN}`, [{ type: "Touched", data: { n: 2 } }, { type: "Touched", data: { n: 3 } }]);
    return !["0", "—"].includes(await rate.innerText());
  });
  await shot(page, "overview");
  await page.emulateMedia({ colorScheme: "dark" });
  await shot(page, "overview-dark");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("an event appended through the API appears in the live tail, and pausing keeps what arrives", async () => {
  const page = await newPage(browser);
  await signIn(page);
  const cat = `tail${RUN}`;
  await page.goto(UI + `#/tail?category=${cat}`);
  await page.locator(".tail-controls .badge", { hasText: "live" }).waitFor();

  await appendEvent(`${cat}-1`, { type: "TailSeen", data: { marker: "first-" + RUN } });
  await page.locator(".event", { hasText: "first-" + RUN }).first().waitFor({ state: "attached" });
  await page.locator(".event header", { hasText: "TailSeen" }).waitFor();

  await page.getByRole("button", { name: "Pause" }).click();
  await appendEvent(`${cat}-2`, [{ type: "WhilePaused", data: { marker: "p1" } }, { type: "WhilePaused", data: { marker: "p2" } }]);
  await page.getByText("Paused: 2 events waiting").waitFor();
  assert.equal(await page.locator(".event", { hasText: "WhilePaused" }).count(), 0, "paused events stay out of the list");
  await shot(page, "tail-paused");
  await page.getByRole("button", { name: "Resume" }).click();
  await waitFor("the buffered events", async () => (await page.locator(".event", { hasText: "WhilePaused" }).count()) === 2);
  // newest first
  const types = await page.locator(".event .type").allTextContents();
  assert.deepEqual(types.slice(0, 3), ["WhilePaused", "WhilePaused", "TailSeen"]);
  await shot(page, "tail");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("a stream and an event open, and the causation chain is followed both ways", async () => {
  const corr = randomUUID();
  const a = { id: corr, type: "OrderPlaced", data: { order: 7, total: 12.5 }, metadata: { $correlationId: corr } };
  const b = { id: randomUUID(), type: "PaymentTaken", data: { order: 7 }, metadata: { $correlationId: corr, $causationId: a.id } };
  const c = { id: randomUUID(), type: "ShipmentBooked", data: { order: 7 }, metadata: { $correlationId: corr, $causationId: b.id } };
  await appendEvent(`order${RUN}-7`, a);
  await appendEvent(`payment${RUN}-7`, b);
  await appendEvent(`shipment${RUN}-7`, c);
  await appendEvent(`order${RUN}-7`, { type: "OrderNoted", data: { note: "unrelated" } });

  const page = await newPage(browser);
  await signIn(page);
  await page.goto(UI + "#/streams");
  await page.getByLabel("Category").fill(`order${RUN}`);
  await page.getByRole("button", { name: "Search" }).click();
  const link = page.getByRole("link", { name: `order${RUN}-7`, exact: true });
  await link.waitFor();
  await shot(page, "streams");
  await link.click();

  await page.getByRole("heading", { name: `order${RUN}-7` }).waitFor();
  await page.locator(".event").first().waitFor();
  const types = await page.locator(".event .type").allTextContents();
  assert.deepEqual(types, ["OrderNoted", "OrderPlaced"], "newest first");
  await page.locator(".meta").getByText("no metadata").waitFor();
  await shot(page, "stream");

  // from the root: what it led to, two levels deep
  await page.locator(".event .type", { hasText: "OrderPlaced" }).click();
  await page.getByRole("heading", { name: /OrderPlaced/ }).waitFor();
  const tree = page.locator(".chain ul.tree");
  await tree.getByRole("link", { name: "PaymentTaken" }).waitFor();
  await tree.locator("ul.tree").getByRole("link", { name: "ShipmentBooked" }).waitFor();
  await page.locator(".chain").getByText("this event starts its chain").waitFor();
  await shot(page, "event-root");

  // to the leaf, and its causes, root-most first
  await tree.getByRole("link", { name: "ShipmentBooked" }).click();
  await page.getByRole("heading", { name: /ShipmentBooked/ }).waitFor();
  const causes = page.locator(".chain ol.causes > li");
  await waitFor("two causes", async () => (await causes.count()) === 2);
  assert.match(await causes.nth(0).innerText(), /OrderPlaced/);
  assert.match(await causes.nth(1).innerText(), /PaymentTaken/);
  await page.locator(".chain").getByText("no event names this one as its cause").waitFor();
  await shot(page, "event");

  // and back up by a link
  await causes.nth(1).getByRole("link", { name: "PaymentTaken" }).click();
  await page.getByRole("heading", { name: /PaymentTaken/ }).waitFor();
  assert.ok(page.url().includes(b.id));
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("a parked event is replayed from the console", async () => {
  const stream = `park${RUN}-1`;
  await appendEvent(stream, { type: "Poison", data: { bad: true } });
  await call("PUT", `/subscriptions/${stream}/billing`, { maxRetryCount: -1 });
  // a consumer that parks what it gets (consumers join over gRPC: the CLI does it)
  await promisify(execFile)(BIN, ["groups", "consume", "--server", URL_, "--ca", CA, "--user", "admin",
    "--nack", "park", "--count", "1", stream, "billing"], { env: { ...process.env, VERITY_PASSWORD: ADMIN.password }, timeout: 30000 });
  await waitFor("the event to be parked", async () => (await call("GET", `/subscriptions/${stream}/billing`)).parked === 1);

  const page = await newPage(browser);
  await signIn(page);
  await page.goto(UI + "#/subscriptions");
  const card = page.locator(`.group[data-stream="${stream}"]`);
  await card.waitFor();
  assert.match(await card.locator(".stat", { hasText: "Parked" }).innerText(), /1/);
  await shot(page, "subscriptions");
  await card.getByRole("button", { name: /Replay parked/ }).click();
  const dlg = page.getByRole("dialog");
  await dlg.getByText("1 parked event").waitFor();
  await shot(page, "subscriptions-confirm");
  await dlg.getByRole("button", { name: "Replay parked events" }).click();
  await page.getByRole("status").filter({ hasText: "Replayed" }).waitFor();
  await waitFor("no parked event", async () => (await call("GET", `/subscriptions/${stream}/billing`)).parked === 0);
  await waitFor("the page to show it", async () => /Parked\s*0/.test(await card.locator(".stat", { hasText: "Parked" }).innerText()));
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("a restricted user is denied a stream with a clear message", async () => {
  const carol = { user: `carol${RUN}`, password: "carol-pw-" + RUN };
  await call("POST", "/users", { name: carol.user, password: carol.password, roles: ["clerks"] });
  const secret = `payroll${RUN}-1`;
  await appendEvent(secret, { type: "SalaryPaid", data: { amount: 100 } });
  await call("PUT", `/streams/${secret}/metadata`, { $acl: { $r: ["auditors"], $mr: ["auditors"] } });
  await appendEvent(`note${RUN}-1`, { type: "Noted", data: {} });

  const page = await newPage(browser);
  await signIn(page, carol);
  await page.goto(UI + `#/streams/${secret}`);
  const err = page.getByRole("alert").filter({ hasText: "Reading the stream: permission_denied" });
  await err.waitFor();
  assert.match(await err.innerText(), new RegExp(`may not read stream "${secret}"`));
  assert.match(await err.innerText(), /ask an admin/);
  await shot(page, "denied");
  // an open stream still reads
  await page.goto(UI + `#/streams/note${RUN}-1`);
  await page.locator(".event .type", { hasText: "Noted" }).waitFor();
  // and signing out asks for credentials again
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await page.goto(UI + "#/streams");
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("an event appended by hand shows its result, and a wrong expected revision its error", async () => {
  const page = await newPage(browser);
  await signIn(page);
  const stream = `hand${RUN}-1`;
  await page.goto(UI + "#/append?stream=" + stream);
  await page.getByLabel("Event type").fill("HandWritten");
  await page.getByLabel("Data (JSON)").fill('{"hello": "world"}');
  await page.getByLabel("Expected revision", { exact: true }).selectOption("no-stream");
  await page.getByRole("button", { name: "Append" }).click();
  await page.getByRole("status").filter({ hasText: "revision 0" }).waitFor();
  await shot(page, "append");
  await page.getByRole("button", { name: "Append" }).click();
  const err = page.getByRole("alert").filter({ hasText: "conflict" });
  await err.waitFor();
  assert.match(await err.innerText(), /expected revision|no-stream|actual/);
  await shot(page, "append-conflict");
  await page.goto(UI + "#/streams/" + stream);
  await page.locator(".event .type", { hasText: "HandWritten" }).waitFor();
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("the platform pages show registry instances, and say when the gateway and consolidator are not run here", async () => {
  await call("POST", "/registry/instances", { service: "orders", id: `orders-${RUN}`, address: "127.0.0.1:9", version: "1.2" });
  const page = await newPage(browser);
  await signIn(page);
  await page.goto(UI + "#/services");
  await page.getByRole("cell", { name: `orders-${RUN}` }).waitFor();
  await page.getByText("not run by this server (verity dev runs them)", { exact: false }).first().waitFor();
  await shot(page, "services");
  await page.goto(UI + "#/views");
  await page.getByText("not run by this server", { exact: false }).waitFor();
  await shot(page, "views");
  await page.goto(UI + "#/events");
  await page.getByLabel("Event id").fill(randomUUID());
  await page.getByRole("button", { name: "Open" }).click();
  await page.getByRole("alert").filter({ hasText: "not_found" }).waitFor();
  await shot(page, "event-missing");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
