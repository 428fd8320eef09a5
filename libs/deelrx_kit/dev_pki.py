"""A development certificate authority: a CA and one certificate per identity, written as PEM files.

Used by `make run` when DEELRX_DEV_MTLS=1 and by the tests. Production certificates come from
cert-manager (deploy/k8s); nothing here is meant for them.

Each leaf certificate carries its identity as the Common Name (what the caller allow-list checks)
and as a DNS name (what a client verifies when it reaches that service), plus localhost/127.0.0.1
so the same file serves the embedded NATS, Redis and PostgreSQL in tests.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from deelrx_kit.mtls import TlsFiles


@dataclass(frozen=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path

    @classmethod
    def create(cls, directory: Path, name: str = "DeelRx development CA", days: int = 30) -> CertificateAuthority:
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        cert_file = directory / "ca.crt"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(directory / "ca.key", key)
        return cls(cert, key, cert_file)

    def issue(self, directory: Path, identity: str, days: int = 30, *, extra_dns: tuple[str, ...] = ()) -> TlsFiles:
        """`<identity>.crt` and `<identity>.key` in `directory`, for both client and server use."""
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        sans: list[x509.GeneralName] = [x509.DNSName(identity), x509.DNSName("localhost")]
        sans += [x509.DNSName(name) for name in extra_dns]
        sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = directory / f"{identity}.crt", directory / f"{identity}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_file, key)
        return TlsFiles(cert_file, key_file, self.cert_file)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    tmp.chmod(0o600)
    tmp.replace(path)


def development_pki(directory: Path, identities: tuple[str, ...]) -> dict[str, TlsFiles]:
    """A CA under `directory` (reused when present) and a certificate per identity."""
    ca_file = directory / "ca.crt"
    if ca_file.exists() and (directory / "ca.key").exists():
        ca_cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
        ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        ca = CertificateAuthority(ca_cert, ca_key, ca_file)
    else:
        ca = CertificateAuthority.create(directory)
    return {name: ca.issue(directory, name) for name in identities}
