"""Fixtures every integration package shares (helpers live in tests/integration/harness.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.harness import AuditTap


@pytest.fixture
async def audit_tap(nats_client) -> AsyncIterator[AuditTap]:  # type: ignore[no-untyped-def]
    """The audit events published while the test runs (subscribed before its body starts)."""
    tap = await AuditTap.start(nats_client)
    yield tap
    await tap.stop()
