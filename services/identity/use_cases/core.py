"""What every identity use case shares: configuration, ports, keyed hashes, audit events.

Every business change and its audit event (and any mail) are written in one transaction:
events go through the kit outbox to JetStream, mails through the mail outbox to the mailer;
`committed()` wakes both relays once the transaction is in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from deelrx.common.v1 import common_pb2
from deelrx_kit import audit_events
from deelrx_kit.audit_trail import AuditTrail
from deelrx_kit.clock import Clock
from services.identity.domain import tokens
from services.identity.ports import Database, EventOutbox, PasswordHasher, Stores, Tx

SOURCE = "identity"  # the `source` of identity's audit events


@dataclass(frozen=True)
class IdentityConfig:
    public_url: str
    email_token_ttl: timedelta
    secret: bytes
    mfa_challenge_ttl: timedelta = timedelta(minutes=5)


class Core:
    def __init__(
        self,
        *,
        config: IdentityConfig,
        db: Database,
        stores: Stores,
        clock: Clock,
        hasher: PasswordHasher,
        events: EventOutbox,
        audit: AuditTrail,
        mail_sent: Callable[[], None],
    ) -> None:
        self.config = config
        self.db = db
        self.stores = stores
        self.clock = clock
        self.hasher = hasher
        self.events = events
        self.audit = audit  # over `events`
        self._mail_sent = mail_sent

    def address_key(self, email_normalized: str) -> str:
        """Counters and throttles are keyed by this, never by the address itself."""
        return tokens.account_key(self.config.secret, email_normalized)

    def subject_hash(self, email_normalized: str) -> str:
        return audit_events.keyed_hash(self.config.secret, email_normalized)

    async def event(
        self,
        tx: Tx,
        type_: str,
        context: common_pb2.RequestContext | None,
        *,
        outcome: str = "success",
        team_id: str = "",
        actor_user_id: str = "",
        target: tuple[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
        subject_hash: str = "",
    ) -> None:
        """Stage an audit event in `tx` (the kit's AuditTrail builds it)."""
        await self.audit.record(
            cast(AsyncSession, tx),  # the Database port hands out SQLAlchemy sessions
            type_,
            context,
            outcome=outcome,
            team_id=team_id,
            actor_user_id=actor_user_id,
            target=target,
            details=details,
            subject_hash=subject_hash,
        )

    async def user_event(
        self, tx: Tx, type_: str, context: common_pb2.RequestContext | None, user_id: str, **kwargs: Any
    ) -> None:
        """An event a user caused about their own account."""
        await self.event(tx, type_, context, actor_user_id=user_id, target=("user", user_id), **kwargs)

    def committed(self, *, events: bool = True, mails: bool = False) -> None:
        if events:
            self.audit.notify()
        if mails:
            self._mail_sent()
