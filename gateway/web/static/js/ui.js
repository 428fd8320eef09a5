// What every page shares: the API client, messages for every problem+json code, form handling
// (errors announced through aria-live, fields marked invalid), the step-up dialog and the header.
import { ApiError, DeelRx, NetworkError } from "/sdk/js/deelrx.js";

export const api = new DeelRx({ onSignedOut: () => toLogin() });

export function toLogin() {
  const next = location.pathname + location.search;
  location.assign("/login" + (next && next !== "/login" ? "?next=" + encodeURIComponent(next) : ""));
}

/** Only same-site paths: "/team" yes, "//evil.example" or "https://..." no. */
export function safeNext(value, fallback = "/account") {
  return value && value.startsWith("/") && !value.startsWith("//") && !value.startsWith("/\\") ? value : fallback;
}

export const $ = (selector) => document.querySelector(selector);

function wait(seconds) {
  if (seconds === null || seconds === undefined) return "a little while";
  if (seconds < 90) return `${seconds} second${seconds === 1 ? "" : "s"}`;
  return `${Math.ceil(seconds / 60)} minutes`;
}

/** A sentence for a person, for every code the API can answer. */
export function messageFor(error) {
  if (error instanceof NetworkError) return "The server cannot be reached. Check your connection and try again.";
  if (!(error instanceof ApiError)) return "Something unexpected happened. Reload the page and try again.";
  switch (error.code) {
    case "invalid_credentials": return "The email or password is not right.";
    case "email_not_verified": return "Your email address is not verified yet: open the link we emailed you (you can ask for a new one on the sign-up page).";
    case "account_locked": return `Too many failed attempts. This account is locked for you: try again in ${wait(error.retryAfter)}, or reset your password.`;
    case "rate_limited": return `Too many requests. Wait ${wait(error.retryAfter)} and try again.`;
    case "invalid_token": return "This link is not valid any more: it was already used or it expired. Ask for a new one.";
    case "invalid_mfa_code": return "That code is not right or was already used. Wait for the next code in your app and try again.";
    case "unauthenticated":
    case "session_expired": return "Your session has ended. Log in again.";
    case "reauthentication_required": return "Confirm your password to do this.";
    case "forbidden": return "You do not have permission to do this. Ask an owner of the team.";
    case "csrf_failed": return "The request was refused for your security. Reload the page and try again.";
    case "mfa_enrollment_required": return "Your team requires two-factor authentication. Set it up on the Security page first.";
    case "not_found": return "Not found, or you are not a member of this team.";
    case "conflict": return "That is not possible in the current state (for example, the person is already a member, or the same request is still running).";
    case "validation_error": return "Please correct the fields below.";
    case "payload_too_large":
    case "unsupported_media_type":
    case "malformed_request": return "The request could not be read. Reload the page and try again.";
    case "method_not_allowed": return "This action is not available.";
    case "unavailable": return `The service is temporarily unavailable. Try again in ${wait(error.retryAfter)}.`;
    case "internal": return `Something went wrong on our side. Reference: ${error.requestId || "unknown"}.`;
    default: return error.detail || `The request failed (${error.status}).`;
  }
}

