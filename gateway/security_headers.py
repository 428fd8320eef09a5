"""Security headers on every gateway answer (API, pages, errors), unless a handler set its own.

- `Content-Security-Policy`: nothing may load and nothing may frame an API answer; the
  interactive `/docs` page gets the sources FastAPI's Swagger UI needs.
- `Strict-Transport-Security` when the public URL is https (never on plain-http loopback
  development, where it would pin 127.0.0.1 to https in the developer's browser).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders

API_CSP = "default-src 'none'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
HSTS = "max-age=63072000; includeSubDomains"
ALWAYS = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)


def add_security_headers(headers: MutableHeaders, path: str, *, https: bool) -> None:
    for name, value in ALWAYS:
        if name not in headers:
            headers[name] = value
    if "content-security-policy" not in headers:
        headers["content-security-policy"] = DOCS_CSP if path.startswith("/docs") else API_CSP
    if https and "strict-transport-security" not in headers:
        headers["strict-transport-security"] = HSTS
