"""Python client for the DeelRx authentication API (httpx)."""

from deelrx_sdk.client import ApiError, AuthClient, Tokens

__all__ = ["ApiError", "AuthClient", "Tokens"]
