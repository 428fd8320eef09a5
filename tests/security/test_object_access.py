"""Object-level and cross-team access, generated from the gateway's OpenAPI document: every
operation with an id in its path is called by an authenticated stranger with the victim's ids
(and with ids of nothing at all). A stranger never gets a 2xx, and learns nothing: the answer is
the same `not_found` a missing object gets (403 only where the path names the caller's own
things). A new endpoint is covered without editing this file; a path parameter this file cannot
fill fails the test, so that whoever adds one says what it names.

`slow` also runs every operation for every role of the victim's team."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.security.conftest import Account, LiveSuite, bearer, bearer_account

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("suite", ["sqlite"], indirect=True)]

METHODS = ("get", "post", "put", "patch", "delete")
# Path parameters that name no object of anyone's.
NOT_OBJECTS = {"original_path"}


def operations(suite: LiveSuite) -> list[tuple[str, str, dict[str, Any]]]:
    document = httpx.get(suite.base_url + "/openapi.json").json()
    found = []
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item and "{" in path:
                found.append((method.upper(), path, item[method]))
    return found


def sample(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    """A small value that satisfies `schema`, so requests get past validation to authorization."""
    if "$ref" in schema:
        return sample(components[schema["$ref"].rsplit("/", 1)[1]], components, depth)
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            options = [s for s in schema[combinator] if s.get("type") != "null"]
            return sample(options[0], components, depth) if options else None
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object")
    if kind == "object":
        if depth > 3:
            return {}
        props = schema.get("properties", {})
        return {name: sample(props[name], components, depth + 1) for name in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "number":
        return 1
    if kind == "boolean":
        return False
    if schema.get("format") == "email":
        return "stranger@example.com"
    return "x" * max(schema.get("minLength", 8), 8)


def body_for(operation: dict[str, Any], document: dict[str, Any]) -> Any:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    return sample(content["schema"], document.get("components", {}).get("schemas", {}))


def victim_ids(victim: Account, extras: dict[str, str]) -> dict[str, str]:
    """What each path parameter name means, filled with the victim's objects."""
    ids = {
        "uid": victim.user_id,
        "user_id": victim.user_id,
        "id": victim.session_id,
        "sid": victim.session_id,
        "session_id": victim.session_id,
        "role": "manager",
        "cid": "c_42",
        # Forward auth's catch-all: the path of the request being checked, not an object.
        "original_path": "crm/customers/c_42",
    }
    ids.update(extras)
    return ids


def nonexistent_ids() -> dict[str, str]:
    return {
        "tid": "tm_00000000000000000000000000",
        "uid": "usr_00000000000000000000000000",
        "user_id": "usr_00000000000000000000000000",
        "id": "ses_00000000000000000000000000",
        "sid": "ses_00000000000000000000000000",
        "session_id": "ses_00000000000000000000000000",
        "iid": "inv_00000000000000000000000000",
        "aid": "alr_00000000000000000000000000",
        "role": "manager",
        "cid": "c_404",
        "original_path": "crm/nothing",
    }


def fill(path: str, ids: dict[str, str]) -> str:
    missing = [name for name in re.findall(r"{(\w+)}", path) if name not in ids]
    assert not missing, f"{path}: teach tests/security/test_object_access.py what {missing} name"
    return re.sub(r"{(\w+)}", lambda m: ids[m.group(1)], path)


def victim_objects(suite: LiveSuite, victim: Account) -> dict[str, str]:
    """Objects of the victim that the product lets one create: a team (and an invitation in it)
    when team endpoints exist."""
    extras: dict[str, str] = {}
    with suite.client() as c:
        r = c.post("/v1/teams", json={"name": "Victim Co"}, headers=bearer(victim.access_token))
        if r.status_code == 201:
            extras["tid"] = r.json()["id"]
            r = c.post(
                f"/v1/teams/{extras['tid']}/invitations",
                json={"email": "invitee@example.com", "role": "staff"},
                headers=bearer(victim.access_token),
            )
            if r.status_code == 201:
                extras["iid"] = r.json()["id"]
    return extras


def refusal(r: httpx.Response, what: str) -> None:
    assert r.status_code < 500, (what, r.status_code, r.text)
    assert not 200 <= r.status_code < 300, (what, r.status_code, r.text)
    assert r.status_code in (403, 404, 405, 409, 422), (what, r.status_code, r.text)


