// The web console under `verity dev` (plaintext on loopback, insecure: every caller is an
// administrator, no sign-in), where the server also runs the shop, the gateway and the
// consolidator and serves their admin APIs under /ui/platform/. Run by ../run after the
// serve-based tests, with VERITY_DEV_URL (the server) and VERITY_DEV_GATEWAY (the shop's
// public API).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { DEV_URL, DEV_GATEWAY, waitFor, launch, newPage, shot } from "./helpers.js";

const UI = DEV_URL + "/ui/";
const SERVICES = ["customers", "inventory", "orders", "payments"];

// shop makes one call to the shop through its gateway and answers the JSON.
async function shop(method, path, body) {
  const res = await fetch(DEV_GATEWAY + path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function server(path) {
  const res = await fetch(DEV_URL + path);
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

// place places an order through the gateway. It is a command: the gateway appends it to
// ordercommand-<id> and waits up to 2 s for its outcome; a slow machine may answer
// "pending", so its status is polled then.
async function place(customerId, skus) {
  let cmd = await shop("POST", "/api/orders", { customerId, lines: skus.map((sku) => ({ sku, qty: 1 })) });
  if (cmd.state !== "succeeded") cmd = await waitFor("the order command to succeed", async () => {
    const st = await shop("GET", cmd.statusUrl);
    if (st.state === "failed") throw new Error("PlaceOrder failed: " + JSON.stringify(st));
    return st.state === "succeeded" && st;
  });
  return { commandId: cmd.commandId, orderId: cmd.result.orderId };
}

let browser;
let order; // {commandId, orderId}
let placeOrder;
const run = Date.now().toString(36);

before(async () => {
  browser = await launch();
  // The shop's services register themselves as verity dev starts; wait for all four.
  await waitFor("the four shop services to be healthy", async () => {
    const l = (await server("/registry/services")).services || [];
    return SERVICES.every((n) => l.some((s) => s.name === n && s.healthy >= 1));
  }, 20000);
  const customer = await shop("POST", "/api/customers", { name: "Ada " + run, email: `ada-${run}@example.com` });
  const skus = ["tea", "cake", "jam"].map((s) => `${s}_${run}`);
  for (const sku of skus) await shop("POST", "/api/products", { sku, name: sku, priceCents: 250, stock: 50 });
  placeOrder = () => place(customer.customerId, skus);
  order = await placeOrder();
  // Payments confirms the order asynchronously: wait until the log holds OrderConfirmed.
  await waitFor("OrderConfirmed", async () => {
    const s = await server(`/streams/order-${order.orderId}`);
    return s.events.some((e) => e.type === "OrderConfirmed");
  });
});
after(async () => { await browser?.close(); });

test("Services shows the four shop services healthy, and the gateway's routes with closed breakers, refreshed on their own", async () => {
  const page = await newPage(browser);
  await page.goto(UI + "#/services");
  // no sign-in under verity dev: the header says why
  await page.locator("#who").getByText("insecure dev mode").waitFor();
  const inst = page.locator(".instances");
  for (const name of SERVICES) {
    await inst.locator("tr", { hasText: name }).locator(".badge", { hasText: "healthy" }).first().waitFor();
  }
  const routes = page.locator(".routes");
  const orderRoute = routes.locator("tr", { has: page.getByRole("cell", { name: "order", exact: true }) });
  await orderRoute.locator('li[data-service="orders"] .badge', { hasText: "closed" }).waitFor();
  const place = routes.locator("tr", { has: page.getByRole("cell", { name: "place-order", exact: true }) });
  assert.match(await place.innerText(), /command/);

  // the page refreshes itself: a request through the gateway shows up without a reload
  const requests = orderRoute.locator("td").nth(3);
  const before_ = Number((await requests.innerText()).replace(/\D/g, ""));
  await shop("GET", `/api/orders/${order.orderId}`);
  await waitFor("the order route's count to go up", async () => Number((await requests.innerText()).replace(/\D/g, "")) > before_, 8000);
  assert.match(await orderRoute.locator('li[data-service="orders"]').innerText(), /closed\s+\d+ req · 0\.0 % errors/);
  // ages ("registered 12s ago") keep counting though the registry does not change
  const age = inst.locator("time.ago").first();
  const loads = async () => page.locator(".updated").getAttribute("data-loads");
  const was = await age.innerText();
  const loadsWere = await loads();
  await waitFor("a registration's age to move on", async () => (await age.innerText()) !== was, 12000);
  assert.equal(await loads(), loadsWere, "the age moved on by itself, not by a reload");
  await shot(page, "dev-services");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("Subscriptions shows the shop's consumer groups and follows them on its own, keeping open details open", async () => {
  const page = await newPage(browser);
  await page.goto(UI + "#/subscriptions");
  const card = page.locator('.group[data-group="ordercommand-inbox"]');
  await card.waitFor();
  const delivered = card.locator(".stat", { hasText: "Delivered" }).locator(".value");
  const count = async () => Number((await delivered.innerText()).replace(/\D/g, ""));
  const before_ = await count();
  await card.locator("summary").click();
  await card.locator("details table").waitFor();
  await placeOrder();
  await waitFor("the group's delivered count to go up without a reload", async () => (await count()) > before_, 8000);
  assert.equal(await card.locator("details").getAttribute("open"), "", "the consumers stay shown");
  // Once the order is through, the group is live with nothing waiting or in flight: events
  // past its last written checkpoint are handled, and not shown as lag to worry about.
  const stat = (label) => card.locator(".stat", { has: page.locator(".label", { hasText: new RegExp(`^${label}$`) }) });
  await waitFor("the group idle again", async () =>
    (await stat("Waiting").locator(".value").innerText()) === "0" && (await stat("In flight").locator(".value").innerText()) === "0", 8000);
  assert.match(await card.locator(".badge").first().innerText(), /live/i);
  assert.doesNotMatch((await stat("Lag").getAttribute("class")) || "", /\bwarn\b/, "a live idle group's lag is not flagged");
  await shot(page, "dev-subscriptions");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("Views shows orders_overview caught up, follows changes live keeping focus, pauses when hidden, and a rebuild completes", async () => {
  const page = await newPage(browser);
  await page.goto(UI + "#/views");
  const row = page.locator("tr", { has: page.getByRole("cell", { name: "orders_overview", exact: true }) });
  await row.locator(".state", { hasText: "caught up" }).waitFor();
  await row.locator(".badge", { hasText: "running" }).waitFor();
  const confirmedAt = (await server(`/streams/order-${order.orderId}`)).events.find((e) => e.type === "OrderConfirmed").position;
  const position = Number((await row.locator("td").nth(2).innerText()).replace(/\D/g, ""));
  assert.ok(position >= confirmedAt, `orders_overview at ${position} has applied OrderConfirmed at ${confirmedAt}`);
  assert.equal((await row.locator("td").nth(3).innerText()).trim(), "0", "no lag in events");
  assert.match(await row.locator("td").nth(7).innerText(), /orders_overview/);

  // The page follows changes live: an order moves the view, the server says so over
  // /ui/live, and the table is swapped in place with focus kept.
  const updated = page.locator(".updated");
  const loads = async () => Number((await updated.getAttribute("data-loads")) || 0);
  const btn = row.getByRole("button", { name: "Rebuild orders_overview" });
  await btn.focus();
  const before = await loads();
  await placeOrder();
  await waitFor("a refresh after an order", async () => (await loads()) > before, 8000);
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.dataset.key), "rebuild-orders_overview");

  // hidden tab: not followed until it shows again, and then brought up to date at once
  await page.evaluate(() => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
    document.dispatchEvent(new Event("visibilitychange"));
  });
  await new Promise((r) => setTimeout(r, 300)); // a refresh already under way may end
  const frozen = await loads();
  await placeOrder();
  await new Promise((r) => setTimeout(r, 2600)); // past the server's next look (1 s): nothing may happen in it
  assert.equal(await loads(), frozen, "no refresh while the tab is hidden");
  await page.evaluate(() => {
    delete document.hidden;
    document.dispatchEvent(new Event("visibilitychange"));
  });
  await waitFor("a refresh once shown again", async () => (await loads()) > frozen, 5000);
  await shot(page, "dev-views");

  // rebuild: confirmation, then its state until it is done
  const generation = Number(await row.locator("td").nth(5).innerText());
  await btn.click();
  const dlg = page.getByRole("dialog");
  await dlg.getByText("new generation of orders_overview").waitFor();
  await shot(page, "dev-views-rebuild-confirm");
  await dlg.getByRole("button", { name: "Rebuild" }).click();
  await page.getByRole("status").filter({ hasText: "Rebuild of orders_overview done" }).waitFor({ timeout: 20000 });
  await waitFor("a new generation", async () => Number(await row.locator("td").nth(5).innerText()) > generation);
  await row.locator(".state", { hasText: "caught up" }).waitFor();
  await shot(page, "dev-views-rebuilt");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("the order's command event shows its causation chain down to OrderConfirmed", async () => {
  const page = await newPage(browser);
  await page.goto(UI + "#/events/" + order.commandId);
  await page.getByRole("heading", { name: /PlaceOrder/ }).waitFor();
  const chain = page.locator(".chain");
  await chain.getByText("this event starts its chain").waitFor();
  const top = chain.locator(":scope ul.tree").first();
  // PlaceOrder -> OrderPlaced -> ReservationSucceeded -> PaymentSucceeded -> OrderConfirmed,
  // each a level deeper; and the command's own outcome beside OrderPlaced
  const placed = top.locator(":scope > li", { has: page.locator(":scope > .chain-line .etype", { hasText: /^OrderPlaced$/ }) });
  await placed.waitFor();
  await top.locator(":scope > li > .chain-line .etype", { hasText: "CommandSucceeded" }).waitFor();
  let level = placed;
  for (const type of ["ReservationSucceeded", "PaymentSucceeded", "OrderConfirmed"]) {
    level = level.locator(":scope > ul.tree > li", { has: page.locator(":scope > .chain-line .etype", { hasText: new RegExp(`^${type}$`) }) });
    await level.waitFor();
  }
  // three StockReserved, one per product, folded into one line that opens
  const group = placed.locator(":scope > ul.tree > li.group-of");
  await group.locator("summary").waitFor();
  assert.match(await group.locator("summary").innerText(), /StockReserved × 3 in 3 streams/);
  await group.locator("summary").click();
  assert.equal(await group.locator("li .etype", { hasText: "StockReserved" }).count(), 3);
  assert.match(await chain.locator(".chain-summary").innerText(), /^8 events in 7 streams/);
  await shot(page, "dev-event-chain");

  // and from OrderConfirmed back up to the command, root-most first
  await level.locator(".etype", { hasText: "OrderConfirmed" }).click();
  await page.getByRole("heading", { name: /OrderConfirmed/ }).waitFor();
  const causes = page.locator(".chain ol.causes > li .etype");
  await waitFor("four causes", async () => (await causes.count()) === 4);
  assert.deepEqual(await causes.allTextContents(), ["PlaceOrder", "OrderPlaced", "ReservationSucceeded", "PaymentSucceeded"]);
  await shot(page, "dev-event-confirmed");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
