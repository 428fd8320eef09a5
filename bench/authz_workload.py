"""The authorization benchmark's data and checks, identical for every engine (stdlib only, so
the pycasbin run in its own environment builds exactly the same workload).

10 teams, each with 1 owner, 2 managers, 10 staff and 200 customers; each staff member is
assigned 10 customers. 10,000 random checks: 70% viewing or editing a customer, 30% team-level
permissions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

TEAMS, MANAGERS, STAFF, CUSTOMERS, ASSIGNED_PER_STAFF = 10, 2, 10, 200, 10
CHECKS = 10_000
CUSTOMER_PERMISSIONS = ("customers.read_assigned", "customers.write_assigned")
TEAM_PERMISSIONS = (
    "team.manage",
    "members.read",
    "members.invite",
    "members.manage",
    "sessions.manage",
    "security.manage",
    "billing.read",
    "billing.manage",
    "roles.manage",
    "orders.read",
    "orders.write",
    "reports.read",
    "reports.write",
    "analytics.read",
    "audit.read",
)
# The default table for the permissions the workload asks about (owner holds everything).
MANAGER_PERMISSIONS = frozenset(TEAM_PERMISSIONS) - {"billing.read", "billing.manage", "roles.manage"}
STAFF_PERMISSIONS = frozenset({"reports.read"})
BROAD = {"customers.read_assigned": "customers.read", "customers.write_assigned": "customers.write"}


@dataclass
class Team:
    team_id: str
    roles: dict[str, str] = field(default_factory=dict)  # user -> role
    customers: list[str] = field(default_factory=list)
    assignments: dict[str, list[str]] = field(default_factory=dict)  # staff -> customer ids


@dataclass(frozen=True)
class Check:
    user_id: str
    team_id: str
    permission: str
    resource: str


def teams(seed: int = 7) -> list[Team]:
    rng = random.Random(seed)
    out = []
    for t in range(TEAMS):
        team = Team(f"tm_bench{t:02d}")
        team.roles[f"usr_t{t}_owner"] = "owner"
        for m in range(MANAGERS):
            team.roles[f"usr_t{t}_mgr{m}"] = "manager"
        team.customers = [f"c_{t}_{c}" for c in range(CUSTOMERS)]
        for s in range(STAFF):
            user = f"usr_t{t}_staff{s}"
            team.roles[user] = "staff"
            team.assignments[user] = rng.sample(team.customers, ASSIGNED_PER_STAFF)
        out.append(team)
    return out


def checks(data: list[Team], n: int = CHECKS, seed: int = 11) -> list[Check]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        team = rng.choice(data)
        user = rng.choice(list(team.roles))
        if rng.random() < 0.7:
            permission = rng.choice(CUSTOMER_PERMISSIONS)
            assigned = team.assignments.get(user)
            # Half of a staff member's checks are on customers assigned to them.
            customer = rng.choice(assigned) if assigned and rng.random() < 0.5 else rng.choice(team.customers)
            out.append(Check(user, team.team_id, permission, f"customer:{customer}"))
        else:
            out.append(Check(user, team.team_id, rng.choice(TEAM_PERMISSIONS), ""))
    return out


def expected(data: list[Team], check: Check) -> bool:
    """The answer every engine must give (the API's default table)."""
    team = next(t for t in data if t.team_id == check.team_id)
    role = team.roles.get(check.user_id)
    if role == "owner":
        return True
    if check.permission in BROAD:
        if role == "manager":
            return True
        customer = check.resource.partition(":")[2]
        return role == "staff" and customer in team.assignments.get(check.user_id, [])
    held = MANAGER_PERMISSIONS if role == "manager" else STAFF_PERMISSIONS
    return check.permission in held
