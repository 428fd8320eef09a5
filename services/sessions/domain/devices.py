"""What device a session runs on, parsed from its User-Agent (ua-parser)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ua_parser import parse

# Long headers cost regex time and say nothing more about the device.
MAX_USER_AGENT = 512

_DESKTOP_OS = frozenset(
    {
        "Windows",
        "Mac OS X",
        "macOS",
        "Linux",
        "Ubuntu",
        "Fedora",
        "Debian",
        "Chrome OS",
        "ChromeOS",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
        "Red Hat",
        "SUSE",
        "Arch Linux",
        "Mint",
        "Gentoo",
    }
)
_MOBILE_OS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "HarmonyOS"})
_TABLET_FAMILIES = ("ipad", "tablet", "kindle", "galaxy tab", "nexus 7", "nexus 9", "nexus 10")


@dataclass(frozen=True)
class Device:
    browser: str
    os: str
    type: str  # desktop | mobile | tablet | bot | other
    label: str
    fingerprint: str


def _family(value: str | None) -> str:
    return "" if not value or value == "Other" else value


def _device_type(user_agent: str, os_family: str, device_family: str, device_brand: str) -> str:
    lowered_family = device_family.lower()
    lowered_ua = user_agent.lower()
    if device_family == "Spider" or any(word in lowered_ua for word in ("bot", "crawler", "spider")):
        return "bot"
    if any(word in lowered_family for word in _TABLET_FAMILIES) or "tablet" in device_brand.lower():
        return "tablet"
    if os_family == "Android" and "mobile" not in lowered_ua:
        # Android tablets do not say "Mobile" (Google's guidance for browsers).
        return "tablet"
    if os_family in _MOBILE_OS:
        return "mobile"
    if os_family in _DESKTOP_OS:
        return "desktop"
    return "other"


def _label(browser: str, os_name: str) -> str:
    if browser and os_name:
        return f"{browser} on {os_name}"
    if browser:
        return browser
    if os_name:
        return f"Unknown browser on {os_name}"
    return "Unknown device"


def parse_device(user_agent: str) -> Device:
    """Browser, OS, type and a label such as "Firefox on Linux".

    The fingerprint leaves versions out, so a browser update is not a "new device".
    """
    ua = user_agent[:MAX_USER_AGENT]
    result = parse(ua)
    browser = _family(result.user_agent.family if result.user_agent else None)
    os_name = _family(result.os.family if result.os else None)
    device_family = _family(result.device.family if result.device else None)
    device_brand = (result.device.brand if result.device else None) or ""
    kind = _device_type(ua, os_name, device_family, device_brand)
    material = "|".join((browser, os_name, kind, device_family)).encode()
    fingerprint = hashlib.sha256(material).hexdigest()[:32]
    return Device(browser=browser, os=os_name, type=kind, label=_label(browser, os_name), fingerprint=fingerprint)
