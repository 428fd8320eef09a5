import { $, api, el, needTeam, onSubmit, page, perform, showStatus, time } from "/static/js/ui.js";

function isoOrEmpty(local) {
  return local ? new Date(local).toISOString() : "";
}

function alertItem(alert, tid, canManage) {
  const item = el("li", { class: `alert ${alert.severity || ""}` },
    el("strong", {}, `${alert.severity || "alert"}: ${alert.rule}`), ` ${time(alert.time)} `,
    el("span", { class: "badge" }, alert.status || "open"));
  if (canManage && alert.status !== "resolved") {
    for (const status of ["acknowledged", "resolved"]) {
      item.append(" ", el("button", {
        type: "button", class: "secondary", "aria-label": `Mark the ${alert.rule} alert ${status}`,
        onclick: (event) => perform(async () => {
          const saved = await api.patch(`/v1/teams/${tid}/security/alerts/${encodeURIComponent(alert.id)}`, { status });
          item.replaceWith(alertItem(saved, tid, canManage));
        }, { button: event.currentTarget }),
      }, status === "acknowledged" ? "Acknowledge" : "Resolve"));
    }
  }
  return item;
}

page(async (me) => {
  const team = needTeam(me);
  if (!team) return;
  const tid = encodeURIComponent(team.id);
  const canManage = (me.permissions || []).includes("security.manage");
  let filters = {};
  let cursor = null;

  function row(event) {
    const actor = event.actor || {};
    return el("tr", {}, el("td", { "data-label": "Time" }, time(event.time)), el("td", { "data-label": "Type" }, event.type),
      el("td", { "data-label": "Actor" }, [actor.user_id, actor.ip].filter(Boolean).join(" · ")),
      el("td", { "data-label": "Outcome" }, event.outcome || ""),
      el("td", { "data-label": "Target" }, typeof event.target === "string" ? event.target : JSON.stringify(event.target ?? "")));
  }

  async function load(append) {
    const page = await api.get(`/v1/teams/${tid}/audit-events`, { query: { ...filters, cursor: append ? cursor : null, limit: 50 } });
    const rows = page.events.map(row);
    if (append) $("#events tbody").append(...rows);
    else $("#events tbody").replaceChildren(...rows);
    cursor = page.next_cursor;
    $("#more-events").hidden = !cursor;
  }

  onSubmit($("#audit-filter"), async (values) => {
    filters = { type: values.type, actor: values.actor, since: isoOrEmpty(values.since), until: isoOrEmpty(values.until) };
    await load(false);
  });
  $("#more-events").addEventListener("click", (event) => perform(() => load(true), { button: event.currentTarget }));

  $("#export").addEventListener("click", (event) => perform(async () => {
    const format = $("#export-format").value;
    const response = await api.get(`/v1/teams/${tid}/audit-events/export`, {
      query: { format, since: filters.since, until: filters.until }, raw: true,
    });
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: `audit-${team.id}.${format}` });
    document.body.append(link);
    link.click();
    link.remove();
    showStatus("The export is downloaded.");
  }, { button: event.currentTarget }));

  const { alerts } = await api.get(`/v1/teams/${tid}/security/alerts`);
  $("#alerts").replaceChildren(...alerts.map((alert) => alertItem(alert, tid, canManage)));
  await load(false);

  const stream = api.events(`/v1/teams/${tid}/security/stream`, {
    alert: (alert) => $("#alerts").prepend(alertItem(alert, tid, canManage)),
    audit: (event) => $("#events tbody").prepend(row(event)),
  });
  stream.addEventListener("open", () => { $("#live").textContent = "live"; });
  stream.addEventListener("error", () => { $("#live").textContent = "reconnecting"; });
});
