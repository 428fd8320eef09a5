"""Mutual TLS for the internal gRPC hops: credentials read from files and re-read when they change.

cert-manager (or any operator) replaces the certificate, key and CA files in place; a server picks
the new ones up at the next TLS handshake (grpc's certificate configuration fetcher) and a client
channel is rebuilt on its next call after the files change (`ReloadingChannel`).

The caller's identity is the Common Name of its client certificate (`caller_identity`); which
identity may call which method is the allow-list in `deelrx_kit.caller_policy`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import structlog

log = structlog.get_logger("deelrx.mtls")


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    ca: Path

    def stamp(self) -> tuple[float, ...]:
        """Changes whenever one of the files is replaced (cert-manager swaps a symlink)."""
        out: list[float] = []
        for path in (self.cert, self.key, self.ca):
            st = path.stat()
            out.extend((st.st_mtime, float(st.st_ino), float(st.st_size)))
        return tuple(out)

    def read(self) -> tuple[bytes, bytes, bytes]:
        return self.cert.read_bytes(), self.key.read_bytes(), self.ca.read_bytes()


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """Server credentials that require a client certificate from the CA, re-read on change."""
    cert, key, ca = files.read()
    state = {"stamp": files.stamp()}

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        # Called by grpc before each handshake; None keeps the current configuration.
        try:
            stamp = files.stamp()
            if stamp == state["stamp"]:
                return None
            cert, key, ca = files.read()
            state["stamp"] = stamp
        except OSError as exc:  # mid-rotation: keep serving with what we have
            log.warning("tls_reload_failed", error=str(exc))
            return None
        log.info("tls_reloaded", side="server")
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    initial = grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)
    return grpc.dynamic_ssl_server_credentials(initial, fetch, require_client_authentication=True)


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    cert, key, ca = files.read()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def caller_identity(context: grpc.aio.ServicerContext) -> str | None:
    """The Common Name of the verified client certificate, or None on a plaintext connection."""
    auth = context.auth_context()
    names = auth.get("x509_common_name") or []
    return names[0].decode() if names else None


class ReloadingChannel:
    """A grpc.aio channel whose TLS credentials follow the files.

    Stubs keep the multicallables this returns; each call checks (at most once a second) whether
    the files changed and, if so, builds a new channel; the old one is closed after a grace period
    so that calls in flight finish.
    """

    CHECK_INTERVAL = 1.0
    OLD_CHANNEL_GRACE = 30.0

    def __init__(self, build: Callable[[grpc.ChannelCredentials], grpc.aio.Channel], files: TlsFiles) -> None:
        self._build = build
        self._files = files
        self._stamp = files.stamp()
        self._channel = build(channel_credentials(files))
        self._generation = 0
        self._checked = time.monotonic()
        self._retired: list[grpc.aio.Channel] = []

    def current(self) -> grpc.aio.Channel:
        now = time.monotonic()
        if now - self._checked >= self.CHECK_INTERVAL:
            self._checked = now
            self._maybe_reload()
        return self._channel

    def _maybe_reload(self) -> None:
        try:
            stamp = self._files.stamp()
            if stamp == self._stamp:
                return
            creds = channel_credentials(self._files)
        except (OSError, ValueError) as exc:
            log.warning("tls_reload_failed", error=str(exc))
            return
        old = self._channel
        self._channel, self._stamp = self._build(creds), stamp
        self._generation += 1
        self._retired.append(old)
        log.info("tls_reloaded", side="client")
        import asyncio

        async def retire() -> None:
            await asyncio.sleep(self.OLD_CHANNEL_GRACE)
            await old.close()
            self._retired.remove(old)

        try:
            asyncio.get_running_loop().create_task(retire())
        except RuntimeError:
            pass

    def _multicallable(self, kind: str, method: str, *args: Any, **kwargs: Any) -> Any:
        cache: dict[int, Any] = {}

        def resolve() -> Any:
            channel = self.current()
            found = cache.get(self._generation)
            if found is None:
                cache.clear()
                found = cache[self._generation] = getattr(channel, kind)(method, *args, **kwargs)
            return found

        return _Deferred(resolve)

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._multicallable("unary_unary", method, *args, **kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._multicallable("unary_stream", method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._multicallable("stream_unary", method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._multicallable("stream_stream", method, *args, **kwargs)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current().get_state(try_to_connect)

    async def channel_ready(self) -> None:
        await self.current().channel_ready()

    async def close(self, grace: float | None = None) -> None:
        for ch in [*self._retired, self._channel]:
            await ch.close(grace)

    async def __aenter__(self) -> ReloadingChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Deferred:
    def __init__(self, resolve: Callable[[], Any]) -> None:
        self._resolve = resolve

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve()(*args, **kwargs)
