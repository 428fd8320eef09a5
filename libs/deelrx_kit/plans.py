"""The plans a team can be on and the request rate each allows: the one list of them.

Identity validates a plan against `PLANS`, the gateway's API schema takes `Plan`, and the
gateway's rate limiter reads `limit_of()`. A team without a known plan (or a lookup that
failed past its grace) gets `DEFAULT_PLAN`, the strictest.
"""

from __future__ import annotations

from typing import Literal, get_args

Plan = Literal["starter", "professional", "enterprise"]
PLANS: tuple[str, ...] = get_args(Plan)
DEFAULT_PLAN: Plan = "starter"
# Authenticated requests per rolling minute, per team (or per user without a team).
REQUESTS_PER_MINUTE: dict[str, int] = {"starter": 100, "professional": 1_000, "enterprise": 10_000}


def limit_of(plan: str) -> int:
    """The plan's limit; an unknown name gets the default plan's."""
    return REQUESTS_PER_MINUTE.get(plan, REQUESTS_PER_MINUTE[DEFAULT_PLAN])
