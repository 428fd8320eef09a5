"""In-memory fakes of identity's ports (services/identity/ports.py), with the same conditional
semantics as the SQL adapters: a claim succeeds once, counters only move within their limits.

`FakeDatabase` snapshots the whole `Memory` when a transaction begins and restores it when the
transaction raises, so a refused use case leaves nothing behind, as a rollback would.
"""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from google.protobuf.message import Message
from sqlalchemy.exc import IntegrityError

from deelrx_kit.audit_trail import AuditTrail
from deelrx_kit.clock import FrozenClock
from deelrx_kit.keyring import KeyringError
from services.identity.app import IdentityApp
from services.identity.domain.mail import OutgoingMail
from services.identity.domain.model import Credentials, PendingSignup, Team, TeamSettings, User
from services.identity.domain.team_rules import Invitation
from services.identity.ports import Hold, MfaChallenge, StoredRecoveryCode, Stores, TotpState
from services.identity.use_cases.core import SOURCE, Core, IdentityConfig

PUBLIC_URL = "https://auth.example.test"
SECRET = b"unit-test-secret-0123456789abcdef"


@dataclass
class Memory:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    signups: dict[str, dict[str, Any]] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    invitations: dict[str, dict[str, Any]] = field(default_factory=dict)
    login_accounts: dict[str, int] = field(default_factory=dict)
    login_clients: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    mail_throttle: dict[tuple[str, str], datetime] = field(default_factory=dict)
    mails: list[OutgoingMail] = field(default_factory=list)
    resets: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    challenges: dict[str, MfaChallenge] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[str, Message]] = field(default_factory=list)
    holds: dict[str, dict[str, Any]] = field(default_factory=dict)
    responses: set[tuple[str, str]] = field(default_factory=set)
    mail_codes: dict[str, tuple[str, datetime]] = field(default_factory=dict)


class FakeDatabase:
    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        saved = copy.deepcopy(self.memory.__dict__)
        try:
            yield object()
        except BaseException:
            self.memory.__dict__.update(saved)  # the rollback
            raise

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Any]:
        yield object()

    lookup = reading


def _user_row(memory: Memory, email_normalized: str) -> dict[str, Any] | None:
    return next((r for r in memory.users.values() if r["email_normalized"] == email_normalized), None)


class _Store:
    def __init__(self, memory: Memory) -> None:
        self.m = memory


class FakeUsers(_Store):
    @staticmethod
    def _user(row: dict[str, Any]) -> User:
        return User(
            id=row["id"],
            email=row["email"],
            name=row["name"],
            email_verified=row["email_verified_at"] is not None,
            mfa_enabled=row["totp_enabled_at"] is not None,
            last_active_team_id=row["last_active_team_id"],
            created_at=row["created_at"],
        )

    def _by_email(self, email_normalized: str) -> dict[str, Any] | None:
        return _user_row(self.m, email_normalized)

    async def get(self, tx: Any, user_id: str) -> User | None:
        row = self.m.users.get(user_id)
        return self._user(row) if row else None

    async def by_email(self, tx: Any, email_normalized: str) -> User | None:
        row = self._by_email(email_normalized)
        return self._user(row) if row else None

    async def email_taken(self, tx: Any, email_normalized: str) -> bool:
        return self._by_email(email_normalized) is not None

    async def create_verified(self, tx: Any, *, user_id: str, signup: PendingSignup, now: datetime) -> User:
        if self._by_email(signup.email_normalized) is not None:
            raise IntegrityError("INSERT users", {}, Exception("unique email_normalized"))
        self.m.users[user_id] = {
            "id": user_id,
            "email": signup.email,
            "email_normalized": signup.email_normalized,
            "name": signup.name,
            "password_hash": signup.password_hash,
            "password_changed_at": now,
            "email_verified_at": now,
            "last_active_team_id": None,
            "totp_secret": None,
            "totp_enabled_at": None,
            "totp_last_step": None,
            "created_at": now,
        }
        return self._user(self.m.users[user_id])

    async def set_last_active_team(self, tx: Any, user_id: str, team_id: str | None, now: datetime) -> bool:
        if user_id not in self.m.users:
            return False
        self.m.users[user_id]["last_active_team_id"] = team_id
        return True

    async def set_first_active_team(self, tx: Any, user_id: str, team_id: str, now: datetime) -> None:
        row = self.m.users.get(user_id)
        if row is not None and row["last_active_team_id"] is None:
            row["last_active_team_id"] = team_id


