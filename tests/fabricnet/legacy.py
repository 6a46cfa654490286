"""A Fabric 1.4 network for tests: a solo orderer and one peer on 127.0.0.1, TLS everywhere.

Fabric 1.4 has no channel participation API and no external builders. The orderer
starts from a system-channel genesis block made by 1.4's ``configtxgen`` (profile
``System``: a solo orderer and a consortium of Org1); the channel is created from a
channel transaction (profile ``Channel``) with ``peer channel create`` and joined with
``peer channel join``. Crypto comes from 1.4's ``cryptogen`` (tests/fabricnet/configs.py,
cached per release). The peer runs chaincode with its own Docker controller at
``vm.endpoint`` (an engine, or ccdaemon's Docker-API front), so its core.yaml is the
release's sampleconfig with only addresses, TLS paths, ``fileSystemPath``, ``vm.endpoint``
and the given overrides changed: the builder and runtime images keep their stock
names, which ``standin_images`` lists.

The chaincode lifecycle is 1.4's CLI: ``install`` lays out tests/fabric/chaincode/kvcc14
in a GOPATH of the scratch directory (with ``variant.go``, so that two versions
differ) and runs ``peer chaincode install -p IMPORTPATH``, which runs ``go list`` on the
host in GOPATH mode: the first GOPATH entry is the scratch one (1.4 reads the code
from there), the second the unpacked shim closure (go-shim-gopath.tar.xz), and Go is
the system's (/usr/bin/go). Programs are started and stopped by PID (procs.Program),
their logs kept in ``scratch/logs``.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.fabricnet import configs
from tests.fabricnet.admin import CLIError
from tests.fabricnet.dist import ROOT, Distribution, KitError
from tests.fabricnet.legacyconfig import configtx, core_yaml, legacy_distribution, orderer_yaml
from tests.fabricnet.procs import SYSTEM_PATH, Program, free_ports, wait_for

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: The system channel's name, and the application channel's.
SYSTEM_CHANNEL = "syschan"
CHANNEL = "ccdtest"
#: The test chaincode (GOPATH style) and the import path it is installed from.
CHAINCODE_SOURCE = ROOT / "tests" / "fabric" / "chaincode" / "kvcc14"
IMPORT_PATH = "ccdaemon.test/kvcc14"
#: Seconds for a program to be ready, and for one CLI call.
START_TIMEOUT = 60.0
CLI_TIMEOUT = 300.0
#: The images a stock 1.4.12 core.yaml names: builder, and the Go runtime.
CCENV_IMAGE = "hyperledger/fabric-ccenv:1.4"
BASEOS_IMAGE = "hyperledger/fabric-baseos:amd64-0.4.22"
_VARIANT = re.compile(r"^[A-Za-z0-9_.-]+$")
_RESULT = re.compile(r"result: status:(\d+)")


@dataclass
class LegacyNetwork:
    """A solo orderer and one 1.4 peer in a scratch directory; the org's admin's CLI.

    Attributes:
        dist: the release's programs (``shim`` is the shim closure's GOPATH root).
        scratch: the directory of everything; logs in ``scratch/logs``.
        crypto: cryptogen's material.
        ports: the programs' ports on 127.0.0.1 (``orderer_admin`` is unused: 1.4 has none).
        network_id: ``peer.networkId``, the first part of the peer's container names.
        vm_endpoint: the peer's ``vm.endpoint``.
    """

    dist: Distribution
    scratch: Path
    crypto: configs.Crypto
    ports: configs.Ports
    network_id: str
    vm_endpoint: str
    orderer: Program = field(init=False)
    peer: Program = field(init=False)

    def __post_init__(self) -> None:
        logs = self.scratch / "logs"
        home = str(self.scratch / "home")

        def program(name: str, argv: list[str], config: Path) -> Program:
            env = {"PATH": SYSTEM_PATH, "HOME": home, "FABRIC_CFG_PATH": str(config)}
            return Program(
                name,
                argv,
                {**env, "FABRIC_LOGGING_SPEC": "info"},
                logs / f"{name}.log",
                self.scratch,
            )

        self.orderer = program("orderer", [self.dist.program("orderer")], self.orderer_config)
        self.peer = program("peer", [self.dist.program("peer"), "node", "start"], self.peer_config)

    @property
    def peer_config(self) -> Path:
        """The peer's (and CLI's) FABRIC_CFG_PATH."""
        return self.scratch / "peer" / "config"

    @property
    def core_yaml(self) -> Path:
        """The peer's core.yaml (the daemon reads it too)."""
        return self.peer_config / "core.yaml"

    @property
    def orderer_config(self) -> Path:
        """The orderer's FABRIC_CFG_PATH."""
        return self.scratch / "orderer" / "config"

    @property
    def gopath(self) -> Path:
        """The GOPATH the chaincode's source is laid out in, for ``peer chaincode install``."""
        return self.scratch / "gopath"

    @classmethod
    def create(
        cls,
        vm_endpoint: str,
        *,
        scratch: Path | None = None,
        core_overrides: Mapping[str, Any] | None = None,
    ) -> LegacyNetwork:
        """Lay out a new network (configs, genesis block, channel transaction); nothing runs."""
        dist = legacy_distribution()
        scratch = scratch or Path(tempfile.mkdtemp(prefix="ccfl-", dir="/tmp"))
        crypto = configs.crypto(dist)
        ports = configs.Ports(*free_ports(6))
        net = cls(dist, scratch, crypto, ports, f"dev{secrets.token_hex(3)}", vm_endpoint)
        channel = scratch / "channel"
        for directory in (scratch / "logs", scratch / "home", channel):
            directory.mkdir(parents=True, exist_ok=True)
        (channel / "configtx.yaml").write_text(yaml.safe_dump(configtx(crypto, ports)))
        # The system channel's genesis block (the orderer's), and the channel's creation.
        for profile, channel_id, output in (
            ("System", SYSTEM_CHANNEL, ["-outputBlock", str(channel / "genesis.block")]),
            ("Channel", CHANNEL, ["-outputCreateChannelTx", str(channel / "ch.tx")]),
        ):
            configs.run_tool(
                [dist.program("configtxgen"), "-configPath", str(channel), "-profile", profile,
                 "-channelID", channel_id, *output],
                cwd=channel,
                env={"FABRIC_CFG_PATH": str(channel)},
            )  # fmt: skip
        configs.write_yaml(
            net.orderer_config / "orderer.yaml",
            orderer_yaml(
                dist, crypto, ports, genesis=channel / "genesis.block", data=scratch / "orderer"
            ),
        )
        configs.write_yaml(
            net.core_yaml,
            core_yaml(
                dist,
                crypto,
                ports,
                data=scratch / "peer" / "data",
                network_id=net.network_id,
                vm_endpoint=vm_endpoint,
                overrides=core_overrides or {},
            ),
        )
        return net

    # --- running ----------------------------------------------------------------------

    def up(self) -> LegacyNetwork:
        """Start the orderer and the peer; create and join the channel. Stop all on failure."""
        try:
            mark = self.orderer.mark()
            self.orderer.start()
            self.orderer.wait_log("Beginning to serve requests", since=mark, within=START_TIMEOUT)
            self.start_peer()
            block = self.scratch / "channel" / f"{CHANNEL}.block"
            self.cli(
                "channel",
                "create",
                *self._orderer_args(),
                "-c",
                CHANNEL,
                "-f",
                str(self.scratch / "channel" / "ch.tx"),
                "--outputBlock",
                str(block),
            )
            self.cli("channel", "join", "-b", str(block))
            wait_for(
                lambda: CHANNEL in self.cli("channel", "list"),
                within=START_TIMEOUT,
                what="the peer to list the channel",
            )
        except BaseException:
            self.down()
            raise
        return self

    def start_peer(self) -> None:
        """Start the peer on its data and wait until it serves."""
        mark = self.peer.mark()
        self.peer.start()

        def ready() -> bool:
            self.peer.check_running()
            return "Started peer with ID" in self.peer.text(mark)

        wait_for(ready, within=START_TIMEOUT, what="the 1.4 peer to start")

    def stop_peer(self) -> int | None:
        """SIGTERM the peer (SIGKILL after 10 s); its exit status."""
        return self.peer.stop()

    def down(self) -> None:
        """Stop the peer, then the orderer."""
        self.peer.stop()
        self.orderer.stop()

    def remove(self) -> None:
        """Delete the scratch directory; the network must be down."""
        if self.peer.pid is not None or self.orderer.pid is not None:
            raise KitError("the network still runs; call down() first")
        shutil.rmtree(self.scratch, ignore_errors=True)

    # --- the org's admin's CLI ----------------------------------------------------------

    def cli_env(self, **extra: str) -> dict[str, str]:
        """The peer CLI's environment: Org1's admin, TLS to the peer."""
        return {
            "PATH": SYSTEM_PATH,
            "HOME": str(self.scratch / "home"),
            "FABRIC_CFG_PATH": str(self.peer_config),
            "FABRIC_LOGGING_SPEC": "info",
            "CORE_PEER_LOCALMSPID": configs.ORG_MSP,
            "CORE_PEER_MSPCONFIGPATH": str(self.crypto.org_admin_msp),
            "CORE_PEER_ADDRESS": f"127.0.0.1:{self.ports.peer}",
            "CORE_PEER_TLS_ENABLED": "true",
            "CORE_PEER_TLS_ROOTCERT_FILE": str(self.crypto.peer_ca),
            **extra,
        }

    def cli(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        """``peer ARGS`` as Org1's admin; stdout and stderr together (1.4 logs on stderr).

        Raises:
            CLIError: it exited non-zero or ran longer than ``CLI_TIMEOUT``.
        """
        argv: Sequence[str] = [self.dist.program("peer"), *args]
        try:
            done = subprocess.run(
                list(argv),
                check=False,
                capture_output=True,
                text=True,
                env=dict(env or self.cli_env()),
                cwd=self.scratch,
                timeout=CLI_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise CLIError(argv, -1, "", f"timed out after {CLI_TIMEOUT:g} s") from None
        if done.returncode:
            raise CLIError(argv, done.returncode, done.stdout, done.stderr)
        return done.stdout + done.stderr

    def _orderer_args(self) -> list[str]:
        return [
            "-o",
            f"127.0.0.1:{self.ports.orderer}",
            "--tls",
            "--cafile",
            str(self.crypto.orderer_ca),
        ]

    def install(self, name: str, version: str, *, variant: str) -> None:
        """Lay out kvcc14 of ``variant`` in the GOPATH; ``peer chaincode install`` it.

        Raises:
            KitError: ``variant`` is not a plain word (it becomes a Go string).
        """
        if not _VARIANT.match(variant):
            raise KitError(f"variant {variant!r}: letters, digits, '_', '.', '-' only")
        package = self.gopath / "src" / IMPORT_PATH
        shutil.rmtree(package, ignore_errors=True)
        package.mkdir(parents=True)
        for source in sorted(CHAINCODE_SOURCE.glob("*.go")):
            shutil.copyfile(source, package / source.name)
        (package / "variant.go").write_text(
            "package main\n\n// variant tells versions of the same code apart; "
            f'the network kit writes this file.\nconst variant = "{variant}"\n'
        )
        # 1.4's CLI reads the code from the first GOPATH entry; `go list` finds the
        # shim in the second. GOPATH mode, the system's Go (1.19 reads it fine).
        env = self.cli_env(
            GOPATH=f"{self.gopath}:{self.dist.shim}",
            GO111MODULE="off",
            GOCACHE=str(self.scratch / "gocache"),
            GOFLAGS="",
        )
        self.cli("chaincode", "install", "-n", name, "-v", version, "-p", IMPORT_PATH, env=env)

    def instantiate(self, name: str, version: str, *args: str, upgrade: bool = False) -> None:
        """``peer chaincode instantiate`` (or ``upgrade``); wait until the channel has it.

        The endorsement launches the chaincode (build, create, upload, start) to run
        its Init, so the container exists when the CLI returns.
        """
        self.cli(
            "chaincode",
            "upgrade" if upgrade else "instantiate",
            *self._orderer_args(),
            "-C",
            CHANNEL,
            "-n",
            name,
            "-v",
            version,
            "-c",
            json.dumps({"Args": list(args or ("init",))}),
        )
        listed = f"Name: {name}, Version: {version},"
        wait_for(
            lambda: listed in self.cli("chaincode", "list", "--instantiated", "-C", CHANNEL),
            within=START_TIMEOUT,
            what=f"{name} {version} to be instantiated",
        )

    def invoke(self, name: str, *args: str) -> int:
        """``peer chaincode invoke --waitForEvent``; the chaincode's response status."""
        out = self.cli(
            "chaincode",
            "invoke",
            *self._orderer_args(),
            "-C",
            CHANNEL,
            "-n",
            name,
            "-c",
            json.dumps({"Args": list(args)}),
            "--waitForEvent",
        )
        found = _RESULT.search(out)
        if found is None:
            raise KitError(f"invoke gave no result line:\n{out}")
        return int(found[1])

    def query(self, name: str, *args: str) -> str:
        """``peer chaincode query``; the payload (stdout, less its newline)."""
        argv = [
            self.dist.program("peer"),
            "chaincode",
            "query",
            "-C",
            CHANNEL,
            "-n",
            name,
            "-c",
            json.dumps({"Args": list(args)}),
        ]
        done = subprocess.run(
            argv,
            check=False,
            capture_output=True,
            text=True,
            env=self.cli_env(),
            timeout=CLI_TIMEOUT,
        )
        if done.returncode:
            raise CLIError(argv, done.returncode, done.stdout, done.stderr)
        return done.stdout.removesuffix("\n")

    def container_name(self, name: str, version: str) -> str:
        """Fabric 1.4's name for chaincode ``name`` ``version``'s container on this peer.

        dockercontroller.GetVMName: ``networkId-peerId-name-version``, then anything but
        ``[a-zA-Z0-9-_.]`` as ``-`` (written out here, not taken from ccdaemon).
        """
        return re.sub(
            r"[^a-zA-Z0-9\-_.]", "-", f"{self.network_id}-{configs.PEER_ID}-{name}-{version}"
        )

    def logs(self, lines: int = 60) -> str:
        """The tails of both programs' logs, for a failure's report."""
        return "\n".join(f"--- {p.name} log\n{p.tail(lines)}" for p in (self.peer, self.orderer))


def wait_query(net: LegacyNetwork, name: str, *args: str, within: float = 120) -> str:
    """Query until it answers (a relaunch may still be under way); the payload."""
    deadline = time.monotonic() + within
    while True:
        try:
            return net.query(name, *args)
        except CLIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
