"""Health, readiness and the public signing keys."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from deelrx_kit.errors import DomainError
from gateway import readiness
from gateway.state import gateway_of

JWKS_MAX_AGE_SECONDS = 60

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    status = await readiness.cached_check(gateway_of(request))
    ok = all(status.values())
    # No details on the public port; the admin port says which dependency is down.
    return JSONResponse({"status": "ready" if ok else "unavailable"}, status_code=200 if ok else 503)


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> Response:
    """The public signing keys, from the gateway's cache (refreshed in the background)."""
    gw = gateway_of(request)
    try:
        document = await gw.verifier.document()
    except Exception:  # noqa: BLE001 - sessions unreachable and nothing cached yet
        raise DomainError("unavailable", "Signing keys are not available yet") from None
    return Response(
        document,
        media_type="application/json",
        # Short: a withdrawn key must leave every cache within about a minute.
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}"},
    )
