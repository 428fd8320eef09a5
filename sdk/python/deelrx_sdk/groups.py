"""A method for every endpoint group of the API. Each group calls its client's `_call`, which
answers a value (sync `Client`) or an awaitable (`AsyncClient`): the same groups serve both."""

from __future__ import annotations

import uuid
from typing import Any, Protocol
from urllib.parse import quote


class Caller(Protocol):
    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        store_tokens: bool = False,
    ) -> Any: ...


def _p(value: str) -> str:
    return quote(str(value), safe="")


def _creating() -> dict[str, str]:
    """Creating POSTs carry an Idempotency-Key, which also makes them safe to retry."""
    return {"Idempotency-Key": str(uuid.uuid4())}


class _Group:
    def __init__(self, client: Caller) -> None:
        self._c = client


class Mfa(_Group):
    def status(self) -> Any:
        return self._c._call("GET", "/v1/mfa")

    def enroll_totp(self) -> Any:
        """-> {secret, otpauth_uri, qr_svg}; needs a recent login (step-up)."""
        return self._c._call("POST", "/v1/mfa/totp/enroll")

    def confirm_totp(self, code: str) -> Any:
        """-> {recovery_codes}: shown once."""
        return self._c._call("POST", "/v1/mfa/totp/confirm", json={"code": code})

    def disable_totp(self, password: str, code: str) -> Any:
        return self._c._call("DELETE", "/v1/mfa/totp", json={"password": password, "code": code})

    def regenerate_recovery_codes(self, code: str) -> Any:
        return self._c._call("POST", "/v1/mfa/recovery-codes", json={"code": code})


class Sessions(_Group):
    def list(self) -> Any:
        return self._c._call("GET", "/v1/sessions")

    def revoke(self, session_id: str) -> Any:
        return self._c._call("DELETE", f"/v1/sessions/{_p(session_id)}")

    def revoke_others(self) -> Any:
        return self._c._call("DELETE", "/v1/sessions", params={"scope": "others"})

    def revoke_all(self) -> Any:
        return self._c._call("DELETE", "/v1/sessions", params={"scope": "all"})

    def of_member(self, team_id: str, user_id: str) -> Any:
        return self._c._call("GET", f"/v1/teams/{_p(team_id)}/members/{_p(user_id)}/sessions")

    def revoke_member(self, team_id: str, user_id: str) -> Any:
        return self._c._call("DELETE", f"/v1/teams/{_p(team_id)}/members/{_p(user_id)}/sessions")


class Teams(_Group):
    def create(self, name: str) -> Any:
        return self._c._call("POST", "/v1/teams", json={"name": name}, headers=_creating())

    def list(self) -> Any:
        return self._c._call("GET", "/v1/teams")

    def get(self, team_id: str) -> Any:
        return self._c._call("GET", f"/v1/teams/{_p(team_id)}")

    def update(self, team_id: str, *, name: str | None = None, settings: dict[str, Any] | None = None) -> Any:
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if settings is not None:
            body["settings"] = settings
        return self._c._call("PATCH", f"/v1/teams/{_p(team_id)}", json=body)

    def transfer_ownership(self, team_id: str, user_id: str) -> Any:
        return self._c._call("POST", f"/v1/teams/{_p(team_id)}/transfer-ownership", json={"user_id": user_id})


class Members(_Group):
    def list(self, team_id: str) -> Any:
        return self._c._call("GET", f"/v1/teams/{_p(team_id)}/members")

    def set_role(self, team_id: str, user_id: str, role: str) -> Any:
        return self._c._call("PATCH", f"/v1/teams/{_p(team_id)}/members/{_p(user_id)}", json={"role": role})

    def remove(self, team_id: str, user_id: str) -> Any:
        return self._c._call("DELETE", f"/v1/teams/{_p(team_id)}/members/{_p(user_id)}")


class Invitations(_Group):
    def create(self, team_id: str, email: str, role: str) -> Any:
        return self._c._call(
            "POST", f"/v1/teams/{_p(team_id)}/invitations", json={"email": email, "role": role}, headers=_creating()
        )

    def list(self, team_id: str) -> Any:
        return self._c._call("GET", f"/v1/teams/{_p(team_id)}/invitations")

    def revoke(self, team_id: str, invitation_id: str) -> Any:
        return self._c._call("DELETE", f"/v1/teams/{_p(team_id)}/invitations/{_p(invitation_id)}")

    def accept(self, token: str) -> Any:
        return self._c._call("POST", "/v1/invitations/accept", json={"token": token})


class Billing(_Group):
    def get(self, team_id: str) -> Any:
        return self._c._call("GET", f"/v1/teams/{_p(team_id)}/billing")

    def update(self, team_id: str, plan: str, billing_email: str | None = None) -> Any:
        body = {"plan": plan} if billing_email is None else {"plan": plan, "billing_email": billing_email}
        return self._c._call("PUT", f"/v1/teams/{_p(team_id)}/billing", json=body)


