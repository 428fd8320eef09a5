"""Settings read from `DEELRX_*` environment variables (pydantic-settings).

Every process reads the same variables, so one environment configures the whole suite.
Secret-bearing values are `SecretStr` and never appear in logs or reprs.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from deelrx_kit.mtls import TlsFiles

if TYPE_CHECKING:
    from deelrx_kit.keyring import Keyring

# The one table of services: name -> (default gRPC port, default metrics port). The launcher,
# the settings below and the gateway's clients are derived from it; adding a service starts here
# (docs/architecture.md lists the other steps).
SERVICE_PORTS: dict[str, tuple[int, int]] = {
    "identity": (7101, 9101),
    "sessions": (7102, 9102),
    "rbac": (7103, 9103),
    "audit": (7104, 9104),
    "detector": (7105, 9105),
}
SERVICES = tuple(SERVICE_PORTS)
DEFAULT_GRPC_PORTS = {name: grpc_port for name, (grpc_port, _) in SERVICE_PORTS.items()}
DEFAULT_METRICS_PORTS = {name: metrics_port for name, (_, metrics_port) in SERVICE_PORTS.items()}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEELRX_", extra="ignore", frozen=True)

    env: str = "development"
    log_level: str = "INFO"
    # Email addresses and other personal data appear in logs only when this is switched on
    # (debugging); otherwise logs name mails by id and people by keyed hash or user id.
    log_pii: bool = False
    data_dir: Path = Path(".data")
    public_url: str = "http://127.0.0.1:8080"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # SO_REUSEPORT on the public listener: several gateway processes serve one port and the kernel
    # spreads connections between them (`make run` does this with DEELRX_GATEWAY_PROCESSES > 1).
    http_reuse_port: bool = False
    # How many gateway processes `make run` starts on the public port (deploy/local).
    gateway_processes: int = Field(default=1, ge=1, le=64)
    admin_host: str = "127.0.0.1"
    admin_port: int = 9180
    jwt_audience: str = "deelrx"
    trusted_proxies: str = ""
    cors_origins: str = ""

    # Infrastructure. Empty means "embedded default" (SQLite file per service; `make run`
    # starts NATS and Redis itself and sets these for the processes it launches).
    database_url: str = ""
    # A service's own database, when it is not the shared one (DEELRX_<SERVICE>_DATABASE_URL).
    identity_database_url: str = ""
    sessions_database_url: str = ""
    rbac_database_url: str = ""
    audit_database_url: str = ""
    nats_url: str = "nats://127.0.0.1:4222"
    redis_url: str = "redis://127.0.0.1:6379/0"
    smtp_url: str = ""
    mail_from: str = "DeelRx <no-reply@deelrx.local>"

    # Where each service listens and where the others find it.
    grpc_host: str = "127.0.0.1"
    identity_addr: str = f"127.0.0.1:{DEFAULT_GRPC_PORTS['identity']}"
    sessions_addr: str = f"127.0.0.1:{DEFAULT_GRPC_PORTS['sessions']}"
    rbac_addr: str = f"127.0.0.1:{DEFAULT_GRPC_PORTS['rbac']}"
    audit_addr: str = f"127.0.0.1:{DEFAULT_GRPC_PORTS['audit']}"
    detector_addr: str = f"127.0.0.1:{DEFAULT_GRPC_PORTS['detector']}"
    # Mutual TLS on the internal gRPC hops (files; re-read when they change). All three empty means
    # plaintext, which is allowed on loopback only and never in production.
    grpc_tls_cert_file: str = ""
    grpc_tls_key_file: str = ""
    grpc_tls_ca_file: str = ""
    # A plaintext port that serves only grpc.health (native Kubernetes probes speak no TLS); 0 = off.
    grpc_health_port: int = 0
    # Server reflection; unset means on in development, off in production.
    grpc_reflection: bool | None = None
    # Servers close connections after this age so clients re-resolve and reach new replicas.
    grpc_max_connection_age_seconds: int = Field(default=300, ge=10)
    # How long calls in progress on an aged connection may go on (streams: exports, live streams).
    grpc_max_connection_age_grace_seconds: int = Field(default=3600, ge=1)
    # TLS to NATS (a `tls://` URL or these files); Redis uses `rediss://` with `ssl_ca_certs=` in the
    # URL; PostgreSQL `sslmode=verify-full&sslrootcert=...` in the URL.
    nats_tls_ca_file: str = ""
    nats_tls_cert_file: str = ""
    nats_tls_key_file: str = ""
    # Run migrations when a service starts (development); production runs them once, before the
    # rollout, with the migration role (`python -m deelrx_kit.migrate`), and sets this to false.
    migrate_on_start: bool = True
    # Per-service Prometheus endpoints on admin_host (ports: DEELRX_<SERVICE>_METRICS_PORT,
    # else the service's default from SERVICE_PORTS).
    metrics_enabled: bool = True
    identity_metrics_port: int | None = None
    sessions_metrics_port: int | None = None
    rbac_metrics_port: int | None = None
    audit_metrics_port: int | None = None
    detector_metrics_port: int | None = None

    # Keys. Empty means "derive a development key from the data dir" (never in production).
    secret_key: SecretStr = SecretStr("")
    # Encryption at rest (libs/deelrx_kit/keyring.py): `kid:base64url(32 bytes)` entries, the
    # active key first; or a file holding them. Empty: a development keyring in the data dir.
    encryption_keys: SecretStr = SecretStr("")
    encryption_keys_file: str = ""

    # Token and session policy.
    # At least a minute: renewal starts in a token's last fifth, and shorter tokens would make
    # nearly every cookie request a renewal.
    access_token_ttl_seconds: int = Field(default=300, ge=60, le=3600)
    refresh_grace_seconds: int = Field(default=10, ge=0, le=30)
    session_idle_timeout_minutes: int = Field(default=30, ge=1)
    session_absolute_timeout_hours: int = Field(default=12, ge=1)
    email_token_ttl_hours: int = 24
    mfa_token_ttl_seconds: int = 300

    # Signing keys: each signs this long, its successor is published this long before it
    # signs (longer than the gateways' JWKS refresh plus the JWKS HTTP max-age).
    signing_key_rotation_seconds: int = Field(default=7 * 86400, ge=600)
    signing_key_publish_ahead_seconds: int = Field(default=600, ge=150)
    # How often each gateway reloads the JWKS (a withdrawn key stops verifying within this).
    jwks_refresh_seconds: float = Field(default=30.0, gt=0, le=60)

    # Unauthenticated auth endpoints, requests per rolling minute.
    rate_limit_anonymous_per_ip: int = Field(default=100, ge=1)
    rate_limit_anonymous_per_account: int = Field(default=30, ge=1)
    # Refreshes (by cookie or body) per client IP: their own budget, so that sign-up and
    # login attempts from one address cannot log out the other users behind it.
    rate_limit_refresh_per_ip: int = Field(default=300, ge=1)
    # Public endpoints (/readyz, /.well-known/jwks.json, /openapi.json, /docs) per client IP.
    rate_limit_public_per_ip: int = Field(default=300, ge=1)
    # IPv6 clients are counted per network of this prefix length (a /64 is one customer).
    rate_limit_ipv6_prefix: int = Field(default=64, ge=32, le=128)
    # Gateway replicas: while Redis cannot answer, each enforces limit / replicas locally.
    gateway_replicas: int = Field(default=1, ge=1)
    # Deadline of one gateway call to Redis; past it the gateway stops asking until a probe answers.
    redis_timeout_ms: int = Field(default=500, ge=10, le=5000)
    # Entries of each of the gateway's /v1/auth/me caches (user profiles, session summaries,
    # teams, memberships): least recently used ones go first.
    me_cache_entries: int = Field(default=10_000, ge=1, le=1_000_000)

    # Live security stream (SSE): a comment line this often when idle; rights re-checked then.
    audit_stream_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)

    # JetStream: replicas of the streams this version creates (3 on a three-node cluster), and
    # how often a consumer tries a message before it goes to the dead-letter stream.
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)
    nats_max_deliver: int = Field(default=8, ge=2, le=100)
    # Put before every durable consumer name, so two installations sharing one NATS account
    # (or test suites sharing one server) do not take each other's messages. Empty in production.
    nats_consumer_prefix: str = Field(default="", max_length=40, pattern=r"^[A-Za-z0-9_-]*$")
    nats_audit_max_bytes: int = Field(default=4 * 1024**3, ge=1024**2)

    # How often the audit service signs the heads of chains that moved (Ed25519 checkpoints).
    audit_checkpoint_interval_seconds: float = Field(default=300.0, gt=0)
    # Retention: events stored longer ago than this are archived, then deleted (0 = keep all).
    audit_retention_days: int = Field(default=0, ge=0)
    audit_archive_dir: str = ""  # default: <data dir>/audit-archive
    # Audit replicas share the AUDIT stream's partitions by leases of this length, renewed every
    # third of it; a replica that dies without releasing its leases is taken over after it.
    audit_partition_lease_seconds: float = Field(default=15.0, ge=1, le=600)
    # Or an S3-compatible bucket: s3://bucket/prefix (file:///path is a directory too).
    audit_archive_url: str = ""
    audit_archive_s3_endpoint_url: str = ""  # empty: AWS S3; else e.g. https://minio.internal:9000
    audit_archive_s3_region: str = "us-east-1"
    # Empty: boto3's own credential chain (AWS_* variables, instance or pod role).
    audit_archive_s3_access_key_id: str = ""
    audit_archive_s3_secret_access_key: SecretStr = SecretStr("")

    # Detector thresholds: JSON {"<rule id>[.<variant>]": {"threshold": n, "window_seconds": s,
    # "severity": ..., "enabled": bool}}; empty = the documented defaults.
    detector_rules: str = ""
    # Automatic responses per rule: JSON {"brute_force": ["lock_account"], "new_device": []}; the
    # rules named replace their defaults (services/detector/responses.py DEFAULT_RESPONSES).
    detector_responses: str = ""
    # How long `lock_account` holds an account: the 15 minutes of the per-client lockout.
    detector_lock_minutes: int = Field(default=15, ge=1, le=7 * 24 * 60)

    # Argon2id cost: OWASP's minimum (m=19 MiB, t=2, p=1), 50-140 ms per hash on the 2-core
    # reference machine (docs/security.md). Raising it rehashes each password at its next login.
    argon2_time_cost: int = 2
    argon2_memory_cost_kib: int = 19456
    argon2_parallelism: int = 1

    def keyring(self) -> Keyring:
        """The encryption-at-rest keyring (deelrx_kit.keyring)."""
        from deelrx_kit.keyring import load_keyring

        return load_keyring(
            spec=self.encryption_keys.get_secret_value(),
            spec_file=self.encryption_keys_file,
            env=self.env,
            data_dir=self.data_dir,
        )

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def grpc_tls_files(self) -> TlsFiles | None:
        """The mTLS files, or None for plaintext; a partial set is a configuration error."""
        paths = (self.grpc_tls_cert_file, self.grpc_tls_key_file, self.grpc_tls_ca_file)
        if not any(paths):
            return None
        names = ("DEELRX_GRPC_TLS_CERT_FILE", "DEELRX_GRPC_TLS_KEY_FILE", "DEELRX_GRPC_TLS_CA_FILE")
        missing = [name for name, path in zip(names, paths, strict=True) if not path]
        if missing:
            raise RuntimeError(f"incomplete gRPC TLS settings: set {', '.join(missing)}")
        return TlsFiles(Path(paths[0]), Path(paths[1]), Path(paths[2]))

    def grpc_port(self, service: str) -> int:
        return int(getattr(self, f"{service}_addr").rsplit(":", 1)[1])

    def metrics_port(self, service: str) -> int:
        """`DEELRX_<SERVICE>_METRICS_PORT`, else the service's default."""
        port: int | None = getattr(self, f"{service}_metrics_port")
        return DEFAULT_METRICS_PORTS[service] if port is None else port

    @cached_property
    def public_origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def public_is_https(self) -> bool:
        return urlsplit(self.public_url).scheme == "https"

    def secret(self) -> bytes:
        """The process-wide root secret; every use derives its own key (`deelrx_kit.keys`)."""
        from deelrx_kit.secret_file import check_secret_key, development_secret

        value = self.secret_key.get_secret_value()
        if value:
            return check_secret_key(value)
        if self.env == "production":
            raise RuntimeError("DEELRX_SECRET_KEY must be set in production")
        # Development: a random key kept in the data dir, so restarts keep working tokens.
        return development_secret(self.data_dir / "secret.key")

    def service_database_url(self, service: str) -> str:
        """`DEELRX_<SERVICE>_DATABASE_URL`, else the shared URL, else a SQLite file."""
        own: str = getattr(self, f"{service}_database_url", "")
        if own:
            return own
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.db').resolve()}"
