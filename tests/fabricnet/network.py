"""One orderer and one peer of one org on 127.0.0.1, TLS everywhere, from Fabric's programs.

``Network.create`` lays out a scratch directory (configs, crypto, the genesis block, the
external builder from ``ccdaemon install-builder``); ``up`` starts the orderer, joins it
to the channel with ``osnadmin``, starts the peer and joins it with ``peer channel
join``; ``down`` stops both by PID. The CLIs and the chaincode lifecycle are the org's
admin's: ``network.admin`` (tests/fabricnet/admin.py).

By default the peer's only builder is ccdaemon's, which reaches the daemon at the
``daemon_socket`` given to ``create`` (the peer's ``CCDAEMON_SOCKET``); its
``vm.endpoint`` names a socket that does not exist, so the peer never reaches an engine.
Given an ``engine`` instead, the peer has no external builder and builds and runs
chaincode with its own Docker controller at that ``vm.endpoint`` (an engine, or
ccdaemon's Docker-API front); ``standin_images`` names the images it will ask for.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from tests.fabricnet import configs
from tests.fabricnet.admin import Admin
from tests.fabricnet.dist import Distribution, KitError, distribution
from tests.fabricnet.procs import (
    SYSTEM_PATH,
    Program,
    children,
    free_ports,
    healthz,
    is_program,
    metric,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

DEFAULT_VERSION = "2.5.10"
DEFAULT_CHANNEL = "ccdtest"
#: The console script of the Python environment running the kit.
CCDAEMON = str(Path(sys.executable).parent / "ccdaemon")
#: Seconds a program gets to be ready after it is started.
START_TIMEOUT = 60.0
STATE_FILE = "network.json"
#: The Go builder and runtime stand-ins (scripts/images) for the peer's own controller.
GO_BUILDER = "localhost/ccdaemon/goenv:1.24"
GO_RUNTIME = "localhost/ccdaemon/baseos:1"


@dataclass
class Network:
    """A one-orderer, one-peer network in a scratch directory.

    Attributes:
        dist: the Fabric release's programs.
        scratch: the session's directory; logs are ``scratch/logs/*.log``.
        crypto: cryptogen's material.
        ports: the ports of the two programs.
        network_id: the peer's ``peer.networkId`` (unique, so container names are).
        channel: the channel's name.
        daemon_socket: the daemon the peer's builder talks to (``CCDAEMON_SOCKET``);
            None when the peer uses its own Docker controller.
        engine: the ``vm.endpoint`` of the peer's own Docker controller; None when the
            peer's only builder is ccdaemon's.
        admin: the org's admin, who runs the CLIs and the chaincode lifecycle.
    """

    dist: Distribution
    scratch: Path
    crypto: configs.Crypto
    ports: configs.Ports
    network_id: str
    channel: str
    daemon_socket: Path | None
    engine: str | None = None
    orderer: Program = field(init=False)
    peer: Program = field(init=False)
    admin: Admin = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.orderer = Program(
            "orderer",
            [self.dist.program("orderer")],
            {
                "PATH": SYSTEM_PATH,
                "HOME": str(self.home),
                "FABRIC_CFG_PATH": str(self.orderer_config),
                "FABRIC_LOGGING_SPEC": "info",
            },
            self.logs / "orderer.log",
            self.scratch,
        )
        self.peer = Program(
            "peer",
            [self.dist.program("peer"), "node", "start"],
            {
                # No Go and no virtualenv: the peer builds nothing itself, and the
                # builder names its interpreter by absolute path.
                "PATH": SYSTEM_PATH,
                "HOME": str(self.home),
                "FABRIC_CFG_PATH": str(self.peer_config),
                "FABRIC_LOGGING_SPEC": "info",
                **({"CCDAEMON_SOCKET": str(self.daemon_socket)} if self.daemon_socket else {}),
            },
            self.logs / "peer.log",
            self.scratch,
        )
        self.admin = Admin(self)

    # --- layout -------------------------------------------------------------------

    @property
    def logs(self) -> Path:
        """Where each program's log is."""
        return self.scratch / "logs"

    @property
    def home(self) -> Path:
        """HOME of every program the kit runs."""
        return self.scratch / "home"

    @property
    def peer_config(self) -> Path:
        """The peer's (and the peer CLI's) FABRIC_CFG_PATH, holding core.yaml."""
        return self.scratch / "peer" / "config"

    @property
    def core_yaml(self) -> Path:
        """The peer's core.yaml."""
        return self.peer_config / "core.yaml"

    @property
    def peer_data(self) -> Path:
        """The peer's ``peer.fileSystemPath`` (ledger, installed packages, builds)."""
        return self.scratch / "peer" / "data"

    @property
    def orderer_config(self) -> Path:
        """The orderer's FABRIC_CFG_PATH, holding orderer.yaml."""
        return self.scratch / "orderer" / "config"

    @property
    def builder(self) -> Path:
        """The external builder written by ``ccdaemon install-builder``."""
        return self.scratch / "fabric-builder"

    @property
    def genesis(self) -> Path:
        """The channel's genesis block."""
        return self.scratch / "channel" / f"{self.channel}.block"

    @property
    def vm_endpoint(self) -> str:
        """The peer's ``vm.endpoint``: ``engine``, else a socket where nothing ever is."""
        return self.engine or f"unix://{self.scratch / 'no-engine' / 'docker.sock'}"

    @property
    def peer_address(self) -> str:
        """The peer's address for clients."""
        return f"127.0.0.1:{self.ports.peer}"

    @property
    def orderer_address(self) -> str:
        """The orderer's address for clients."""
        return f"127.0.0.1:{self.ports.orderer}"

    def standin_images(self) -> dict[str, str]:
        """The builder and runtime images the peer's own controller names, by stand-in.

        The stock core.yaml names ``$(DOCKER_NS)/fabric-ccenv:$(TWO_DIGIT_VERSION)`` and
        ``$(DOCKER_NS)/fabric-baseos:$(TWO_DIGIT_VERSION)``; tag the stand-ins (values)
        with these names (keys) on the engine before the peer runs, or the engine pulls.
        """
        two_digits = ".".join(self.dist.release.version.split(".")[:2])
        return {
            f"hyperledger/fabric-ccenv:{two_digits}": GO_BUILDER,
            f"hyperledger/fabric-baseos:{two_digits}": GO_RUNTIME,
        }

    def log_files(self) -> dict[str, Path]:
        """Every log of the network, by program."""
        return {program.name: program.log for program in (self.orderer, self.peer)}

    # --- making and running -------------------------------------------------------

    @classmethod
    def create(
        cls,
        daemon_socket: Path | None,
        *,
        engine: str | None = None,
        version: str = DEFAULT_VERSION,
        scratch: Path | None = None,
        channel: str = DEFAULT_CHANNEL,
        core_overrides: Mapping[str, Any] | None = None,
    ) -> Self:
        """Lay out a new network in ``scratch`` (default: a fresh directory under /tmp).

        Nothing runs yet: ``up`` starts it. ``core_overrides`` are dotted core.yaml keys
        set last (``{"chaincode.startuptimeout": "120s"}``). With ``engine`` (a
        ``vm.endpoint``), the peer builds and runs chaincode itself there.
        """
        if (daemon_socket is None) == (engine is None):
            raise KitError("give the peer either ccdaemon's builder (a daemon) or an engine")
        dist = distribution(version)
        scratch = scratch or Path(tempfile.mkdtemp(prefix="ccfn-", dir="/tmp"))
        scratch.mkdir(parents=True, exist_ok=True)
        crypto = configs.crypto(dist)
        ports = configs.Ports(*free_ports(6))
        network = cls(
            dist,
            scratch,
            crypto,
            ports,
            f"fn{secrets.token_hex(3)}",
            channel,
            daemon_socket,
            engine,
        )
        network.layout(core_overrides or {})
        return network

    def layout(self, core_overrides: Mapping[str, Any]) -> None:
        """Write configs, the builder and the genesis block; make the directories."""
        for directory in (self.logs, self.home, self.peer_data, self.scratch / "no-engine"):
            directory.mkdir(parents=True, exist_ok=True)
        if self.engine is None:
            installed = subprocess.run(
                [CCDAEMON, "install-builder", str(self.builder)],
                check=False,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if installed.returncode:
                raise KitError(f"ccdaemon install-builder failed: {installed.stderr}")
        configs.write_yaml(
            self.orderer_config / "orderer.yaml",
            configs.orderer_yaml(self.dist, self.crypto, self.ports, self.scratch / "orderer"),
        )
        configs.write_yaml(
            self.core_yaml,
            configs.core_yaml(
                self.dist,
                self.crypto,
                self.ports,
                data=self.peer_data,
                network_id=self.network_id,
                builder=self.builder if self.engine is None else None,
                vm_endpoint=self.vm_endpoint,
                overrides=core_overrides,
            ),
        )
        configs.genesis_block(
            self.dist, self.crypto, self.ports, self.channel, self.scratch / "channel"
        )
        self.save()

    def up(self) -> Self:
        """Start the orderer and the peer and join both to the channel; stop both on failure."""
        try:
            mark = self.orderer.mark()
            self.orderer.start()
            wait_for(
                lambda: (
                    self._orderer_healthy()
                    and "Beginning to serve requests" in self.orderer.text(mark)
                ),
                within=START_TIMEOUT,
                what="the orderer's /healthz",
            )
            self.admin.join_orderer(within=START_TIMEOUT)
            wait_for(
                lambda: (
                    metric(
                        self.ports.orderer_operations,
                        f'consensus_etcdraft_is_leader{{channel="{self.channel}"}}',
                    )
                    == 1
                ),
                within=START_TIMEOUT,
                what="the orderer to lead the channel's raft",
            )
            self.start_peer()
            self.admin.join_peer(within=START_TIMEOUT)
        except BaseException:
            self.down()
            raise
        self.save()
        return self

    def down(self) -> None:
        """Stop the peer (its builders' ``run`` processes with it), then the orderer."""
        self.stop_peer()
        self.orderer.stop()
        self.save()

    def start_peer(self, *, within: float = START_TIMEOUT) -> None:
        """Start the peer (on its existing data) and wait until it serves."""
        mark = self.peer.mark()
        self.peer.start()

        def ready() -> bool:
            self.peer.check_running()
            # Logged once the listener is bound (a TCP probe would only log a TLS error).
            return "Started peer with ID" in self.peer.text(mark)

        wait_for(ready, within=within, what="the peer to start")
        self.save()

    def stop_peer(self, *, grace: float = 10.0) -> int | None:
        """SIGTERM the peer (SIGKILL after ``grace`` s); its exit status."""
        code = self.peer.stop(grace=grace)
        self.save()
        return code

    def __enter__(self) -> Self:
        return self.up()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    def remove(self) -> None:
        """Delete the scratch directory (logs included); the network must be down."""
        if self.peer.pid is not None or self.orderer.pid is not None:
            raise KitError("the network still runs; call down() first")
        shutil.rmtree(self.scratch, ignore_errors=True)

    def run_processes(self) -> list[tuple[int, list[str]]]:
        """The builder's ``run`` steps the peer is running now: PID and command line."""
        pid = self.peer.pid
        if pid is None:
            return []
        run = str(self.builder / "bin" / "run")
        # The kernel runs it as: interpreter, the shebang's options (-IS), the script.
        return [(child, argv) for child, argv in children(pid) if run in argv[:3]]

    # --- state, for `python -m tests.fabricnet down` --------------------------------

    def save(self) -> None:
        """Write what ``load`` needs (ports, ids, PIDs) to ``scratch/network.json``."""
        state = {
            "version": self.dist.release.version,
            "scratch": str(self.scratch),
            "ports": asdict(self.ports),
            "network_id": self.network_id,
            "channel": self.channel,
            "daemon_socket": str(self.daemon_socket) if self.daemon_socket else None,
            "engine": self.engine,
            "pids": {"orderer": self.orderer.pid, "peer": self.peer.pid},
        }
        (self.scratch / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def load(cls, scratch: Path) -> Self:
        """The network laid out in ``scratch``, its running programs adopted by PID."""
        try:
            state = json.loads((scratch / STATE_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise KitError(f"no network in {scratch}: {exc}") from None
        dist = distribution(state["version"])
        network = cls(
            dist,
            Path(state["scratch"]),
            configs.crypto(dist),
            configs.Ports(**state["ports"]),
            state["network_id"],
            state["channel"],
            Path(state["daemon_socket"]) if state["daemon_socket"] else None,
            state.get("engine"),
        )
        for program in (network.orderer, network.peer):
            pid = state["pids"].get(program.name)
            if pid is not None and is_program(pid, program.argv[0]):
                program.adopted = pid
        return network

    # --- helpers ----------------------------------------------------------------------

    def _orderer_healthy(self) -> bool:
        self.orderer.check_running()
        return healthz(self.ports.orderer_operations)


def container_name(network_id: str, peer_id: str, package: str) -> str:
    """The container name a Fabric 2.x peer gives ``package``'s chaincode (GetVMName)."""
    name = f"{network_id}-{peer_id}-{package}".replace(":", "-")
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", name)
