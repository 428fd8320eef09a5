"""Mails of the automatic responses to security alerts (pure, no I/O).

The owners' notice names the rule, its severity, when it was raised and the team; never the
alert's evidence (addresses, IPs, other accounts), a token or a secret: the owner reads the
details on the team's security page, behind their own login and permission.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from services.identity.domain.mail import OutgoingMail
from services.identity.domain.security_mail import _clean, _mail, _not_you

RULE_TITLES = {
    "brute_force": "many failed sign-ins against one account",
    "password_spray": "one address failing sign-ins on many accounts",
    "credential_stuffing": "sign-ins with a list of leaked credentials",
    "mfa_guessing": "many wrong two-factor codes",
    "refresh_token_reuse": "a stolen session token was used again",
    "new_device": "a sign-in from a new device",
    "session_anomaly": "one session used from distant networks or several browsers",
    "privilege_escalation": "owner rights or sensitive permissions granted",
    "mass_export": "several audit exports in a short time",
}
CODE_DIGITS = 6


def new_login_code() -> str:
    """Six digits, like a TOTP code, so the login's second step takes it unchanged."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def owners_notice(
    to: str, name: str, public_url: str, team_name: str, rule: str, severity: str, raised_at: datetime
) -> OutgoingMail:
    what = RULE_TITLES.get(rule, "suspicious activity")
    text = (
        f"Hello {_clean(name)},\n\n"
        f"A security alert was raised in your DeelRx team {_clean(team_name, 100)!r}:\n\n"
        f"Rule:     {_clean(rule, 40)} ({what})\n"
        f"Severity: {_clean(severity, 20)}\n"
        f"When:     {raised_at.strftime('%Y-%m-%d %H:%M:%S UTC')}\n\n"
        "The automatic responses configured for this rule have been applied. Review the alert "
        f"and mark it acknowledged or resolved on the team's audit page: {public_url.rstrip('/')}/audit\n"
    )
    return OutgoingMail(to=to, subject=f"DeelRx security alert ({_clean(severity, 20)})", text=text)


def login_code(
    to: str, name: str, public_url: str, code: str, ttl: timedelta, when: datetime, device: str, ip: str
) -> OutgoingMail:
    minutes = max(1, int(ttl.total_seconds() // 60))
    return _mail(
        to,
        name,
        "Your DeelRx sign-in code",
        "A sign-in to your DeelRx account needs a second step after unusual activity on the account. "
        f"Enter this code where the sign-in page asks for a code:\n\n    {code}\n\n"
        f"It works once, for this sign-in only, and expires in {minutes} minutes.",
        when,
        device,
        ip,
        _not_you(public_url),
    )


def account_held(to: str, name: str, public_url: str, until: datetime) -> OutgoingMail:
    text = (
        f"Hello {_clean(name)},\n\n"
        "Sign-ins to your DeelRx account are blocked until "
        f"{until.strftime('%Y-%m-%d %H:%M UTC')} after an attack on the account was detected.\n\n"
        "Resetting your password unlocks the account at once: "
        f"{public_url.rstrip('/')}/forgot-password\n"
    )
    return OutgoingMail(to=to, subject="Sign-ins to your DeelRx account are on hold", text=text)
