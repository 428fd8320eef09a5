import { $, api, needTeam, onSubmit, page, showStatus } from "/static/js/ui.js";

page(async (me) => {
  const team = needTeam(me);
  if (!team) return;
  const tid = encodeURIComponent(team.id);
  const billing = await api.get(`/v1/teams/${tid}/billing`);
  const form = $("#billing-form");
  $("#current-plan").textContent = billing.plan;
  for (const radio of form.querySelectorAll("input[name=plan]")) radio.checked = radio.value === billing.plan;
  $("#billing-email").value = billing.billing_email || "";
  form.hidden = false;
  onSubmit(form, async (values) => {
    const body = { plan: values.plan };
    if (values.billing_email) body.billing_email = values.billing_email;
    const saved = await api.put(`/v1/teams/${tid}/billing`, body);
    $("#current-plan").textContent = saved.plan || values.plan;
    showStatus("The plan is saved. Its rate limit applies from the next request.");
  });
});
