"""Invitations (token stored as SHA-256 only) and team updates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from services.identity.adapters.sql import _team, invitations, teams
from services.identity.domain.model import Team
from services.identity.domain.team_rules import Invitation


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


class TeamAdminRepository:
    async def lock(self, session: Any, team_id: str) -> Team | None:
        """The team row, locked (PostgreSQL) so changes of one team queue; SQLite writers are serialized."""
        row = (await session.execute(select(teams).where(teams.c.id == team_id).with_for_update())).first()
        return _team(row) if row else None

    async def update(self, session: Any, team_id: str, now: datetime, **values: Any) -> None:
        await session.execute(update(teams).where(teams.c.id == team_id).values(updated_at=now, **values))


class InvitationRepository:
    async def add(self, session: Any, invitation: Invitation, token_hash: str) -> None:
        await session.execute(
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

    async def revoke_pending_for(self, session: Any, team_id: str, email_normalized: str, now: datetime) -> int:
        """Re-inviting replaces: the earlier pending invitations of the address stop working."""
        result = await session.execute(
            update(invitations)
            .where(
                invitations.c.team_id == team_id,
                invitations.c.email_normalized == email_normalized,
                invitations.c.accepted_at.is_(None),
                invitations.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return int(result.rowcount or 0)

    async def pending(self, session: Any, team_id: str, now: datetime, after_id: str, limit: int) -> list[Invitation]:
        query = (
            select(invitations)
            .where(
                invitations.c.team_id == team_id,
                invitations.c.accepted_at.is_(None),
                invitations.c.revoked_at.is_(None),
                invitations.c.expires_at > now,
                invitations.c.id > after_id,
            )
            .order_by(invitations.c.id)
            .limit(limit)
        )
        return [_invitation(r) for r in (await session.execute(query)).all()]

    async def get(self, session: Any, team_id: str, invitation_id: str) -> Invitation | None:
        query = select(invitations).where(invitations.c.id == invitation_id, invitations.c.team_id == team_id)
        row = (await session.execute(query)).first()
        return _invitation(row) if row else None

    async def revoke(self, session: Any, team_id: str, invitation_id: str, now: datetime) -> bool:
        result = await session.execute(
            update(invitations)
            .where(
                invitations.c.id == invitation_id,
                invitations.c.team_id == team_id,
                invitations.c.accepted_at.is_(None),
                invitations.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return result.rowcount == 1

    async def by_token(self, session: Any, token_hash: str) -> Invitation | None:
        row = (await session.execute(select(invitations).where(invitations.c.token_hash == token_hash))).first()
        return _invitation(row) if row else None

    async def claim(self, session: Any, invitation_id: str, user_id: str, now: datetime) -> bool:
        """Use the invitation: exactly one concurrent caller gets True."""
        result = await session.execute(
            update(invitations)
            .where(
                invitations.c.id == invitation_id,
                invitations.c.accepted_at.is_(None),
                invitations.c.revoked_at.is_(None),
                invitations.c.expires_at > now,
            )
            .values(accepted_at=now, accepted_by=user_id)
        )
        return result.rowcount == 1
