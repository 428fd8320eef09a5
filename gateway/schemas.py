"""Request and response bodies of the public API (pydantic; unknown fields refused)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


EMAIL: JsonDict = {"format": "email"}


class SignupBody(Body):
    email: str = Field(max_length=320, json_schema_extra=EMAIL)
    password: str = Field(max_length=4096, description="8 to 256 characters after Unicode NFKC normalisation")
    name: str = Field(min_length=1, max_length=100)


class TokenBody(Body):
    token: str = Field(min_length=1, max_length=512)


class VerifyEmailBody(Body):
    token: str = Field(min_length=1, max_length=512)
    password: str | None = Field(
        default=None, max_length=4096, description="required when the address has several live sign-ups"
    )


class EmailBody(Body):
    # No format: resend answers 202 to anything (docs/api.md), so no address can be probed.
    email: str = Field(max_length=320)


class LoginBody(Body):
    email: str = Field(max_length=320, json_schema_extra=EMAIL)
    password: str = Field(max_length=4096)
    token_delivery: Literal["cookie", "body"] = "cookie"


class RefreshBody(Body):
    refresh_token: str | None = Field(default=None, min_length=1, max_length=512)


class SignupAccepted(BaseModel):
    status: Literal["verification_sent"] = "verification_sent"


class EmailVerified(BaseModel):
    email_verified: bool = True


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    email_verified: bool
    mfa_enabled: bool


class SessionOut(BaseModel):
    id: str
    created_at: str
    expires_at: str
    idle_expires_at: str
    amr: list[str]


class TeamOut(BaseModel):
    id: str
    name: str
    plan: str
    role: str


class LoginOut(BaseModel):
    """Cookie delivery; with `token_delivery: body` the tokens are at the top level too."""

    user: UserOut | None = None
    session: SessionOut | None = None
    mfa_required: bool
    mfa_token: str | None = None
    mfa_enrollment_required: bool | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    token_type: Literal["Bearer"] | None = None
    expires_in: int | None = None


class MeOut(BaseModel):
    user: UserOut
    session: SessionOut
    team: TeamOut | None
    permissions: list[str]
