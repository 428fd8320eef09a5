"""The device cookie (docs/api.md): HttpOnly, SameSite=Strict, one year, kept at logout. It names a
device that signed in to an account before (deelrx_kit.device_tokens), so that device is
exempt from the per-account anonymous rate limit and from locks earned by other clients."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import MutableHeaders
from starlette.responses import Response

from deelrx_kit import device_tokens
from gateway.exchange import exchange_of
from gateway.state import Gateway

MAX_AGE_SECONDS = 365 * 24 * 3600


def cookie_name(gw: Gateway) -> str:
    return f"{'__Host-' if gw.cookies.secure else ''}deelrx_device"


def presented(gw: Gateway, request: Request) -> str:
    return request.cookies.get(cookie_name(gw), "")[:256]


def is_trusted_for(gw: Gateway, request: Request, email: str) -> bool:
    return device_tokens.device_for(gw.secret, presented(gw, request), email) is not None


def remember(request: Request, token: str) -> None:
    """Queue a fresh device cookie on this response (after a complete login)."""
    exchange_of(request).remember_device(token)


def write(gw: Gateway, token: str, headers: MutableHeaders) -> None:
    if not token:
        return
    response = Response()
    response.set_cookie(
        cookie_name(gw),
        token,
        max_age=MAX_AGE_SECONDS,
        path="/",
        secure=gw.cookies.secure,
        httponly=True,
        samesite="strict",
    )
    for name, value in response.raw_headers:
        if name == b"set-cookie":
            headers.append("set-cookie", value.decode("latin-1"))
