import { $, api, focusHeading, onSubmit, ready, safeNext } from "/static/js/ui.js";

const next = safeNext(new URLSearchParams(location.search).get("next"));
const mfaForm = $("#mfa-form");
let mfaToken = null;

function done(body) {
  location.assign(body.mfa_enrollment_required ? "/account" : next);
}

onSubmit($("#login-form"), async (values) => {
  const body = await api.post("/v1/auth/login", { email: values.email, password: values.password }, { renew: false });
  if (!body.mfa_required) return done(body);
  mfaToken = body.mfa_token;
  $("#login-form").hidden = true;
  mfaForm.hidden = false;
  focusHeading(mfaForm);
  $("#code").focus();
});

onSubmit(mfaForm, async (values) => {
  const body = { mfa_token: mfaToken };
  if (values.recovery_code) body.recovery_code = values.recovery_code.trim();
  else body.code = values.code.trim();
  done(await api.post("/v1/auth/login/mfa", body, { renew: false }));
});

ready();
