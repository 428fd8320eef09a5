"""What a production process (DEELRX_ENV=production) refuses to start without.

Development defaults are convenient and unsafe: a SQLite file per pod, a secret derived from the
data directory, plaintext hops. Each problem names the setting to fix; the process exits with all
of them listed rather than the first one only.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from deelrx_kit.settings import Settings

MIN_SECRET_LENGTH = 32
# Values seen in examples and tutorials; a key equal to one of them is no secret.
KNOWN_DEFAULT_SECRETS = frozenset(
    {"", "changeme", "change-me", "secret", "secret-key", "development", "dev", "test", "test-secret", "deelrx"}
)
# Processes with a database of their own (the gateway and the detector have none).
DATABASE_SERVICES = frozenset({"identity", "sessions", "rbac", "audit"})
# Processes that key something with DEELRX_SECRET_KEY: the gateway (CSRF tokens, limiter keys),
# identity (keyed hashes of addresses and tokens), sessions (sealing of signing keys). Each gets
# its own value in Kubernetes; rbac, audit and detector get none.
SECRET_PROCESSES = frozenset({"gateway", "identity", "sessions"})


class UnsafeProductionSettings(RuntimeError):
    def __init__(self, process: str, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n  - ".join(problems)
        super().__init__(f"{process} refuses to start in production:\n  - {listed}")


def production_problems(settings: Settings, process: str) -> list[str]:
    """Every unsafe setting for `process` ("gateway" or a service name); empty outside production."""
    if not settings.is_production:
        return []
    problems: list[str] = []
    if process in SECRET_PROCESSES:
        problems += _secret_problems(settings)
    problems += _grpc_tls_problems(settings)
    if process in DATABASE_SERVICES:
        problems += _database_problems(settings, process)
    nats = urlsplit(settings.nats_url)
    if nats.scheme != "tls" and not settings.nats_tls_ca_file:
        problems.append("DEELRX_NATS_URL must be a tls:// URL, or DEELRX_NATS_TLS_CA_FILE set (NATS without TLS)")
    if process in ("gateway", "sessions") and urlsplit(settings.redis_url).scheme != "rediss":
        problems.append("DEELRX_REDIS_URL must be a rediss:// URL (Redis without TLS)")
    if process == "gateway" and not settings.public_is_https:
        problems.append("DEELRX_PUBLIC_URL must be https:// (cookies are Secure only over HTTPS)")
    return problems


def refuse_unsafe_production(settings: Settings, process: str) -> None:
    problems = production_problems(settings, process)
    if problems:
        raise UnsafeProductionSettings(process, problems)


def _secret_problems(settings: Settings) -> list[str]:
    value = settings.secret_key.get_secret_value()
    if not value:
        return ["DEELRX_SECRET_KEY is not set (development derives one from the data directory)"]
    if value.strip().lower() in KNOWN_DEFAULT_SECRETS:
        return ["DEELRX_SECRET_KEY is a well-known default value"]
    if len(value) < MIN_SECRET_LENGTH:
        return [f"DEELRX_SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters"]
    return []


def _grpc_tls_problems(settings: Settings) -> list[str]:
    named = {
        "DEELRX_GRPC_TLS_CERT_FILE": settings.grpc_tls_cert_file,
        "DEELRX_GRPC_TLS_KEY_FILE": settings.grpc_tls_key_file,
        "DEELRX_GRPC_TLS_CA_FILE": settings.grpc_tls_ca_file,
    }
    problems = []
    for name, path in named.items():
        if not path:
            problems.append(f"{name} is not set (internal gRPC needs mutual TLS)")
        elif not Path(path).is_file():
            problems.append(f"{name} names a file that does not exist: {path}")
    return problems


def _database_problems(settings: Settings, service: str) -> list[str]:
    own_name = f"DEELRX_{service.upper()}_DATABASE_URL"
    own: str = getattr(settings, f"{service}_database_url", "")
    url = own or settings.database_url
    name = own_name if own else "DEELRX_DATABASE_URL"
    if not url:
        return [f"{own_name} (or DEELRX_DATABASE_URL) is not set: production does not run on SQLite"]
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return [f"{name} is SQLite: production needs PostgreSQL"]
    mode = parse_qs(parts.query).get("sslmode", [""])[0]
    if mode != "verify-full":
        return [f"{name} must set sslmode=verify-full (PostgreSQL without verified TLS)"]
    return []
