"""The network's configuration: crypto material, the channel, orderer.yaml and core.yaml.

Crypto comes from ``cryptogen`` (cached per release: host names are fixed, ports are not
in certificates); the channel's genesis block from ``configtxgen`` with a configtx.yaml
written here; orderer.yaml and core.yaml are edited copies of the release's sampleconfig
(loaded and dumped with PyYAML, so the release's own defaults stay for every key not
set here). Every path in them is absolute.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.fabricnet.dist import Distribution, KitError, cached, file_stamp

if TYPE_CHECKING:
    from collections.abc import Mapping

ORDERER_DOMAIN = "example.com"
ORG_DOMAIN = "org1.example.com"
ORDERER_MSP = "OrdererMSP"
ORG_MSP = "Org1MSP"
PEER_ID = f"peer0.{ORG_DOMAIN}"
ORDERER_HOST = f"orderer.{ORDERER_DOMAIN}"
#: The builder's name in core.yaml's chaincode.externalBuilders.
BUILDER_NAME = "ccdaemon"

# cryptogen's input. Chaincode containers run with host networking and dial the peer's
# chaincode address 127.0.0.1:PORT with TLS, so the peer's TLS certificate names
# 127.0.0.1 (and localhost); so does the orderer's, which the peer and CLI dial there.
CRYPTO_CONFIG: dict[str, Any] = {
    "OrdererOrgs": [
        {
            "Name": "Orderer",
            "Domain": ORDERER_DOMAIN,
            "EnableNodeOUs": True,
            "Specs": [{"Hostname": "orderer", "SANS": ["localhost", "127.0.0.1"]}],
        }
    ],
    "PeerOrgs": [
        {
            "Name": "Org1",
            "Domain": ORG_DOMAIN,
            "EnableNodeOUs": True,
            "Template": {"Count": 1, "SANS": ["localhost", "127.0.0.1"]},
            "Users": {"Count": 1},
        }
    ],
}


@dataclass(frozen=True)
class Crypto:
    """Paths into cryptogen's output.

    Attributes:
        root: cryptogen's output directory.
    """

    root: Path

    @property
    def orderer_org(self) -> Path:
        """The orderer organisation's directory."""
        return self.root / "ordererOrganizations" / ORDERER_DOMAIN

    @property
    def peer_org(self) -> Path:
        """The peer organisation's directory."""
        return self.root / "peerOrganizations" / ORG_DOMAIN

    @property
    def orderer_node(self) -> Path:
        """The orderer's own msp/ and tls/."""
        return self.orderer_org / "orderers" / ORDERER_HOST

    @property
    def peer_node(self) -> Path:
        """The peer's own msp/ and tls/."""
        return self.peer_org / "peers" / PEER_ID

    @property
    def orderer_ca(self) -> Path:
        """The CA that signed the orderer's TLS certificate (for ``--cafile``)."""
        return self.orderer_node / "tls" / "ca.crt"

    @property
    def peer_ca(self) -> Path:
        """The CA that signed the peer's TLS certificate (for ``--tlsRootCertFiles``)."""
        return self.peer_node / "tls" / "ca.crt"

    @property
    def org_admin_msp(self) -> Path:
        """The org's admin, who runs the peer CLI."""
        return self.peer_org / "users" / f"Admin@{ORG_DOMAIN}" / "msp"

    @property
    def orderer_admin_tls(self) -> Path:
        """The orderer org's admin TLS client pair, for ``osnadmin``."""
        return self.orderer_org / "users" / f"Admin@{ORDERER_DOMAIN}" / "tls"


def crypto(dist: Distribution) -> Crypto:
    """The material of ``cryptogen`` for the network, generated once per release and kept."""
    text = yaml.safe_dump(CRYPTO_CONFIG, sort_keys=True)
    key = f"{file_stamp(Path(dist.program('cryptogen')))}\n{text}"

    def make(tmp: Path) -> None:
        (tmp / "crypto-config.yaml").write_text(text)
        run_tool(
            [
                dist.program("cryptogen"),
                "generate",
                f"--config={tmp / 'crypto-config.yaml'}",
                f"--output={tmp / 'crypto'}",
            ],
            cwd=tmp,
        )

    return Crypto(cached(dist.cache / "crypto", key, make) / "crypto")


@dataclass(frozen=True)
class Ports:
    """The TCP ports of one network, all on 127.0.0.1."""

    orderer: int
    orderer_admin: int
    orderer_operations: int
    peer: int
    chaincode: int
    peer_operations: int


def _signature(rule: str) -> dict[str, str]:
    return {"Type": "Signature", "Rule": rule}


def _implicit(rule: str) -> dict[str, str]:
    return {"Type": "ImplicitMeta", "Rule": rule}