class FakeCredentials(_Store):
    async def by_email(self, tx: Any, email_normalized: str) -> Credentials | None:
        row = _user_row(self.m, email_normalized)
        return Credentials(row["id"], row["password_hash"]) if row else None

    async def rehash(self, tx: Any, user_id: str, old: str, new: str, now: datetime) -> bool:
        row = self.m.users.get(user_id)
        if row is None or row["password_hash"] != old:
            return False
        row["password_hash"] = new
        return True

    async def set_password(
        self, tx: Any, user_id: str, password_hash: str, now: datetime, *, expected: str | None = None
    ) -> bool:
        row = self.m.users.get(user_id)
        if row is None or (expected is not None and row["password_hash"] != expected):
            return False
        row.update(password_hash=password_hash, password_changed_at=now)
        return True


class FakeSignups(_Store):
    @staticmethod
    def _signup(row: dict[str, Any]) -> PendingSignup:
        return PendingSignup(
            row["id"], row["email"], row["email_normalized"], row["name"], row["password_hash"], row["expires_at"]
        )

    def _of(self, email_normalized: str) -> list[dict[str, Any]]:
        rows = [r for r in self.m.signups.values() if r["email_normalized"] == email_normalized]
        return sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)

    async def add(self, tx: Any, *, signup_id: str, now: datetime, **values: Any) -> None:
        if any(r["token_hash"] == values["token_hash"] for r in self.m.signups.values()):
            raise IntegrityError("INSERT pending_signups", {}, Exception("unique token_hash"))
        self.m.signups[signup_id] = {"id": signup_id, "created_at": now, **values}

    async def keep_newest(self, tx: Any, email_normalized: str, count: int) -> None:
        for row in self._of(email_normalized)[count:]:
            del self.m.signups[row["id"]]

    async def by_token(self, tx: Any, token_hash: str) -> PendingSignup | None:
        row = next((r for r in self.m.signups.values() if r["token_hash"] == token_hash), None)
        return self._signup(row) if row else None

    async def lock_address(self, tx: Any, email_normalized: str) -> None:
        return None

    async def claim(self, tx: Any, signup_id: str, token_hash: str) -> bool:
        row = self.m.signups.get(signup_id)
        if row is None or row["token_hash"] != token_hash:
            return False
        del self.m.signups[signup_id]
        return True

    async def latest_live(self, tx: Any, email_normalized: str, now: datetime) -> PendingSignup | None:
        live = [r for r in self._of(email_normalized) if r["expires_at"] > now]
        return self._signup(live[0]) if live else None

    async def count_live(self, tx: Any, email_normalized: str, now: datetime) -> int:
        return min(2, len([r for r in self._of(email_normalized) if r["expires_at"] > now]))

    async def rotate_token(self, tx: Any, signup_id: str, new_hash: str, expires_at: datetime) -> bool:
        row = self.m.signups.get(signup_id)
        if row is None:
            return False
        row.update(token_hash=new_hash, expires_at=expires_at)
        return True

    async def delete_for_address(self, tx: Any, email_normalized: str) -> None:
        for row in self._of(email_normalized):
            del self.m.signups[row["id"]]

    async def delete_expired(self, tx: Any, now: datetime, email_normalized: str) -> None:
        for row in self._of(email_normalized):
            if row["expires_at"] <= now:
                del self.m.signups[row["id"]]


