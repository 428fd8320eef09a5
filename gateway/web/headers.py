"""Browser security headers for every answer of the public app: a strict Content-Security-Policy
(no inline script, no third-party origin, no framing) and the isolation headers that go with it."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Everything comes from the suite itself. `img-src data:` carries the TOTP QR code (an SVG data URL);
# no 'unsafe-inline' anywhere: pages load their scripts and styles from /static.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
BROWSER_HEADERS = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
)
HSTS = ("strict-transport-security", "max-age=31536000; includeSubDomains")


class BrowserSecurityHeaders:
    """Adds the headers above to every HTTP answer that does not set them itself."""

    def __init__(self, app: ASGIApp, https: bool) -> None:
        self.app = app
        self.headers = (*BROWSER_HEADERS, HSTS) if https else BROWSER_HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
