"""Chaincode TLS certificates: issued as Fabric's tlsgen issues them, supplied ones checked.

Independent checks come from openssl (chain and purpose), Python's ssl and, when a Go
toolchain is installed, Go's own tls.X509KeyPair and x509.Verify. Only certificates are
written to tmp_path, except where a test loads a throwaway CA from files.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ccdaemon.runtime.certs import (
    ChaincodeCA,
    ClientCredentials,
    InvalidCA,
    validate_supplied,
)
from ccdaemon.runtime.errors import InvalidRequest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

MINUTE = timedelta(minutes=1)
DAY = timedelta(hours=24)
Ext = TypeVar("Ext", bound=x509.ExtensionType)

# Reads a cert and key from stdin as Fabric's Go shim does, then verifies for client use.
GO_CHECK = """package main

import (
\t"crypto/tls"
\t"crypto/x509"
\t"encoding/json"
\t"fmt"
\t"os"
)

func main() {
\tvar in struct{ Cert, Key, Root string }
\tif err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
\t\tfmt.Println(err)
\t\tos.Exit(2)
\t}
\tpair, err := tls.X509KeyPair([]byte(in.Cert), []byte(in.Key))
\tif err != nil {
\t\tfmt.Println("X509KeyPair:", err)
\t\tos.Exit(1)
\t}
\tleaf, err := x509.ParseCertificate(pair.Certificate[0])
\tif err != nil {
\t\tfmt.Println("ParseCertificate:", err)
\t\tos.Exit(1)
\t}
\troots := x509.NewCertPool()
\troots.AppendCertsFromPEM([]byte(in.Root))
\tusage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
\tif _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: usage}); err != nil {
\t\tfmt.Println("Verify:", err)
\t\tos.Exit(1)
\t}
\tfmt.Println("ok")
}
"""


@pytest.fixture
def ca() -> ChaincodeCA:
    return ChaincodeCA.generate()


@pytest.fixture
def issued(ca: ChaincodeCA) -> ClientCredentials:
    return ca.issue()


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _key_der(creds: ClientCredentials) -> bytes:
    body = creds.key_pem.split(b"-----")[2]
    return base64.b64decode(b"".join(body.split()))


def _ext(cert: x509.Certificate, kind: type[Ext]) -> x509.Extension[Ext]:
    return cert.extensions.get_extension_for_class(kind)


def _self_signed(
    key: ec.EllipticCurvePrivateKey,
    *,
    eku: list[x509.ObjectIdentifier] | None,
    ca: bool = False,
) -> x509.Certificate:
    """Build a self-signed P-256 certificate valid now, with the given usages."""
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DAY)
        .not_valid_after(now + DAY)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    return builder.sign(key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_fragments(key_pem: bytes) -> list[str]:
    """Pieces of a key that must never be shown: each base64 line and the private scalar."""
    lines = [line.decode() for line in key_pem.splitlines() if not line.startswith(b"-----")]
    key = serialization.load_der_private_key(base64.b64decode("".join(lines)), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    scalar = key.private_numbers().private_value
    return [*lines, f"{scalar:x}", str(scalar)]


def _assert_hides_key(text: str, key_pem: bytes) -> None:
    assert "PRIVATE KEY" not in text
    for fragment in _key_fragments(key_pem):
        assert fragment not in text


# --- Issued client certificates, as tlsgen's newCertKeyPair(isCA=false) makes them.


def test_client_cert_is_valid_from_a_day_before_to_a_day_after_issue(
    issued: ClientCredentials,
) -> None:
    """The validity window is now-24h to now+24h, within a minute."""
    cert = _cert(issued.cert_pem)
    now = datetime.now(UTC)
    assert abs(cert.not_valid_before_utc - (now - DAY)) < MINUTE
    assert abs(cert.not_valid_after_utc - (now + DAY)) < MINUTE


def test_client_cert_has_fabrics_key_usages_and_no_ca_constraints(
    issued: ClientCredentials,
) -> None:
    """Key usage is exactly DigitalSignature|KeyEncipherment, EKU exactly ClientAuth, not a CA."""
    cert = _cert(issued.cert_pem)
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    assert not usage.value.crl_sign
    assert not usage.value.content_commitment
    assert not usage.value.data_encipherment
    assert not usage.value.key_agreement
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, x509.BasicConstraints)


def test_client_cert_subject_holds_only_its_random_128_bit_serial(
    ca: ChaincodeCA, issued: ClientCredentials
) -> None:
    """The subject is a lone SERIALNUMBER equal to the 128-bit serial; the issuer is the CA."""
    cert = _cert(issued.cert_pem)
    assert 0 < cert.serial_number < 1 << 128
    assert list(cert.subject) == [
        x509.NameAttribute(NameOID.SERIAL_NUMBER, str(cert.serial_number))
    ]
    assert cert.issuer == ca.certificate.subject


def test_client_cert_key_identifiers_follow_tlsgen(
    ca: ChaincodeCA, issued: ClientCredentials
) -> None:
    """SKI is SHA-256 of the uncompressed point (computeSKI); AKI is the CA's SKI, as Go sets it."""
    cert = _cert(issued.cert_pem)
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert _ext(cert, x509.SubjectKeyIdentifier).value.digest == hashlib.sha256(point).digest()
    ca_ski = _ext(ca.certificate, x509.SubjectKeyIdentifier).value.digest
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski


