"""Carrying `ErrorDetail` across gRPC: encoding on the server, decoding on the client."""

from __future__ import annotations

import grpc

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import STATUS_TO_CODE, DomainError, Violation

ERROR_METADATA_KEY = "deelrx-error-bin"


def encode(error: DomainError) -> tuple[tuple[str, bytes], ...]:
    detail = common_pb2.ErrorDetail(
        code=error.code,
        message=error.message,
        retry_after_seconds=error.retry_after_seconds,
        violations=[common_pb2.FieldViolation(pointer=v.pointer, detail=v.detail) for v in error.violations],
    )
    return ((ERROR_METADATA_KEY, detail.SerializeToString()),)


def decode(error: grpc.aio.AioRpcError) -> DomainError:
    """The DomainError a failed call carried; transport failures become `unavailable`."""
    for key, value in error.trailing_metadata() or ():
        if key == ERROR_METADATA_KEY and isinstance(value, bytes):
            detail = common_pb2.ErrorDetail.FromString(value)
            return DomainError(
                detail.code,
                detail.message,
                detail.retry_after_seconds,
                [Violation(v.pointer, v.detail) for v in detail.violations],
            )
    code = STATUS_TO_CODE.get(error.code(), "internal")
    return DomainError(code)
