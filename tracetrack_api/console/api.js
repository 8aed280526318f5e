// The HTTP API as the console calls it: one fetch wrapper, the session, the errors.
//
// The token lives in sessionStorage (this tab only, gone when it closes) and is
// sent as a header, never in a URL. Every URL is relative to the page, so the
// console works behind a proxy that mounts the service under a prefix.

const TOKEN = "tracetrack.token";
const USER = "tracetrack.user";

/** The API answered with an error: its stable code, message and HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

/** No answer: the network is down or the server is unreachable. */
export class Offline extends Error {
  constructor(cause) {
    super("No connection to the server");
    this.cause = cause;
  }
}

export const session = {
  token: () => sessionStorage.getItem(TOKEN),
  user: () => JSON.parse(sessionStorage.getItem(USER) || "null"),
  save(answer) {
    sessionStorage.setItem(TOKEN, answer.token);
    sessionStorage.setItem(USER, JSON.stringify(answer.user));
  },
  setUser: (user) => sessionStorage.setItem(USER, JSON.stringify(user)),
  // everything this tab kept for the user (token, user, the scan station's open parent): the
  // next person at this screen starts from nothing (the offline queue is kept per user)
  clear: () => sessionStorage.clear(),
};

/** An API path with its variable parts encoded: path`api/bags/${qr}` (QRs may hold "/"). */
export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]) : ""), "");
}

/** A URL of this service from a path relative to the console page ("api/bags"). */
export function url(relative, query) {
  const u = new URL(relative, document.baseURI);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u;
}

/**
 * Call the API. Resolves to the answer's JSON (or the Response itself with
 * {raw: true}); rejects with ApiError for an error answer and Offline when no
 * answer came. A 401 ends the session: the console shows the login again.
 */
export async function call(method, relative, { body, query, headers, raw, signal } = {}) {
  const h = new Headers(headers || {});
  const token = session.token();
  if (token) h.set("Authorization", `Bearer ${token}`);
  if (body !== undefined) h.set("Content-Type", "application/json");
  let resp;
  try {
    resp = await fetch(url(relative, query), {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new Offline(err);
  }
  if (resp.ok) return raw ? resp : resp.status === 204 ? null : resp.json();
  let error = {};
  try {
    error = (await resp.json()).error || {};
  } catch {
    // not JSON: a proxy's page (502 from nginx, for example)
  }
  if (resp.status === 401 && token) {
    session.clear();
    window.dispatchEvent(new CustomEvent("tt:signed-out"));
  }
  if (resp.status === 502 || resp.status === 503 || resp.status === 504) {
    if (!error.code) throw new Offline(new Error(`HTTP ${resp.status}`));
  }
  throw new ApiError(resp.status, error.code || `http_${resp.status}`, error.message || resp.statusText, error.field);
}

export const get = (relative, query) => call("GET", relative, { query });
export const post = (relative, body, opts) => call("POST", relative, { body: body ?? {}, ...opts });

/** A fresh random id (idempotency keys, client operation ids): 32 hex digits.
 * crypto.randomUUID exists only on HTTPS or localhost; a shed PC may use plain http. */
export function newKey() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
