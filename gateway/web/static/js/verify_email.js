import { $, api, focusHeading, onSubmit, ready } from "/static/js/ui.js";
import { ApiError } from "/sdk/js/deelrx.js";

// The token stays in memory only: it leaves the address bar (and the history) at once.
const token = new URLSearchParams(location.search).get("token") || "";
history.replaceState(null, "", location.pathname);
const form = $("#verify-form");

async function verify(values = {}) {
  const body = { token };
  if (values.password) body.password = values.password;
  try {
    await api.post("/v1/auth/verify-email", body, { renew: false });
  } catch (error) {
    // Several sign-ups for one address: the password chosen at the right one picks it.
    if (error instanceof ApiError && error.errors.some((item) => item.pointer === "/password")) {
      $("#verify-password-field").hidden = false;
    }
    throw error;
  }
  form.hidden = true;
  $("#verify-done").hidden = false;
  focusHeading($("#verify-done"));
}

onSubmit(form, verify);

ready();
