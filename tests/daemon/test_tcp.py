"""The optional TCP listener: mutual TLS, and nothing for a client without a good certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from dataclasses import replace
from typing import TYPE_CHECKING

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.daemon.conftest import make_config, running_daemon

if TYPE_CHECKING:
    from pathlib import Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    usage: x509.ObjectIdentifier | None,
) -> x509.Certificate:
    """A certificate for ``subject``; self-signed CA when ``issuer`` is None."""
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
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_tcp_listener_serves_only_clients_with_a_certificate_from_its_ca(
    engine_socket: str, sockdir: Path
) -> None:
    """A client certificate from tcp_ca gets answers; none, or another CA's, gets a TLS refusal."""
    ca_key, other_key = _key(), _key()
    ca = _cert("clients-ca", ca_key, None, None)
    other_ca = _cert("other-ca", other_key, None, None)
    ca_path, _ = _write(sockdir, "ca", ca, ca_key)
    server_key, client_key, stranger_key = _key(), _key(), _key()
    server = _write(
        sockdir,
        "server",
        _cert("daemon", server_key, (ca, ca_key), ExtendedKeyUsageOID.SERVER_AUTH),
        server_key,
    )
    client = _write(
        sockdir,
        "client",
        _cert("peer0", client_key, (ca, ca_key), ExtendedKeyUsageOID.CLIENT_AUTH),
        client_key,
    )
    stranger = _write(
        sockdir,
        "stranger",
        _cert("mallory", stranger_key, (other_ca, other_key), ExtendedKeyUsageOID.CLIENT_AUTH),
        stranger_key,
    )
    port = _free_port()
    config = make_config(engine_socket, sockdir)
    config = replace(
        config,
        listen=replace(
            config.listen,
            tcp=f"127.0.0.1:{port}",
            tcp_ca=ca_path,
            tcp_cert=server[0],
            tcp_key=server[1],
        ),
    )
    async with running_daemon(config), aiohttp.ClientSession() as session:
        url = f"https://127.0.0.1:{port}/v1/health"
        good = ssl.create_default_context(cafile=str(ca_path))
        good.load_cert_chain(*map(str, client))
        async with session.get(url, ssl=good) as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ok"
        for chain in (None, stranger):
            refused = ssl.create_default_context(cafile=str(ca_path))
            if chain is not None:
                refused.load_cert_chain(*map(str, chain))
            with pytest.raises(aiohttp.ClientError):
                async with session.get(url, ssl=refused) as resp:
                    await resp.read()
