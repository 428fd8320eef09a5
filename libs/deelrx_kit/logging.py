"""structlog JSON logging with per-request context and secret redaction."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from deelrx_kit.redaction import redact_value
from deelrx_kit.secret_fields import SECRET_FIELD_NAMES

# Keys whose values must never reach a log line, however they got into the event dict.
_SECRET_KEYS = SECRET_FIELD_NAMES | {"authorization", "cookie", "set-cookie", "x-csrf-token"}


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


class ValueRedactor:
    """Looks inside every value, rendered exceptions included (see `deelrx_kit.redaction`).
    Email addresses are kept only when `keep_pii` (DEELRX_LOG_PII) is switched on."""

    def __init__(self, keep_pii: bool = False) -> None:
        self.keep_pii = keep_pii

    def __call__(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            if key in ("timestamp", "level", "service"):
                continue
            event_dict[key] = redact_value(value, keep_pii=self.keep_pii)
        return event_dict


def configure_logging(service: str, level: str = "INFO", *, log_pii: bool = False) -> None:
    """Configure structlog and the stdlib root logger to emit one JSON object per line."""
    redact_values = ValueRedactor(keep_pii=log_pii)
    # Never render local variables: a crashing frame may hold a password or token.
    render_exception = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    structlog.configure(
        processors=[
            *shared,
            render_exception,
            redact_values,
            structlog.processors.EventRenamer("msg"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                render_exception,
                redact_values,
                structlog.processors.EventRenamer("msg"),
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter at INFO is noise for operators.
    for noisy in ("asyncio", "nats", "aiosqlite", "sqlalchemy.engine", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
