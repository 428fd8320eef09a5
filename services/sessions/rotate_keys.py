"""Operator command: rotate the access-token signing key now.

    python -m services.sessions.rotate_keys              # the published successor (or a new key) signs
    python -m services.sessions.rotate_keys --emergency  # also withdraw the current key from the JWKS

Talks to the sessions service at DEELRX_SESSIONS_ADDR; with mutual TLS, DEELRX_GRPC_TLS_* must
name the `operator` certificate (the only identity allowed to rotate). After `--emergency`, tokens signed by the
withdrawn key are refused by every gateway within DEELRX_JWKS_REFRESH_SECONDS (at most a
minute); clients renew with their refresh tokens, so nobody has to log in again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit.grpc_client import service_channel
from deelrx_kit.settings import Settings


async def rotate(settings: Settings, emergency: bool) -> sessions_pb2.RotateSigningKeyResponse:
    async with service_channel(settings, "sessions") as ch:
        stub = sessions_pb2_grpc.SessionsServiceStub(ch)
        reply: sessions_pb2.RotateSigningKeyResponse = await stub.RotateSigningKey(
            sessions_pb2.RotateSigningKeyRequest(emergency=emergency), timeout=30
        )
        return reply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.sessions.rotate_keys", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--emergency", action="store_true", help="withdraw the current key from the JWKS at once (compromised key)"
    )
    args = parser.parse_args(argv)
    reply = asyncio.run(rotate(Settings(), args.emergency))
    verb = "withdrawn" if args.emergency else "retired"
    print(f"signing key now {reply.kid}; {verb}: {reply.retired_kid or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