def configtx(dist: Distribution, crypto: Crypto, ports: Ports) -> dict[str, Any]:
    """configtx.yaml's content: profile ``Channel``, one etcdraft orderer and Org1.

    Orderer endpoints are the orderer org's ``OrdererEndpoints``; there is no global
    ``Orderer.Addresses``, which a V3_0 channel refuses.
    """
    orderer_org = {
        "Name": "OrdererOrg",
        "ID": ORDERER_MSP,
        "MSPDir": str(crypto.orderer_org / "msp"),
        "Policies": {
            "Readers": _signature(f"OR('{ORDERER_MSP}.member')"),
            "Writers": _signature(f"OR('{ORDERER_MSP}.member')"),
            "Admins": _signature(f"OR('{ORDERER_MSP}.admin')"),
        },
        "OrdererEndpoints": [f"127.0.0.1:{ports.orderer}"],
    }
    org1 = {
        "Name": "Org1",
        "ID": ORG_MSP,
        "MSPDir": str(crypto.peer_org / "msp"),
        "Policies": {
            "Readers": _signature(f"OR('{ORG_MSP}.admin', '{ORG_MSP}.peer', '{ORG_MSP}.client')"),
            "Writers": _signature(f"OR('{ORG_MSP}.admin', '{ORG_MSP}.client')"),
            "Admins": _signature(f"OR('{ORG_MSP}.admin')"),
            "Endorsement": _signature(f"OR('{ORG_MSP}.peer')"),
        },
    }
    tls = crypto.orderer_node / "tls" / "server.crt"
    standard = {
        "Readers": _implicit("ANY Readers"),
        "Writers": _implicit("ANY Writers"),
        "Admins": _implicit("MAJORITY Admins"),
    }
    channel = {
        "Policies": standard,
        "Capabilities": {dist.release.channel_capability: True},
        "Orderer": {
            "OrdererType": "etcdraft",
            "BatchTimeout": "250ms",
            "BatchSize": {
                "MaxMessageCount": 10,
                "AbsoluteMaxBytes": "10 MB",
                "PreferredMaxBytes": "2 MB",
            },
            "EtcdRaft": {
                "Consenters": [
                    {
                        "Host": "127.0.0.1",
                        "Port": ports.orderer,
                        "ClientTLSCert": str(tls),
                        "ServerTLSCert": str(tls),
                    }
                ],
                "Options": {
                    "TickInterval": "100ms",
                    "ElectionTick": 10,
                    "HeartbeatTick": 1,
                    "MaxInflightBlocks": 5,
                    "SnapshotIntervalSize": "16 MB",
                },
            },
            "Organizations": [orderer_org],
            "Policies": {**standard, "BlockValidation": _implicit("ANY Writers")},
            "Capabilities": {"V2_0": True},
        },
        "Application": {
            "Organizations": [org1],
            "Policies": {
                **standard,
                "LifecycleEndorsement": _implicit("MAJORITY Endorsement"),
                "Endorsement": _implicit("MAJORITY Endorsement"),
            },
            "Capabilities": {"V2_5": True},
        },
    }
    return {"Profiles": {"Channel": channel}}


def genesis_block(
    dist: Distribution, crypto: Crypto, ports: Ports, channel: str, directory: Path
) -> Path:
    """The channel's genesis block, made by ``configtxgen`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "configtx.yaml").write_text(yaml.safe_dump(configtx(dist, crypto, ports)))
    block = directory / f"{channel}.block"
    run_tool(
        [
            dist.program("configtxgen"),
            "-configPath",
            str(directory),
            "-profile",
            "Channel",
            "-channelID",
            channel,
            "-outputBlock",
            str(block),
        ],
        cwd=directory,
        env={"FABRIC_CFG_PATH": str(directory)},
    )
    return block


def orderer_yaml(dist: Distribution, crypto: Crypto, ports: Ports, data: Path) -> dict[str, Any]:
    """The release's orderer.yaml, set for this network (TLS on, channel participation)."""
    config: dict[str, Any] = yaml.safe_load((dist.sampleconfig / "orderer.yaml").read_text())
    tls = crypto.orderer_node / "tls"
    general = config["General"]
    general.update(
        ListenAddress="127.0.0.1",
        ListenPort=ports.orderer,
        LocalMSPDir=str(crypto.orderer_node / "msp"),
        LocalMSPID=ORDERER_MSP,
    )
    general["TLS"].update(
        Enabled=True,
        PrivateKey=str(tls / "server.key"),
        Certificate=str(tls / "server.crt"),
        RootCAs=[str(tls / "ca.crt")],
        ClientAuthRequired=False,
    )
    # The cluster service shares the general listener; its client pair is the node's TLS pair.
    general["Cluster"].update(
        ClientCertificate=str(tls / "server.crt"), ClientPrivateKey=str(tls / "server.key")
    )
    if "BootstrapMethod" in general:  # 2.x; 3.x has no system channel and no such key
        general["BootstrapMethod"] = "none"
        general.pop("BootstrapFile", None)
    general["BCCSP"]["SW"]["FileKeyStore"]["KeyStore"] = None
    config["FileLedger"]["Location"] = str(data / "ledger")
    config["Consensus"] = {"WALDir": str(data / "wal"), "SnapDir": str(data / "snapshot")}
    config["Operations"]["ListenAddress"] = f"127.0.0.1:{ports.orderer_operations}"
    config["Metrics"]["Provider"] = "prometheus"
    admin_ca = crypto.orderer_admin_tls / "ca.crt"
    config["Admin"] = {
        "ListenAddress": f"127.0.0.1:{ports.orderer_admin}",
        "TLS": {
            "Enabled": True,
            "Certificate": str(tls / "server.crt"),
            "PrivateKey": str(tls / "server.key"),
            "RootCAs": [str(tls / "ca.crt")],
            "ClientAuthRequired": True,
            "ClientRootCAs": [str(admin_ca)],
        },
    }
    config["ChannelParticipation"]["Enabled"] = True
    return config