export function clearMessages(form) {
  const box = $("#error");
  box.hidden = true;
  box.textContent = "";
  $("#status").textContent = "";
  if (form) {
    for (const field of form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
    for (const note of form.querySelectorAll(".field-error")) note.remove();
  }
}

export function showStatus(text) {
  $("#status").textContent = text;
}

export function showError(error, form) {
  const box = $("#error");
  box.textContent = messageFor(error);
  box.hidden = false;
  if (!form || !(error instanceof ApiError)) return;
  let first = null;
  for (const item of error.errors) {
    const name = String(item.pointer || "").replace(/^\//, "").split("/")[0];
    const field = name && form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (!field) {
      box.append(el("span", { class: "detail" }, ` ${name || "request"}: ${item.detail}`));
      continue;
    }
    const note = el("p", { class: "field-error", id: `${field.id}-error` }, item.detail);
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", note.id);
    field.after(note);
    first = first || field;
  }
  if (first) first.focus();
}

/** Small DOM builder: text always goes through textContent, never innerHTML. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function formValues(form) {
  const values = {};
  for (const [key, value] of new FormData(form).entries()) values[key] = typeof value === "string" ? value : "";
  return values;
}

export function time(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

/** Runs `action` for a form or button; on reauthentication_required asks for the password once. */
export async function perform(action, { form = null, button = null } = {}) {
  clearMessages(form);
  if (button) button.disabled = true;
  try {
    try {
      return await action();
    } catch (error) {
      if (error instanceof ApiError && error.code === "reauthentication_required" && (await reauthenticate())) {
        return await action();
      }
      throw error;
    }
  } catch (error) {
    if (error instanceof ApiError && error.code === "mfa_enrollment_required" && location.pathname !== "/account") {
      location.assign("/account");
    }
    showError(error, form);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

export function onSubmit(form, handler) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    perform(() => handler(formValues(form)), { form, button: form.querySelector("button[type=submit]") });
  });
}

/** The step-up dialog: POST /v1/auth/reauthenticate, resolves true on success. */
function reauthenticate() {
  const dialog = $("#reauth");
  if (!dialog) return Promise.resolve(false);
  const form = $("#reauth-form");
  const box = $("#reauth-error");
  form.reset();
  box.hidden = true;
  return new Promise((resolve) => {
    const finish = (ok) => {
      form.removeEventListener("submit", submit);
      $("#reauth-cancel").removeEventListener("click", cancel);
      dialog.close();
      resolve(ok);
    };
    const cancel = () => finish(false);
    const submit = async (event) => {
      event.preventDefault();
      const values = formValues(form);
      const body = { password: values.password };
      if (values.code) body.code = values.code;
      try {
        await api.post("/v1/auth/reauthenticate", body, { renew: false });
        finish(true);
      } catch (error) {
        box.textContent = messageFor(error);
        box.hidden = false;
      }
    };
    form.addEventListener("submit", submit);
    $("#reauth-cancel").addEventListener("click", cancel);
    dialog.showModal();
  });
}

/** Signed-in pages: loads /v1/auth/me (a missing session sends the person to /login). */
export async function signedIn() {
  const me = await api.get("/v1/auth/me");
  const who = $("#who");
  if (who) who.textContent = me.team ? `${me.user.email} · ${me.team.name} (${me.team.role})` : me.user.email;
  const out = $("#sign-out");
  if (out) {
    out.addEventListener("click", async () => {
      try {
        await api.post("/v1/auth/logout", undefined, { renew: false });
      } finally {
        location.assign("/login");
      }
    });
  }
  return me;
}

/** Marks the page as set up (`body[data-ready]`): what tests and tools wait for. */
export function ready() {
  document.body.dataset.ready = "true";
}

/** Runs a signed-in page's setup, showing a message when it fails (e.g. forbidden). */
export async function page(setup) {
  let me;
  try {
    me = await signedIn();
  } catch (error) {
    if (!(error instanceof ApiError && ["unauthenticated", "session_expired"].includes(error.code))) showError(error);
    return;
  }
  try {
    await setup(me);
  } catch (error) {
    if (error instanceof ApiError && error.code === "mfa_enrollment_required") location.assign("/account");
    showError(error);
  } finally {
    ready();
  }
}

export function needTeam(me) {
  if (me.team) return me.team;
  const box = $("#error");
  box.replaceChildren("You have no active team. ", el("a", { href: "/team" }, "Create or choose a team"), ".");
  box.hidden = false;
  return null;
}

export function focusHeading(section) {
  const heading = section.querySelector("[tabindex='-1']");
  if (heading) heading.focus();
}
