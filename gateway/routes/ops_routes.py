"""Health, readiness and the public signing keys."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from deelrx.sessions.v1 import sessions_pb2
from gateway import readiness
from gateway.clients import call
from gateway.state import gateway_of

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
    gw = gateway_of(request)
    reply = await call(gw.clients.sessions.GetJwks, sessions_pb2.GetJwksRequest())
    return Response(
        reply.jwks_json,
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )
