from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deelrx_kit.errors import DomainError
from services.identity.domain import lockout
from services.identity.domain.accounts import check_name, lookup_key, parse_email
from services.identity.domain.mail import verification_mail


def test_email_domain_is_lower_cased_and_the_normalized_form_fully() -> None:
    address = parse_email("Bob.Smith@ExAmple.COM")
    assert address.display == "Bob.Smith@example.com"
    assert address.normalized == "bob.smith@example.com"
    assert lookup_key(" BOB.SMITH@example.com") == "bob.smith@example.com"


@pytest.mark.parametrize("raw", ["", "bob", "bob@", "@example.com", "bob@@example.com", "a" * 300 + "@x.com"])
def test_invalid_emails_are_validation_errors(raw: str) -> None:
    with pytest.raises(DomainError) as info:
        parse_email(raw)
    assert info.value.code == "validation_error"
    assert info.value.violations[0].pointer == "/email"


def test_invalid_login_input_still_has_a_lookup_key() -> None:
    assert lookup_key("  Not An Email ") == "not an email"


def test_names_are_trimmed_and_checked() -> None:
    assert check_name("  Ada Lovelace ") == "Ada Lovelace"
    assert check_name("x" * 100) == "x" * 100
    assert check_name("Zoë Ødegård 李") == "Zoë Ødegård 李"
    bidi_and_format = ("Ada\u202eecalovel", "Ada\u2066x\u2069", "Ada\u200b", "\ufeffAda", "Ada\u2029Byron")
    for bad in ("", "   ", "x" * 101, "Ada\x00", "Ada\nLovelace", "Ada\u2028Byron", "Ada\x7f", *bidi_and_format):
        with pytest.raises(DomainError):
            check_name(bad)


def test_verification_mail_carries_the_link() -> None:
    mail = verification_mail("a@example.com", "A", "https://id.example.com/", "tok-en_1", 24)
    assert "https://id.example.com/verify-email?token=tok-en_1" in mail.text


def test_client_lockout_reports_time_left() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert lockout.client_lockout(now + timedelta(seconds=90.2), now).retry_after_seconds == 91
    assert lockout.client_lockout(None, now).retry_after_seconds == 1
    assert lockout.account_lockout().scope == "account"
