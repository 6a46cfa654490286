"""Fabric's LaunchConfig: the chaincode container's command, environment and TLS files.

Fabric 2.x (core/container/dockercontroller, dc25 GetArgs/GetEnv) and 1.4
(core/chaincode/container_runtime) differ in the environment's order, the TLS files'
layout, and the MSP id, so both layouts are here, chosen by ``layout``.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ccdaemon.runtime.errors import InvalidRequest
from ccdaemon.runtime.platforms import platform_for

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ccdaemon.runtime.certs import ClientCredentials

Layout = Literal["1.4", "2.x"]

TLS_DIR = "/etc/hyperledger/fabric"
CLIENT_KEY_PATH = f"{TLS_DIR}/client.key"
CLIENT_CERT_PATH = f"{TLS_DIR}/client.crt"
CLIENT_KEY_FILE = f"{TLS_DIR}/client_pem.key"
CLIENT_CERT_FILE = f"{TLS_DIR}/client_pem.crt"
ROOT_CERT_FILE = f"{TLS_DIR}/peer.crt"

#: Fabric's sample core.yaml chaincode.logging.format.
DEFAULT_LOG_FORMAT = (
    "%{color}%{time:2006-01-02 15:04:05.000 MST} [%{module}] %{shortfunc} -> "
    "%{level:.4s} %{id:03x}%{color:reset} %{message}"
)
_MSPID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*")
_NODE_14 = "cd /usr/local/src; npm start -- --peer.address {address}"


@dataclass(frozen=True, slots=True)
class ChaincodeLogging:
    """core.yaml's chaincode.logging: passed to every chaincode as CORE_CHAINCODE_LOGGING_*."""

    level: str = "info"
    shim: str = "warning"
    format: str = DEFAULT_LOG_FORMAT

    def env(self) -> list[str]:
        """The three variables, in Fabric's order."""
        return [
            f"CORE_CHAINCODE_LOGGING_LEVEL={self.level}",
            f"CORE_CHAINCODE_LOGGING_SHIM={self.shim}",
            f"CORE_CHAINCODE_LOGGING_FORMAT={self.format}",
        ]


@dataclass(frozen=True, slots=True)
class LaunchConfig:
    """What the container runs with. ``files`` holds the client key and is kept out of repr."""

    args: tuple[str, ...]
    env: tuple[str, ...]
    files: Mapping[str, bytes] = field(repr=False)


def launch_config(  # noqa: PLR0913 -- Fabric's inputs, each named
    *,
    ccid: str,
    cc_type: str,
    peer_address: str,
    tls: ClientCredentials | None,
    mspid: str = "",
    layout: Layout = "2.x",
    logging: ChaincodeLogging | None = None,
) -> LaunchConfig:
    """Build Fabric's LaunchConfig for one chaincode.

    Args:
        ccid: the chaincode id (2.x package id, or 1.4 ``name:version``), checked by naming.
        cc_type: golang, car, java or node, in any case.
        peer_address: ``host:port`` the chaincode dials.
        tls: the chaincode's TLS credentials, or None when the peer runs without TLS.
        mspid: the peer's local MSP id (2.x's CORE_PEER_LOCALMSPID; required there).
        layout: ``2.x`` (five TLS files, MSP id) or ``1.4`` (three files).
        logging: chaincode.logging settings.

    Raises:
        UnknownChaincodeType: ``cc_type`` is not one Fabric runs (field ``type``).
        InvalidRequest: a bad peer address or MSP id (the field names which).
    """
    args = _args(cc_type, peer_address, layout)
    logging_env = (logging or ChaincodeLogging()).env()
    if layout == "1.4":
        env = [*logging_env, f"CORE_CHAINCODE_ID_NAME={ccid}", *_tls_env(tls, layout)]
        return LaunchConfig(tuple(args), tuple(env), _files(tls, layout))
    if not mspid:
        raise InvalidRequest(
            "mspid",
            "is required (Fabric 2.x gives every chaincode CORE_PEER_LOCALMSPID): "
            "pass it, or set runtime.mspid (core.yaml peer.localMspId)",
        )
    if not _MSPID.fullmatch(mspid):
        raise InvalidRequest("mspid", f"must be an MSP id (letters, digits, ._-): {mspid!r}")
    env = [
        f"CORE_CHAINCODE_ID_NAME={ccid}",
        *logging_env,
        *_tls_env(tls, layout),
        f"CORE_PEER_LOCALMSPID={mspid}",
    ]
    return LaunchConfig(tuple(args), tuple(env), _files(tls, layout))


def _args(cc_type: str, peer_address: str, layout: Layout) -> list[str]:
    kind = cc_type.lower()
    if kind == "car":  # 2.x builds no CAR packages, but GetArgs still runs them like Go
        kind = "golang"
    args = platform_for(kind).launch_args(peer_address)  # checks the type and address
    if layout == "1.4" and kind == "node":
        return ["/bin/sh", "-c", _NODE_14.format(address=peer_address)]
    return args


def _tls_env(tls: ClientCredentials | None, layout: Layout) -> list[str]:
    if tls is None:
        return ["CORE_PEER_TLS_ENABLED=false"]
    env = [
        "CORE_PEER_TLS_ENABLED=true",
        f"CORE_TLS_CLIENT_KEY_PATH={CLIENT_KEY_PATH}",
        f"CORE_TLS_CLIENT_CERT_PATH={CLIENT_CERT_PATH}",
    ]
    if layout == "2.x":
        env += [
            f"CORE_TLS_CLIENT_KEY_FILE={CLIENT_KEY_FILE}",
            f"CORE_TLS_CLIENT_CERT_FILE={CLIENT_CERT_FILE}",
        ]
    return [*env, f"CORE_PEER_TLS_ROOTCERT_FILE={ROOT_CERT_FILE}"]


def _files(tls: ClientCredentials | None, layout: Layout) -> dict[str, bytes]:
    if tls is None:
        return {}
    # "we goofily base64 encode 2 of the TLS artifacts but not the other for strange
    # historical reasons" (Fabric); the shim expects exactly that.
    files = {
        CLIENT_KEY_PATH: base64.b64encode(tls.key_pem),
        CLIENT_CERT_PATH: base64.b64encode(tls.cert_pem),
    }
    if layout == "2.x":
        files |= {CLIENT_KEY_FILE: tls.key_pem, CLIENT_CERT_FILE: tls.cert_pem}
    files[ROOT_CERT_FILE] = tls.root_pem
    return files
