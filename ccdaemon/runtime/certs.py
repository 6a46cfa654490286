"""Chaincode TLS certificates: the peer's chaincode CA and one client certificate per launch.

Fabric's peer makes a CA in memory at start (common/crypto/tlsgen) and, for each launch, a
short-lived client certificate that the chaincode presents when it registers; the peer
finds the chaincode by sha256 of that certificate's DER (core/chaincode/accesscontrol).
This module issues the same certificates and checks the ones a caller supplies instead.

Private keys stay in memory: no file is written, and no log line, repr or error message
shows one. A configured CA's key is read from its file, never written back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ccdaemon.runtime.errors import InvalidRequest, LaunchError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

# Fabric's client certificates are valid from a day before issue to a day after.
CLIENT_VALIDITY = timedelta(hours=24)
# Go's tlsgen adds 24*365*10 hours: ten years with no leap days.
CA_VALIDITY = timedelta(days=3650)

CLIENT_CERT_FIELD = "tls.client_cert"
CLIENT_KEY_FIELD = "tls.client_key"
ROOT_CERT_FIELD = "tls.root_cert"

# What may sign client certificates: the key types Go's x509.CreateCertificate signs with.
CAKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_PEM_BLOCK = re.compile(rb"-----BEGIN ([^\r\n-]+)-----(.*?)-----END \1-----", re.DOTALL)


class InvalidCA(LaunchError):
    """Raised when the configured chaincode CA cannot be read or cannot sign client certs."""


@dataclass(frozen=True, slots=True, repr=False)
class ClientCredentials:
    """The TLS files of one chaincode: its client certificate and key, and the root to trust.

    Attributes:
        cert_pem: The client certificate, PEM (leaf first, then any chain).
        key_pem: The client's private key, PEM. Neither repr nor str shows it.
        root_pem: The certificate(s) the chaincode trusts for the peer, PEM.
        cert_sha256: SHA-256 of the leaf certificate's DER: what Fabric's peer looks the
            chaincode up by when it registers.
    """

    cert_pem: bytes
    key_pem: bytes
    root_pem: bytes
    cert_sha256: bytes = field(init=False)

    def __post_init__(self) -> None:
        leaf = next(
            (der for label, der in _pem_blocks(self.cert_pem) if label == "CERTIFICATE"), None
        )
        if leaf is None:
            raise ValueError("cert_pem holds no PEM certificate")
        object.__setattr__(self, "cert_sha256", hashlib.sha256(leaf).digest())

    def __repr__(self) -> str:
        return f"ClientCredentials(cert_sha256={self.cert_sha256.hex()}, key_pem=<redacted>)"

    __str__ = __repr__


class ChaincodeCA:
    """The chaincode CA: signs one client certificate for each chaincode launch."""

    __slots__ = ("_cert", "_cert_pem", "_key", "_ski")

    def __init__(self, cert: x509.Certificate, key: CAKey, *, now: datetime | None = None) -> None:
        """Check that ``key`` signs for ``cert`` and that ``cert`` is a valid CA.

        Args:
            cert: The CA certificate.
            key: The CA's private key.
            now: The time to check the CA's validity at; the current time if omitted.

        Raises:
            InvalidCA: The key does not match, or the certificate is no CA or is expired.
        """
        try:
            cert_spki = _spki(cert.public_key())
        except (ValueError, UnsupportedAlgorithm):
            raise InvalidCA("the CA certificate has an unsupported public key") from None
        if _spki(key.public_key()) != cert_spki:
            raise InvalidCA("the CA key does not match the CA certificate")
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        except ValueError:
            raise InvalidCA("the CA certificate has malformed extensions") from None
        if constraints is None or not constraints.ca:
            raise InvalidCA("the CA certificate is not a CA (basicConstraints CA:TRUE missing)")
        now = now or datetime.now(UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise InvalidCA(
                f"the CA certificate is valid only from {_when(cert, after=False)} to {_when(cert)}"
            )
        self._cert = cert
        self._key = key
        self._cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self._ski = _subject_key_id(cert)

    @classmethod
    def generate(cls, *, now: datetime | None = None) -> ChaincodeCA:
        """Make a CA in memory as Fabric's peer does at every start (tlsgen.NewCA).

        Self-signed ECDSA P-256, valid from a day ago for ten years; key usage
        DigitalSignature, KeyEncipherment, CertSign and CRLSign; extended key usage
        ClientAuth and ServerAuth (Fabric 2.x; 1.4 used anyExtendedKeyUsage); basic
        constraints CA:TRUE with no path length; subject holding only a random serial.

        Args:
            now: The issue time; the current time if omitted.

        Returns:
            A CA whose key exists only in this process.
        """
        now = _second(now)
        key = ec.generate_private_key(ec.SECP256R1())
        serial = _serial()
        name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, str(serial))])
        usage = _key_usage(cert_sign=True)
        eku = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - CLIENT_VALIDITY)
            .not_valid_after(now + CA_VALIDITY)
            # Extensions in Go's order and with Go's criticality, so the DER reads like Fabric's.
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_fabric_ski(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key, now=now)

    @classmethod
    def from_files(cls, cert_file: Path, key_file: Path) -> ChaincodeCA:
        """Load a configured CA from a PEM certificate file and a PEM key file.

        The key may be PKCS#8, SEC 1 or PKCS#1, under any "... PRIVATE KEY" label, as Go's
        tls.X509KeyPair accepts; it must be ECDSA or RSA and unencrypted.

        Args:
            cert_file: The CA certificate, PEM.
            key_file: The CA's private key, PEM.

        Returns:
            The loaded CA.

        Raises:
            InvalidCA: A file cannot be read or parsed, or the pair is no valid CA.
        """
        cert_pem = _read(cert_file)
        key_pem = _read(key_file)
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            raise InvalidCA(f"{cert_file}: not a PEM certificate") from None
        try:
            key = _load_private_key(key_pem)
        except _Unusable as exc:
            raise InvalidCA(f"{key_file}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise InvalidCA(f"{key_file}: a CA key must be ECDSA or RSA")
        return cls(cert, key)

    @property
    def certificate(self) -> x509.Certificate:
        """The CA certificate."""
        return self._cert

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate, PEM: the chaincode's ``peer.crt`` when the CA also signs the peer."""
        return self._cert_pem

    def issue(self, *, now: datetime | None = None) -> ClientCredentials:
        """Issue a client certificate as Fabric's peer does for each launch.

        ECDSA P-256; valid from ``now - 24h`` to ``now + 24h``; key usage KeyEncipherment and
        DigitalSignature; extended key usage ClientAuth; subject holding only a random
        128-bit serial, which is also the certificate's serial number.

        Args:
            now: The issue time; the current time if omitted.

        Returns:
            The certificate, its key and this CA's certificate as the root.
        """
        now = _second(now)
        key = ec.generate_private_key(ec.SECP256R1())
        serial = _serial()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, str(serial))]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - CLIENT_VALIDITY)
            .not_valid_after(now + CLIENT_VALIDITY)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(_fabric_ski(key.public_key()), critical=False)
        )
        # Go copies the issuer's subject key id into the authority key id, if it has one.
        if self._ski is not None:
            aki = x509.AuthorityKeyIdentifier(self._ski, None, None)
            builder = builder.add_extension(aki, critical=False)
        cert = builder.sign(self._key, _signature_hash(self._key))
        return ClientCredentials(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=_fabric_key_pem(key),
            root_pem=self._cert_pem,
        )

    def __repr__(self) -> str:
        subject = self._cert.subject.rfc4514_string({NameOID.SERIAL_NUMBER: "SERIALNUMBER"})
        return f"ChaincodeCA(subject={subject!r}, key=<redacted>)"

    __str__ = __repr__


