"""TLS to the infrastructure: PostgreSQL (libpq-style `sslmode=verify-full&sslrootcert=...` in the
URL), NATS (`tls://` or `DEELRX_NATS_TLS_*` files) and Redis (`rediss://`, whose `ssl_ca_certs`,
`ssl_certfile` and `ssl_keyfile` URL parameters redis-py reads itself).
"""

from __future__ import annotations

import ssl

from sqlalchemy.engine import make_url

from deelrx_kit.settings import Settings

# The libpq parameters operators write in PostgreSQL URLs; asyncpg takes an SSLContext instead.
_LIBPQ_SSL_PARAMS = ("sslmode", "sslrootcert", "sslcert", "sslkey")


def postgres_tls(url: str) -> tuple[str, ssl.SSLContext | str | bool | None]:
    """The URL without libpq TLS parameters, and what to pass as asyncpg's `ssl` argument."""
    parsed = make_url(url)
    query = dict(parsed.query)
    if not any(name in query for name in _LIBPQ_SSL_PARAMS):
        return url, None
    params = {name: query.pop(name, None) for name in _LIBPQ_SSL_PARAMS}
    clean = parsed.set(query=query).render_as_string(hide_password=False)
    mode = str(params["sslmode"] or "prefer")
    if mode == "disable":
        return clean, False
    if mode not in ("verify-full", "verify-ca"):
        return clean, mode  # require/prefer/allow: encrypted, not verified (asyncpg takes the name)
    root = params["sslrootcert"]
    ctx = ssl.create_default_context(cafile=str(root) if root else None)
    ctx.check_hostname = mode == "verify-full"
    if params["sslcert"]:
        ctx.load_cert_chain(str(params["sslcert"]), str(params["sslkey"]) if params["sslkey"] else None)
    return clean, ctx


def nats_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """A context trusting DEELRX_NATS_TLS_CA_FILE (else the system CAs for a tls:// URL), with the
    client certificate when one is configured; None means plaintext."""
    if not settings.nats_tls_ca_file and not settings.nats_url.startswith("tls://"):
        return None
    ctx = ssl.create_default_context(cafile=settings.nats_tls_ca_file or None)
    if settings.nats_tls_cert_file:
        ctx.load_cert_chain(settings.nats_tls_cert_file, settings.nats_tls_key_file or None)
    return ctx
