from __future__ import annotations

from services.identity.adapters.mailer import build_message
from services.identity.domain import security_mail
from services.identity.domain.mail import OutgoingMail
from services.identity.domain.mail_html import html_body


def test_html_is_escaped_and_links_are_clickable() -> None:
    text = 'Hello <script>alert("x")</script> & co,\n\nOpen https://auth.example.test/reset-password?token=abc_-1\n'
    rendered = html_body("Reset <b>now</b>", text)
    assert "<script>" not in rendered and "&lt;script&gt;" in rendered and "&amp; co" in rendered
    assert "<title>Reset &lt;b&gt;now&lt;/b&gt;</title>" in rendered
    link = "https://auth.example.test/reset-password?token=abc_-1"
    assert f'<a href="{link}">{link}</a>' in rendered


def test_every_mail_has_a_plain_and_an_html_part() -> None:
    message = build_message(OutgoingMail("a@example.com", "Subject", "Body line\n"), "DeelRx <x@y>", "m1")
    assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None


def test_security_notices_name_time_device_ip_and_what_to_do() -> None:
    from datetime import UTC, datetime

    mail = security_mail.password_changed(
        "a@example.com",
        "Ada\u202e",
        "https://auth.example.test",
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "Firefox\r\nBcc: x@evil",
        "198.51.100.7",
        reset=False,
    )
    assert "2026-01-02 03:04:05 UTC" in mail.text and "198.51.100.7" in mail.text
    assert "Firefox" in mail.text and "\r" not in mail.text and "\u202e" not in mail.text
    assert "https://auth.example.test/forgot-password" in mail.text
