"""Python client for the DeelRx authentication API (httpx)."""

from deelrx_sdk.authz import AuthzClient, AuthzDecision, CheckItem
from deelrx_sdk.client import ApiError, AuthClient, Tokens

__all__ = ["ApiError", "AuthClient", "AuthzClient", "AuthzDecision", "CheckItem", "Tokens"]
