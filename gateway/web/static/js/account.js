import { $, api, el, focusHeading, onSubmit, page, perform, showStatus, time } from "/static/js/ui.js";

function deviceName(session) {
  const device = session.device || {};
  return device.label || [device.browser, device.os].filter(Boolean).join(" on ") || "Unknown device";
}

async function loadMfa() {
  const mfa = await api.get("/v1/mfa");
  $("#mfa-status").textContent = mfa.totp_enabled
    ? `Two-factor authentication is on. Recovery codes left: ${mfa.recovery_codes_remaining}.`
    : "Two-factor authentication is off.";
  $("#enroll-start").hidden = mfa.totp_enabled;
  $("#disable-form").hidden = !mfa.totp_enabled;
}

async function loadSessions() {
  const { sessions } = await api.get("/v1/sessions");
  const rows = sessions.map((session) =>
    el("tr", {},
      el("td", { "data-label": "Device" }, deviceName(session), session.current ? el("strong", {}, " (this device)") : null),
      el("td", { "data-label": "IP" }, session.ip || ""),
      el("td", { "data-label": "Last seen" }, time(session.last_seen_at)),
      el("td", {}, session.current ? "" : el("button", {
        type: "button", class: "secondary", "aria-label": `Sign out ${deviceName(session)}`,
        onclick: (event) => perform(async () => {
          await api.delete(`/v1/sessions/${encodeURIComponent(session.id)}`);
          showStatus("That device is signed out.");
          await loadSessions();
        }, { button: event.currentTarget }),
      }, "Sign out"))));
  $("#sessions tbody").replaceChildren(...rows);
}

async function loadActivity() {
  const { events } = await api.get("/v1/me/security-activity", { query: { limit: 20 } });
  const items = events.map((event) =>
    el("li", {}, el("time", { datetime: event.time }, time(event.time)), ` ${event.type}`,
      event.outcome ? ` (${event.outcome})` : "", event.actor?.ip ? ` from ${event.actor.ip}` : ""));
  $("#activity").replaceChildren(...(items.length ? items : [el("li", {}, "No security events yet.")]));
}

function showRecoveryCodes(codes) {
  $("#recovery-codes").replaceChildren(...codes.map((code) => el("li", {}, el("code", {}, code))));
  const file = new Blob([`DeelRx recovery codes (each works once)\n\n${codes.join("\n")}\n`], { type: "text/plain" });
  $("#recovery-download").href = URL.createObjectURL(file);
  $("#recovery").hidden = false;
  focusHeading($("#recovery"));
}

page(async () => {
  $("#enroll-start").addEventListener("click", (event) => perform(async () => {
    const enrollment = await api.post("/v1/mfa/totp/enroll");
    $("#enroll-qr").src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(enrollment.qr_svg);
    $("#enroll-secret").textContent = enrollment.secret;
    $("#enroll").hidden = false;
    $("#enroll-code").focus();
  }, { button: event.currentTarget }));

  onSubmit($("#enroll-form"), async (values) => {
    const { recovery_codes: codes } = await api.post("/v1/mfa/totp/confirm", { code: values.code.trim() });
    $("#enroll").hidden = true;
    showRecoveryCodes(codes);
    showStatus("Two-factor authentication is on.");
    await loadMfa();
  });

  onSubmit($("#disable-form"), async (values) => {
    await api.delete("/v1/mfa/totp", { body: { password: values.password, code: values.code.trim() } });
    $("#disable-form").reset();
    $("#recovery").hidden = true;
    showStatus("Two-factor authentication is off.");
    await loadMfa();
  });

  $("#sign-out-others").addEventListener("click", (event) => perform(async () => {
    const { revoked } = await api.delete("/v1/sessions", { query: { scope: "others" } });
    showStatus(`Signed out of ${revoked} other session${revoked === 1 ? "" : "s"}.`);
    await loadSessions();
  }, { button: event.currentTarget }));

  await Promise.all([loadMfa(), loadSessions(), loadActivity().catch(() => {
    $("#activity").replaceChildren(el("li", {}, "Security activity is not available right now."));
  })]);
});
