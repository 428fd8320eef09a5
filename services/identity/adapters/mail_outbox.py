"""Mails staged in the business transaction, delivered by the relay, deleted once sent."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from deelrx_kit.ids import ulid
from deelrx_kit.keyring import Keyring, KeyringError
from services.identity.adapters.sql_common import rowcount
from services.identity.adapters.tables import mail_outbox
from services.identity.domain.mail import OutgoingMail
from services.identity.ports import Tx

_SEALED = "sealed:"


class SqlMailOutbox:
    """With a keyring, bodies (which carry one-time links) are stored sealed, bound to the
    mail's id, and opened only by the relay just before delivery."""

    def __init__(self, keyring: Keyring | None = None) -> None:
        self.keyring = keyring

    def _seal(self, mail_id: str, text: str) -> str:
        if self.keyring is None:
            return text
        blob = self.keyring.seal(text.encode(), b"mail:" + mail_id.encode())
        return _SEALED + base64.b64encode(blob).decode("ascii")

    def body_of(self, row: Any) -> str:
        stored: str = row.body_text
        if not stored.startswith(_SEALED):
            return stored
        if self.keyring is None:
            raise KeyringError("a sealed mail needs the keyring")
        blob = base64.b64decode(stored[len(_SEALED) :])
        return self.keyring.open(blob, b"mail:" + str(row.id).encode()).decode()

    async def stage(self, tx: Tx, mail: OutgoingMail, now: datetime) -> str:
        mail_id = ulid()
        await tx.execute(
            insert(mail_outbox).values(
                id=mail_id,
                recipient=mail.to,
                subject=mail.subject,
                body_text=self._seal(mail_id, mail.text),
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
        )
        return mail_id

    async def due(self, tx: Tx, now: datetime, limit: int) -> list[Any]:
        query = (
            select(mail_outbox)
            .where(mail_outbox.c.next_attempt_at <= now)
            .order_by(mail_outbox.c.next_attempt_at, mail_outbox.c.id)
            .limit(limit)
        )
        return list((await tx.execute(query)).all())

    async def lease(self, tx: Tx, mail_id: str, seen_at: datetime, until: datetime) -> bool:
        """Take a mail for delivery; another relay that saw the same row loses."""
        result = await tx.execute(
            update(mail_outbox)
            .where(mail_outbox.c.id == mail_id, mail_outbox.c.next_attempt_at == seen_at)
            .values(next_attempt_at=until)
        )
        return rowcount(result) == 1

    async def delivered(self, tx: Tx, mail_id: str) -> None:
        await tx.execute(delete(mail_outbox).where(mail_outbox.c.id == mail_id))

    async def failed(self, tx: Tx, mail_id: str, retry_at: datetime, error: str) -> None:
        await tx.execute(
            update(mail_outbox)
            .where(mail_outbox.c.id == mail_id)
            .values(attempts=mail_outbox.c.attempts + 1, next_attempt_at=retry_at, last_error=error[:500])
        )

    async def count(self, tx: Tx) -> int:
        return len((await tx.execute(select(mail_outbox.c.id))).all())
