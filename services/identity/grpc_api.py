"""IdentityService servicer: protobuf in, use case, protobuf out. Nothing else."""

from __future__ import annotations

from typing import Any

from deelrx.identity.v1 import identity_pb2, identity_pb2_grpc
from deelrx_kit import timestamps
from deelrx_kit.timestamps import to_timestamp
from services.identity.app import IdentityApp
from services.identity.domain.model import Team, User
from services.identity.domain.session_grant import SessionGrant, grant_for
from services.identity.domain.team_rules import Invitation


def user_pb(user: User) -> identity_pb2.User:
    return identity_pb2.User(
        id=user.id,
        email=user.email,
        name=user.name,
        email_verified=user.email_verified,
        mfa_enabled=user.mfa_enabled,
        last_active_team_id=user.last_active_team_id or "",
        created_at=to_timestamp(user.created_at),
    )


def team_pb(team: Team) -> identity_pb2.Team:
    return identity_pb2.Team(
        id=team.id,
        name=team.name,
        plan=team.plan,
        billing_email=team.billing_email,
        created_at=to_timestamp(team.created_at),
        settings=identity_pb2.TeamSettings(
            session_idle_timeout_minutes=team.settings.session_idle_timeout_minutes,
            session_absolute_timeout_hours=team.settings.session_absolute_timeout_hours,
            mfa_required=team.settings.mfa_required,
        ),
    )


def session_grant_pb(user: User, team: Team | None) -> identity_pb2.SessionGrant:
    return grant_pb(grant_for(user, team))


def grant_pb(grant: SessionGrant) -> identity_pb2.SessionGrant:
    return identity_pb2.SessionGrant(
        scope=grant.scope,
        idle_timeout_minutes=grant.idle_timeout_minutes,
        absolute_timeout_hours=grant.absolute_timeout_hours,
    )


def invitation_pb(invitation: Invitation) -> identity_pb2.Invitation:
    return identity_pb2.Invitation(
        id=invitation.id,
        team_id=invitation.team_id,
        email=invitation.email,
        role=invitation.role,
        expires_at=to_timestamp(invitation.expires_at),
        invited_by=invitation.invited_by,
        created_at=to_timestamp(invitation.created_at),
    )


