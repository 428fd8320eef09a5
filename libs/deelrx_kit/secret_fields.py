"""Field names whose values are secrets, wherever they appear: logs redact them, audit
event details refuse them."""

SECRET_FIELD_NAMES = frozenset(
    {
        "password",
        "new_password",
        "current_password",
        "token",
        "refresh_token",
        "access_token",
        "mfa_token",
        "code",
        "recovery_code",
        "secret",
    }
)