def core_yaml(
    dist: Distribution,
    crypto: Crypto,
    ports: Ports,
    *,
    data: Path,
    network_id: str,
    builder: Path | None,
    vm_endpoint: str,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The release's core.yaml, set for this peer.

    ``chaincode.externalBuilders`` names only ccdaemon's builder at ``builder``, which gets
    ``CCDAEMON_SOCKET`` from the peer's environment; with ``builder`` None it names none,
    and the peer builds and runs chaincode with its own Docker controller. ``vm.endpoint``
    is ``vm_endpoint``. ``overrides`` maps dotted keys (``chaincode.startuptimeout``) to
    values set last.
    """
    config: dict[str, Any] = yaml.safe_load((dist.sampleconfig / "core.yaml").read_text())
    tls = crypto.peer_node / "tls"
    address = f"127.0.0.1:{ports.peer}"
    peer = config["peer"]
    peer.update(
        id=PEER_ID,
        networkId=network_id,
        listenAddress=address,
        address=address,
        addressAutoDetect=False,
        chaincodeListenAddress=f"127.0.0.1:{ports.chaincode}",
        chaincodeAddress=f"127.0.0.1:{ports.chaincode}",
        fileSystemPath=str(data),
        mspConfigPath=str(crypto.peer_node / "msp"),
        localMspId=ORG_MSP,
    )
    peer["gossip"].update(
        bootstrap=address,
        endpoint=address,
        externalEndpoint=address,
        useLeaderElection=False,
        orgLeader=True,
    )
    peer["tls"].update(
        enabled=True,
        clientAuthRequired=False,
        cert={"file": str(tls / "server.crt")},
        key={"file": str(tls / "server.key")},
        rootcert={"file": str(tls / "ca.crt")},
        clientRootCAs={"files": [str(tls / "ca.crt")]},
    )
    peer["BCCSP"]["SW"]["FileKeyStore"]["KeyStore"] = None
    config["chaincode"]["externalBuilders"] = (
        []
        if builder is None
        else [
            {
                "name": BUILDER_NAME,
                "path": str(builder),
                "propagateEnvironment": ["CCDAEMON_SOCKET"],
            }
        ]
    )
    config["vm"]["endpoint"] = vm_endpoint
    config["operations"]["listenAddress"] = f"127.0.0.1:{ports.peer_operations}"
    config["metrics"]["provider"] = "prometheus"
    config["ledger"]["state"]["stateDatabase"] = "goleveldb"
    for dotted, value in (overrides or {}).items():
        *parents, last = dotted.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return config


def write_yaml(path: Path, content: Mapping[str, Any]) -> Path:
    """Write ``content`` as YAML to ``path`` (parents made); ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(content), sort_keys=False))
    return path


def run_tool(argv: list[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> str:
    """Run a one-shot Fabric tool (cryptogen, configtxgen) to its end; its output.

    Raises:
        KitError: it failed or took more than two minutes; the message holds its output.
    """
    try:
        done = subprocess.run(
            argv,
            check=False,
            capture_output=True,
            text=True,
            cwd=cwd,
            env={"PATH": "/usr/bin:/bin", **(env or {})},
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        raise KitError(f"{argv[0]} took more than 120 s") from None
    if done.returncode:
        raise KitError(
            f"{Path(argv[0]).name} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done.stdout + done.stderr