class FakeTeams(_Store):
    async def add(self, tx: Any, team: Team, created_by: str) -> None:
        self.m.teams[team.id] = team

    async def get(self, tx: Any, team_id: str, *, for_update: bool = False) -> Team | None:
        return self.m.teams.get(team_id)

    async def many(self, tx: Any, team_ids: Sequence[str]) -> list[Team]:
        return [self.m.teams[i] for i in dict.fromkeys(team_ids) if i in self.m.teams]

    async def update(self, tx: Any, team_id: str, now: datetime, **values: Any) -> None:
        team = self.m.teams[team_id]
        setting_names = set(TeamSettings.__dataclass_fields__)
        settings = replace(team.settings, **{k: v for k, v in values.items() if k in setting_names})
        own = {k: v for k, v in values.items() if k not in setting_names}
        self.m.teams[team_id] = replace(team, settings=settings, **own)


class FakeInvitations(_Store):
    def _open(self, row: dict[str, Any]) -> bool:
        return row["accepted_at"] is None and row["revoked_at"] is None

    @staticmethod
    def _invitation(row: dict[str, Any]) -> Invitation:
        return replace(row["invitation"], accepted_by=row["accepted_by"], revoked=row["revoked_at"] is not None)

    async def add(self, tx: Any, invitation: Invitation, token_hash: str) -> None:
        self.m.invitations[invitation.id] = {
            "invitation": invitation,
            "token_hash": token_hash,
            "accepted_at": None,
            "accepted_by": None,
            "revoked_at": None,
        }

    async def revoke_pending_for(self, tx: Any, team_id: str, email_normalized: str, now: datetime) -> int:
        hits = [
            r
            for r in self.m.invitations.values()
            if r["invitation"].team_id == team_id
            and r["invitation"].email_normalized == email_normalized
            and self._open(r)
        ]
        for row in hits:
            row["revoked_at"] = now
        return len(hits)

    async def pending(self, tx: Any, team_id: str, now: datetime, after_id: str, limit: int) -> list[Invitation]:
        rows = sorted(
            (
                r
                for r in self.m.invitations.values()
                if r["invitation"].team_id == team_id
                and self._open(r)
                and r["invitation"].expires_at > now
                and r["invitation"].id > after_id
            ),
            key=lambda r: r["invitation"].id,
        )
        return [self._invitation(r) for r in rows[:limit]]

    async def revoke(self, tx: Any, team_id: str, invitation_id: str, now: datetime) -> bool:
        row = self.m.invitations.get(invitation_id)
        if row is None or row["invitation"].team_id != team_id or not self._open(row):
            return False
        row["revoked_at"] = now
        return True

    async def by_token(self, tx: Any, token_hash: str) -> Invitation | None:
        row = next((r for r in self.m.invitations.values() if r["token_hash"] == token_hash), None)
        return self._invitation(row) if row else None

    async def claim(self, tx: Any, invitation_id: str, user_id: str, now: datetime) -> bool:
        row = self.m.invitations.get(invitation_id)
        if row is None or not self._open(row) or row["invitation"].expires_at <= now:
            return False
        row.update(accepted_at=now, accepted_by=user_id)
        return True


