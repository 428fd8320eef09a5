"""Access tokens live at least a minute: shorter ones would renew on nearly every request."""

import pytest
from pydantic import ValidationError

from deelrx_kit.settings import Settings


@pytest.mark.parametrize("ttl", [1, 30, 59])
def test_access_token_lifetime_below_a_minute_is_refused(ttl: int) -> None:
    with pytest.raises(ValidationError):
        Settings(access_token_ttl_seconds=ttl)
    assert Settings(access_token_ttl_seconds=60).access_token_ttl_seconds == 60