class Roles(_Group):
    def get(self, team_id: str) -> Any:
        return self._c._call("GET", f"/v1/teams/{_p(team_id)}/roles")

    def set_permissions(self, team_id: str, role: str, permissions: list[str]) -> Any:
        return self._c._call("PUT", f"/v1/teams/{_p(team_id)}/roles/{_p(role)}", json={"permissions": permissions})


class Assignments(_Group):
    def assign(self, team_id: str, customer_id: str, user_id: str) -> Any:
        return self._c._call("PUT", f"/v1/teams/{_p(team_id)}/customers/{_p(customer_id)}/assignees/{_p(user_id)}")

    def unassign(self, team_id: str, customer_id: str, user_id: str) -> Any:
        return self._c._call("DELETE", f"/v1/teams/{_p(team_id)}/customers/{_p(customer_id)}/assignees/{_p(user_id)}")

    def customers_of(self, team_id: str, user_id: str) -> Any:
        return self._c._call("GET", f"/v1/teams/{_p(team_id)}/members/{_p(user_id)}/customers")


class Authz(_Group):
    def check(self, permission: str, resource: str | None = None) -> Any:
        body = {"permission": permission} if resource is None else {"permission": permission, "resource": resource}
        return self._c._call("POST", "/v1/authz/check", json=body)


class Audit(_Group):
    def events(self, team_id: str, **filters: Any) -> Any:
        """One page: `type`, `actor`, `since`, `until`, `limit`, `cursor` -> {events, next_cursor}."""
        return self._c._call("GET", f"/v1/teams/{_p(team_id)}/audit-events", params=filters)

    def export(self, team_id: str, format: str = "ndjson", **filters: Any) -> Any:
        """The whole file as bytes (step-up)."""
        return self._c._call(
            "GET", f"/v1/teams/{_p(team_id)}/audit-events/export", params={"format": format, **filters}
        )

    def verify(self, team_id: str) -> Any:
        return self._c._call("GET", f"/v1/teams/{_p(team_id)}/audit-events/verify")

    def alerts(self, team_id: str) -> Any:
        return self._c._call("GET", f"/v1/teams/{_p(team_id)}/security/alerts")

    def update_alert(self, team_id: str, alert_id: str, status: str, note: str | None = None) -> Any:
        body = {"status": status} if note is None else {"status": status, "note": note}
        return self._c._call("PATCH", f"/v1/teams/{_p(team_id)}/security/alerts/{_p(alert_id)}", json=body)

    def my_activity(self, **params: Any) -> Any:
        return self._c._call("GET", "/v1/me/security-activity", params=params)


class Auth(_Group):
    """Sign-up, verification, login (password then MFA step), tokens, passwords."""

    def signup(self, email: str, password: str, name: str) -> Any:
        return self._c._call(
            "POST",
            "/v1/auth/signup",
            json={"email": email, "password": password, "name": name},
            auth=False,
            headers=_creating(),
        )

    def verify_email(self, token: str, password: str | None = None) -> Any:
        body = {"token": token} if password is None else {"token": token, "password": password}
        return self._c._call("POST", "/v1/auth/verify-email", json=body, auth=False)

    def resend_verification(self, email: str) -> Any:
        return self._c._call("POST", "/v1/auth/verify-email/resend", json={"email": email}, auth=False)

    def login_password(self, email: str, password: str) -> Any:
        """-> the login body; with MFA on, {mfa_required: true, mfa_token} and no tokens yet."""
        return self._c._call(
            "POST",
            "/v1/auth/login",
            json={"email": email, "password": password, "token_delivery": "body"},
            auth=False,
            store_tokens=True,
        )

    def login_mfa(self, mfa_token: str, code: str | None = None, *, recovery_code: str | None = None) -> Any:
        body: dict[str, str] = {"mfa_token": mfa_token}
        if recovery_code is not None:
            body["recovery_code"] = recovery_code
        else:
            body["code"] = code or ""
        return self._c._call("POST", "/v1/auth/login/mfa", json=body, auth=False, store_tokens=True)

    def me(self) -> Any:
        return self._c._call("GET", "/v1/auth/me")

    def switch_team(self, team_id: str) -> Any:
        return self._c._call("POST", "/v1/auth/switch-team", json={"team_id": team_id}, store_tokens=True)

    def reauthenticate(self, password: str, code: str | None = None) -> Any:
        body = {"password": password} if code is None else {"password": password, "code": code}
        return self._c._call("POST", "/v1/auth/reauthenticate", json=body, store_tokens=True)

    def forgot_password(self, email: str) -> Any:
        return self._c._call("POST", "/v1/auth/password/forgot", json={"email": email}, auth=False)

    def reset_password(self, token: str, new_password: str) -> Any:
        return self._c._call(
            "POST", "/v1/auth/password/reset", json={"token": token, "new_password": new_password}, auth=False
        )

    def change_password(self, current_password: str, new_password: str) -> Any:
        return self._c._call(
            "POST",
            "/v1/auth/password/change",
            json={"current_password": current_password, "new_password": new_password},
        )
