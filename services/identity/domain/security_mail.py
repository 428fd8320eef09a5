"""Security notices: what happened, when, from which device and IP, and what to do if it was
not the account holder. Built without I/O; names and devices are user-controlled text, so
they are kept on their own lines and stripped of control characters."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from urllib.parse import quote

from services.identity.domain.mail import OutgoingMail, link

RESET_TTL_MINUTES = 30


def _clean(text: str, limit: int = 200) -> str:
    return "".join(c for c in text if unicodedata.category(c)[0] != "C")[:limit] or "unknown"


def _when_where(when: datetime, device: str, ip: str) -> str:
    return f"When:   {when.strftime('%Y-%m-%d %H:%M:%S UTC')}\nDevice: {_clean(device)}\nIP:     {_clean(ip, 64)}\n"


def _not_you(public_url: str) -> str:
    base = public_url.rstrip("/")
    return (
        "If this was not you, reset your password now at "
        f"{base}/forgot-password and review your sessions and two-factor settings.\n"
    )


def _mail(to: str, name: str, subject: str, lead: str, when: datetime, device: str, ip: str, tail: str) -> OutgoingMail:
    text = f"Hello {_clean(name)},\n\n{lead}\n\n{_when_where(when, device, ip)}\n{tail}"
    return OutgoingMail(to=to, subject=subject, text=text)


def password_reset_link(
    to: str, name: str, public_url: str, token: str, when: datetime, device: str, ip: str
) -> OutgoingMail:
    url = link(public_url, "reset-password", token)
    return _mail(
        to,
        name,
        "Reset your DeelRx password",
        f"Someone asked to reset the password of your DeelRx account. To choose a new password, open:\n\n{url}\n\n"
        f"The link works once and expires in {RESET_TTL_MINUTES} minutes; a newer request replaces it.",
        when,
        device,
        ip,
        "If you did not ask for this, ignore this email: your password stays as it is.\n",
    )


def password_changed(
    to: str, name: str, public_url: str, when: datetime, device: str, ip: str, *, reset: bool
) -> OutgoingMail:
    how = "reset with an emailed link" if reset else "changed"
    ended = "every session was signed out" if reset else "your other sessions were signed out"
    return _mail(
        to,
        name,
        "Your DeelRx password was " + ("reset" if reset else "changed"),
        f"The password of your DeelRx account was {how}, and {ended}.",
        when,
        device,
        ip,
        _not_you(public_url),
    )


def totp_changed(
    to: str, name: str, public_url: str, when: datetime, device: str, ip: str, *, enabled: bool
) -> OutgoingMail:
    state = "enabled" if enabled else "disabled"
    return _mail(
        to,
        name,
        f"Two-factor authentication {state}",
        f"Two-factor authentication (authenticator app) was {state} on your DeelRx account.",
        when,
        device,
        ip,
        _not_you(public_url),
    )


def recovery_code_used(
    to: str, name: str, public_url: str, when: datetime, device: str, ip: str, remaining: int
) -> OutgoingMail:
    advice = (
        f"Only {remaining} recovery codes are left: generate a new set in your security settings.\n"
        if remaining <= 3
        else f"{remaining} recovery codes are left.\n"
    )
    return _mail(
        to,
        name,
        "A recovery code was used to sign in",
        "A recovery code was used to sign in to your DeelRx account; it cannot be used again.",
        when,
        device,
        ip,
        advice + _not_you(public_url),
    )


def recovery_codes_regenerated(
    to: str, name: str, public_url: str, when: datetime, device: str, ip: str
) -> OutgoingMail:
    return _mail(
        to,
        name,
        "New recovery codes were generated",
        "A new set of recovery codes was generated for your DeelRx account; the previous codes no longer work.",
        when,
        device,
        ip,
        _not_you(public_url),
    )


def account_locked(to: str, name: str, public_url: str, when: datetime, device: str, ip: str) -> OutgoingMail:
    base = public_url.rstrip("/")
    return _mail(
        to,
        name,
        "Sign-ins to your DeelRx account were blocked",
        "Too many failed sign-ins were made to your DeelRx account, so further attempts are blocked.",
        when,
        device,
        ip,
        f"Resetting your password unlocks the account at once: {base}/forgot-password?email={quote(to)}\n",
    )


def new_device(to: str, name: str, public_url: str, when: datetime, device: str, ip: str) -> OutgoingMail:
    return _mail(
        to,
        name,
        "New sign-in to your DeelRx account",
        "Your DeelRx account was signed in to from a device it was not used on before.",
        when,
        device,
        ip,
        _not_you(public_url),
    )
