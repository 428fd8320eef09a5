"""pycasbin on the authorization workload: RBAC with domains, customer assignments as a second
grouping relation. Run with the benchmark's own environment (`.venv-bench`, which has casbin);
prints one JSON line: timings and the decisions (for comparison with the other engines)."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import casbin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.authz_workload import (
    BROAD,
    CHECKS,
    MANAGER_PERMISSIONS,
    STAFF_PERMISSIONS,
    TEAM_PERMISSIONS,
    checks,
    teams,
)

MODEL = """
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _
g2 = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.dom == p.dom && r.act == p.act && g(r.sub, p.sub, r.dom) \
    && (p.obj == "*" || (p.obj == "assigned" && g2(r.sub, r.obj, r.dom)))
"""


def build() -> casbin.Enforcer:
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write(MODEL)
    enforcer = casbin.Enforcer(f.name)
    for team in teams():
        d = team.team_id
        for role, held in (
            ("owner", set(TEAM_PERMISSIONS)),
            ("manager", MANAGER_PERMISSIONS),
            ("staff", STAFF_PERMISSIONS),
        ):
            for permission in held:
                enforcer.add_policy(role, d, "*", permission)
        for permission in BROAD:
            enforcer.add_policy("owner", d, "*", permission)
            enforcer.add_policy("manager", d, "*", permission)
            enforcer.add_policy("staff", d, "assigned", permission)
        for user, role in team.roles.items():
            enforcer.add_grouping_policy(user, role, d)
        for user, customers in team.assignments.items():
            for customer in customers:
                enforcer.add_named_grouping_policy("g2", user, f"customer:{customer}", d)
    return enforcer


def main() -> None:
    enforcer = build()
    workload = checks(teams(), int(sys.argv[1]) if len(sys.argv) > 1 else CHECKS)
    samples = []
    decisions = []
    begin = time.perf_counter()
    for c in workload:
        started = time.perf_counter_ns()
        decisions.append(enforcer.enforce(c.user_id, c.team_id, c.resource, c.permission))
        samples.append(time.perf_counter_ns() - started)
    wall = time.perf_counter() - begin
    print(json.dumps({"samples_ns": samples, "wall": wall, "decisions": decisions}))


if __name__ == "__main__":
    main()
