from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.gateway.asgi_harness import Harness, harness


@pytest.fixture
async def gateway_app(redis_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """The gateway's ASGI app over the suite's real Redis, with fake services behind it."""
    async for built in harness(redis_url, tmp_path):
        yield built
