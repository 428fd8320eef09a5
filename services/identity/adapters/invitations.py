"""Team invitations: the token is stored only as SHA-256; single use, revocable."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from services.identity.adapters.sql_common import changed
from services.identity.adapters.tables import invitations
from services.identity.domain.team_rules import Invitation
from services.identity.ports import Tx

c = invitations.c


def _invitation(row: Any) -> Invitation:
    return Invitation(
        id=row.id,
        team_id=row.team_id,
        email=row.email,
        email_normalized=row.email_normalized,
        role=row.role,
        invited_by=row.invited_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        accepted_by=row.accepted_by,
        revoked=row.revoked_at is not None,
    )


def _open() -> tuple[Any, ...]:
    """Neither accepted nor revoked (it may still have expired)."""
    return (c.accepted_at.is_(None), c.revoked_at.is_(None))


class SqlInvitationStore:
    async def add(self, tx: Tx, invitation: Invitation, token_hash: str) -> None:
        await tx.execute(
            insert(invitations).values(
                id=invitation.id,
                team_id=invitation.team_id,
                email=invitation.email,
                email_normalized=invitation.email_normalized,
                role=invitation.role,
                token_hash=token_hash,
                invited_by=invitation.invited_by,
                created_at=invitation.created_at,
                expires_at=invitation.expires_at,
            )
        )

    async def revoke_pending_for(self, tx: Tx, team_id: str, email_normalized: str, now: datetime) -> int:
        """Re-inviting replaces: the earlier pending invitations of the address stop working."""
        query = update(invitations).where(c.team_id == team_id, c.email_normalized == email_normalized, *_open())
        return await changed(tx, query.values(revoked_at=now))

    async def pending(self, tx: Tx, team_id: str, now: datetime, after_id: str, limit: int) -> list[Invitation]:
        query = (
            select(invitations)
            .where(c.team_id == team_id, *_open(), c.expires_at > now, c.id > after_id)
            .order_by(c.id)
            .limit(limit)
        )
        return [_invitation(r) for r in (await tx.execute(query)).all()]

    async def revoke(self, tx: Tx, team_id: str, invitation_id: str, now: datetime) -> bool:
        query = update(invitations).where(c.id == invitation_id, c.team_id == team_id, *_open())
        return await changed(tx, query.values(revoked_at=now)) == 1

    async def by_token(self, tx: Tx, token_hash: str) -> Invitation | None:
        row = (await tx.execute(select(invitations).where(c.token_hash == token_hash))).first()
        return _invitation(row) if row else None

    async def claim(self, tx: Tx, invitation_id: str, user_id: str, now: datetime) -> bool:
        query = update(invitations).where(c.id == invitation_id, *_open(), c.expires_at > now)
        return await changed(tx, query.values(accepted_at=now, accepted_by=user_id)) == 1
