import { $, api, onSubmit, ready, showStatus } from "/static/js/ui.js";

onSubmit($("#forgot-form"), async (values) => {
  await api.post("/v1/auth/password/forgot", { email: values.email }, { renew: false });
  showStatus("If an account uses this address, a link to choose a new password is on its way. It works for a short time, once.");
});

ready();
