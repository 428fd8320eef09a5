"""Team invitations: create (mailing a single-use link), list, revoke, accept.

The caller (gateway) has checked through rbac that the inviter may invite and grant the role;
identity keeps the records. Making the invitee a member is rbac's (AddMember keyed by the
invitation id, after AcceptInvitation).
"""

from __future__ import annotations

from dataclasses import dataclass

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError, forbidden, not_found, validation_error
from deelrx_kit.ids import has_prefix, new_id
from services.identity.domain import mail, team_rules, tokens
from services.identity.domain.accounts import parse_email
from services.identity.domain.team_rules import Invitation
from services.identity.use_cases.core import Core
from services.identity.use_cases.teams import Teams

_INVALID_INVITATION = "This invitation is invalid, expired or already used."
DEFAULT_PAGE, MAX_PAGE = 50, 200


@dataclass(frozen=True)
class AcceptedInvitation:
    invitation_id: str
    team_id: str
    role: str
    # False when this user had already accepted it (a retry finishing the membership step).
    first_use: bool


class Invitations:
    def __init__(self, core: Core, teams: Teams) -> None:
        self.core = core
        self.teams = teams

    async def create(
        self, context: common_pb2.RequestContext | None, team_id: str, email: str, role: str
    ) -> Invitation:
        core, stores = self.core, self.core.stores
        address = parse_email(email)
        team_rules.check_invitable_role(role)
        inviter_id = context.user_id if context is not None else ""
        now = core.clock.now()
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
        async with core.db.transaction() as tx:
            team = await self.teams.locked_team(tx, team_id)
            inviter = await stores.users.get(tx, inviter_id) if inviter_id else None
            replaced = await stores.invitations.revoke_pending_for(tx, team_id, address.normalized, now)
            await stores.invitations.add(tx, invitation, token_hash)
            outgoing = mail.invitation_mail(
                address.display,
                team.name,
                inviter.name if inviter else "A team owner",
                role,
                core.config.public_url,
                token,
            )
            await stores.mails.stage(tx, outgoing, now)
            await core.event(
                tx,
                "member.invited",
                context,
                team_id=team_id,
                target=("invitation", invitation.id),
                details={"role": role, "replaced": replaced},
            )
        core.committed(mails=True)
        return invitation

    async def list_pending(self, team_id: str, limit: int, cursor: str) -> tuple[list[Invitation], str]:
        size = limit or DEFAULT_PAGE
        if not 1 <= size <= MAX_PAGE:
            raise validation_error("/limit", f"limit must be between 1 and {MAX_PAGE}")
        if cursor and not has_prefix(cursor, "inv"):
            raise validation_error("/cursor", "invalid cursor")
        async with self.core.db.reading() as tx:
            found = await self.core.stores.invitations.pending(tx, team_id, self.core.clock.now(), cursor, size + 1)
        page = found[:size]
        return page, (page[-1].id if len(found) > size else "")

    async def revoke(self, context: common_pb2.RequestContext | None, team_id: str, invitation_id: str) -> None:
        if not has_prefix(invitation_id, "inv"):
            raise not_found("Invitation not found")
        core = self.core
        async with core.db.transaction() as tx:
            if not await core.stores.invitations.revoke(tx, team_id, invitation_id, core.clock.now()):
                raise not_found("Invitation not found")
            await core.event(tx, "invitation.revoked", context, team_id=team_id, target=("invitation", invitation_id))
        core.committed()

    async def accept(self, context: common_pb2.RequestContext | None, user_id: str, token: str) -> AcceptedInvitation:
        """Mark the invitation used by `user_id`. When the membership step after it failed, the
        same user presenting the same token again gets the same answer so the caller can finish."""
        core, stores = self.core, self.core.stores
        token_hash = tokens.presented_hash(token)
        if token_hash is None:
            raise DomainError("invalid_token", _INVALID_INVITATION)
        now = core.clock.now()
        async with core.db.transaction() as tx:
            invitation = await stores.invitations.by_token(tx, token_hash)
            if invitation is None:
                raise DomainError("invalid_token", _INVALID_INVITATION)
            if invitation.accepted_by is not None and invitation.accepted_by == user_id:
                return AcceptedInvitation(invitation.id, invitation.team_id, invitation.role, first_use=False)
            if not invitation.usable(now):
                raise DomainError("invalid_token", _INVALID_INVITATION)
            user = await stores.users.get(tx, user_id)
            if user is None:
                raise not_found("User not found")
            if not user.email_verified or not _same_address(user.email, invitation.email_normalized):
                raise forbidden("This invitation was sent to another email address.")
            if not await stores.invitations.claim(tx, invitation.id, user_id, now):
                raise DomainError("invalid_token", _INVALID_INVITATION)  # another accept won the race
            await core.event(
                tx,
                "invitation.accepted",
                context,
                team_id=invitation.team_id,
                actor_user_id=user_id,
                target=("invitation", invitation.id),
                details={"role": invitation.role},
            )
        core.committed()
        return AcceptedInvitation(invitation.id, invitation.team_id, invitation.role, first_use=True)


def _same_address(user_email: str, invited_normalized: str) -> bool:
    return user_email.strip().lower() == invited_normalized.strip().lower()
