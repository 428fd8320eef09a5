import { $, api, el, needTeam, onSubmit, page, perform, showStatus } from "/static/js/ui.js";

function customerList(tid, uid, ids, removable) {
  if (!ids.length) return [el("li", {}, "No customers assigned.")];
  return ids.map((cid) => el("li", {}, el("span", { class: "customer" }, cid), removable ? el("button", {
    type: "button", class: "secondary", "aria-label": `Unassign ${cid}`,
    onclick: (event) => perform(async () => {
      await api.delete(`/v1/teams/${tid}/customers/${encodeURIComponent(cid)}/assignees/${encodeURIComponent(uid)}`);
      event.target.closest("li").remove();
      showStatus(`${cid} is unassigned.`);
    }, { button: event.currentTarget }),
  }, "Unassign") : null));
}

page(async (me) => {
  const team = needTeam(me);
  if (!team) return;
  const tid = encodeURIComponent(team.id);
  const uid = encodeURIComponent(me.user.id);
  const mine = await api.get(`/v1/teams/${tid}/members/${uid}/customers`);
  $("#my-customers").replaceChildren(...customerList(tid, uid, mine.customer_ids, false));
  if (!(me.permissions || []).includes("customers.assign")) return;

  const { members } = await api.get(`/v1/teams/${tid}/members`);
  const options = () => members.map((m) => el("option", { value: m.user_id }, `${m.name} <${m.email}>`));
  $("#assign-member").replaceChildren(...options());
  $("#view-member").replaceChildren(...options());
  $("#assign-section").hidden = false;

  async function showMember() {
    const member = encodeURIComponent($("#view-member").value);
    const { customer_ids: ids } = await api.get(`/v1/teams/${tid}/members/${member}/customers`);
    $("#member-customers").replaceChildren(...customerList(tid, member, ids, true));
  }
  $("#view-member").addEventListener("change", () => perform(showMember));

  onSubmit($("#assign-form"), async (values) => {
    const cid = encodeURIComponent(values.customer_id.trim());
    await api.put(`/v1/teams/${tid}/customers/${cid}/assignees/${encodeURIComponent(values.user_id)}`);
    showStatus(`${values.customer_id.trim()} is assigned.`);
    $("#view-member").value = values.user_id;
    await showMember();
  });
  await showMember();
});
