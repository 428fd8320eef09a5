import { $, api, focusHeading, onSubmit, ready } from "/static/js/ui.js";

const token = new URLSearchParams(location.search).get("token") || "";
history.replaceState(null, "", location.pathname);
const form = $("#reset-form");

onSubmit(form, async (values) => {
  await api.post("/v1/auth/password/reset", { token, new_password: values.new_password }, { renew: false });
  form.hidden = true;
  $("#reset-done").hidden = false;
  focusHeading($("#reset-done"));
});

ready();
