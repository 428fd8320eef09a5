import { $, api, focusHeading, onSubmit, perform, ready, showStatus } from "/static/js/ui.js";

const form = $("#signup-form");
let email = "";
onSubmit(form, async (values) => {
  await api.post("/v1/auth/signup", values, { renew: false });
  email = values.email;
  form.hidden = true;
  $("#signup-done").hidden = false;
  focusHeading($("#signup-done"));
});
$("#resend").addEventListener("click", (event) =>
  perform(async () => {
    await api.post("/v1/auth/verify-email/resend", { email }, { renew: false });
    showStatus("If a sign-up is waiting for this address, a new link is on its way.");
  }, { button: event.currentTarget }));

ready();
