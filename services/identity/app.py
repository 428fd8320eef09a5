"""Identity's use cases, one object per feature (modules in use_cases/), built over the ports.

Naming: each feature's class is `<Feature>UseCases` (SignupUseCases, LoginUseCases, ...);
`IdentityApp` only groups them for the transport.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.identity.ports import PasswordHasher, SecretSealer
from services.identity.use_cases.attempts import AttemptGuard
from services.identity.use_cases.core import Core
from services.identity.use_cases.invitations import InvitationUseCases
from services.identity.use_cases.login import LoginUseCases
from services.identity.use_cases.mfa import MfaUseCases
from services.identity.use_cases.mfa_login import MfaLoginUseCases
from services.identity.use_cases.passwords import PasswordUseCases
from services.identity.use_cases.profile import ProfileUseCases
from services.identity.use_cases.second_factor import SecondFactor
from services.identity.use_cases.signup import SignupUseCases
from services.identity.use_cases.teams import TeamUseCases


@dataclass(frozen=True)
class IdentityApp:
    signup: SignupUseCases
    login: LoginUseCases
    mfa_login: MfaLoginUseCases
    mfa: MfaUseCases
    passwords: PasswordUseCases
    profile: ProfileUseCases
    teams: TeamUseCases
    invitations: InvitationUseCases

    @classmethod
    def build(cls, core: Core, *, sealer: SecretSealer, code_hasher: PasswordHasher) -> IdentityApp:
        attempts = AttemptGuard(core)
        factor = SecondFactor(core, attempts, sealer=sealer, code_hasher=code_hasher)
        mfa_login = MfaLoginUseCases(factor)
        teams = TeamUseCases(core)
        return cls(
            signup=SignupUseCases(core),
            login=LoginUseCases(core, mfa_login),
            mfa_login=mfa_login,
            mfa=MfaUseCases(factor),
            passwords=PasswordUseCases(core, attempts),
            profile=ProfileUseCases(core),
            teams=teams,
            invitations=InvitationUseCases(core, teams),
        )
