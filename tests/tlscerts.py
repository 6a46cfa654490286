"""Certificates for the mutual-TLS listeners' tests, made with ``cryptography``.

``mutual_tls`` writes one CA with a server certificate (for 127.0.0.1) and a client
certificate it signed, and a stranger: a client certificate from another CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from pathlib import Path

Issuer = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def make_key() -> ec.EllipticCurvePrivateKey:
    """A P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def make_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: Issuer | None,
    usage: x509.ObjectIdentifier | None,
) -> x509.Certificate:
    """A certificate for ``subject``; a self-signed CA when ``issuer`` is None.

    A server certificate (``usage`` SERVER_AUTH) names 127.0.0.1, as clients check.
    """
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
            ),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def write_pem(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    """Write ``name.pem`` and ``name.key`` (PKCS#8, mode 0600) in ``directory``; both paths."""
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class MutualTLS:
    """The files of ``mutual_tls``: a CA, its server and client pairs, a stranger's pair."""

    ca: Path
    server: tuple[Path, Path]
    client: tuple[Path, Path]
    stranger: tuple[Path, Path]

    def client_context(self, chain: tuple[Path, Path] | None) -> ssl.SSLContext:
        """A client context that trusts the CA and presents ``chain`` (None: no certificate)."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if chain is not None:
            context.load_cert_chain(*map(str, chain))
        return context


def mutual_tls(directory: Path) -> MutualTLS:
    """Make and write a CA, a server and a client certificate from it, and a stranger's."""
    ca_key, other_key = make_key(), make_key()
    ca = make_cert("clients-ca", ca_key, None, None)
    other_ca = make_cert("other-ca", other_key, None, None)
    ca_path, _ = write_pem(directory, "ca", ca, ca_key)
    server_key, client_key, stranger_key = make_key(), make_key(), make_key()
    server = write_pem(
        directory,
        "server",
        make_cert("daemon", server_key, (ca, ca_key), ExtendedKeyUsageOID.SERVER_AUTH),
        server_key,
    )
    client = write_pem(
        directory,
        "client",
        make_cert("peer0", client_key, (ca, ca_key), ExtendedKeyUsageOID.CLIENT_AUTH),
        client_key,
    )
    stranger = write_pem(
        directory,
        "stranger",
        make_cert("mallory", stranger_key, (other_ca, other_key), ExtendedKeyUsageOID.CLIENT_AUTH),
        stranger_key,
    )
    return MutualTLS(ca_path, server, client, stranger)
