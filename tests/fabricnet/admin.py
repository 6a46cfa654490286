"""The org's admin: Fabric's peer and osnadmin CLIs, and the chaincode lifecycle.

``Admin`` is built from a ``Network`` (``network.admin``) and runs the release's CLIs
against it: ``peer`` as Org1's admin with TLS to the peer, ``osnadmin`` with the orderer
org admin's TLS pair. Each call returns the CLI's stdout and raises ``CLIError`` (with
stderr) when it fails. ``Network.up`` joins the orderer and the peer to the channel
through it; the lifecycle helpers package the test chaincode, install it (the peer's
builder builds it now), approve and commit it, and invoke and query it.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tarfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.fabricnet import configs
from tests.fabricnet.chaincode import assemble
from tests.fabricnet.dist import KitError, go_root
from tests.fabricnet.procs import SYSTEM_PATH, wait_for

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from tests.fabricnet.network import Network

#: Seconds a CLI call may take, by kind: installs build the chaincode.
CLI_TIMEOUT = 120.0
INSTALL_TIMEOUT = 600.0
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


class Admin:
    """The org's admin of one network: its CLIs and the chaincode lifecycle.

    Attributes:
        network: the network the CLIs act on.
    """

    def __init__(self, network: Network) -> None:
        self.network = network

    # --- the CLIs -----------------------------------------------------------------

    def cli_env(self, **extra: str) -> dict[str, str]:
        """The peer CLI's environment: the org's admin, TLS to the peer."""
        net = self.network
        return {
            "PATH": SYSTEM_PATH,
            "HOME": str(net.home),
            "FABRIC_CFG_PATH": str(net.peer_config),
            "FABRIC_LOGGING_SPEC": "info",
            "CORE_PEER_LOCALMSPID": configs.ORG_MSP,
            "CORE_PEER_MSPCONFIGPATH": str(net.crypto.org_admin_msp),
            "CORE_PEER_ADDRESS": net.peer_address,
            "CORE_PEER_TLS_ENABLED": "true",
            "CORE_PEER_TLS_ROOTCERT_FILE": str(net.crypto.peer_ca),
            **extra,
        }

    def peer_cli(
        self, *args: str, timeout: float = CLI_TIMEOUT, env: Mapping[str, str] | None = None
    ) -> str:
        """Run ``peer ARGS`` as the org's admin; its stdout.

        Raises:
            CLIError: it exited non-zero (or ran longer than ``timeout``).
        """
        peer = self.network.dist.program("peer")
        return self._run([peer, *args], env or self.cli_env(), timeout)[0]

    def osnadmin(self, *args: str) -> str:
        """Run ``osnadmin ARGS -o <admin> ...`` with the orderer org admin's TLS pair; stdout."""
        net = self.network
        tls = net.crypto.orderer_admin_tls
        argv = [
            net.dist.program("osnadmin"),
            *args,
            "-o",
            f"127.0.0.1:{net.ports.orderer_admin}",
            "--ca-file",
            str(net.crypto.orderer_ca),
            "--client-cert",
            str(tls / "client.crt"),
            "--client-key",
            str(tls / "client.key"),
        ]
        return self._run(argv, {"PATH": SYSTEM_PATH, "HOME": str(net.home)}, CLI_TIMEOUT)[0]

    def _orderer_args(self) -> list[str]:
        net = self.network
        return ["-o", net.orderer_address, "--tls", "--cafile", str(net.crypto.orderer_ca)]

    def _peer_args(self) -> list[str]:
        return [
            "--peerAddresses",
            self.network.peer_address,
            "--tlsRootCertFiles",
            str(self.network.crypto.peer_ca),
        ]

    # --- joining the channel ----------------------------------------------------------

    def join_orderer(self, *, within: float) -> None:
        """``osnadmin channel join``, again while the admin listener is not up yet."""
        net = self.network
        deadline = time.monotonic() + within
        while True:
            try:
                self.osnadmin(
                    "channel",
                    "join",
                    "--channelID",
                    net.channel,
                    "--config-block",
                    str(net.genesis),
                )
            except CLIError as exc:
                if "connection refused" not in exc.stderr or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
            else:
                return

    def join_peer(self, *, within: float) -> None:
        """``peer channel join``; then wait until the peer lists the channel."""
        net = self.network
        self.peer_cli("channel", "join", "-b", str(net.genesis))
        wait_for(
            lambda: net.channel in self.peer_cli("channel", "list"),
            within=within,
            what="the peer to list the channel",
        )

    # --- chaincode lifecycle -------------------------------------------------------

    def package(self, label: str, *, variant: str = "v1") -> Path:
        """Assemble the test chaincode (``variant``) and package it with the real peer CLI.

        ``peer lifecycle chaincode package --lang golang`` runs ``go list``, so the Go of
        ``go_root()`` is first on its PATH, offline (GOPROXY=off, local toolchain only).
        """
        net = self.network
        sources = net.scratch / "chaincode"
        module = assemble(net.dist, sources / f"{_SANITIZE.sub('_', label)}-src", variant=variant)
        output = sources / f"{_SANITIZE.sub('_', label)}.tar.gz"
        goroot = go_root()
        env = self.cli_env(
            PATH=f"{goroot / 'bin'}:{SYSTEM_PATH}",
            GOROOT=str(goroot),
            GOPATH=str(net.scratch / "gopath"),
            GOCACHE=str(net.dist.cache / "gocache"),
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
        peer = self.network.dist.program("peer")
        output = self._run(
            [peer, "lifecycle", "chaincode", "install", str(package)],
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
            self.network.channel,
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
            self.network.channel,
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
            self.network.channel,
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
            self.network.dist.program("peer"),
            "chaincode",
            "invoke",
            *self._orderer_args(),
            "-C",
            self.network.channel,
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
            self.network.channel,
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
                cwd=self.network.scratch,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise CLIError(
                argv, -1, _text(exc.stdout), f"timed out after {timeout:g} s\n" + _text(exc.stderr)
            ) from None
        if done.returncode:
            raise CLIError(argv, done.returncode, done.stdout, done.stderr)
        return done.stdout, done.stderr


def package_id(package: Path) -> str:
    """Fabric's package id: the label in metadata.json, then the file's SHA-256."""
    with tarfile.open(package) as tar:
        member = tar.extractfile("metadata.json")
        if member is None:
            raise KitError(f"{package} has no metadata.json")
        label = json.loads(member.read())["label"]
    return f"{label}:{hashlib.sha256(package.read_bytes()).hexdigest()}"


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""
