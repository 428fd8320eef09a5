"""The gateway's three cookies (docs/api.md): names, attributes, setting and clearing."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response


@dataclass(frozen=True)
class CookieNames:
    session: str
    refresh: str
    csrf: str


def cookie_names(secure: bool) -> CookieNames:
    # `__Host-` needs Secure; on plain-http loopback development both are dropped.
    prefix = "__Host-" if secure else ""
    return CookieNames(f"{prefix}deelrx_session", f"{prefix}deelrx_refresh", f"{prefix}deelrx_csrf")


@dataclass
class CookieJar:
    names: CookieNames
    secure: bool

    def set_tokens(
        self, response: Response, *, access: str, access_max_age: int, refresh: str, refresh_max_age: int, csrf: str
    ) -> None:
        response.set_cookie(
            self.names.session,
            access,
            max_age=access_max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )
        response.set_cookie(
            self.names.refresh,
            refresh,
            max_age=refresh_max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )
        response.set_cookie(
            self.names.csrf,
            csrf,
            max_age=refresh_max_age,
            path="/",
            secure=self.secure,
            httponly=False,
            samesite="strict",
        )

    def clear(self, response: Response) -> None:
        for name, samesite, httponly in (
            (self.names.session, "lax", True),
            (self.names.refresh, "strict", True),
            (self.names.csrf, "strict", False),
        ):
            response.delete_cookie(name, path="/", secure=self.secure, httponly=httponly, samesite=samesite)  # type: ignore[arg-type]
