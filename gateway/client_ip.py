"""The client IP: the socket peer, unless the peer is a trusted proxy; then the right-most
untrusted `X-Forwarded-For` entry (docs/api.md)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> list[Network]:
    """`DEELRX_TRUSTED_PROXIES`: comma-separated addresses or CIDR blocks."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()]


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    # An IPv4-mapped IPv6 peer (::ffff:10.0.0.1 on a dual-stack socket) matches IPv4 ranges.
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return any(ip in net or (mapped is not None and mapped in net) for net in networks)


def client_ip(peer: str, forwarded_for: list[str], trusted: list[Network]) -> str:
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for header in forwarded_for for h in header.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage in the header: fall back to what we know
    return hops[0] if hops else peer
