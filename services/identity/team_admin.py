"""Identity use cases for team administration: settings, billing and invitations.

Authorization (who may do this in the team) is decided by the caller through rbac before these
run; identity keeps the records. Every change and its audit event (and mail, and the
`teams.changed` notice) are written in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from deelrx.common.v1 import common_pb2
from deelrx.identity.v1 import identity_pb2
from deelrx_kit.db import reading, transaction
from deelrx_kit.errors import DomainError, forbidden, not_found, validation_error
from deelrx_kit.ids import has_prefix, new_id
from deelrx_kit.nats_bus import TEAM_CHANGED_SUBJECT
from services.identity.adapters.team_admin_sql import InvitationRepository, TeamAdminRepository
from services.identity.app import IdentityApp
from services.identity.domain import mail, team_rules, tokens
from services.identity.domain.accounts import check_team_name, parse_email
from services.identity.domain.model import Team
from services.identity.domain.team_rules import Invitation

_INVALID_INVITATION = "This invitation is invalid, expired or already used."
DEFAULT_PAGE, MAX_PAGE = 50, 200


@dataclass(frozen=True)
class AcceptedInvitation:
    invitation_id: str
    team_id: str
    role: str
    # False when this user had already accepted it (a retry finishing the membership step).
    first_use: bool


class TeamAdmin:
    def __init__(self, app: IdentityApp) -> None:
        self.app = app
        self.teams = TeamAdminRepository()
        self.invitations = InvitationRepository()

    async def _locked_team(self, session: AsyncSession, team_id: str) -> Team:
        team = await self.teams.lock(session, team_id) if has_prefix(team_id, "tm") else None
        if team is None:
            raise not_found("Team not found")
        return team

    async def _team_changed(self, session: AsyncSession, team_id: str, plan: str) -> None:
        notice = identity_pb2.TeamChanged(team_id=team_id, plan=plan)
        await self.app.outbox.add(session, TEAM_CHANGED_SUBJECT, notice, new_id("evt"))

    # -- settings and billing -------------------------------------------------------------
    async def update_team(
        self,
        context: common_pb2.RequestContext | None,
        team_id: str,
        *,
        name: str | None = None,
        idle_minutes: int | None = None,
        absolute_hours: int | None = None,
        mfa_required: bool | None = None,
    ) -> Team:
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = check_team_name(name)
        if idle_minutes is not None:
            values["session_idle_timeout_minutes"] = team_rules.check_idle_minutes(idle_minutes)
        if absolute_hours is not None:
            values["session_absolute_timeout_hours"] = team_rules.check_absolute_hours(absolute_hours)
        if mfa_required is not None:
            values["mfa_required"] = mfa_required
        now = self.app.clock.now()
        async with transaction(self.app.sessionmaker) as session:
            team = await self._locked_team(session, team_id)
            if values:
                await self.teams.update(session, team_id, now, **values)
                await self._team_changed(session, team_id, team.plan)
                await self.app.audit.record(
                    session,
                    "team.updated",
                    context,
                    team_id=team_id,
                    target=("team", team_id),
                    details={"changed": sorted(values)},
                )
            team = await self._locked_team(session, team_id)
        self.app._committed()
        return team

    async def update_billing(
        self, context: common_pb2.RequestContext | None, team_id: str, plan: str, billing_email: str | None
    ) -> Team:
        team_rules.check_plan(plan)
        values: dict[str, Any] = {"plan": plan}
        if billing_email is not None:
            values["billing_email"] = parse_email(billing_email, "/billing_email").display if billing_email else ""
        now = self.app.clock.now()
        async with transaction(self.app.sessionmaker) as session:
            before = await self._locked_team(session, team_id)
            await self.teams.update(session, team_id, now, **values)
            await self._team_changed(session, team_id, plan)
            await self.app.audit.record(
                session,
                "billing.plan_changed",
                context,
                team_id=team_id,
                target=("team", team_id),
                details={"from_plan": before.plan, "to_plan": plan},
            )
            team = await self._locked_team(session, team_id)
        self.app._committed()
        return team

    # -- invitations ----------------------------------------------------------------------
    async def create_invitation(
        self, context: common_pb2.RequestContext | None, team_id: str, email: str, role: str
    ) -> Invitation:
        """The caller (gateway) has checked members.invite and that the inviter may grant `role`."""
        address = parse_email(email)
        team_rules.check_invitable_role(role)
        inviter_id = context.user_id if context is not None else ""
        now = self.app.clock.now()
        token, token_hash = tokens.new_token()
        invitation = Invitation(
            id=new_id("inv"),
            team_id=team_id,
            email=address.display,
            email_normalized=address.normalized,
            role=role,
            invited_by=inviter_id,
            created_at=now,
            expires_at=now + team_rules.INVITATION_TTL,
        )
        async with transaction(self.app.sessionmaker) as session:
            team = await self._locked_team(session, team_id)
            inviter = await self.app.users.get(session, inviter_id) if inviter_id else None
            replaced = await self.invitations.revoke_pending_for(session, team_id, address.normalized, now)
            await self.invitations.add(session, invitation, token_hash)
            outgoing = mail.invitation_mail(
                address.display,
                team.name,
                inviter.name if inviter else "A team owner",
                role,
                self.app.config.public_url,
                token,
            )
            await self.app.mails.stage(session, outgoing, now)
            await self.app.audit.record(
                session,
                "member.invited",
                context,
                team_id=team_id,
                target=("invitation", invitation.id),
                details={"role": role, "replaced": replaced},
            )
        self.app._committed(mails=True)
        return invitation

    async def list_invitations(self, team_id: str, limit: int, cursor: str) -> tuple[list[Invitation], str]:
        size = limit or DEFAULT_PAGE
        if not 1 <= size <= MAX_PAGE:
            raise validation_error("/limit", f"limit must be between 1 and {MAX_PAGE}")
        if cursor and not has_prefix(cursor, "inv"):
            raise validation_error("/cursor", "invalid cursor")
        async with reading(self.app.sessionmaker) as session:
            found = await self.invitations.pending(session, team_id, self.app.clock.now(), cursor, size + 1)
        page = found[:size]
        return page, (page[-1].id if len(found) > size else "")

    async def revoke_invitation(
        self, context: common_pb2.RequestContext | None, team_id: str, invitation_id: str
    ) -> None:
        if not has_prefix(invitation_id, "inv"):
            raise not_found("Invitation not found")
        now = self.app.clock.now()
        async with transaction(self.app.sessionmaker) as session:
            if not await self.invitations.revoke(session, team_id, invitation_id, now):
                raise not_found("Invitation not found")
            await self.app.audit.record(
                session, "invitation.revoked", context, team_id=team_id, target=("invitation", invitation_id)
            )
        self.app._committed()

    async def accept_invitation(
        self, context: common_pb2.RequestContext | None, user_id: str, token: str
    ) -> AcceptedInvitation:
        """Mark the invitation used by `user_id`. Making them a member is rbac's (the caller
        follows with AddMember keyed by the invitation id); when that step failed, the same user
        presenting the same token again gets the same answer so the caller can finish it."""
        token_hash = tokens.presented_hash(token)
        if token_hash is None:
            raise DomainError("invalid_token", _INVALID_INVITATION)
        now = self.app.clock.now()
        async with transaction(self.app.sessionmaker) as session:
            invitation = await self.invitations.by_token(session, token_hash)
            if invitation is None:
                raise DomainError("invalid_token", _INVALID_INVITATION)
            if invitation.accepted_by is not None and invitation.accepted_by == user_id:
                return AcceptedInvitation(invitation.id, invitation.team_id, invitation.role, first_use=False)
            if not invitation.usable(now):
                raise DomainError("invalid_token", _INVALID_INVITATION)
            user = await self.app.users.get(session, user_id)
            if user is None:
                raise not_found("User not found")
            if not user.email_verified or not _same_address(user.email, invitation.email_normalized):
                raise forbidden("This invitation was sent to another email address.")
            if not await self.invitations.claim(session, invitation.id, user_id, now):
                # Another accept won the race; if it was this user, finish like a retry.
                raise DomainError("invalid_token", _INVALID_INVITATION)
            await self.app.audit.record(
                session,
                "invitation.accepted",
                context,
                team_id=invitation.team_id,
                actor_user_id=user_id,
                target=("invitation", invitation.id),
                details={"role": invitation.role},
            )
        self.app._committed()
        return AcceptedInvitation(invitation.id, invitation.team_id, invitation.role, first_use=True)


def _same_address(user_email: str, invited_normalized: str) -> bool:
    return user_email.strip().lower() == invited_normalized.strip().lower()
