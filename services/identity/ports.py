"""The narrow ports the use cases need besides the database."""

from __future__ import annotations

from typing import Protocol

from services.identity.domain.mail import OutgoingMail


class Mailer(Protocol):
    async def send(self, mail: OutgoingMail, *, message_id: str) -> None:
        """Deliver one mail or raise; the relay retries on any exception."""


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...

    async def verify_dummy(self, password: str) -> bool:
        """Same cost as `verify`, always False: unknown accounts take as long as known ones."""

    def needs_rehash(self, password_hash: str) -> bool: ...
