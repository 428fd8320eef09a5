"""The emails identity sends: what they say, built without I/O."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class OutgoingMail:
    to: str
    subject: str
    text: str


def link(public_url: str, path: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/{path}?token={quote(token, safe='')}"


def verification_mail(to: str, name: str, public_url: str, token: str, ttl_hours: int) -> OutgoingMail:
    url = link(public_url, "verify-email", token)
    text = (
        f"Hello {name},\n\n"
        "Confirm your email address to finish creating your DeelRx account:\n\n"
        f"{url}\n\n"
        f"The link works once and expires in {ttl_hours} hours.\n"
        "If you did not sign up, ignore this email; no account is created without it.\n"
    )
    return OutgoingMail(to=to, subject="Confirm your email address", text=text)


def existing_account_notice(to: str, name: str, public_url: str) -> OutgoingMail:
    base = public_url.rstrip("/")
    text = (
        f"Hello {name},\n\n"
        "Someone tried to sign up for DeelRx with this email address, which already has an account.\n"
        f"If it was you, sign in at {base}/login, or reset your password at {base}/forgot-password.\n"
        "If it was not you, you can ignore this email; your account is unchanged.\n"
    )
    return OutgoingMail(to=to, subject="You already have a DeelRx account", text=text)


def invitation_mail(to: str, team_name: str, inviter_name: str, role: str, public_url: str, token: str) -> OutgoingMail:
    url = link(public_url, "accept-invite", token)
    text = (
        "Hello,\n\n"
        f"{inviter_name} invited you to join the team {team_name} on DeelRx as {role}.\n"
        "Sign in (or create an account) with this email address, then open:\n\n"
        f"{url}\n\n"
        "The link works once and expires in 7 days.\n"
        "If you did not expect this invitation, ignore this email.\n"
    )
    return OutgoingMail(to=to, subject=f"Join {team_name} on DeelRx", text=text)