def test_client_cert_signature_verifies_against_the_ca(
    ca: ChaincodeCA, issued: ClientCredentials
) -> None:
    """The CA's key signed the client certificate (ECDSA with SHA-256), and root_pem is the CA."""
    cert = _cert(issued.cert_pem)
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    assert issued.root_pem == ca.cert_pem


def test_client_key_is_p256_pkcs8_under_fabrics_ec_private_key_label(
    issued: ClientCredentials,
) -> None:
    """The key PEM says "EC PRIVATE KEY" but holds PKCS#8 DER of a P-256 key matching the cert."""
    assert issued.key_pem.startswith(b"-----BEGIN EC PRIVATE KEY-----\n")
    assert issued.key_pem.endswith(b"-----END EC PRIVATE KEY-----\n")
    der = _key_der(issued)
    key = serialization.load_der_private_key(der, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert der == pkcs8
    assert key.public_key() == _cert(issued.cert_pem).public_key()


def test_cert_sha256_is_the_digest_of_the_der_certificate(issued: ClientCredentials) -> None:
    """cert_sha256 is sha256(cert.Raw), the key of Fabric's certMapper."""
    der = _cert(issued.cert_pem).public_bytes(serialization.Encoding.DER)
    assert issued.cert_sha256 == hashlib.sha256(der).digest()


def test_two_issued_certs_differ_in_serial_key_and_hash(ca: ChaincodeCA) -> None:
    """Each issue draws a new serial and a new key pair, so the registered hashes differ."""
    first, second = ca.issue(), ca.issue()
    assert _cert(first.cert_pem).serial_number != _cert(second.cert_pem).serial_number
    assert _cert(first.cert_pem).public_key() != _cert(second.cert_pem).public_key()
    assert _key_der(first) != _key_der(second)
    assert first.cert_sha256 != second.cert_sha256


# --- Independent parsers: what the chaincode shims and peer would run.


def test_openssl_verifies_the_issued_cert_chains_to_the_ca_for_client_use(
    ca: ChaincodeCA, issued: ClientCredentials, tmp_path: Path
) -> None:
    """`openssl verify -purpose sslclient` accepts the client cert against the CA cert alone."""
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "client.pem").write_bytes(issued.cert_pem)
    result = subprocess.run(
        ["openssl", "verify", "-purpose", "sslclient", "-CAfile", "ca.pem", "client.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "client.pem: OK"


def test_openssl_and_python_ssl_accept_the_issued_key(issued: ClientCredentials) -> None:
    """OpenSSL (Node and Java shims) and Python's ssl parse the key, through pipes, not files."""
    pkey = subprocess.run(
        ["openssl", "pkey", "-noout"], input=issued.key_pem, capture_output=True, check=False
    )
    assert pkey.returncode == 0, pkey.stderr
    with _pipe(issued.cert_pem) as cert_path, _pipe(issued.key_pem) as key_path:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert_path, key_path)


# scripts/test installs Go (through scripts/images), so under CI this always runs.
@pytest.mark.skipif(
    shutil.which("go") is None and not os.environ.get("CI"), reason="no Go toolchain installed"
)
def test_go_tls_accepts_the_issued_pair_and_verifies_it_for_client_auth(
    issued: ClientCredentials, tmp_path: Path
) -> None:
    """Go's tls.X509KeyPair (the Go shim's parser) loads the pair and x509.Verify accepts it."""
    (tmp_path / "main.go").write_text(GO_CHECK)
    pair = {
        "Cert": issued.cert_pem.decode(),
        "Key": issued.key_pem.decode(),
        "Root": issued.root_pem.decode(),
    }
    result = subprocess.run(
        ["go", "run", "main.go"],
        cwd=tmp_path,
        input=json.dumps(pair),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok"


def test_issued_credentials_pass_supplied_validation(issued: ClientCredentials) -> None:
    """The daemon's own checker accepts what it issues, Fabric's key label quirk included."""
    again = validate_supplied(issued.cert_pem.decode(), issued.key_pem.decode(), issued.root_pem)
    assert again == issued


@contextlib.contextmanager
def _pipe(data: bytes) -> Iterator[str]:
    """Offer ``data`` at a /dev/fd path backed by a pipe, so nothing touches the disk."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, data)
        os.close(write_end)
        yield f"/dev/fd/{read_end}"
    finally:
        os.close(read_end)


# --- The CA: generated as tlsgen.NewCA, or loaded from configured files.


def test_generated_ca_is_a_self_signed_p256_ca_like_tlsgen(ca: ChaincodeCA) -> None:
    """Self-signed P-256, CA:TRUE without path length, Fabric 2.x usages, valid ten years."""
    cert = ca.certificate
    cert.verify_directly_issued_by(cert)
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length is None
    usage = _ext(cert, x509.KeyUsage).value
    assert usage.digital_signature
    assert usage.key_encipherment
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.SERVER_AUTH,
    ]
    assert list(cert.subject) == [
        x509.NameAttribute(NameOID.SERIAL_NUMBER, str(cert.serial_number))
    ]
    now = datetime.now(UTC)
    assert abs(cert.not_valid_before_utc - (now - DAY)) < MINUTE
    assert abs(cert.not_valid_after_utc - (now + timedelta(days=3650))) < MINUTE


def _pkcs8_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _sec1_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _fabric_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return _pkcs8_pem(key).replace(b" PRIVATE KEY-----", b" EC PRIVATE KEY-----")


@pytest.mark.parametrize(
    "encode", [_pkcs8_pem, _sec1_pem, _fabric_pem], ids=["pkcs8", "sec1", "fabric"]
)
def test_ca_loads_from_pem_files_and_its_certs_chain_to_it(
    encode: Callable[[ec.EllipticCurvePrivateKey], bytes], tmp_path: Path
) -> None:
    """A CA read from files, in any of the key encodings Go accepts, signs verifiable certs."""
    key = ec.generate_private_key(ec.SECP384R1())
    cert = _self_signed(key, eku=None, ca=True)
    (tmp_path / "ca.crt").write_bytes(_pem(cert))
    (tmp_path / "ca.key").write_bytes(encode(key))
    loaded = ChaincodeCA.from_files(tmp_path / "ca.crt", tmp_path / "ca.key")
    assert loaded.cert_pem == _pem(cert)
    issued = _cert(loaded.issue().cert_pem)
    issued.verify_directly_issued_by(cert)
    # Go signs with SHA-384 for a P-384 issuer; the CA has no SKI, so there is no AKI.
    assert issued.signature_hash_algorithm is not None
    assert issued.signature_hash_algorithm.name == "sha384"
    with pytest.raises(x509.ExtensionNotFound):
        _ext(issued, x509.AuthorityKeyIdentifier)


@pytest.mark.parametrize("case", ["missing", "garbage key", "other key", "not a CA"])
def test_unusable_ca_files_raise_invalid_ca_without_the_key(case: str, tmp_path: Path) -> None:
    """A missing file, unparseable key, mismatched key or non-CA cert raises InvalidCA."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key, eku=None, ca=case != "not a CA")
    key_pem = _pkcs8_pem(key)
    if case == "garbage key":
        key_pem = key_pem[:60] + b"!!" + key_pem[62:]
    elif case == "other key":
        key_pem = _pkcs8_pem(ec.generate_private_key(ec.SECP256R1()))
    (tmp_path / "ca.key").write_bytes(key_pem)
    if case != "missing":
        (tmp_path / "ca.crt").write_bytes(_pem(cert))
    with pytest.raises(InvalidCA) as caught:
        ChaincodeCA.from_files(tmp_path / "ca.crt", tmp_path / "ca.key")
    if case == "missing":
        assert "ca.crt" in str(caught.value)
    if case == "garbage key":
        assert "ca.key" in str(caught.value)
    _assert_hides_key(repr(caught.value) + str(caught.value), _pkcs8_pem(key))


# --- Supplied PEMs: each flaw is an InvalidRequest naming its field.

Supplied: TypeAlias = tuple[bytes, bytes, bytes]


def _garbage_cert(ok: ClientCredentials, _ca: ChaincodeCA) -> Supplied:
    return b"not a certificate", ok.key_pem, ok.root_pem


def _garbage_key(ok: ClientCredentials, _ca: ChaincodeCA) -> Supplied:
    return (
        ok.cert_pem,
        b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        ok.root_pem,
    )


def _garbage_root(ok: ClientCredentials, _ca: ChaincodeCA) -> Supplied:
    return ok.cert_pem, ok.key_pem, b"\x00\xff garbage"


def _other_key(ok: ClientCredentials, ca: ChaincodeCA) -> Supplied:
    return ok.cert_pem, ca.issue().key_pem, ok.root_pem


def _expired(ok: ClientCredentials, ca: ChaincodeCA) -> Supplied:
    old = ca.issue(now=datetime.now(UTC) - 3 * DAY)
    return old.cert_pem, old.key_pem, ok.root_pem


def _server_only(ok: ClientCredentials, _ca: ChaincodeCA) -> Supplied:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    return _pem(cert), _pkcs8_pem(key), ok.root_pem


def _encrypted_key(ok: ClientCredentials, _ca: ChaincodeCA) -> Supplied:
    key = serialization.load_der_private_key(_key_der(ok), None)
    locked = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    return ok.cert_pem, locked, ok.root_pem


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (_garbage_cert, "tls.client_cert"),
        (_garbage_key, "tls.client_key"),
        (_garbage_root, "tls.root_cert"),
        (_other_key, "tls.client_key"),
        (_expired, "tls.client_cert"),
        (_server_only, "tls.client_cert"),
        (_encrypted_key, "tls.client_key"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_flawed_supplied_pem_raises_invalid_request_naming_the_field(
    make: Callable[[ClientCredentials, ChaincodeCA], Supplied],
    field: str,
    ca: ChaincodeCA,
    issued: ClientCredentials,
) -> None:
    """Garbage, a mismatched or encrypted key, an expired or server-only cert name their field."""
    cert_pem, key_pem, root_pem = make(issued, ca)
    with pytest.raises(InvalidRequest) as caught:
        validate_supplied(cert_pem, key_pem, root_pem)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_supplied_cert_without_extended_key_usage_counts_as_a_client_cert() -> None:
    """A certificate with no EKU extension may be used for anything, so it is accepted."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem = _pem(_self_signed(key, eku=None))
    creds = validate_supplied(cert_pem, _sec1_pem(key), cert_pem)
    assert creds.key_pem == _sec1_pem(key)


# --- Keys stay out of every repr, str and error.


def test_repr_and_str_of_credentials_and_ca_never_show_the_key(
    ca: ChaincodeCA, issued: ClientCredentials
) -> None:
    """Both repr and str redact the key; they show the certificate hash instead."""
    for text in (repr(issued), str(issued), f"{issued}", repr([issued])):
        _assert_hides_key(text, issued.key_pem)
        assert "<redacted>" in text
        assert issued.cert_sha256.hex() in text
    for text in (repr(ca), str(ca)):
        assert "PRIVATE KEY" not in text
        assert "<redacted>" in text


@pytest.mark.parametrize(
    "swap", ["key as cert", "key as root", "truncated key", "other key"], ids=str
)
def test_validation_errors_never_quote_key_material(
    swap: str, ca: ChaincodeCA, issued: ClientCredentials
) -> None:
    """However a key is misplaced or damaged, the error text and its chain carry none of it."""
    key_pem = issued.key_pem
    cert_pem, given_key, root_pem = issued.cert_pem, key_pem, issued.root_pem
    if swap == "key as cert":
        cert_pem = key_pem
    elif swap == "key as root":
        root_pem = key_pem
    elif swap == "truncated key":
        given_key = key_pem[:-40]
    else:
        cert_pem = ca.issue().cert_pem
    with pytest.raises(InvalidRequest) as caught:
        validate_supplied(cert_pem, given_key, root_pem)
    _assert_hides_key(str(caught.value) + repr(caught.value), key_pem)
    # No chained exception would be printed under it (a lower library's text might quote).
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__
