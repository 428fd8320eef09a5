"""The `RequestContext` the gateway passes to every service call."""

from __future__ import annotations

from fastapi import Request

from deelrx.common.v1 import common_pb2
from gateway.exchange import exchange_of


def request_context(request: Request) -> common_pb2.RequestContext:
    exchange = exchange_of(request)
    auth = exchange.auth
    return common_pb2.RequestContext(
        request_id=exchange.request_id,
        client_ip=exchange.client_ip,
        user_agent=request.headers.get("user-agent", "")[:512],
        user_id=auth.user_id if auth else "",
        session_id=auth.session_id if auth else "",
        team_id=(auth.team_id or "") if auth else "",
        idempotency_key=request.headers.get("idempotency-key", "")[:255],
    )
