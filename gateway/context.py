"""The `RequestContext` the gateway passes to every service call."""

from __future__ import annotations

from fastapi import Request

from deelrx.common.v1 import common_pb2


def request_context(request: Request) -> common_pb2.RequestContext:
    auth = getattr(request.state, "auth", None)
    return common_pb2.RequestContext(
        request_id=request.state.request_id,
        client_ip=request.state.client_ip,
        user_agent=request.headers.get("user-agent", "")[:512],
        user_id=auth.user_id if auth else "",
        session_id=auth.session_id if auth else "",
        team_id=(auth.team_id or "") if auth else "",
        idempotency_key=request.headers.get("idempotency-key", "")[:255],
    )
