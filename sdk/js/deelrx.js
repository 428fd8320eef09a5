// DeelRx browser client: an ES module with no build step and no dependencies.
// Served by the gateway at /sdk/js/deelrx.js; the suite's own pages use it.
//
//   import { DeelRx, ApiError } from "/sdk/js/deelrx.js";
//   const api = new DeelRx();                 // same origin, cookies
//   const me = await api.get("/v1/auth/me");
//
// What it does for you:
// - sends the CSRF header (the value of the readable csrf cookie) on POST, PUT, PATCH and DELETE;
// - relies on the gateway renewing cookies in place, and after `unauthenticated` or `session_expired`
//   calls POST /v1/auth/refresh once (one refresh shared by concurrent callers), then retries once;
//   when that fails too it calls `onSignedOut` (the pages send the person to /login);
// - waits and retries on 429 `rate_limited` when `Retry-After` is at most `maxRetryWaitSeconds`;
// - turns every problem+json answer into an `ApiError` with `code`, `status`, `detail`,
//   `errors` (422 pointers) and `retryAfter` (seconds, from the header).

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const RENEW_CODES = new Set(["unauthenticated", "session_expired"]);

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = problem.code || "unknown";
    this.title = problem.title || "";
    this.detail = problem.detail || "";
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.requestId = problem.request_id || "";
    this.retryAfter = retryAfter;
  }
}

/** The network failed before any answer (offline, connection refused). */
export class NetworkError extends Error {
  constructor(cause) {
    super("The server could not be reached");
    this.name = "NetworkError";
    this.cause = cause;
  }
}

export function readCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

/** The CSRF cookie: `__Host-deelrx_csrf` on https, `deelrx_csrf` on loopback http. */
export function csrfToken() {
  return readCookie("__Host-deelrx_csrf") ?? readCookie("deelrx_csrf");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class DeelRx {
  constructor({ baseUrl = "", maxRetryWaitSeconds = 5, onSignedOut = null, fetchImpl = null } = {}) {
    this.baseUrl = baseUrl;
    this.maxRetryWaitSeconds = maxRetryWaitSeconds;
    this.onSignedOut = onSignedOut;
    this._fetch = fetchImpl ?? ((...args) => fetch(...args));
    this._refreshing = null;
  }

  get(path, options) { return this.request("GET", path, options); }
  post(path, body, options) { return this.request("POST", path, { ...options, body }); }
  put(path, body, options) { return this.request("PUT", path, { ...options, body }); }
  patch(path, body, options) { return this.request("PATCH", path, { ...options, body }); }
  delete(path, options) { return this.request("DELETE", path, options); }

  /** JSON body (or null for 204); throws ApiError. `raw: true` returns the Response instead. */
  async request(method, path, { body, query, headers = {}, raw = false, renew = true } = {}) {
    let renewed = false;
    let waited = false;
    for (;;) {
      const response = await this._send(method, path, body, query, headers);
      if (response.ok) {
        if (raw) return response;
        if (response.status === 204) return null;
        const text = await response.text();
        return text ? JSON.parse(text) : null;
      }
      const error = await toApiError(response);
      if (response.status === 401 && renew && !renewed && RENEW_CODES.has(error.code)) {
        renewed = true;
        if (await this.refresh()) continue;
        if (this.onSignedOut) this.onSignedOut(error);
        throw error;
      }
      if (error.code === "rate_limited" && !waited && error.retryAfter !== null
          && error.retryAfter <= this.maxRetryWaitSeconds) {
        waited = true;
        await sleep(error.retryAfter * 1000);
        continue;
      }
      throw error;
    }
  }

  /** One cookie refresh at a time: concurrent callers share it. Resolves true when renewed. */
  refresh() {
    if (!this._refreshing) {
      this._refreshing = this._send("POST", "/v1/auth/refresh")
        .then((response) => response.ok)
        .catch(() => false)
        .finally(() => { this._refreshing = null; });
    }
    return this._refreshing;
  }

  /** Live Server-Sent Events (e.g. the team security stream); the cookies authenticate. */
  events(path, handlers) {
    const source = new EventSource(this.baseUrl + path, { withCredentials: true });
    for (const [name, handler] of Object.entries(handlers)) {
      source.addEventListener(name, (event) => handler(event.data ? JSON.parse(event.data) : null, event));
    }
    return source;
  }

  async _send(method, path, body, query, extraHeaders) {
    const headers = { Accept: "application/json, application/problem+json", ...extraHeaders };
    if (UNSAFE.has(method)) {
      const csrf = csrfToken();
      if (csrf) headers["X-CSRF-Token"] = csrf;
    }
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let url = this.baseUrl + path;
    if (query) {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(query)) {
        if (value !== undefined && value !== null && value !== "") params.set(key, value);
      }
      const text = params.toString();
      if (text) url += (url.includes("?") ? "&" : "?") + text;
    }
    try {
      return await this._fetch(url, init);
    } catch (cause) {
      throw new NetworkError(cause);
    }
  }
}

async function toApiError(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    problem = { code: "unknown", detail: `HTTP ${response.status}` };
  }
  if (!problem || typeof problem !== "object") problem = { code: "unknown" };
  const header = response.headers.get("Retry-After");
  const retryAfter = header !== null && /^\d+$/.test(header) ? Number(header) : null;
  return new ApiError(response.status, problem, retryAfter);
}
