"""Chaincode TLS certificates: the peer's chaincode CA and one client certificate per launch.

Fabric's peer makes a CA in memory at start (common/crypto/tlsgen) and, for each launch, a
short-lived client certificate that the chaincode presents when it registers; the peer
finds the chaincode by sha256 of that certificate's DER (core/chaincode/accesscontrol).
This package issues the same certificates (``ca``) and checks the ones a caller supplies
instead (``credentials``); ``encoding`` reads and writes keys as Go does.

Private keys stay in memory: no file is written, and no log line, repr or error message
shows one. A configured CA's key is read from its file, never written back.
"""

from ccdaemon.runtime.certs.ca import ChaincodeCA, InvalidCA
from ccdaemon.runtime.certs.credentials import ClientCredentials, validate_supplied

__all__ = ["ChaincodeCA", "ClientCredentials", "InvalidCA", "validate_supplied"]
