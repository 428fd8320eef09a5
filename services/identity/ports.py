"""What identity's use cases need from the outside world, as Protocols.

The SQL adapters (adapters/*.py) implement the stores, `main.bootstrap()` wires them, and the
unit tests use in-memory fakes. Every store call runs inside the caller's transaction `tx`,
opened by `Database` (the only place a use case begins one). The clock is the kit's
`deelrx_kit.clock.Clock` Protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from google.protobuf.message import Message

from services.identity.domain.mail import OutgoingMail
from services.identity.domain.model import Credentials, PendingSignup, Team, User
from services.identity.domain.team_rules import Invitation


class Tx(Protocol):
    """An open transaction: SQLAlchemy's AsyncSession (writes) or AsyncConnection (reads)."""

    async def execute(self, statement: Any, params: Any = None, /) -> Any: ...


class Database(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A unit of work: commits on success, rolls back on any error."""

    def reading(self) -> AbstractAsyncContextManager[Tx]:
        """A read-only transaction: never takes a write lock."""

    def lookup(self) -> AbstractAsyncContextManager[Tx]:
        """For exactly one read-only statement (the hot reads): the cheapest consistent read."""


# -- records the stores hand out besides the domain model ------------------------------------
@dataclass(frozen=True)
class MfaChallenge:
    token_hash: str
    user_id: str
    auth_time: datetime
    token_delivery: str
    failures: int
    expires_at: datetime
    client: str = ""


@dataclass(frozen=True)
class TotpState:
    """Privileged: the sealed secret, the replay guard and the password hash."""

    user_id: str
    email: str
    email_normalized: str
    password_hash: str
    secret_sealed: bytes | None
    enabled: bool
    last_step: int | None


@dataclass(frozen=True)
class StoredRecoveryCode:
    id: str
    code_hash: str


# -- stores ---------------------------------------------------------------------------------
class UserStore(Protocol):
    """Profiles; never returns credentials."""

    async def get(self, tx: Tx, user_id: str) -> User | None: ...
    async def by_email(self, tx: Tx, email_normalized: str) -> User | None: ...
    async def email_taken(self, tx: Tx, email_normalized: str) -> bool: ...
    async def create_verified(self, tx: Tx, *, user_id: str, signup: PendingSignup, now: datetime) -> User: ...
    async def set_last_active_team(self, tx: Tx, user_id: str, team_id: str | None, now: datetime) -> bool: ...
    async def set_first_active_team(self, tx: Tx, user_id: str, team_id: str, now: datetime) -> None: ...


class CredentialStore(Protocol):
    """Privileged: password hashes (login, change, reset)."""

    async def by_email(self, tx: Tx, email_normalized: str) -> Credentials | None: ...
    async def rehash(self, tx: Tx, user_id: str, old: str, new: str, now: datetime) -> bool:
        """New hash parameters, same password; False when the password changed meanwhile."""

    async def set_password(
        self, tx: Tx, user_id: str, password_hash: str, now: datetime, *, expected: str | None = None
    ) -> bool:
        """A new password; with `expected`, only if the stored hash is still that one."""


class PendingSignupStore(Protocol):
    async def add(
        self,
        tx: Tx,
        *,
        signup_id: str,
        email: str,
        email_normalized: str,
        name: str,
        password_hash: str,
        token_hash: str,
        expires_at: datetime,
        now: datetime,
    ) -> None: ...
    async def keep_newest(self, tx: Tx, email_normalized: str, count: int) -> None: ...
    async def by_token(self, tx: Tx, token_hash: str) -> PendingSignup | None: ...
    async def lock_address(self, tx: Tx, email_normalized: str) -> None: ...
    async def claim(self, tx: Tx, signup_id: str, token_hash: str) -> bool:
        """Use a sign-up's link: exactly one concurrent caller gets True."""

    async def latest_live(self, tx: Tx, email_normalized: str, now: datetime) -> PendingSignup | None: ...
    async def count_live(self, tx: Tx, email_normalized: str, now: datetime) -> int:
        """0, 1 or 2 (meaning: more than one)."""

    async def rotate_token(self, tx: Tx, signup_id: str, new_hash: str, expires_at: datetime) -> bool: ...
    async def delete_for_address(self, tx: Tx, email_normalized: str) -> None: ...
    async def delete_expired(self, tx: Tx, now: datetime, email_normalized: str) -> None: ...


class TeamStore(Protocol):
    async def add(self, tx: Tx, team: Team, created_by: str) -> None: ...
    async def get(self, tx: Tx, team_id: str, *, for_update: bool = False) -> Team | None: ...
    async def many(self, tx: Tx, team_ids: Sequence[str]) -> list[Team]:
        """In the order asked, each once, unknown ids left out."""

    async def update(self, tx: Tx, team_id: str, now: datetime, **values: Any) -> None: ...


class InvitationStore(Protocol):
    async def add(self, tx: Tx, invitation: Invitation, token_hash: str) -> None: ...
    async def revoke_pending_for(self, tx: Tx, team_id: str, email_normalized: str, now: datetime) -> int: ...
    async def pending(self, tx: Tx, team_id: str, now: datetime, after_id: str, limit: int) -> list[Invitation]: ...
    async def revoke(self, tx: Tx, team_id: str, invitation_id: str, now: datetime) -> bool: ...
    async def by_token(self, tx: Tx, token_hash: str) -> Invitation | None: ...
    async def claim(self, tx: Tx, invitation_id: str, user_id: str, now: datetime) -> bool:
        """Use the invitation: exactly one concurrent caller gets True."""


class LoginThrottle(Protocol):
    """Failed-attempt counters per account and per (account, client); conditional updates only."""

    async def reserve_account(self, tx: Tx, key: str, limit: int, now: datetime) -> bool: ...
    async def release_account(self, tx: Tx, key: str, now: datetime) -> None: ...
    async def reserve_client(
        self, tx: Tx, key: str, client: str, limit: int, lock: timedelta, now: datetime
    ) -> bool: ...
    async def client_locked_until(self, tx: Tx, key: str, client: str) -> datetime | None: ...
    async def forgive_client(self, tx: Tx, key: str, client: str, now: datetime) -> None: ...
    async def clear_clients(self, tx: Tx, key: str, now: datetime) -> None:
        """Every client's counter and lock of the account (a password reset)."""

    async def reset_account(self, tx: Tx, key: str, now: datetime) -> None: ...


class MailThrottle(Protocol):
    async def claim(self, tx: Tx, purpose: str, address_key: str, interval: timedelta, now: datetime) -> bool:
        """True when no mail of this purpose went to the address within `interval`."""


class MailOutbox(Protocol):
    async def stage(self, tx: Tx, mail: OutgoingMail, now: datetime) -> str:
        """Queue a mail in the caller's transaction; the relay delivers it after commit."""


class PasswordResetStore(Protocol):
    async def replace(self, tx: Tx, user_id: str, token_hash: str, expires_at: datetime, now: datetime) -> None: ...
    async def user_for(self, tx: Tx, token_hash: str, now: datetime) -> str | None: ...
    async def claim(self, tx: Tx, token_hash: str, now: datetime) -> str | None:
        """Use a token: the user id for exactly one concurrent caller, else None."""

    async def forget_user(self, tx: Tx, user_id: str) -> None: ...


class MfaChallengeStore(Protocol):
    async def add(self, tx: Tx, challenge: MfaChallenge, now: datetime) -> None: ...
    async def live(self, tx: Tx, token_hash: str, max_failures: int, now: datetime) -> MfaChallenge | None: ...
    async def reserve_attempt(self, tx: Tx, token_hash: str, max_failures: int, now: datetime) -> bool: ...
    async def consume(self, tx: Tx, token_hash: str) -> bool: ...
    async def forget_user(self, tx: Tx, user_id: str) -> None: ...


class TotpStore(Protocol):
    async def state(self, tx: Tx, user_id: str) -> TotpState | None: ...
    async def set_pending(self, tx: Tx, user_id: str, sealed: bytes, now: datetime) -> bool: ...
    async def enable(self, tx: Tx, user_id: str, sealed: bytes, step: int, now: datetime) -> bool: ...
    async def accept_step(self, tx: Tx, user_id: str, step: int) -> bool:
        """Record `step` as used; False when it (or a later one) was accepted already."""

    async def disable(self, tx: Tx, user_id: str, now: datetime) -> bool: ...


class RecoveryCodeStore(Protocol):
    async def replace_set(self, tx: Tx, user_id: str, codes: list[tuple[str, str, str]], now: datetime) -> None:
        """(id, selector, hash) rows become the user's only set."""

    async def candidates(self, tx: Tx, user_id: str, selector: str) -> list[StoredRecoveryCode]: ...
    async def use(self, tx: Tx, code_id: str, now: datetime) -> bool: ...
    async def remaining(self, tx: Tx, user_id: str) -> int: ...
    async def forget_user(self, tx: Tx, user_id: str) -> None: ...


@dataclass(frozen=True)
class Hold:
    account: str
    locked_until: datetime | None
    mfa_required: bool


class AccountHoldStore(Protocol):
    """Holds placed by automatic responses; accounts are "user:<id>" or "subject:<keyed hash>"."""

    async def claim_response(self, tx: Tx, alert_id: str, action: str, now: datetime) -> bool:
        """True for exactly one caller per (alert, action)."""

    async def lock(self, tx: Tx, account: str, until: datetime, reason: str, now: datetime) -> None: ...
    async def require_mfa(self, tx: Tx, account: str, reason: str, now: datetime) -> None: ...
    async def locked_until(self, tx: Tx, accounts: list[str], now: datetime) -> datetime | None: ...
    async def mfa_required(self, tx: Tx, account: str) -> bool: ...
    async def clear_mfa(self, tx: Tx, account: str, now: datetime) -> None: ...
    async def release_lock(self, tx: Tx, account: str, now: datetime) -> None: ...
    async def get(self, tx: Tx, account: str) -> Hold | None: ...
    async def add_mail_code(self, tx: Tx, challenge_hash: str, code_hash: str, expires_at: datetime) -> None: ...
    async def mail_code(self, tx: Tx, challenge_hash: str, now: datetime) -> str | None: ...
    async def drop_mail_code(self, tx: Tx, challenge_hash: str) -> None: ...


@dataclass(frozen=True)
class Stores:
    """Every store a use case may reach, wired once by main.bootstrap()."""

    users: UserStore
    credentials: CredentialStore
    signups: PendingSignupStore
    teams: TeamStore
    invitations: InvitationStore
    login_throttle: LoginThrottle
    mail_throttle: MailThrottle
    mails: MailOutbox
    resets: PasswordResetStore
    challenges: MfaChallengeStore
    totp: TotpStore
    recovery_codes: RecoveryCodeStore
    holds: AccountHoldStore


# -- outbound adapters ----------------------------------------------------------------------
class EventOutbox(Protocol):
    """The kit's transactional outbox: messages staged in `tx`, published after commit."""

    async def add(self, tx: Any, subject: str, message: Message, msg_id: str) -> None: ...
    def notify(self) -> None: ...


class SecretSealer(Protocol):
    """Encryption at rest (the keyring): raises deelrx_kit.keyring.KeyringError when it cannot open."""

    def seal(self, plaintext: bytes, aad: bytes) -> bytes: ...
    def open(self, blob: bytes, aad: bytes) -> bytes: ...


class Mailer(Protocol):
    async def send(self, mail: OutgoingMail, *, message_id: str) -> None:
        """Deliver one mail or raise; the relay retries on any exception."""


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...

    async def verify_dummy(self, password: str) -> bool:
        """Same cost as `verify`, always False: unknown accounts take as long as known ones."""

    def needs_rehash(self, password_hash: str) -> bool: ...
