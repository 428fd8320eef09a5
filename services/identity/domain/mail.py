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
