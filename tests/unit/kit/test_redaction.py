"""Redaction inside log values: secrets and addresses go, ordinary words stay."""

from __future__ import annotations

import pytest

from deelrx_kit.redaction import redact_text

REFRESH = "rt_" + "A" * 43
JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c3JfMSJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (
            "[SQL: INSERT INTO users ...]\n[parameters: ('ada@example.com', '$argon2id$v=19$x')]\n(Background on",
            "argon2id",
        ),
        ("DETAIL:  Key (email_normalized)=(ada@example.com) already exists.", "ada@example.com"),
        (f"refresh failed for {REFRESH}", REFRESH),
        (f"Authorization: Bearer {JWT}", JWT),
        ("GET https://x.test/verify-email?token=Zm9vYmFyYmF6cXV4&x=1", "Zm9vYmFyYmF6cXV4"),
        ("550 <grace@example.org>: mailbox unavailable", "grace@example.org"),
    ],
)
def test_secrets_and_addresses_inside_values_are_redacted(text: str, secret: str) -> None:
    assert secret not in redact_text(text)


def test_ordinary_values_are_left_alone() -> None:
    for text in ("mfa_enrollment_required", "code=unauthenticated", "start_something_longer_than_16", "rt_short"):
        assert redact_text(text) == text
    assert "already exists" in redact_text("Key (email)=(a@b.co) already exists")
    assert redact_text("ada@example.com", keep_pii=True) == "ada@example.com"
