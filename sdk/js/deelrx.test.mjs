// Rules of the browser client against a scripted fetch: `node --test sdk/js/` (run by
// tests/unit/sdk/test_browser_sdk.py). The pages use the same module against the real suite
// in tests/e2e/test_pages_in_the_browser.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, DeelRx } from "./deelrx.js";

globalThis.document = { cookie: "other=1; deelrx_csrf=csrf-123" };

function problem(status, code, headers = {}) {
  return new Response(JSON.stringify({ code, status, detail: code }), {
    status, headers: { "Content-Type": "application/problem+json", ...headers },
  });
}

const ok = (body) => new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });

test("unsafe requests carry the CSRF cookie's value, safe ones do not", async () => {
  const seen = [];
  const api = new DeelRx({ fetchImpl: async (url, init) => { seen.push(init); return ok({}); } });
  await api.post("/v1/teams", { name: "x" });
  await api.get("/v1/teams");
  assert.equal(seen[0].headers["X-CSRF-Token"], "csrf-123");
  assert.equal(seen[0].headers["Content-Type"], "application/json");
  assert.equal(seen[1].headers["X-CSRF-Token"], undefined);
});

test("concurrent callers after session_expired share one refresh, then retry once", async () => {
  let refreshes = 0;
  let renewed = false;
  const api = new DeelRx({
    fetchImpl: async (url) => {
      if (url.endsWith("/v1/auth/refresh")) {
        refreshes += 1;
        await new Promise((resolve) => setTimeout(resolve, 20));
        renewed = true;
        return ok({});
      }
      return renewed ? ok({ user: "ada" }) : problem(401, "session_expired");
    },
  });
  const answers = await Promise.all([1, 2, 3, 4].map(() => api.get("/v1/auth/me")));
  assert.deepEqual(answers, Array(4).fill({ user: "ada" }));
  assert.equal(refreshes, 1);
});

test("a failed refresh signs the person out and throws the original error", async () => {
  let signedOut = 0;
  const calls = [];
  const api = new DeelRx({
    onSignedOut: () => { signedOut += 1; },
    fetchImpl: async (url) => { calls.push(url); return problem(401, "session_expired"); },
  });
  await assert.rejects(api.get("/v1/auth/me"), (error) => error instanceof ApiError && error.code === "session_expired");
  assert.deepEqual(calls, ["/v1/auth/me", "/v1/auth/refresh"]);
  assert.equal(signedOut, 1);
});

test("other 401 codes are never answered with a refresh", async () => {
  const calls = [];
  const api = new DeelRx({ fetchImpl: async (url) => { calls.push(url); return problem(401, "invalid_credentials"); } });
  await assert.rejects(api.post("/v1/auth/login", {}), (error) => error.code === "invalid_credentials" && error.status === 401);
  assert.deepEqual(calls, ["/v1/auth/login"]);
});

test("rate_limited waits Retry-After once; a long wait or account_locked is left to the page", async () => {
  let calls = 0;
  const api = new DeelRx({
    maxRetryWaitSeconds: 5,
    fetchImpl: async () => { calls += 1; return calls === 1 ? problem(429, "rate_limited", { "Retry-After": "0" }) : ok({ fine: true }); },
  });
  assert.deepEqual(await api.get("/v1/teams"), { fine: true });
  assert.equal(calls, 2);

  const locked = new DeelRx({ fetchImpl: async () => problem(429, "account_locked", { "Retry-After": "900" }) });
  await assert.rejects(locked.post("/v1/auth/login", {}), (error) => error.code === "account_locked" && error.retryAfter === 900);
  const long = new DeelRx({ fetchImpl: async () => problem(429, "rate_limited", { "Retry-After": "60" }) });
  await assert.rejects(long.get("/v1/teams"), (error) => error.code === "rate_limited" && error.retryAfter === 60);
});

test("422 answers keep their JSON pointers; 204 answers null", async () => {
  const api = new DeelRx({
    fetchImpl: async (url) => url.endsWith("/logout")
      ? new Response(null, { status: 204 })
      : new Response(JSON.stringify({ code: "validation_error", errors: [{ pointer: "/password", detail: "too short" }] }), { status: 422 }),
  });
  await assert.rejects(api.post("/v1/auth/signup", {}), (error) => error.errors[0].pointer === "/password");
  assert.equal(await api.post("/v1/auth/logout"), null);
});
