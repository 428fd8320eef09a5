"""Hypothesis-generated protobuf requests sent straight to every method of every internal gRPC
service (bypassing the gateway's validation): whatever the fields hold (odd Unicode, huge
strings, out-of-range timestamps, unknown enum values, empty ids), a service answers with a
deliberate status before the deadline, never INTERNAL/UNKNOWN/DATA_LOSS, and keeps serving.

The methods are read from the generated descriptors, so a new RPC is fuzzed without editing
this file. `slow` runs many more examples per method."""

from __future__ import annotations

import importlib
import os
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as d
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deelrx_kit.settings import SERVICES
from tests.security.conftest import LiveSuite

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("suite", ["sqlite"], indirect=True)]

BAD_STATUSES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
DEADLINE = 10.0
EXAMPLES = int(os.environ.get("DEELRX_FUZZ_EXAMPLES", "12"))

NASTY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "usr_",
        "tm_",
        "ses_",
        "inv_",
        "usr_" + "0" * 26,
        "a" * 70_000,
        "\u0000",
        "\ufeff",
        "' OR 1=1 --",
        "../../etc/passwd",
        "%00",
        "\U0001f600" * 50,
        "ada@example.com",
        "ADA@EXAMPLE.COM ",
        "customer:c_1",
        "*",
        "owner",
        "-1",
        "9" * 40,
        "2026-13-45T99:99:99Z",
    ]
)
INT_RANGES = {
    d.FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    d.FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    d.FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    d.FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    d.FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    d.FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    d.FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    d.FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    d.FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    d.FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def scalar(field: d.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    t = field.type
    if t == d.FieldDescriptor.TYPE_STRING:
        return st.one_of(NASTY_TEXT, st.text(max_size=40))
    if t == d.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if t == d.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in INT_RANGES:
        low, high = INT_RANGES[t]
        return st.one_of(st.sampled_from([0, 1, -1 if low < 0 else 2, low, high]), st.integers(low, high))
    if t == d.FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    if t == d.FieldDescriptor.TYPE_DOUBLE:
        return st.floats()
    if t == d.FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 1000))  # unknown values too (open enums)
    assert t == d.FieldDescriptor.TYPE_MESSAGE
    return message(field.message_type, depth + 1)


def message(desc: d.Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    cls = message_factory.GetMessageClass(desc)
    if depth > 3:
        return st.just(cls())
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in desc.fields:
        if field.type == d.FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            key_f, value_f = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            optional[field.name] = st.dictionaries(scalar(key_f, depth), scalar(value_f, depth), max_size=3)
        elif field.is_repeated:
            optional[field.name] = st.lists(scalar(field, depth), max_size=4)
        else:
            optional[field.name] = scalar(field, depth)

    def build(values: dict[str, Any]) -> Any:
        msg = cls()
        for name, value in values.items():
            field = desc.fields_by_name[name]
            if field.type == d.FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
                target = getattr(msg, name)
                for k, v in value.items():
                    if isinstance(v, message_factory.message.Message):
                        target[k].CopyFrom(v)
                    else:
                        target[k] = v
            elif field.is_repeated:
                if field.type == d.FieldDescriptor.TYPE_MESSAGE:
                    getattr(msg, name).extend(value)
                else:
                    getattr(msg, name).extend(value)
            elif field.type == d.FieldDescriptor.TYPE_MESSAGE:
                getattr(msg, name).CopyFrom(value)
            else:
                setattr(msg, name, value)
        return msg

    return st.fixed_dictionaries({}, optional=optional).map(build)


def methods() -> list[tuple[str, d.MethodDescriptor]]:
    found = []
    for service in SERVICES:
        module = importlib.import_module(f"deelrx.{service}.v1.{service}_pb2")
        for svc in module.DESCRIPTOR.services_by_name.values():
            found.extend((service, m) for m in svc.methods)
    return found


METHODS = methods()


def _call(channel: grpc.Channel, method: d.MethodDescriptor, request: Any) -> grpc.StatusCode:
    out = message_factory.GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                path, request_serializer=type(request).SerializeToString, response_deserializer=out.FromString
            )
            for _ in stream(request, timeout=2.0):  # live streams run until the deadline: that is fine
                pass
        else:
            channel.unary_unary(
                path, request_serializer=type(request).SerializeToString, response_deserializer=out.FromString
            )(request, timeout=DEADLINE)
    except grpc.RpcError as exc:
        code = exc.code()
        if method.server_streaming and code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return grpc.StatusCode.OK
        return code
    return grpc.StatusCode.OK


def fuzz(suite: LiveSuite, service: str, method: d.MethodDescriptor, examples: int) -> None:
    address = suite.env[f"DEELRX_{service.upper()}_ADDR"]
    seen: dict[grpc.StatusCode, int] = {}
    with grpc.insecure_channel(address) as channel:

        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(request=message(method.input_type))
        def probe(request: Any) -> None:
            code = _call(channel, method, request)
            seen[code] = seen.get(code, 0) + 1
            assert code not in BAD_STATUSES, f"{method.full_name} answered {code} to {request!r:.500}"
            assert code != grpc.StatusCode.DEADLINE_EXCEEDED, f"{method.full_name} hung on {request!r:.500}"

        probe()
        # Still serving afterwards.
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert seen


IDS = [f"{s}.{m.name}" for s, m in METHODS]


@pytest.mark.parametrize("service,method", METHODS, ids=IDS)
def test_fuzzed_requests_get_deliberate_answers(suite: LiveSuite, service: str, method: d.MethodDescriptor) -> None:
    fuzz(suite, service, method, EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("service,method", METHODS, ids=IDS)
def test_fuzzed_requests_get_deliberate_answers_long(
    suite: LiveSuite, service: str, method: d.MethodDescriptor
) -> None:
    fuzz(suite, service, method, int(os.environ.get("DEELRX_FUZZ_EXAMPLES", "120")))