class FakeLoginThrottle(_Store):
    async def reserve_account(self, tx: Any, key: str, limit: int, now: datetime) -> bool:
        failures = self.m.login_accounts.setdefault(key, 0)
        if failures >= limit:
            return False
        self.m.login_accounts[key] = failures + 1
        return True

    async def release_account(self, tx: Any, key: str, now: datetime) -> None:
        if self.m.login_accounts.get(key, 0) > 0:
            self.m.login_accounts[key] -= 1

    async def reset_account(self, tx: Any, key: str, now: datetime) -> None:
        if key in self.m.login_accounts:
            self.m.login_accounts[key] = 0

    async def reserve_client(self, tx: Any, key: str, client: str, limit: int, lock: timedelta, now: datetime) -> bool:
        row = self.m.login_clients.setdefault((key, client), [0, None])
        failures, locked_until = row
        if locked_until is not None and locked_until > now:
            return False
        if locked_until is not None:  # the lock is over: this failure starts a new count
            row[:] = [1, None]
        else:
            row[:] = [failures + 1, now + lock if failures + 1 >= limit else None]
        return True

    async def client_locked_until(self, tx: Any, key: str, client: str) -> datetime | None:
        row = self.m.login_clients.get((key, client))
        return row[1] if row else None

    async def forgive_client(self, tx: Any, key: str, client: str, now: datetime) -> None:
        if (key, client) in self.m.login_clients:
            self.m.login_clients[(key, client)] = [0, None]

    async def clear_clients(self, tx: Any, key: str, now: datetime) -> None:
        for account, client in list(self.m.login_clients):
            if account == key:
                self.m.login_clients[(account, client)] = [0, None]


class FakeMailThrottle(_Store):
    async def claim(self, tx: Any, purpose: str, address_key: str, interval: timedelta, now: datetime) -> bool:
        last = self.m.mail_throttle.get((purpose, address_key))
        if last is not None and last > now - interval:
            return False
        self.m.mail_throttle[(purpose, address_key)] = now
        return True


class FakeMails(_Store):
    async def stage(self, tx: Any, mail: OutgoingMail, now: datetime) -> str:
        self.m.mails.append(mail)
        return f"mail-{len(self.m.mails)}"


class FakeResets(_Store):
    async def replace(self, tx: Any, user_id: str, token_hash: str, expires_at: datetime, now: datetime) -> None:
        self.m.resets[user_id] = (token_hash, expires_at)

    async def user_for(self, tx: Any, token_hash: str, now: datetime) -> str | None:
        return next((u for u, (h, exp) in self.m.resets.items() if h == token_hash and exp > now), None)

    async def claim(self, tx: Any, token_hash: str, now: datetime) -> str | None:
        user_id = await self.user_for(tx, token_hash, now)
        if user_id is not None:
            del self.m.resets[user_id]
        return user_id

    async def forget_user(self, tx: Any, user_id: str) -> None:
        self.m.resets.pop(user_id, None)


class FakeChallenges(_Store):
    async def add(self, tx: Any, challenge: MfaChallenge, now: datetime) -> None:
        self.m.challenges[challenge.token_hash] = challenge

    async def live(self, tx: Any, token_hash: str, max_failures: int, now: datetime) -> MfaChallenge | None:
        found = self.m.challenges.get(token_hash)
        return found if found and found.expires_at > now and found.failures < max_failures else None

    async def reserve_attempt(self, tx: Any, token_hash: str, max_failures: int, now: datetime) -> bool:
        found = await self.live(tx, token_hash, max_failures, now)
        if found is None:
            return False
        self.m.challenges[token_hash] = replace(found, failures=found.failures + 1)
        return True

    async def consume(self, tx: Any, token_hash: str) -> bool:
        return self.m.challenges.pop(token_hash, None) is not None

    async def forget_user(self, tx: Any, user_id: str) -> None:
        for token_hash, challenge in list(self.m.challenges.items()):
            if challenge.user_id == user_id:
                del self.m.challenges[token_hash]


