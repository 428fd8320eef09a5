from __future__ import annotations

import pytest

from services.sessions.domain.devices import parse_device

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.mark.parametrize(
    ("ua", "browser", "os", "kind", "label"),
    [
        (FIREFOX_LINUX, "Firefox", "Linux", "desktop", "Firefox on Linux"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36 Edg/120.0",
            "Edge",
            "Windows",
            "desktop",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.0 Mobile/15E148 Safari/604.1",
            "Mobile Safari",
            "iOS",
            "mobile",
            "Mobile Safari on iOS",
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.0 Mobile/15E148 Safari/604.1",
            "Mobile Safari",
            "iOS",
            "tablet",
            "Mobile Safari on iOS",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0 Safari/537.36",
            "Chrome",
            "Android",
            "tablet",
            "Chrome on Android",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 "
            "Mobile Safari/537.36",
            "Chrome",
            "Android",
            "mobile",
            "Chrome on Android",
        ),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Googlebot",
            "",
            "bot",
            "Googlebot",
        ),
        ("curl/8.0.1", "curl", "", "other", "curl"),
        ("", "", "", "other", "Unknown device"),
    ],
)
def test_parse_device(ua: str, browser: str, os: str, kind: str, label: str) -> None:
    device = parse_device(ua)
    assert (device.browser, device.os, device.type, device.label) == (browser, os, kind, label)


def test_fingerprint_ignores_versions_but_not_browsers() -> None:
    older = FIREFOX_LINUX.replace("128.0", "115.0")
    chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
    assert parse_device(older).fingerprint == parse_device(FIREFOX_LINUX).fingerprint
    assert parse_device(chrome).fingerprint != parse_device(FIREFOX_LINUX).fingerprint


def test_huge_user_agent_is_bounded() -> None:
    device = parse_device(FIREFOX_LINUX + "x" * 100_000)
    assert device.label == "Firefox on Linux"