def validate_supplied(
    client_cert: bytes | str,
    client_key: bytes | str,
    root_cert: bytes | str,
    *,
    now: datetime | None = None,
) -> ClientCredentials:
    """Check TLS files a caller supplies instead of having ccdaemon issue them.

    The client certificate must parse, be valid now, and allow client authentication
    (ClientAuth or anyExtendedKeyUsage in its extended key usage, or none at all: Go's
    verifier reads a missing extension as any use). The key must parse as Go's
    tls.X509KeyPair would parse it and match the certificate. The root must hold at least
    one certificate. Messages never quote the input, so no key material reaches them.

    Args:
        client_cert: The client certificate, PEM, leaf first.
        client_key: The client's private key, PEM.
        root_cert: The root certificate(s) the chaincode trusts, PEM.
        now: The time to check validity at; the current time if omitted.

    Returns:
        The supplied files, unchanged, as credentials.

    Raises:
        InvalidRequest: Naming ``tls.client_cert``, ``tls.client_key`` or ``tls.root_cert``.
    """
    cert_pem = _ascii(client_cert, CLIENT_CERT_FIELD)
    key_pem = _ascii(client_key, CLIENT_KEY_FIELD)
    root_pem = _ascii(root_cert, ROOT_CERT_FIELD)
    leaf = _load_certificates(cert_pem, CLIENT_CERT_FIELD)[0]
    _load_certificates(root_pem, ROOT_CERT_FIELD)
    try:
        key = _load_private_key(key_pem)
    except _Unusable as exc:
        raise InvalidRequest(CLIENT_KEY_FIELD, str(exc)) from None
    try:
        leaf_spki = _spki(leaf.public_key())
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidRequest(CLIENT_CERT_FIELD, "has an unsupported public key") from None
    if _spki(key.public_key()) != leaf_spki:
        raise InvalidRequest(CLIENT_KEY_FIELD, f"does not match {CLIENT_CERT_FIELD}")
    _check_client_use(leaf)
    now = now or datetime.now(UTC)
    if now < leaf.not_valid_before_utc:
        raise InvalidRequest(CLIENT_CERT_FIELD, f"is not valid before {_when(leaf, after=False)}")
    if now > leaf.not_valid_after_utc:
        raise InvalidRequest(CLIENT_CERT_FIELD, f"expired at {_when(leaf)}")
    return ClientCredentials(cert_pem=cert_pem, key_pem=key_pem, root_pem=root_pem)


