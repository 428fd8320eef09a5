"""The launcher's extra gateway replica is serving when a test gets it, or the test errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from deploy.local import infra
from tests.e2e.conftest import RunningSuite
from tests.suite_launcher import gateway_replica

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("suite", ["sqlite"], indirect=True)
def test_a_replica_whose_readyz_never_answers_200_fails_the_fixture(suite: RunningSuite, tmp_path: Path) -> None:
    # Nothing listens at this identity address: the replica starts, but its /readyz stays 503.
    nowhere = f"127.0.0.1:{infra.free_port()}"
    with pytest.raises(TimeoutError, match="readyz"):
        with gateway_replica(suite, tmp_path, ready_timeout=3, DEELRX_IDENTITY_ADDR=nowhere):
            pytest.fail("a replica that is not ready was handed to the test")


@pytest.mark.parametrize("suite", ["sqlite"], indirect=True)
def test_a_replica_on_the_suite_serves(suite: RunningSuite, tmp_path: Path) -> None:
    with gateway_replica(suite, tmp_path) as replica:
        assert httpx.get(f"{replica.url}/.well-known/jwks.json", timeout=10).json()["keys"]
