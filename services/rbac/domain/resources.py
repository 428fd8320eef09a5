"""Resources named `type:id`, e.g. `customer:c_42`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from deelrx_kit.errors import validation_error

_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Ids come from other systems (the CRM); accept their usual shapes but nothing that could
# confuse a log line or a subject: no spaces, no control characters, bounded length.
_ID = re.compile(r"^[A-Za-z0-9_\-.@]{1,128}$")


@dataclass(frozen=True)
class Resource:
    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"


def require_resource_type(value: str, pointer: str = "/resource_type") -> str:
    if not _TYPE.match(value):
        raise validation_error(pointer, "resource type must be lower-case letters, digits or _")
    return value


def require_resource_id(value: str, pointer: str) -> str:
    if not _ID.match(value):
        raise validation_error(pointer, "id must be 1-128 letters, digits or _-.@")
    return value


def parse_resource(value: str, pointer: str = "/resource") -> Resource | None:
    """`""` means no resource; anything else must be `type:id`."""
    if not value:
        return None
    kind, sep, ident = value.partition(":")
    if not sep or not _TYPE.match(kind) or not _ID.match(ident):
        raise validation_error(pointer, "resource must look like type:id, e.g. customer:c_42")
    return Resource(kind, ident)


_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def require_key(value: str, pointer: str) -> str:
    """User, team and operation ids: opaque, but they end up in NATS subjects, so no dots or spaces."""
    if not _KEY.match(value):
        raise validation_error(pointer, "required: 1-64 letters, digits, _ or -")
    return value
