import { $, api, el, needTeam, onSubmit, page, showStatus } from "/static/js/ui.js";

page(async (me) => {
  const team = needTeam(me);
  if (!team) return;
  const tid = encodeURIComponent(team.id);
  const { roles, configurable = [] } = await api.get(`/v1/teams/${tid}/roles`);
  const editable = me.team.role === "owner";
  const universe = [...new Set(Object.values(roles).flat())].sort();
  // `configurable` names the permissions an owner may hand out (owner-only ones are absent).
  const grantable = new Set(configurable.length && !configurable.includes("staff") ? configurable : universe);
  const forms = ["manager", "staff"].filter((role) => role in roles).map((role) => {
    const granted = new Set(roles[role]);
    const form = el("form", { id: `role-${role}`, novalidate: true },
      el("fieldset", { disabled: !editable },
        el("legend", {}, role === "manager" ? "Manager" : "Staff"),
        ...universe.map((permission) => el("label", { class: "choice" },
          el("input", {
            type: "checkbox", name: "permissions", value: permission,
            checked: granted.has(permission), disabled: !grantable.has(permission),
          }), ` ${permission}`)),
        el("button", { type: "submit" }, `Save ${role} permissions`)));
    onSubmit(form, async () => {
      const permissions = [...form.querySelectorAll("input[name=permissions]:checked")].map((box) => box.value);
      await api.put(`/v1/teams/${tid}/roles/${role}`, { permissions });
      showStatus(`The ${role} role is saved.`);
    });
    return form;
  });
  $("#roles").replaceChildren(...forms);
  if (!editable) showStatus("Only an owner can change role permissions.");
});