class FakeTotp(_Store):
    async def state(self, tx: Any, user_id: str) -> TotpState | None:
        row = self.m.users.get(user_id)
        if row is None:
            return None
        return TotpState(
            user_id=row["id"],
            email=row["email"],
            email_normalized=row["email_normalized"],
            password_hash=row["password_hash"],
            secret_sealed=row["totp_secret"],
            enabled=row["totp_enabled_at"] is not None,
            last_step=row["totp_last_step"],
        )

    async def set_pending(self, tx: Any, user_id: str, sealed: bytes, now: datetime) -> bool:
        row = self.m.users.get(user_id)
        if row is None or row["totp_enabled_at"] is not None:
            return False
        row.update(totp_secret=sealed, totp_last_step=None)
        return True

    async def enable(self, tx: Any, user_id: str, sealed: bytes, step: int, now: datetime) -> bool:
        row = self.m.users.get(user_id)
        if row is None or row["totp_enabled_at"] is not None or row["totp_secret"] != sealed:
            return False
        row.update(totp_enabled_at=now, totp_last_step=step)
        return True

    async def accept_step(self, tx: Any, user_id: str, step: int) -> bool:
        row = self.m.users.get(user_id)
        if row is None or row["totp_enabled_at"] is None:
            return False
        if row["totp_last_step"] is not None and row["totp_last_step"] >= step:
            return False
        row["totp_last_step"] = step
        return True

    async def disable(self, tx: Any, user_id: str, now: datetime) -> bool:
        row = self.m.users.get(user_id)
        if row is None or row["totp_enabled_at"] is None:
            return False
        row.update(totp_secret=None, totp_enabled_at=None, totp_last_step=None)
        return True


class FakeRecoveryCodes(_Store):
    async def replace_set(self, tx: Any, user_id: str, codes: list[tuple[str, str, str]], now: datetime) -> None:
        await self.forget_user(tx, user_id)
        for code_id, selector, code_hash in codes:
            self.m.codes[code_id] = {"user_id": user_id, "selector": selector, "hash": code_hash, "used_at": None}

    async def candidates(self, tx: Any, user_id: str, selector: str) -> list[StoredRecoveryCode]:
        return [
            StoredRecoveryCode(i, r["hash"])
            for i, r in self.m.codes.items()
            if r["user_id"] == user_id and r["selector"] == selector and r["used_at"] is None
        ]

    async def use(self, tx: Any, code_id: str, now: datetime) -> bool:
        row = self.m.codes.get(code_id)
        if row is None or row["used_at"] is not None:
            return False
        row["used_at"] = now
        return True

    async def remaining(self, tx: Any, user_id: str) -> int:
        return sum(1 for r in self.m.codes.values() if r["user_id"] == user_id and r["used_at"] is None)

    async def forget_user(self, tx: Any, user_id: str) -> None:
        for code_id in [i for i, r in self.m.codes.items() if r["user_id"] == user_id]:
            del self.m.codes[code_id]


class FakeHolds(_Store):
    def _row(self, account: str) -> dict[str, Any]:
        return self.m.holds.setdefault(account, {"locked_until": None, "mfa_required": False})

    async def claim_response(self, tx: Any, alert_id: str, action: str, now: datetime) -> bool:
        if (alert_id, action) in self.m.responses:
            return False
        self.m.responses.add((alert_id, action))
        return True

    async def lock(self, tx: Any, account: str, until: datetime, reason: str, now: datetime) -> None:
        row = self._row(account)
        if row["locked_until"] is None or row["locked_until"] < until:
            row["locked_until"] = until

    async def require_mfa(self, tx: Any, account: str, reason: str, now: datetime) -> None:
        self._row(account)["mfa_required"] = True

    async def locked_until(self, tx: Any, accounts: list[str], now: datetime) -> datetime | None:
        ends = [self.m.holds[a]["locked_until"] for a in accounts if a in self.m.holds]
        live = [e for e in ends if e is not None and e > now]
        return max(live) if live else None

    async def mfa_required(self, tx: Any, account: str) -> bool:
        return bool(self.m.holds.get(account, {}).get("mfa_required"))

    async def clear_mfa(self, tx: Any, account: str, now: datetime) -> None:
        if account in self.m.holds:
            self.m.holds[account]["mfa_required"] = False

    async def release_lock(self, tx: Any, account: str, now: datetime) -> None:
        if account in self.m.holds:
            self.m.holds[account]["locked_until"] = None

    async def get(self, tx: Any, account: str) -> Hold | None:
        row = self.m.holds.get(account)
        return Hold(account, row["locked_until"], row["mfa_required"]) if row else None

    async def add_mail_code(self, tx: Any, challenge_hash: str, code_hash: str, expires_at: datetime) -> None:
        self.m.mail_codes.setdefault(challenge_hash, (code_hash, expires_at))

    async def mail_code(self, tx: Any, challenge_hash: str, now: datetime) -> str | None:
        found = self.m.mail_codes.get(challenge_hash)
        return found[0] if found and found[1] > now else None

    async def drop_mail_code(self, tx: Any, challenge_hash: str) -> None:
        self.m.mail_codes.pop(challenge_hash, None)


