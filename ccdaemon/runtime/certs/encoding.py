"""Keys and certificates as Go's crypto writes and reads them, and as Fabric's shims expect.

PEM as ``pem.EncodeToMemory`` writes it; a private key under any "... PRIVATE KEY"
label, as ``tls.X509KeyPair`` reads it; Fabric's own label for its PKCS#8 keys. Nothing
here quotes key material in a message.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

if TYPE_CHECKING:
    from collections.abc import Iterator

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

_PEM_BLOCK = re.compile(rb"-----BEGIN ([^\r\n-]+)-----(.*?)-----END \1-----", re.DOTALL)


class Unusable(Exception):
    """A private key that cannot be used; the message is safe to show (it quotes nothing)."""


def fabric_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """``key`` as Fabric's tlsgen writes a chaincode's key: PKCS#8 under a SEC 1 label."""
    # Fabric's quirk, kept because chaincode shims read exactly this: tlsgen marshals the
    # key as PKCS#8 but labels the PEM "EC PRIVATE KEY" (a SEC 1 label). Go's
    # tls.X509KeyPair and OpenSSL (the Node and Java shims, Python's ssl) parse the body
    # whatever the label says; cryptography's load_pem_private_key does not, hence
    # load_private_key below.
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


def pem_blocks(data: bytes) -> Iterator[tuple[str, bytes | None]]:
    """Yield (label, DER) per PEM block; DER is None when the body is not plain base64."""
    for match in _PEM_BLOCK.finditer(data):
        try:
            der = base64.b64decode(b"".join(match.group(2).split()), validate=True)
        except binascii.Error:
            # Headers (e.g. legacy "Proc-Type: 4,ENCRYPTED") or damage: unusable either way.
            der = None
        yield match.group(1).decode("ascii", "replace"), der


def load_private_key(pem: bytes) -> PrivateKeyTypes:
    """Parse the first "... PRIVATE KEY" block as Go's tls.X509KeyPair does, label aside.

    Raises:
        Unusable: there is none, or it is encrypted, damaged or of a type Go's TLS lacks.
    """
    for label, der in pem_blocks(pem):
        if label != "PRIVATE KEY" and not label.endswith(" PRIVATE KEY"):
            continue
        if label.startswith("ENCRYPTED"):
            raise Unusable("is encrypted; only unencrypted keys are supported")
        if der is None:
            raise Unusable("is not valid PEM (bad base64, or PEM headers such as encryption)")
        try:
            key = serialization.load_der_private_key(der, password=None)
        except TypeError:
            raise Unusable("is encrypted; only unencrypted keys are supported") from None
        except (ValueError, UnsupportedAlgorithm):
            # cryptography's message is left out: it is no help and we promise to quote nothing.
            raise Unusable("is not a PKCS#8, SEC 1 or PKCS#1 private key") from None
        if not isinstance(
            key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise Unusable("is not an ECDSA, RSA or Ed25519 key, which is all Go's TLS supports")
        return key
    raise Unusable("holds no PEM private key")


def spki(public: object) -> bytes:
    """The DER SubjectPublicKeyInfo of a public key, to compare a key with a certificate.

    Raises:
        UnsupportedAlgorithm: not an ECDSA, RSA or Ed25519 key.
    """
    if not isinstance(
        public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
    ):
        raise UnsupportedAlgorithm("unsupported public key type")
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def validity_bound(cert: x509.Certificate, *, after: bool = True) -> str:
    """The end of ``cert``'s validity (its start unless ``after``), ISO 8601, for a message."""
    moment = cert.not_valid_after_utc if after else cert.not_valid_before_utc
    return moment.isoformat()