class _Unusable(Exception):
    """A private key that cannot be used; the message is safe to show (it quotes nothing)."""


def _fabric_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Fabric's quirk, kept because chaincode shims read exactly this: tlsgen marshals the
    # key as PKCS#8 but labels the PEM "EC PRIVATE KEY" (a SEC 1 label). Go's
    # tls.X509KeyPair and OpenSSL (the Node and Java shims, Python's ssl) parse the body
    # whatever the label says; cryptography's load_pem_private_key does not, hence
    # _load_private_key below.
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return _pem("EC PRIVATE KEY", der)


def _pem(label: str, der: bytes) -> bytes:
    # 64 columns, as Go's pem.EncodeToMemory writes them.
    body = base64.b64encode(der)
    lines = b"".join(body[at : at + 64] + b"\n" for at in range(0, len(body), 64))
    return f"-----BEGIN {label}-----\n".encode() + lines + f"-----END {label}-----\n".encode()


def _pem_blocks(data: bytes) -> Iterator[tuple[str, bytes | None]]:
    """Yield (label, DER) per PEM block; DER is None when the body is not plain base64."""
    for match in _PEM_BLOCK.finditer(data):
        try:
            der = base64.b64decode(b"".join(match.group(2).split()), validate=True)
        except binascii.Error:
            # Headers (e.g. legacy "Proc-Type: 4,ENCRYPTED") or damage: unusable either way.
            der = None
        yield match.group(1).decode("ascii", "replace"), der


def _load_private_key(pem: bytes) -> PrivateKeyTypes:
    """Parse the first "... PRIVATE KEY" block as Go's tls.X509KeyPair does, label aside."""
    for label, der in _pem_blocks(pem):
        if label != "PRIVATE KEY" and not label.endswith(" PRIVATE KEY"):
            continue
        if label.startswith("ENCRYPTED"):
            raise _Unusable("is encrypted; only unencrypted keys are supported")
        if der is None:
            raise _Unusable("is not valid PEM (bad base64, or PEM headers such as encryption)")
        try:
            key = serialization.load_der_private_key(der, password=None)
        except TypeError:
            raise _Unusable("is encrypted; only unencrypted keys are supported") from None
        except (ValueError, UnsupportedAlgorithm):
            # cryptography's message is left out: it is no help and we promise to quote nothing.
            raise _Unusable("is not a PKCS#8, SEC 1 or PKCS#1 private key") from None
        if not isinstance(
            key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise _Unusable("is not an ECDSA, RSA or Ed25519 key, which is all Go's TLS supports")
        return key
    raise _Unusable("holds no PEM private key")


def _load_certificates(pem: bytes, name: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        # Not quoted: a caller who swapped the fields would see their key echoed back.
        raise InvalidRequest(name, "is not a PEM certificate") from None
    return certs


def _check_client_use(leaf: x509.Certificate) -> None:
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    except ValueError:
        raise InvalidRequest(CLIENT_CERT_FIELD, "has malformed extensions") from None
    allowed = {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
    if allowed.isdisjoint(eku):
        raise InvalidRequest(CLIENT_CERT_FIELD, "is not a client certificate (no ClientAuth usage)")


def _ascii(value: bytes | str, name: str) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        # Re-raised bare: UnicodeEncodeError's own text would quote the input.
        raise InvalidRequest(name, "is not PEM (it has non-ASCII characters)") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidCA(f"{path}: cannot read: {exc.strerror}") from None


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _fabric_ski(public: ec.EllipticCurvePublicKey) -> x509.SubjectKeyIdentifier:
    # tlsgen's computeSKI: all 32 bytes of SHA-256 over the uncompressed point, not the
    # 20-byte SHA-1 that cryptography's from_public_key would give.
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return x509.SubjectKeyIdentifier(hashlib.sha256(point).digest())


def _subject_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _signature_hash(key: CAKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    # Go's x509.CreateCertificate picks the hash from the key: SHA-384 for P-384, SHA-512
    # for P-521, SHA-256 otherwise.
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if isinstance(key.curve, ec.SECP384R1):
            return hashes.SHA384()
        if isinstance(key.curve, ec.SECP521R1):
            return hashes.SHA512()
    return hashes.SHA256()


def _spki(public: object) -> bytes:
    if not isinstance(
        public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
    ):
        raise UnsupportedAlgorithm("unsupported public key type")
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _serial() -> int:
    # Go draws from [0, 2^128); 0 is excluded here because X.509 (and cryptography) want a
    # positive serial. The difference is one value in 2^128.
    return secrets.randbelow((1 << 128) - 1) + 1


def _second(now: datetime | None) -> datetime:
    # X.509 times hold whole seconds; dropping the rest keeps the window exactly ±24h.
    return (now or datetime.now(UTC)).replace(microsecond=0)


def _when(cert: x509.Certificate, *, after: bool = True) -> str:
    moment = cert.not_valid_after_utc if after else cert.not_valid_before_utc
    return moment.isoformat()
