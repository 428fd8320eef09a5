import { $, api, el, onSubmit, page, perform, showStatus, time } from "/static/js/ui.js";

const ROLES = ["owner", "manager", "staff"];

page(async (me) => {
  onSubmit($("#create-team-form"), async (values) => {
    const team = await api.post("/v1/teams", { name: values.name }, { headers: { "Idempotency-Key": crypto.randomUUID() } });
    await api.post("/v1/auth/switch-team", { team_id: team.id });
    location.reload();
  });

  const { teams } = await api.get("/v1/teams");
  $("#teams").replaceChildren(...teams.map((team) => el("li", {},
    `${team.name} (${team.role}, ${team.plan}) `,
    me.team && me.team.id === team.id ? el("strong", {}, "active") : el("button", {
      type: "button", class: "secondary", "aria-label": `Switch to ${team.name}`,
      onclick: (event) => perform(async () => {
        await api.post("/v1/auth/switch-team", { team_id: team.id });
        location.reload();
      }, { button: event.currentTarget }),
    }, "Switch to this team"))));
  if (!me.team) {
    showStatus(teams.length ? "Choose a team to work in, or create one." : "Create your first team.");
    return;
  }
  const tid = encodeURIComponent(me.team.id);
  $("#team-title").textContent = me.team.name;
  $("#team-members").hidden = false;
  const can = new Set(me.permissions || []);

  async function loadMembers() {
    const { members } = await api.get(`/v1/teams/${tid}/members`);
    const rows = members.map((member) => {
      const self = member.user_id === me.user.id;
      const role = el("select", { "aria-label": `Role of ${member.email}`, disabled: self || !can.has("members.manage") },
        ...ROLES.map((name) => el("option", { value: name, selected: name === member.role }, name)));
      role.addEventListener("change", () => perform(async () => {
        await api.patch(`/v1/teams/${tid}/members/${encodeURIComponent(member.user_id)}`, { role: role.value });
        showStatus(`${member.email} is now ${role.value}.`);
        await loadMembers();
      }));
      const actions = self ? [] : [
        can.has("sessions.manage") ? el("button", {
          type: "button", class: "secondary", "aria-label": `Sign out ${member.email} everywhere`,
          onclick: (event) => perform(async () => {
            const { revoked } = await api.delete(`/v1/teams/${tid}/members/${encodeURIComponent(member.user_id)}/sessions`);
            showStatus(`${member.email} is signed out (${revoked} session${revoked === 1 ? "" : "s"}).`);
          }, { button: event.currentTarget }),
        }, "Sign out") : null,
        can.has("members.manage") ? el("button", {
          type: "button", class: "danger", "aria-label": `Remove ${member.email} from the team`,
          onclick: (event) => perform(async () => {
            await api.delete(`/v1/teams/${tid}/members/${encodeURIComponent(member.user_id)}`);
            showStatus(`${member.email} was removed.`);
            await loadMembers();
          }, { button: event.currentTarget }),
        }, "Remove") : null,
      ];
      return el("tr", {}, el("td", { "data-label": "Name" }, member.name), el("td", { "data-label": "Email" }, member.email),
        el("td", { "data-label": "Role" }, role), el("td", { "data-label": "Two-factor" }, member.mfa_enabled ? "on" : "off"), el("td", { class: "actions" }, ...actions));
    });
    $("#members tbody").replaceChildren(...rows);
    $("#transfer-to").replaceChildren(...members.filter((m) => m.user_id !== me.user.id)
      .map((m) => el("option", { value: m.user_id }, `${m.name} <${m.email}>`)));
  }

  async function loadInvitations() {
    if (!can.has("members.invite")) return;
    const { invitations } = await api.get(`/v1/teams/${tid}/invitations`);
    $("#invitations").replaceChildren(...(invitations.length ? invitations.map((invitation) => el("li", {},
      `${invitation.email} as ${invitation.role}, until ${time(invitation.expires_at)} `,
      el("button", {
        type: "button", class: "secondary", "aria-label": `Cancel the invitation of ${invitation.email}`,
        onclick: (event) => perform(async () => {
          await api.delete(`/v1/teams/${tid}/invitations/${encodeURIComponent(invitation.id)}`);
          await loadInvitations();
        }, { button: event.currentTarget }),
      }, "Cancel"))) : [el("li", {}, "None.")]));
  }

  onSubmit($("#invite-form"), async (values) => {
    await api.post(`/v1/teams/${tid}/invitations`, { email: values.email, role: values.role },
      { headers: { "Idempotency-Key": crypto.randomUUID() } });
    $("#invite-form").reset();
    showStatus(`Invitation sent to ${values.email}.`);
    await loadInvitations();
  });

  onSubmit($("#transfer-form"), async (values) => {
    await api.post(`/v1/teams/${tid}/transfer-ownership`, { user_id: values.user_id });
    showStatus("Ownership transferred. You are now a manager.");
    location.reload();
  });

  $("#invite-form").hidden = !can.has("members.invite");
  $("#transfer-form").hidden = me.team.role !== "owner";
  await Promise.all([loadMembers(), loadInvitations()]);
});
