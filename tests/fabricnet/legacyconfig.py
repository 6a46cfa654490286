"""Fabric 1.4's configuration for the kit's legacy network (tests/fabricnet/legacy.py).

The release's programs, sampleconfig and GOPATH shim closure, unpacked into the cache;
1.4's configtx.yaml shape (a system channel with a solo orderer and a consortium, and a
channel profile of that consortium); and orderer.yaml and core.yaml as edited copies of
1.4.12's sampleconfig, in which only addresses, TLS paths, data directories, the
genesis file and ``vm.endpoint`` change: the image names stay stock.
"""

from __future__ import annotations

import tarfile
from typing import TYPE_CHECKING, Any

import yaml

from tests.fabricnet import configs
from tests.fabricnet.dist import (
    CACHE,
    SHARED,
    Distribution,
    KitError,
    Release,
    cached,
    file_stamp,
    unpacked,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

LEGACY_VERSION = "1.4.12"
#: The consortium of the system channel, which the application channel belongs to.
CONSORTIUM = "SampleConsortium"


def legacy_distribution(version: str = LEGACY_VERSION) -> Distribution:
    """Unpack (once) Fabric ``version``'s programs, sampleconfig and GOPATH shim closure.

    ``shim`` is a GOPATH root: the closure (laid out for ``$GOPATH/src``) is its ``src``.

    Raises:
        KitError: the release or one of its archives is not in the shared directory.
    """
    source = SHARED / f"v{version}"
    if not source.is_dir():
        raise KitError(f"no Fabric {version} at {source} (set CCDAEMON_FABRIC_SHARED)")
    cache = CACHE / version
    binaries = unpacked(source / "bin.tar.xz", cache / "bin")
    sampleconfig = unpacked(source / "sampleconfig.tar.gz", cache / "sampleconfig")
    shim_archive = source / "go-shim-gopath.tar.xz"
    if not shim_archive.is_file():
        raise KitError(f"missing {shim_archive}")

    def make(tmp: Path) -> None:
        with tarfile.open(shim_archive) as tar:
            tar.extractall(tmp / "src", filter="tar")

    shim = cached(cache / "gopath", file_stamp(shim_archive), make)
    return Distribution(
        Release(version), binaries / "bin", sampleconfig / "sampleconfig", shim, cache
    )


def _policies(member: str, admin: str) -> dict[str, Any]:
    def rule(text: str) -> dict[str, str]:
        return {"Type": "Signature", "Rule": text}

    return {"Readers": rule(member), "Writers": rule(member), "Admins": rule(admin)}


def configtx(crypto: configs.Crypto, ports: configs.Ports) -> dict[str, Any]:
    """1.4's configtx.yaml: profile ``System`` (solo, a consortium) and ``Channel``."""
    standard = {
        "Readers": {"Type": "ImplicitMeta", "Rule": "ANY Readers"},
        "Writers": {"Type": "ImplicitMeta", "Rule": "ANY Writers"},
        "Admins": {"Type": "ImplicitMeta", "Rule": "MAJORITY Admins"},
    }
    orderer_msp, org_msp = configs.ORDERER_MSP, configs.ORG_MSP
    orderer_org = {
        "Name": "OrdererOrg",
        "ID": orderer_msp,
        "MSPDir": str(crypto.orderer_org / "msp"),
        "Policies": _policies(f"OR('{orderer_msp}.member')", f"OR('{orderer_msp}.admin')"),
    }
    org1 = {
        "Name": "Org1",
        "ID": org_msp,
        "MSPDir": str(crypto.peer_org / "msp"),
        "Policies": _policies(f"OR('{org_msp}.member')", f"OR('{org_msp}.admin')"),
    }
    channel_base = {"Policies": standard, "Capabilities": {"V1_4_3": True}}
    system = {
        **channel_base,
        "Orderer": {
            "OrdererType": "solo",
            "Addresses": [f"127.0.0.1:{ports.orderer}"],
            "BatchTimeout": "250ms",
            "BatchSize": {
                "MaxMessageCount": 10,
                "AbsoluteMaxBytes": "10 MB",
                "PreferredMaxBytes": "2 MB",
            },
            "Organizations": [orderer_org],
            "Policies": {**standard, "BlockValidation": standard["Writers"]},
            "Capabilities": {"V1_4_2": True},
        },
        "Consortiums": {CONSORTIUM: {"Organizations": [org1]}},
    }
    channel = {
        **channel_base,
        "Consortium": CONSORTIUM,
        "Application": {
            "Organizations": [org1],
            "Policies": standard,
            "Capabilities": {"V1_4_2": True},
        },
    }
    return {"Profiles": {"System": system, "Channel": channel}}


def orderer_yaml(
    dist: Distribution, crypto: configs.Crypto, ports: configs.Ports, *, genesis: Path, data: Path
) -> dict[str, Any]:
    """1.4's orderer.yaml: TLS on, the genesis block from a file, everything on 127.0.0.1."""
    config: dict[str, Any] = yaml.safe_load((dist.sampleconfig / "orderer.yaml").read_text())
    tls = crypto.orderer_node / "tls"
    general = config["General"]
    general.update(
        ListenAddress="127.0.0.1",
        ListenPort=ports.orderer,
        GenesisMethod="file",
        GenesisFile=str(genesis),
        LocalMSPDir=str(crypto.orderer_node / "msp"),
        LocalMSPID=configs.ORDERER_MSP,
    )
    general["TLS"].update(
        Enabled=True,
        PrivateKey=str(tls / "server.key"),
        Certificate=str(tls / "server.crt"),
        RootCAs=[str(tls / "ca.crt")],
    )
    general["BCCSP"]["SW"]["FileKeyStore"]["KeyStore"] = None
    config["FileLedger"]["Location"] = str(data / "ledger")
    config["Operations"]["ListenAddress"] = f"127.0.0.1:{ports.orderer_operations}"
    return config


def core_yaml(
    dist: Distribution,
    crypto: configs.Crypto,
    ports: configs.Ports,
    *,
    data: Path,
    network_id: str,
    vm_endpoint: str,
    overrides: Mapping[str, Any],
) -> dict[str, Any]:
    """1.4's core.yaml with only what this peer must change (images stay stock)."""
    config: dict[str, Any] = yaml.safe_load((dist.sampleconfig / "core.yaml").read_text())
    tls = crypto.peer_node / "tls"
    address = f"127.0.0.1:{ports.peer}"
    peer = config["peer"]
    peer.update(
        id=configs.PEER_ID,
        networkId=network_id,
        listenAddress=address,
        address=address,
        chaincodeListenAddress=f"127.0.0.1:{ports.chaincode}",
        chaincodeAddress=f"127.0.0.1:{ports.chaincode}",
        fileSystemPath=str(data),
        mspConfigPath=str(crypto.peer_node / "msp"),
        localMspId=configs.ORG_MSP,
    )
    # One peer: it is its org's leader at once rather than after an election.
    peer["gossip"].update(
        bootstrap=address, endpoint=address, useLeaderElection=False, orgLeader=True
    )
    peer["tls"].update(
        enabled=True,
        cert={"file": str(tls / "server.crt")},
        key={"file": str(tls / "server.key")},
        rootcert={"file": str(tls / "ca.crt")},
        clientRootCAs={"files": [str(tls / "ca.crt")]},
    )
    peer["BCCSP"]["SW"]["FileKeyStore"]["KeyStore"] = None
    config["vm"]["endpoint"] = vm_endpoint
    config["operations"]["listenAddress"] = f"127.0.0.1:{ports.peer_operations}"
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return config
