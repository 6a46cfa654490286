"""The chaincode CA: generated in memory as the peer's, or configured; it issues per launch.

Certificates are made as Fabric's tlsgen makes them (key usages, extensions in Go's
order and criticality, Go's subject key id and serials), so the DER reads like Fabric's.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ccdaemon.runtime.certs.credentials import ClientCredentials
from ccdaemon.runtime.certs.encoding import (
    Unusable,
    fabric_key_pem,
    load_private_key,
    spki,
    validity_bound,
)
from ccdaemon.runtime.errors import LaunchError

if TYPE_CHECKING:
    from pathlib import Path

# Fabric's client certificates are valid from a day before issue to a day after.
CLIENT_VALIDITY = timedelta(hours=24)
# Go's tlsgen adds 24*365*10 hours: ten years with no leap days.
CA_VALIDITY = timedelta(days=3650)

# What may sign client certificates: the key types Go's x509.CreateCertificate signs with.
CAKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class InvalidCA(LaunchError):
    """Raised when the configured chaincode CA cannot be read or cannot sign client certs."""


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
            cert_spki = spki(cert.public_key())
        except (ValueError, UnsupportedAlgorithm):
            raise InvalidCA("the CA certificate has an unsupported public key") from None
        if spki(key.public_key()) != cert_spki:
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
                "the CA certificate is valid only from "
                f"{validity_bound(cert, after=False)} to {validity_bound(cert)}"
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
            key = load_private_key(key_pem)
        except Unusable as exc:
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
            key_pem=fabric_key_pem(key),
            root_pem=self._cert_pem,
        )

    def __repr__(self) -> str:
        subject = self._cert.subject.rfc4514_string({NameOID.SERIAL_NUMBER: "SERIALNUMBER"})
        return f"ChaincodeCA(subject={subject!r}, key=<redacted>)"

    __str__ = __repr__


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


def _serial() -> int:
    # Go draws from [0, 2^128); 0 is excluded here because X.509 (and cryptography) want a
    # positive serial. The difference is one value in 2^128.
    return secrets.randbelow((1 << 128) - 1) + 1


def _second(now: datetime | None) -> datetime:
    # X.509 times hold whole seconds; dropping the rest keeps the window exactly ±24h.
    return (now or datetime.now(UTC)).replace(microsecond=0)