def test_a_stranger_reaches_no_object_of_another_account(suite: LiveSuite) -> None:
    victim = bearer_account(suite)
    stranger = bearer_account(suite)
    document = httpx.get(suite.base_url + "/openapi.json").json()
    ids = victim_ids(victim, victim_objects(suite, victim))
    ops = operations(suite)
    with suite.client() as c:
        for method, path, operation in ops:
            if set(re.findall(r"{(\w+)}", path)) <= NOT_OBJECTS:
                continue  # e.g. forward auth's /v1/auth/verify/{original_path}: no object in the path
            body = body_for(operation, document)
            kwargs = {"json": body} if body is not None else {}
            for label, values in (("victim's", ids), ("nonexistent", nonexistent_ids())):
                url = fill(path, values)
                r = c.request(method, url, headers=bearer(stranger.access_token), **kwargs)
                refusal(r, f"stranger {method} {url} ({label} ids)")
                if label == "victim's" and r.status_code == 404:
                    # Indistinguishable from an object that does not exist.
                    missing = c.request(
                        method, fill(path, nonexistent_ids()), headers=bearer(stranger.access_token), **kwargs
                    )
                    assert missing.status_code == 404 and missing.json()["code"] == r.json()["code"], (method, path)
        # The victim's session survived every attempt.
        assert c.get("/v1/auth/me", headers=bearer(victim.access_token)).status_code == 200


# What each non-owner role may do on its team's paths with the default permissions (API.md);
# every other team operation, including any added later, must refuse them.
STAFF_MAY = {("GET", "/v1/teams/{tid}"), ("GET", "/v1/teams/{tid}/roles")}
OWNER_ONLY = {
    ("GET", "/v1/teams/{tid}/billing"),
    ("PUT", "/v1/teams/{tid}/billing"),
    ("PUT", "/v1/teams/{tid}/roles/{role}"),
    ("POST", "/v1/teams/{tid}/transfer-ownership"),
    ("DELETE", "/v1/teams/{tid}"),
}


def join(suite: LiveSuite, owner: Account, tid: str, role: str) -> Account:
    member = bearer_account(suite)
    with suite.client() as c:
        mark = suite.mailbox.mark()
        r = c.post(
            f"/v1/teams/{tid}/invitations",
            json={"email": member.email, "role": role},
            headers=bearer(owner.access_token),
        )
        assert r.status_code == 201, r.text
        token = suite.mailbox.wait_for(member.email, r"/accept-invite\?token=([A-Za-z0-9_\-]+)", after=mark)
        r = c.post("/v1/invitations/accept", json={"token": token}, headers=bearer(member.access_token))
        assert r.status_code == 200, r.text
    return member


def test_every_role_stays_within_its_permissions(suite: LiveSuite) -> None:
    document = httpx.get(suite.base_url + "/openapi.json").json()
    if "/v1/teams" not in document["paths"] or "/v1/invitations/accept" not in document["paths"]:
        pytest.skip("team endpoints arrive with the teams work")
    owner = bearer_account(suite)
    ids = victim_ids(owner, victim_objects(suite, owner))
    tid = ids["tid"]
    staff = join(suite, owner, tid, "staff")
    manager = join(suite, owner, tid, "manager")
    team_ops = [(m, p, op) for m, p, op in operations(suite) if p.startswith("/v1/teams/{tid}")]
    assert team_ops
    with suite.client() as c:
        for method, path, operation in team_ops:
            if path.endswith("/stream"):
                continue  # an allowed stream never ends; its refusal is covered by the audit work's tests
            body = body_for(operation, document)
            kwargs = {"json": body} if body is not None else {}
            url = fill(path, ids)
            if (method, path) not in STAFF_MAY:
                r = c.request(method, url, headers=bearer(staff.access_token), **kwargs)
                refusal(r, f"staff {method} {url}")
            if (method, path) in OWNER_ONLY:
                r = c.request(method, url, headers=bearer(manager.access_token), **kwargs)
                refusal(r, f"manager {method} {url}")
        # Nothing above changed the team: the owner is still its owner, the members still members.
        r = c.get(f"/v1/teams/{tid}/members", headers=bearer(owner.access_token))
        assert r.status_code == 200
        roles = {m["user_id"]: m["role"] for m in r.json()["members"]}
        assert roles == {owner.user_id: "owner", staff.user_id: "staff", manager.user_id: "manager"}
