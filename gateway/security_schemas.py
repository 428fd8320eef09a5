"""Bodies of the account-security endpoints: passwords, MFA, re-authentication."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from gateway.schemas import EMAIL, Body


# Codes are checked by identity (6 digits, spaces tolerated); the cap keeps junk small.
def _code() -> str:
    return Field(max_length=64, description="6-digit TOTP code; spaces are ignored")  # type: ignore[no-any-return]


class ForgotBody(Body):
    # No format: 202 to anything, so no address can be probed.
    email: str = Field(max_length=320, json_schema_extra=EMAIL)


class ResetBody(Body):
    token: str = Field(min_length=1, max_length=512)
    new_password: str = Field(max_length=4096)


class ChangePasswordBody(Body):
    current_password: str = Field(max_length=4096)
    new_password: str = Field(max_length=4096)


class CodeBody(Body):
    code: str = _code()


class DisableTotpBody(Body):
    password: str = Field(max_length=4096)
    code: str = _code()


class MfaLoginBody(Body):
    mfa_token: str = Field(min_length=1, max_length=512)
    code: str | None = Field(default=None, max_length=64)
    recovery_code: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def one_factor(self) -> MfaLoginBody:
        if (self.code is None) == (self.recovery_code is None):
            raise ValueError("send exactly one of code and recovery_code")
        return self


class ReauthenticateBody(Body):
    password: str = Field(max_length=4096)
    code: str | None = Field(default=None, max_length=64)


class MfaStatusOut(BaseModel):
    totp_enabled: bool
    recovery_codes_remaining: int


class TotpEnrollmentOut(BaseModel):
    secret: str
    otpauth_uri: str
    qr_svg: str


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str]
