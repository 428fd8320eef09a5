import { $, api, focusHeading, onSubmit, ready, showError } from "/static/js/ui.js";
import { DeelRx } from "/sdk/js/deelrx.js";

const token = new URLSearchParams(location.search).get("token") || "";
const form = $("#accept-form");
// Not signed in is a normal state here: a client that does not send the person to /login.
const quiet = new DeelRx();

async function start() {
  let me;
  try {
    me = await quiet.get("/v1/auth/me");
  } catch {
    $("#invite-login").href = "/login?next=" + encodeURIComponent("/accept-invite?token=" + token);
    $("#invite-signin").hidden = false;
    return;
  }
  $("#invite-who").textContent = me.user.email;
  form.hidden = false;
}

onSubmit(form, async () => {
  const accepted = await api.post("/v1/invitations/accept", { token });
  // Work in the team just joined.
  await api.post("/v1/auth/switch-team", { team_id: accepted.team_id });
  history.replaceState(null, "", location.pathname);
  form.hidden = true;
  $("#invite-done").hidden = false;
  focusHeading($("#invite-done"));
});

start().catch((error) => showError(error)).finally(ready);
