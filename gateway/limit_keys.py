"""What the per-IP and per-account limits count by.

- IPv6 clients by their network (a /64 by default: one customer's allocation, so rotating
  addresses inside it buys nothing); IPv4 and IPv4-mapped IPv6 clients by their address.
- Accounts by the email normalization identity uses for lookups, so that different spellings
  of one address share one budget, and by a keyed hash of it, so Redis never holds what
  people typed (under the rate-limit purpose key).
"""

from __future__ import annotations

import ipaddress

from deelrx_kit import keys
from deelrx_kit.audit_events import keyed_hash
from services.identity.domain.accounts import lookup_key


def ip_key(address: str, ipv6_prefix: int = 64) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))
    return str(ip)


def account_key(secret: bytes, email: str) -> str:
    return keyed_hash(secret, lookup_key(email), purpose=keys.RATE_LIMIT_KEY)
