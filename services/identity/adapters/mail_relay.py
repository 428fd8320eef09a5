"""Delivers mails staged in `mail_outbox` after their transaction committed.

A row is leased before sending (so two replicas never send the same mail at once), deleted
after the mailer accepted it, and retried with exponential backoff otherwise. Delivery is
at least once: a crash between sending and deleting sends that mail again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit.clock import Clock
from deelrx_kit.keyring import Keyring
from services.identity.adapters.mail_outbox import SqlMailOutbox
from services.identity.domain.mail import OutgoingMail
from services.identity.ports import Mailer

log = structlog.get_logger(__name__)

LEASE = timedelta(minutes=2)
FIRST_RETRY = timedelta(seconds=1)
MAX_RETRY = timedelta(minutes=10)


def retry_delay(attempts: int) -> timedelta:
    return min(FIRST_RETRY * int(2 ** min(attempts, 20)), MAX_RETRY)


class MailRelay:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        mailer: Mailer,
        clock: Clock,
        poll_seconds: float = 1.0,
        batch: int = 20,
        keyring: Keyring | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.mailer = mailer
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.outbox = SqlMailOutbox(keyring)
        self._wake = asyncio.Event()

    def notify(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.deliver_due()
            except Exception as exc:  # noqa: BLE001 - database hiccup: try again next round
                log.warning("mail_relay_failed", error=str(exc))
            # Sleep until a commit staged mail, the poll interval passed, or the service stops.
            waits = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
            try:
                await asyncio.wait(waits, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()

    async def deliver_due(self) -> int:
        now = self.clock.now()
        async with self.sessionmaker() as session:
            rows = await self.outbox.due(session, now, self.batch)
        sent = 0
        for row in rows:
            async with self.sessionmaker() as session, session.begin():
                if not await self.outbox.lease(session, row.id, row.next_attempt_at, now + LEASE):
                    continue
            try:
                mail = OutgoingMail(to=row.recipient, subject=row.subject, text=self.outbox.body_of(row))
                await self.mailer.send(mail, message_id=row.id)
            except Exception as exc:  # noqa: BLE001 - any delivery failure is retried
                retry_at = self.clock.now() + retry_delay(row.attempts)
                log.warning("mail_delivery_failed", mail_id=row.id, attempts=row.attempts + 1, error=str(exc))
                async with self.sessionmaker() as session, session.begin():
                    await self.outbox.failed(session, row.id, retry_at, f"{type(exc).__name__}: {exc}")
                continue
            async with self.sessionmaker() as session, session.begin():
                await self.outbox.delivered(session, row.id)
            sent += 1
        return sent
