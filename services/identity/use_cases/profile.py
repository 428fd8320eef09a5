"""A user's own record: reading it, the team the next login starts in, new-device notices."""

from __future__ import annotations

from datetime import timedelta

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError, not_found
from services.identity.domain import security_mail
from services.identity.domain.model import Team, User
from services.identity.use_cases.core import Core

# `first_sign_in` is a permanent marker: the purge keeps it.
_FOREVER = timedelta(days=36500)


class Profile:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def get_user(self, user_id: str) -> User:
        if not user_id:
            raise not_found("User not found")
        async with self.core.db.lookup() as tx:
            user = await self.core.stores.users.get(tx, user_id)
        if user is None:
            raise not_found("User not found")
        return user

    async def set_active_team(self, user_id: str, team_id: str) -> Team | None:
        """Remember the team the next login starts in. Membership is rbac's; callers check it."""
        stores = self.core.stores
        now = self.core.clock.now()
        async with self.core.db.transaction() as tx:
            team = None
            if team_id:
                team = await stores.teams.get(tx, team_id)
                if team is None:
                    raise not_found("Team not found")
            if not await stores.users.set_last_active_team(tx, user_id, team_id or None, now):
                raise not_found("User not found")
        return team

    async def notify_new_device(
        self, user_id: str, device_label: str, context: common_pb2.RequestContext | None
    ) -> None:
        """Mail the owner about a sign-in from a new device, except for the account's very first."""
        core, stores = self.core, self.core.stores
        ctx = context or common_pb2.RequestContext()
        now = core.clock.now()
        async with core.db.transaction() as tx:
            user = await stores.users.get(tx, user_id) if user_id else None
            if user is None:
                raise DomainError("not_found", "User not found")
            key = core.address_key(user.email.lower())
            # The first sign-in ever is on a new device by definition: remembered, not mailed.
            first = await stores.mail_throttle.claim(tx, "first_sign_in", key, _FOREVER, now)
            if not first:
                label = device_label[:200] or ctx.user_agent
                mail = security_mail.new_device(
                    user.email, user.name, core.config.public_url, now, label, ctx.client_ip
                )
                await stores.mails.stage(tx, mail, now)
        core.committed(events=False, mails=not first)
