"""Plans have one definition: identity's validation, the gateway's schema and rate limits and
the billing page all read deelrx_kit.plans."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deelrx_kit.errors import DomainError
from deelrx_kit.plans import DEFAULT_PLAN, PLANS, REQUESTS_PER_MINUTE, limit_of
from gateway.team_schemas import BillingBody
from gateway.web.pages import templates
from services.identity.domain.team_rules import check_plan


def test_every_plan_has_a_limit_and_unknown_names_get_the_default() -> None:
    assert set(REQUESTS_PER_MINUTE) == set(PLANS) and DEFAULT_PLAN in PLANS
    assert limit_of("enterprise") == 10_000 and limit_of("gold") == limit_of(DEFAULT_PLAN) == 100


@pytest.mark.parametrize("plan", PLANS)
def test_identity_and_the_gateway_accept_each_plan(plan: str) -> None:
    assert check_plan(plan) == plan
    assert BillingBody(plan=plan).plan == plan  # type: ignore[arg-type]
    assert f'value="{plan}"' in templates.get_template("billing.html").render(navigation=[])


def test_identity_and_the_gateway_refuse_an_unknown_plan() -> None:
    with pytest.raises(DomainError):
        check_plan("gold")
    with pytest.raises(ValidationError):
        BillingBody(plan="gold")  # type: ignore[arg-type]
