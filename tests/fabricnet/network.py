"""One orderer and one peer of one org on 127.0.0.1, TLS everywhere, from Fabric's programs.

``Network.create`` lays out a scratch directory (configs, crypto, the genesis block, the
external builder from ``ccdaemon install-builder``); ``up`` starts the orderer, joins it
to the channel with ``osnadmin``, starts the peer and joins it with ``peer channel
join``; ``down`` stops both by PID. The peer CLI helpers run as the org's admin and
return stdout, raising ``CLIError`` (with stderr) when the CLI fails.

By default the peer's only builder is ccdaemon's, which reaches the daemon at the
``daemon_socket`` given to ``create`` (the peer's ``CCDAEMON_SOCKET``); its
``vm.endpoint`` names a socket that does not exist, so the peer never reaches an engine.
Given an ``engine`` instead, the peer has no external builder and builds and runs
chaincode with its own Docker controller at that ``vm.endpoint`` (an engine, or
ccdaemon's Docker-API front); ``standin_images`` names the images it will ask for.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from tests.fabricnet import configs
from tests.fabricnet.chaincode import assemble
from tests.fabricnet.dist import Distribution, KitError, distribution, go_root
from tests.fabricnet.procs import Program, children, free_ports, wait_for

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import TracebackType

DEFAULT_VERSION = "2.5.10"
DEFAULT_CHANNEL = "ccdtest"
#: A PATH of the system's own programs: no Go, no virtualenv.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The console script of the Python environment running the kit.
CCDAEMON = str(Path(sys.executable).parent / "ccdaemon")
#: Seconds a program gets to be ready after it is started.
START_TIMEOUT = 60.0
#: Seconds a CLI call may take, by kind: installs build the chaincode.
CLI_TIMEOUT = 120.0
INSTALL_TIMEOUT = 600.0
STATE_FILE = "network.json"
#: The Go builder and runtime stand-ins (scripts/images) for the peer's own controller.
GO_BUILDER = "localhost/ccdaemon/goenv:1.24"
GO_RUNTIME = "localhost/ccdaemon/baseos:1"
_SANITIZE = re.compile(r"[^a-zA-Z0-9_.-]")


class CLIError(KitError):
    """A peer or osnadmin command failed.

    Attributes:
        argv: the command.
        code: its exit status.
        stdout: what it printed on stdout.
        stderr: what it printed on stderr (Fabric's CLIs log there).
    """

    def __init__(self, argv: Sequence[str], code: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        shown = " ".join(self.argv[:4])
        super().__init__(f"{shown} ... exited with {code}:\n{stderr.strip()}\n{stdout.strip()}")


@dataclass(frozen=True)
class Invoked:
    """What ``peer chaincode invoke`` said.

    Attributes:
        status: the chaincode's response status (200).
        payload: the response payload as the CLI prints it (Go-quoted).
        output: the CLI's whole stderr.
    """

    status: int
    payload: str
    output: str


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
            self._join_orderer()
            wait_for(
                lambda: (
                    self._metric(
                        self.ports.orderer_operations,
                        f'consensus_etcdraft_is_leader{{channel="{self.channel}"}}',
                    )
                    == 1
                ),
                within=START_TIMEOUT,
                what="the orderer to lead the channel's raft",
            )
            self.start_peer()
            self.peer_cli("channel", "join", "-b", str(self.genesis))
            wait_for(
                lambda: self.channel in self.peer_cli("channel", "list"),
                within=START_TIMEOUT,
                what="the peer to list the channel",
            )
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
        return [(child, argv) for child, argv in children(pid) if run in argv[:2]]

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
            if pid is not None and _is_program(pid, program.argv[0]):
                program.adopted = pid
        return network

    # --- the CLIs -----------------------------------------------------------------

    def cli_env(self, **extra: str) -> dict[str, str]:
        """The peer CLI's environment: the org's admin, TLS to the peer."""
        return {
            "PATH": SYSTEM_PATH,
            "HOME": str(self.home),
            "FABRIC_CFG_PATH": str(self.peer_config),
            "FABRIC_LOGGING_SPEC": "info",
            "CORE_PEER_LOCALMSPID": configs.ORG_MSP,
            "CORE_PEER_MSPCONFIGPATH": str(self.crypto.org_admin_msp),
            "CORE_PEER_ADDRESS": self.peer_address,
            "CORE_PEER_TLS_ENABLED": "true",
            "CORE_PEER_TLS_ROOTCERT_FILE": str(self.crypto.peer_ca),
            **extra,
        }

    def peer_cli(
        self, *args: str, timeout: float = CLI_TIMEOUT, env: Mapping[str, str] | None = None
    ) -> str:
        """Run ``peer ARGS`` as the org's admin; its stdout.

        Raises:
            CLIError: it exited non-zero (or ran longer than ``timeout``).
        """
        return self._run([self.dist.program("peer"), *args], env or self.cli_env(), timeout)[0]

    def osnadmin(self, *args: str) -> str:
        """Run ``osnadmin ARGS -o <admin> ...`` with the orderer org admin's TLS pair; stdout."""
        tls = self.crypto.orderer_admin_tls
        argv = [
            self.dist.program("osnadmin"),
            *args,
            "-o",
            f"127.0.0.1:{self.ports.orderer_admin}",
            "--ca-file",
            str(self.crypto.orderer_ca),
            "--client-cert",
            str(tls / "client.crt"),
            "--client-key",
            str(tls / "client.key"),
        ]
        return self._run(argv, {"PATH": SYSTEM_PATH, "HOME": str(self.home)}, CLI_TIMEOUT)[0]

    def _orderer_args(self) -> list[str]:
        return ["-o", self.orderer_address, "--tls", "--cafile", str(self.crypto.orderer_ca)]

    def _peer_args(self) -> list[str]:
        return [
            "--peerAddresses",
            self.peer_address,
            "--tlsRootCertFiles",
            str(self.crypto.peer_ca),
        ]

    # --- chaincode lifecycle -------------------------------------------------------

    def package(self, label: str, *, variant: str = "v1") -> Path:
        """Assemble the test chaincode (``variant``) and package it with the real peer CLI.

        ``peer lifecycle chaincode package --lang golang`` runs ``go list``, so the Go of
        ``go_root()`` is first on its PATH, offline (GOPROXY=off, local toolchain only).
        """
        sources = self.scratch / "chaincode"
        module = assemble(self.dist, sources / f"{_SANITIZE.sub('_', label)}-src", variant=variant)
        output = sources / f"{_SANITIZE.sub('_', label)}.tar.gz"
        goroot = go_root()
        env = self.cli_env(
            PATH=f"{goroot / 'bin'}:{SYSTEM_PATH}",
            GOROOT=str(goroot),
            GOPATH=str(self.scratch / "gopath"),
            GOCACHE=str(self.dist.cache / "gocache"),
            GOPROXY="off",
            GOFLAGS="-mod=vendor",
            GOTOOLCHAIN="local",
            CGO_ENABLED="0",
        )
        self.peer_cli(
            "lifecycle",
            "chaincode",
            "package",
            str(output),
            "--path",
            str(module),
            "--lang",
            "golang",
            "--label",
            label,
            env=env,
        )
        return output

    def install(self, package: Path) -> str:
        """``peer lifecycle chaincode install``; the package id (label:sha256 of the file).

        The install runs the builder's ``build``: the daemon builds the image now.
        """
        output = self._run(
            [self.dist.program("peer"), "lifecycle", "chaincode", "install", str(package)],
            self.cli_env(),
            INSTALL_TIMEOUT,
        )
        found = re.search(r"Chaincode code package identifier: (\S+)", output[1])
        pid = package_id(package)
        if found is None or found[1] != pid:
            raise KitError(f"install did not report package id {pid}:\n{output[1]}")
        return pid

    def queryinstalled(self) -> list[dict[str, Any]]:
        """``peer lifecycle chaincode queryinstalled``: each installed package (JSON)."""
        out = self.peer_cli("lifecycle", "chaincode", "queryinstalled", "--output", "json")
        answer: dict[str, Any] = json.loads(out) if out.strip() else {}
        installed: list[dict[str, Any]] = answer.get("installed_chaincodes", [])
        return installed

    def approve(
        self,
        name: str,
        package_id: str,
        *,
        sequence: int = 1,
        version: str | None = None,
        init_required: bool = True,
    ) -> None:
        """``peer lifecycle chaincode approveformyorg`` for Org1 (waits for the commit)."""
        self.peer_cli(
            "lifecycle",
            "chaincode",
            "approveformyorg",
            *self._orderer_args(),
            "--channelID",
            self.channel,
            "--name",
            name,
            "--version",
            version or str(sequence),
            "--package-id",
            package_id,
            "--sequence",
            str(sequence),
            *(["--init-required"] if init_required else []),
        )

    def commit(
        self,
        name: str,
        *,
        sequence: int = 1,
        version: str | None = None,
        init_required: bool = True,
    ) -> None:
        """``peer lifecycle chaincode commit`` (waits for the peer to commit it)."""
        self.peer_cli(
            "lifecycle",
            "chaincode",
            "commit",
            *self._orderer_args(),
            "--channelID",
            self.channel,
            "--name",
            name,
            "--version",
            version or str(sequence),
            "--sequence",
            str(sequence),
            *(["--init-required"] if init_required else []),
            *self._peer_args(),
        )

    def querycommitted(self, name: str) -> dict[str, Any]:
        """``peer lifecycle chaincode querycommitted --name NAME`` (JSON)."""
        out = self.peer_cli(
            "lifecycle",
            "chaincode",
            "querycommitted",
            "--channelID",
            self.channel,
            "--name",
            name,
            "--output",
            "json",
        )
        answer: dict[str, Any] = json.loads(out)
        return answer

    def deploy(
        self, name: str, package_id: str, *, sequence: int = 1, init_required: bool = True
    ) -> None:
        """Approve and commit ``package_id`` as chaincode ``name`` at ``sequence``."""
        self.approve(name, package_id, sequence=sequence, init_required=init_required)
        self.commit(name, sequence=sequence, init_required=init_required)

    def invoke(self, name: str, *args: str, is_init: bool = False) -> Invoked:
        """``peer chaincode invoke --waitForEvent`` of ``args`` (function first).

        Raises:
            CLIError: the invoke failed (the chaincode's error is in ``stderr``).
        """
        argv = [
            self.dist.program("peer"),
            "chaincode",
            "invoke",
            *self._orderer_args(),
            "-C",
            self.channel,
            "-n",
            name,
            *self._peer_args(),
            "-c",
            json.dumps({"Args": list(args)}),
            "--waitForEvent",
            *(["--isInit"] if is_init else []),
        ]
        stderr = self._run(argv, self.cli_env(), CLI_TIMEOUT)[1]
        found = re.search(r"result: status:(\d+)(?: payload:(\"(?:[^\"\\]|\\.)*\"))?", stderr)
        if found is None:
            raise KitError(f"invoke gave no result line:\n{stderr}")
        return Invoked(int(found[1]), found[2] or '""', stderr)

    def query(self, name: str, *args: str) -> str:
        """``peer chaincode query`` of ``args``; the payload (stdout, less its newline).

        Raises:
            CLIError: the query failed (the chaincode's error is in ``stderr``).
        """
        out = self.peer_cli(
            "chaincode",
            "query",
            "-C",
            self.channel,
            "-n",
            name,
            "-c",
            json.dumps({"Args": list(args)}),
        )
        return out.removesuffix("\n")

    # --- helpers ----------------------------------------------------------------------

    def _run(self, argv: Sequence[str], env: Mapping[str, str], timeout: float) -> tuple[str, str]:
        try:
            done = subprocess.run(
                list(argv),
                check=False,
                capture_output=True,
                text=True,
                env=dict(env),
                cwd=self.scratch,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise CLIError(
                argv, -1, _text(exc.stdout), f"timed out after {timeout:g} s\n" + _text(exc.stderr)
            ) from None
        if done.returncode:
            raise CLIError(argv, done.returncode, done.stdout, done.stderr)
        return done.stdout, done.stderr

    def _join_orderer(self) -> None:
        """``osnadmin channel join``, again while the admin listener is not up yet."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.osnadmin(
                    "channel",
                    "join",
                    "--channelID",
                    self.channel,
                    "--config-block",
                    str(self.genesis),
                )
            except CLIError as exc:
                if "connection refused" not in exc.stderr or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
            else:
                return

    def _orderer_healthy(self) -> bool:
        self.orderer.check_running()
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.ports.orderer_operations}/healthz", timeout=2
            ) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _metric(self, port: int, series: str) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                text = answer.read().decode()
        except (urllib.error.URLError, OSError):
            return None
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return None


def package_id(package: Path) -> str:
    """Fabric's package id: the label in metadata.json, then the file's SHA-256."""
    with tarfile.open(package) as tar:
        member = tar.extractfile("metadata.json")
        if member is None:
            raise KitError(f"{package} has no metadata.json")
        label = json.loads(member.read())["label"]
    return f"{label}:{hashlib.sha256(package.read_bytes()).hexdigest()}"


def container_name(network_id: str, peer_id: str, package: str) -> str:
    """The container name a Fabric 2.x peer gives ``package``'s chaincode (GetVMName)."""
    name = f"{network_id}-{peer_id}-{package}".replace(":", "-")
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", name)


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def _is_program(pid: int, program: str) -> bool:
    """Whether ``pid`` still runs ``program`` (so a reused PID is never signalled)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return False
    return argv0 == program
