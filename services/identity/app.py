"""Identity's use cases, one object per feature (modules in use_cases/), built over the ports.

Naming: each feature's class is the feature as a noun (Signup, Login, ...);
`IdentityApp` only groups them for the transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from services.identity.ports import PasswordHasher, SecretSealer
from services.identity.use_cases.account_holds import AccountHolds
from services.identity.use_cases.attempts import AttemptGuard
from services.identity.use_cases.core import Core
from services.identity.use_cases.invitations import Invitations
from services.identity.use_cases.login import Login
from services.identity.use_cases.mfa import Mfa
from services.identity.use_cases.mfa_login import MfaLogin
from services.identity.use_cases.passwords import Passwords
from services.identity.use_cases.profile import Profile
from services.identity.use_cases.second_factor import SecondFactor
from services.identity.use_cases.signup import Signup
from services.identity.use_cases.team_switch import TeamSwitch
from services.identity.use_cases.teams import Teams


@dataclass(frozen=True)
class IdentityApp:
    signup: Signup
    login: Login
    mfa_login: MfaLogin
    mfa: Mfa
    passwords: Passwords
    profile: Profile
    teams: Teams
    team_switch: TeamSwitch
    invitations: Invitations
    holds: AccountHolds

    @classmethod
    def build(
        cls, core: Core, *, sealer: SecretSealer, code_hasher: PasswordHasher, mailed_code_ttl: timedelta
    ) -> IdentityApp:
        attempts = AttemptGuard(core)
        factor = SecondFactor(core, attempts, sealer=sealer, code_hasher=code_hasher)
        holds = AccountHolds(core, code_ttl=mailed_code_ttl)
        mfa_login = MfaLogin(factor, holds)
        teams = Teams(core)
        return cls(
            signup=Signup(core),
            login=Login(core, mfa_login, holds),
            mfa_login=mfa_login,
            mfa=Mfa(factor),
            passwords=Passwords(core, attempts, holds),
            profile=Profile(core),
            teams=teams,
            team_switch=TeamSwitch(core),
            invitations=Invitations(core, teams),
            holds=holds,
        )
