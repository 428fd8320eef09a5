"""Which caller (client certificate Common Name) may call which gRPC method.

The services trust the identity fields the gateway writes into requests (user, session, team), so
only the gateway may call the user-facing methods; key rotation belongs to an operator identity.
A method not named here falls back to its service's "*" row; a service not named here is refused.
Health checks are open to every caller with a valid certificate (and to the plaintext health port).
"""

from __future__ import annotations

from typing import Any

import grpc
import structlog

from deelrx_kit.mtls import caller_identity

log = structlog.get_logger("deelrx.authz")

GATEWAY = "gateway"
OPERATOR = "operator"
# The CRM's own backends, through deelrx_sdk.AuthzClient: they may ask authorization questions,
# never change anything.
CRM_SERVICE = "crm-service"
ANY = "*"
RBAC_QUESTIONS = frozenset({GATEWAY, CRM_SERVICE})
# The detector's automatic responses to alerts (services/detector/responses.py).
DETECTOR = "detector"
GATEWAY_OR_DETECTOR = frozenset({GATEWAY, DETECTOR})

# full gRPC service name -> {method name or "*": callers allowed}
ALLOWED_CALLERS: dict[str, dict[str, frozenset[str]]] = {
    "deelrx.identity.v1.IdentityService": {
        "*": frozenset({GATEWAY}),
        "LockAccount": frozenset({DETECTOR}),
        "RequireMfa": frozenset({DETECTOR}),
        "NotifyTeamOwners": frozenset({DETECTOR}),
    },
    "deelrx.sessions.v1.SessionsService": {
        "*": frozenset({GATEWAY}),
        "RotateSigningKey": frozenset({OPERATOR}),
        "RevokeSession": GATEWAY_OR_DETECTOR,
    },
    "deelrx.rbac.v1.RbacService": {
        "*": frozenset({GATEWAY}),
        "ListMembers": GATEWAY_OR_DETECTOR,
        "ListMemberships": GATEWAY_OR_DETECTOR,
        "Check": RBAC_QUESTIONS,
        "BatchCheck": RBAC_QUESTIONS,
        "LookupResources": RBAC_QUESTIONS,
    },
    "deelrx.audit.v1.AuditService": {"*": frozenset({GATEWAY, OPERATOR})},
    "deelrx.detector.v1.DetectorService": {"*": frozenset({GATEWAY, OPERATOR})},
    "grpc.health.v1.Health": {"*": frozenset({ANY})},
    "grpc.reflection.v1alpha.ServerReflection": {"*": frozenset({OPERATOR})},
    "grpc.reflection.v1.ServerReflection": {"*": frozenset({OPERATOR})},
}


def allowed(full_method: str, caller: str | None) -> bool:
    """`full_method` is "/package.Service/Method" as gRPC names it."""
    service, _, method = full_method.lstrip("/").partition("/")
    rows = ALLOWED_CALLERS.get(service)
    if rows is None:
        return False
    callers = rows.get(method, rows.get("*", frozenset()))
    return ANY in callers or (caller is not None and caller in callers)


class CallerAuthorizationInterceptor(grpc.aio.ServerInterceptor):
    """Refuses, with PERMISSION_DENIED, a call whose certificate identity the table does not allow.

    Installed only on servers that require client certificates: without mTLS there is no identity.
    """

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        full_method = handler_call_details.method

        def guard(inner: Any) -> grpc.RpcMethodHandler:
            async def check(context: grpc.aio.ServicerContext) -> None:
                caller = caller_identity(context)
                if not allowed(full_method, caller):
                    log.warning("rpc_caller_refused", method=full_method, caller=caller)
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "caller not allowed")

            if handler.unary_unary:

                async def unary(request, context):  # type: ignore[no-untyped-def]
                    await check(context)
                    return await inner(request, context)

                return grpc.unary_unary_rpc_method_handler(
                    unary,
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )

            async def stream(request, context):  # type: ignore[no-untyped-def]
                await check(context)
                async for item in inner(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        if handler.unary_unary:
            return guard(handler.unary_unary)
        if handler.unary_stream:
            return guard(handler.unary_stream)
        # Client- or bidi-streaming (reflection): allowed only where the table says anyone may.
        if allowed(full_method, None):
            return handler

        async def refuse_stream(request_iterator, context):  # type: ignore[no-untyped-def]
            if not allowed(full_method, caller_identity(context)):
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "caller not allowed")
            async for item in handler.stream_stream(request_iterator, context):
                yield item

        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                refuse_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
