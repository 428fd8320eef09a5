"""The admin listener (loopback by default): Prometheus metrics and detailed readiness."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from gateway import readiness
from gateway.state import Gateway


def create_admin_app(gw: Gateway) -> FastAPI:
    app = FastAPI(title="DeelRx gateway admin", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz")
    async def readyz() -> Response:
        status = await readiness.cached_check(gw)
        ok = all(status.values())
        # Degraded modes that do not make the gateway unready (it falls back to Redis / local limits).
        degraded = {"revocation_feed_stale": not gw.revocations.feed_healthy, "rate_limits_local": gw.limiter.degraded}
        # Rate limits: "shared" (Redis) or "local" (degraded: each replica its share).
        details = {"rate_limits": gw.limiter.status()}
        return JSONResponse(
            {"status": "ready" if ok else "unavailable", "checks": status, "degraded": degraded, "details": details},
            status_code=200 if ok else 503,
        )

    return app