class FakeEvents:
    def __init__(self, memory: Memory) -> None:
        self.m = memory
        self.notified = 0

    async def add(self, tx: Any, subject: str, message: Message, msg_id: str) -> None:
        self.m.events.append((subject, message))

    def notify(self) -> None:
        self.notified += 1


class FakeHasher:
    """Readable 'hashes'; counts verifications, which unknown and known accounts must both pay."""

    def __init__(self) -> None:
        self.verifications = 0
        self.stale: set[str] = set()

    async def hash(self, password: str) -> str:
        return f"hashed:{password}"

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verifications += 1
        return password_hash == f"hashed:{password}"

    async def verify_dummy(self, password: str) -> bool:
        self.verifications += 1
        return False

    def needs_rehash(self, password_hash: str) -> bool:
        return password_hash in self.stale


class FakeSealer:
    """Bound to its associated data like the keyring: opening under other data fails."""

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        return aad + b"|" + plaintext

    def open(self, blob: bytes, aad: bytes) -> bytes:
        bound, _, plaintext = blob.partition(b"|")
        if bound != aad:
            raise KeyringError("wrong associated data")
        return plaintext


@dataclass
class World:
    """One identity over fakes: the use cases plus everything a test inspects."""

    app: IdentityApp
    memory: Memory
    clock: FrozenClock
    hasher: FakeHasher
    events: FakeEvents
    mails_sent: list[int]

    def events_of(self, type_: str) -> list[Any]:
        return [m for _, m in self.memory.events if getattr(m, "type", None) == type_]

    def mails_to(self, address: str) -> list[OutgoingMail]:
        return [m for m in self.memory.mails if m.to.lower() == address.lower()]

    def link_token(self, address: str) -> str:
        """The token of the newest link mailed to `address`."""
        found = re.search(r"\?token=([^\s]+)", self.mails_to(address)[-1].text)
        assert found, "no link in the mail"
        return unquote(found.group(1))


def make_world() -> World:
    memory = Memory()
    clock = FrozenClock()
    hasher = FakeHasher()
    events = FakeEvents(memory)
    mails_sent: list[int] = []
    stores = Stores(
        users=FakeUsers(memory),
        credentials=FakeCredentials(memory),
        signups=FakeSignups(memory),
        teams=FakeTeams(memory),
        invitations=FakeInvitations(memory),
        login_throttle=FakeLoginThrottle(memory),
        mail_throttle=FakeMailThrottle(memory),
        mails=FakeMails(memory),
        resets=FakeResets(memory),
        challenges=FakeChallenges(memory),
        totp=FakeTotp(memory),
        recovery_codes=FakeRecoveryCodes(memory),
        holds=FakeHolds(memory),
    )
    core = Core(
        config=IdentityConfig(public_url=PUBLIC_URL, email_token_ttl=timedelta(hours=24), secret=SECRET),
        db=FakeDatabase(memory),
        stores=stores,
        clock=clock,
        hasher=hasher,
        events=events,
        audit=AuditTrail(events, source=SOURCE, clock=clock),  # FakeEvents stands in for the kit Outbox
        mail_sent=lambda: mails_sent.append(1),
    )
    app = IdentityApp.build(core, sealer=FakeSealer(), code_hasher=hasher, mailed_code_ttl=timedelta(minutes=5))
    return World(app, memory, clock, hasher, events, mails_sent)
