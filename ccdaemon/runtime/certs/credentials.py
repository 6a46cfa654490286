"""The chaincode TLS files a launch uses, and the check of files a caller supplies.

A chaincode's credentials are its client certificate and key and the root it trusts
for the peer, whether this daemon's CA issued them or the caller gave them; the peer
finds the chaincode by the certificate's hash (``cert_sha256``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID

from ccdaemon.runtime.certs.encoding import (
    Unusable,
    load_private_key,
    pem_blocks,
    spki,
    validity_bound,
)
from ccdaemon.runtime.errors import InvalidRequest

CLIENT_CERT_FIELD = "tls.client_cert"
CLIENT_KEY_FIELD = "tls.client_key"
ROOT_CERT_FIELD = "tls.root_cert"


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
            (der for label, der in pem_blocks(self.cert_pem) if label == "CERTIFICATE"), None
        )
        if leaf is None:
            raise ValueError("cert_pem holds no PEM certificate")
        object.__setattr__(self, "cert_sha256", hashlib.sha256(leaf).digest())

    def __repr__(self) -> str:
        return f"ClientCredentials(cert_sha256={self.cert_sha256.hex()}, key_pem=<redacted>)"

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
        key = load_private_key(key_pem)
    except Unusable as exc:
        raise InvalidRequest(CLIENT_KEY_FIELD, str(exc)) from None
    try:
        leaf_spki = spki(leaf.public_key())
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidRequest(CLIENT_CERT_FIELD, "has an unsupported public key") from None
    if spki(key.public_key()) != leaf_spki:
        raise InvalidRequest(CLIENT_KEY_FIELD, f"does not match {CLIENT_CERT_FIELD}")
    _check_client_use(leaf)
    now = now or datetime.now(UTC)
    if now < leaf.not_valid_before_utc:
        raise InvalidRequest(
            CLIENT_CERT_FIELD, f"is not valid before {validity_bound(leaf, after=False)}"
        )
    if now > leaf.not_valid_after_utc:
        raise InvalidRequest(CLIENT_CERT_FIELD, f"expired at {validity_bound(leaf)}")
    return ClientCredentials(cert_pem=cert_pem, key_pem=key_pem, root_pem=root_pem)


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
