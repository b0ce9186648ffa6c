// The console's only door to the server: every call goes through api() or sse(), which add
// the signed-in user's Authorization header, so the console sees exactly what the API lets
// that user see.

const KEY = "verity.console.auth";

// Auth is what sessionStorage keeps: {user, kind: "bearer"|"basic", secret, tokenName?}.
// sessionStorage, not localStorage: it dies with the tab, and is not shared with other tabs.
export function auth() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

function setAuth(a) {
  if (a) sessionStorage.setItem(KEY, JSON.stringify(a));
  else sessionStorage.removeItem(KEY);
  window.dispatchEvent(new CustomEvent("verity-auth"));
}

function authHeader(a = auth()) {
  if (!a) return null;
  return a.kind === "bearer" ? "Bearer " + a.secret : "Basic " + a.secret;
}

// Every fetch is made with credentials "omit": the Authorization header is set by hand, and
// without it a 401's "WWW-Authenticate: Basic" challenge would make the browser put up its
// own login prompt over the console's sign-in form (and, headless, hang the request).

// ApiError carries the server's {"error":{kind,message,...}} answer, or a network failure
// (kind "network"), so pages can show both the kind and the message.
export class ApiError extends Error {
  constructor(status, kind, message, body) {
    super(message);
    this.status = status;
    this.kind = kind;
    this.body = body;
  }
}

async function errorFrom(res, notify = true) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: a proxy's page, or an endpoint that does not exist
  }
  const e = body && body.error;
  const kind = (e && e.kind) || (res.status === 404 ? "not_found" : "http_" + res.status);
  const message = (e && e.message) || `${res.status} ${res.statusText || "error"}`;
  const err = new ApiError(res.status, kind, message, body);
  if (res.status === 401 && notify) window.dispatchEvent(new CustomEvent("verity-unauthenticated"));
  return err;
}

// api makes one call. body (any JSON value) is sent as application/json. The answer is the
// parsed JSON, or null for an empty one; an error answer throws an ApiError.
export async function api(path, { method = "GET", body, headers = {}, signal, credentials } = {}) {
  const h = { Accept: "application/json", ...headers };
  const ah = credentials ? "Basic " + credentials : authHeader();
  if (ah) h.Authorization = ah;
  let payload;
  if (body !== undefined) {
    h["Content-Type"] = "application/json";
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: payload, signal, cache: "no-store", credentials: "omit" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "the server did not answer: " + e.message);
  }
  if (!res.ok) throw await errorFrom(res, !credentials);
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

function basic(user, password) {
  // btoa takes Latin-1 only; encode UTF-8 first so any password works.
  const bytes = new TextEncoder().encode(user + ":" + password);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

// signIn checks user and password. An admin gets a bearer token (POST /tokens, 12 h), so the
// password itself is not kept; anyone else is refused tokens (403, which also proves the
// password right, as wrong credentials are 401 first) and keeps Basic credentials.
export async function signIn(user, password) {
  const cred = basic(user, password);
  const tokenName = "console-" + crypto.randomUUID().slice(0, 8);
  try {
    const t = await api("/tokens", {
      method: "POST",
      credentials: cred,
      body: { user, name: tokenName, ttl: "12h" },
    });
    setAuth({ user, kind: "bearer", secret: t.token, tokenName });
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 403) {
      if (e instanceof ApiError && e.status === 401) {
        throw new ApiError(401, e.kind, "wrong user name or password (" + e.message + ")", e.body);
      }
      throw e;
    }
    setAuth({ user, kind: "basic", secret: cred });
  }
}

// signOut forgets the credentials, revoking the console's token first when there is one.
export async function signOut() {
  const a = auth();
  if (a && a.kind === "bearer" && a.tokenName) {
    try {
      await api(`/tokens/${encodeURIComponent(a.user)}/${encodeURIComponent(a.tokenName)}`, { method: "DELETE" });
    } catch {
      // an expired or already revoked token: forgetting it is all that is left to do
    }
  }
  setAuth(null);
}

// sse reads server-sent events with fetch, since EventSource cannot send an Authorization
// header. onMessage({event, id, data}) is called for each message; onState(state, err)
// with "connecting", "open", "error". A dropped connection is retried with backoff, resuming
// after the last id seen (Last-Event-ID), until signal aborts. Errors the server answers
// (4xx) stop it: retrying cannot fix them.
export async function sse(path, { onMessage, onState = () => {}, signal, resume = true }) {
  let lastId = null;
  let delay = 500;
  while (!signal.aborted) {
    onState("connecting");
    const h = { Accept: "text/event-stream" };
    const ah = authHeader();
    if (ah) h.Authorization = ah;
    if (resume && lastId !== null) h["Last-Event-ID"] = lastId;
    try {
      const res = await fetch(path, { headers: h, signal, cache: "no-store", credentials: "omit" });
      if (!res.ok) {
        const err = await errorFrom(res);
        if (res.status >= 400 && res.status < 500 && res.status !== 429) {
          onState("error", err);
          return;
        }
        throw err;
      }
      onState("open");
      delay = 500;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      let msg = { event: "message", data: [], id: null };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let nl;
        while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf[nl] === "\r" && buf[nl + 1] === "\n" ? 2 : 1));
          if (line === "") {
            if (msg.data.length) {
              if (msg.id !== null) lastId = msg.id;
              onMessage({ event: msg.event, id: msg.id, data: msg.data.join("\n") });
            }
            msg = { event: "message", data: [], id: null };
            continue;
          }
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "event") msg.event = val;
          else if (field === "data") msg.data.push(val);
          else if (field === "id") msg.id = val;
        }
      }
      if (signal.aborted) return;
      onState("error", new ApiError(0, "network", "the server closed the stream; reconnecting"));
    } catch (e) {
      if (signal.aborted) return;
      onState("error", e instanceof ApiError ? e : new ApiError(0, "network", "connection lost: " + e.message));
    }
    await new Promise((r) => {
      const t = setTimeout(r, delay);
      signal.addEventListener("abort", () => { clearTimeout(t); r(); }, { once: true });
    });
    delay = Math.min(delay * 2, 10000);
  }
}

// Paths. A stream name is one path segment.
export const seg = (s) => encodeURIComponent(s);
