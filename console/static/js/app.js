// The console's shell: hash routes, the signed-in user, and the sign-in form shown whenever
// the API answers 401.
import { auth, signIn, signOut, ApiError } from "./api.js";
import { h, errorBox } from "./ui.js";
import * as overview from "./pages/overview.js";
import * as streams from "./pages/streams.js";
import * as stream from "./pages/stream.js";
import * as tail from "./pages/tail.js";
import * as event from "./pages/event.js";
import * as subscriptions from "./pages/subscriptions.js";
import * as platform from "./pages/platform.js";
import * as append from "./pages/append.js";

// Each route: a pattern over the hash path, the nav entry it lights, and the page.
const routes = [
  [/^\/?$/, "overview", overview.render],
  [/^\/streams\/?$/, "streams", streams.render],
  [/^\/streams\/(.+)$/, "streams", stream.render],
  [/^\/tail\/?$/, "tail", tail.render],
  [/^\/events\/?$/, "events", event.renderLookup],
  [/^\/events\/(.+)$/, "events", event.render],
  [/^\/subscriptions\/?$/, "subscriptions", subscriptions.render],
  [/^\/views\/?$/, "views", platform.renderViews],
  [/^\/services\/?$/, "services", platform.renderServices],
  [/^\/append\/?$/, "append", append.render],
  [/^\/signin\/?$/, null, renderSignIn],
];

const main = document.getElementById("main");
let current = null; // AbortController of the page on screen: aborting it stops its SSE and fetches

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
  return { path, query };
}

async function route() {
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  const { path, query } = parseHash();
  let match = null;
  for (const [re, nav, page] of routes) {
    const m = path.match(re);
    if (m) { match = { nav, page, params: m.slice(1).map(decodeURIComponent) }; break; }
  }
  for (const a of document.querySelectorAll("#nav a")) {
    if (match && a.dataset.route === match.nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  // Each page renders into its own element: once the page is left (or a 401 puts the sign-in
  // form up), late answers land in a detached element and cannot disturb what is on screen.
  const page = h("div", { class: "page" });
  main.replaceChildren(page);
  if (!match) {
    page.append(h("h1", {}, "Not found"), h("p", {}, "No page at ", h("code", {}, path), ". ", h("a", { href: "#/" }, "Go to the overview")));
    return;
  }
  try {
    await match.page({ root: page, params: match.params, query, signal, navigate });
  } catch (e) {
    if (signal.aborted || e.name === "AbortError") return;
    if (e instanceof ApiError && e.status === 401) return; // the sign-in form took over
    page.append(errorBox(e, "This page failed"));
  }
}

// navigate changes the query of the current route without a history entry per keystroke.
export function navigate(hash, replace = false) {
  if (replace) {
    history.replaceState(null, "", hash);
    route();
  } else location.hash = hash;
}

// open is true when the server lets anyone in as an administrator (`verity dev`, or
// `verity serve --insecure`): the admin-only /stats answers without credentials. Then there
// is nothing to sign in to, and the header says so instead of offering a sign-in.
let open = false;
async function probeOpen() {
  try {
    const res = await fetch("/stats", { headers: { Accept: "application/json" }, cache: "no-store", credentials: "omit" });
    open = res.ok;
  } catch {
    open = false;
  }
  renderWho();
}

function renderWho() {
  const who = document.getElementById("who");
  const a = auth();
  if (!a && open) {
    who.replaceChildren(h("span", { class: "badge warn", title: "This server runs without authentication (verity dev or --insecure): every caller is an administrator. Use it on your own machine only." }, "insecure dev mode: no sign-in"));
  } else if (a) {
    who.replaceChildren(
      h("span", { class: "user", title: a.kind === "bearer" ? "signed in with a console token" : "signed in with basic auth" }, a.user),
      h("button", { type: "button", class: "secondary small", onclick: async () => { await signOut(); location.hash = "#/signin"; } }, "Sign out"));
  } else {
    who.replaceChildren(h("a", { href: "#/signin", class: "button secondary small" }, "Sign in"));
  }
}

// renderSignIn is both the #/signin page and what replaces any page that got a 401.
function renderSignIn({ root, query }, reason) {
  root.replaceChildren();
  const next = query && query.get("next");
  const err = h("div", { "aria-live": "assertive" });
  const user = h("input", { id: "si-user", name: "username", autocomplete: "username", required: true, value: (auth() && auth().user) || "" });
  const pw = h("input", { id: "si-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const btn = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "card signin", onsubmit: async (e) => {
    e.preventDefault();
    btn.disabled = true;
    err.replaceChildren();
    try {
      await signIn(user.value, pw.value);
      if (reason) route();
      else location.hash = next || "#/";
    } catch (ex) {
      err.replaceChildren(errorBox(ex, "Sign-in failed"));
    } finally {
      btn.disabled = false;
    }
  } },
  h("h1", {}, "Sign in"),
  reason ? h("p", {}, reason) : h("p", {}, "Sign in with a Verity user. The console sends your credentials only to this server."),
  h("label", { for: "si-user" }, "User"), user,
  h("label", { for: "si-password" }, "Password"), pw,
  h("div", { class: "actions" }, btn),
  err);
  root.append(form);
  (user.value ? pw : user).focus();
}

window.addEventListener("verity-unauthenticated", () => {
  if (parseHash().path.startsWith("/signin")) return;
  if (current) current.abort();
  current = new AbortController();
  const a = auth();
  renderSignIn({ root: main, query: null },
    a ? "The server no longer accepts your credentials (expired, revoked or changed). Sign in again to continue."
      : "This server needs you to sign in.");
});
window.addEventListener("verity-auth", renderWho);
window.addEventListener("hashchange", route);
renderWho();
probeOpen();
route();