def _optional(request: Any, name: str) -> Any:
    return getattr(request, name) if request.HasField(name) else None


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, app: IdentityApp) -> None:
        self.app = app

    async def StartSignup(
        self, request: identity_pb2.StartSignupRequest, context: Any
    ) -> identity_pb2.StartSignupResponse:
        await self.app.signup.start(request.email, request.password, request.name, request.context)
        return identity_pb2.StartSignupResponse()

    async def VerifyEmail(
        self, request: identity_pb2.VerifyEmailRequest, context: Any
    ) -> identity_pb2.VerifyEmailResponse:
        user_id = await self.app.signup.verify_email(request.token, request.context, request.password)
        return identity_pb2.VerifyEmailResponse(user_id=user_id)

    async def ResendVerification(
        self, request: identity_pb2.ResendVerificationRequest, context: Any
    ) -> identity_pb2.ResendVerificationResponse:
        await self.app.signup.resend_verification(request.email, request.context)
        return identity_pb2.ResendVerificationResponse()

    async def Authenticate(
        self, request: identity_pb2.AuthenticateRequest, context: Any
    ) -> identity_pb2.AuthenticateResponse:
        result = await self.app.login.authenticate(
            request.email, request.password, request.context, request.token_delivery or "cookie", request.device_token
        )
        response = identity_pb2.AuthenticateResponse(
            user=user_pb(result.user),
            mfa_required=result.mfa_required,
            mfa_token=result.mfa_token,
            amr=result.amr,
            auth_time=to_timestamp(result.auth_time),
            device_token=result.device_token,
        )
        if result.active_team is not None:
            response.active_team.CopyFrom(team_pb(result.active_team))
        if not result.mfa_required:
            response.session_grant.CopyFrom(session_grant_pb(result.user, result.active_team))
        return response

    async def GetUser(self, request: identity_pb2.GetUserRequest, context: Any) -> identity_pb2.GetUserResponse:
        return identity_pb2.GetUserResponse(user=user_pb(await self.app.profile.get_user(request.user_id)))

    async def SetActiveTeam(
        self, request: identity_pb2.SetActiveTeamRequest, context: Any
    ) -> identity_pb2.SetActiveTeamResponse:
        team = await self.app.profile.set_active_team(request.user_id, request.team_id)
        response = identity_pb2.SetActiveTeamResponse()
        if team is not None:
            response.team.CopyFrom(team_pb(team))
        return response

    async def GrantForTeam(
        self, request: identity_pb2.GrantForTeamRequest, context: Any
    ) -> identity_pb2.GrantForTeamResponse:
        found = await self.app.team_switch.grant(request.user_id, request.team_id)
        return identity_pb2.GrantForTeamResponse(team=team_pb(found.team), session_grant=grant_pb(found.grant))

    async def GetTeams(self, request: identity_pb2.GetTeamsRequest, context: Any) -> identity_pb2.GetTeamsResponse:
        teams = await self.app.teams.get_teams(list(request.team_ids))
        return identity_pb2.GetTeamsResponse(teams=[team_pb(t) for t in teams])

    async def CreateTeam(
        self, request: identity_pb2.CreateTeamRequest, context: Any
    ) -> identity_pb2.CreateTeamResponse:
        team = await self.app.teams.create_team(request.owner_user_id, request.name, request.context)
        return identity_pb2.CreateTeamResponse(team=team_pb(team))

    # -- account security --------------------------------------------------------------
    async def VerifyMfa(self, request: identity_pb2.VerifyMfaRequest, context: Any) -> identity_pb2.VerifyMfaResponse:
        factor = request.WhichOneof("factor")
        auth, delivery = await self.app.mfa_login.verify(
            request.mfa_token,
            request.code if factor == "code" else "",
            request.recovery_code if factor == "recovery_code" else "",
            request.context,
        )
        response = identity_pb2.VerifyMfaResponse(
            user=user_pb(auth.user),
            amr=auth.amr,
            auth_time=to_timestamp(auth.auth_time),
            token_delivery=delivery,
            device_token=auth.device_token,
        )
        if auth.active_team is not None:
            response.active_team.CopyFrom(team_pb(auth.active_team))
        response.session_grant.CopyFrom(session_grant_pb(auth.user, auth.active_team))
        return response

    async def Reauthenticate(
        self, request: identity_pb2.ReauthenticateRequest, context: Any
    ) -> identity_pb2.ReauthenticateResponse:
        amr, auth_time = await self.app.mfa_login.reauthenticate(
            request.user_id, request.password, request.code, request.context
        )
        return identity_pb2.ReauthenticateResponse(amr=amr, auth_time=to_timestamp(auth_time))

    async def NotifyNewDevice(
        self, request: identity_pb2.NotifyNewDeviceRequest, context: Any
    ) -> identity_pb2.NotifyNewDeviceResponse:
        await self.app.profile.notify_new_device(request.user_id, request.device_label, request.context)
        return identity_pb2.NotifyNewDeviceResponse()

    async def RequestPasswordReset(
        self, request: identity_pb2.RequestPasswordResetRequest, context: Any
    ) -> identity_pb2.RequestPasswordResetResponse:
        await self.app.passwords.request_reset(request.email, request.context)
        return identity_pb2.RequestPasswordResetResponse()

    async def ResetPassword(
        self, request: identity_pb2.ResetPasswordRequest, context: Any
    ) -> identity_pb2.ResetPasswordResponse:
        user_id = await self.app.passwords.reset(request.token, request.new_password, request.context)
        return identity_pb2.ResetPasswordResponse(user_id=user_id)

    async def ChangePassword(
        self, request: identity_pb2.ChangePasswordRequest, context: Any
    ) -> identity_pb2.ChangePasswordResponse:
        await self.app.passwords.change(
            request.user_id, request.current_password, request.new_password, request.context
        )
        return identity_pb2.ChangePasswordResponse()

    async def GetMfaStatus(
        self, request: identity_pb2.GetMfaStatusRequest, context: Any
    ) -> identity_pb2.GetMfaStatusResponse:
        status = await self.app.mfa.status(request.user_id)
        return identity_pb2.GetMfaStatusResponse(
            totp_enabled=status.totp_enabled, recovery_codes_remaining=status.recovery_codes_remaining
        )

    async def EnrollTotp(
        self, request: identity_pb2.EnrollTotpRequest, context: Any
    ) -> identity_pb2.EnrollTotpResponse:
        start = await self.app.mfa.enroll(request.user_id, request.context)
        return identity_pb2.EnrollTotpResponse(secret=start.secret, otpauth_uri=start.otpauth_uri, qr_svg=start.qr_svg)

    async def ConfirmTotp(
        self, request: identity_pb2.ConfirmTotpRequest, context: Any
    ) -> identity_pb2.ConfirmTotpResponse:
        codes = await self.app.mfa.confirm(request.user_id, request.code, request.context)
        return identity_pb2.ConfirmTotpResponse(recovery_codes=codes)

    async def DisableTotp(
        self, request: identity_pb2.DisableTotpRequest, context: Any
    ) -> identity_pb2.DisableTotpResponse:
        await self.app.mfa.disable(request.user_id, request.password, request.code, request.context)
        return identity_pb2.DisableTotpResponse()

    async def RegenerateRecoveryCodes(
        self, request: identity_pb2.RegenerateRecoveryCodesRequest, context: Any
    ) -> identity_pb2.RegenerateRecoveryCodesResponse:
        codes = await self.app.mfa.regenerate_codes(request.user_id, request.code, request.context)
        return identity_pb2.RegenerateRecoveryCodesResponse(recovery_codes=codes)

    async def UpdateTeam(
        self, request: identity_pb2.UpdateTeamRequest, context: Any
    ) -> identity_pb2.UpdateTeamResponse:
        team = await self.app.teams.update_team(
            request.context,
            request.team_id,
            name=_optional(request, "name"),
            idle_minutes=_optional(request, "session_idle_timeout_minutes"),
            absolute_hours=_optional(request, "session_absolute_timeout_hours"),
            mfa_required=_optional(request, "mfa_required"),
        )
        return identity_pb2.UpdateTeamResponse(team=team_pb(team))

    async def UpdateBilling(
        self, request: identity_pb2.UpdateBillingRequest, context: Any
    ) -> identity_pb2.UpdateBillingResponse:
        team = await self.app.teams.update_billing(
            request.context, request.team_id, request.plan, _optional(request, "billing_email")
        )
        return identity_pb2.UpdateBillingResponse(team=team_pb(team))

    async def CreateInvitation(
        self, request: identity_pb2.CreateInvitationRequest, context: Any
    ) -> identity_pb2.CreateInvitationResponse:
        invitation = await self.app.invitations.create(request.context, request.team_id, request.email, request.role)
        return identity_pb2.CreateInvitationResponse(invitation=invitation_pb(invitation))

    async def ListInvitations(
        self, request: identity_pb2.ListInvitationsRequest, context: Any
    ) -> identity_pb2.ListInvitationsResponse:
        found, cursor = await self.app.invitations.list_pending(
            request.team_id, request.page.limit, request.page.cursor
        )
        response = identity_pb2.ListInvitationsResponse(invitations=[invitation_pb(i) for i in found])
        response.page.next_cursor = cursor
        return response

    async def RevokeInvitation(
        self, request: identity_pb2.RevokeInvitationRequest, context: Any
    ) -> identity_pb2.RevokeInvitationResponse:
        await self.app.invitations.revoke(request.context, request.team_id, request.invitation_id)
        return identity_pb2.RevokeInvitationResponse()

    async def AcceptInvitation(
        self, request: identity_pb2.AcceptInvitationRequest, context: Any
    ) -> identity_pb2.AcceptInvitationResponse:
        accepted = await self.app.invitations.accept(request.context, request.user_id, request.token)
        return identity_pb2.AcceptInvitationResponse(
            team_id=accepted.team_id, role=accepted.role, invitation_id=accepted.invitation_id
        )

    # -- automatic responses to security alerts (use_cases/account_holds.py) ---------------
    async def LockAccount(
        self, request: identity_pb2.LockAccountRequest, context: Any
    ) -> identity_pb2.LockAccountResponse:
        until = timestamps.to_datetime(request.until, "until")
        applied = await self.app.holds.lock(
            request.alert_id, request.user_id, request.subject_hash, until, request.reason, request.context
        )
        return identity_pb2.LockAccountResponse(applied=applied)

    async def RequireMfa(
        self, request: identity_pb2.RequireMfaRequest, context: Any
    ) -> identity_pb2.RequireMfaResponse:
        applied = await self.app.holds.require_mfa(request.alert_id, request.user_id, request.reason, request.context)
        return identity_pb2.RequireMfaResponse(applied=applied)

    async def NotifyTeamOwners(
        self, request: identity_pb2.NotifyTeamOwnersRequest, context: Any
    ) -> identity_pb2.NotifyTeamOwnersResponse:
        raised_at = timestamps.to_datetime(request.alert_time, "alert_time")
        mailed = await self.app.holds.notify_owners(
            request.alert_id,
            request.team_id,
            list(request.owner_user_ids),
            request.rule,
            request.severity,
            raised_at,
            request.context,
        )
        return identity_pb2.NotifyTeamOwnersResponse(mailed=mailed)
