"""A Fabric peer's side of the external builder contract, played by the tests.

``Peer`` does what a 2.x/3.x peer does with ``chaincode.externalBuilders``
(core/container/externalbuilder): it extracts a package into fresh 0700 directories,
runs ``bin/detect``, ``bin/build`` and ``bin/release`` with the builder's pruned
environment, writes ``chaincode.json`` (0600) into a fresh run directory and starts
``bin/run``, and stops it with SIGTERM. The builder is installed with ``ccdaemon
install-builder``, as the README tells an operator.

One daemon (``ccdaemon serve``, a process) and one install of the Go package serve every
test of this folder, since a Go build takes seconds: the daemon runs on the default
engine with host networking, so that the chaincode can dial the test's listener on
127.0.0.1 as a real chaincode dials its peer. Tests give their chaincodes their own ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from ccdaemon.engine import archive
from ccdaemon.fabricbuilder import RECORD_FILE, STEPS
from tests.conftest import DEFAULT_ENGINE, ROOT
from tests.fabric.conftest import Daemon, remove_engine_instance

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping


CCDAEMON = str(Path(sys.executable).parent / "ccdaemon")
#: Fabric's DefaultPropagateEnvironment: what every builder gets besides its own list.
DEFAULT_PROPAGATE = ("LD_LIBRARY_PATH", "LIBPATH", "PATH", "TMPDIR")
#: The peer's PATH: a system one, without the venv, so no Python of ours is found on it.
PEER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Fabric's SanitizeCCIDPath.
_UNSAFE = re.compile(r"[<>:\"/\\|?*&]")

GO_MOD = b"module example.com/peerreport\n\ngo 1.19\n"
# A stand-in chaincode: it dials the peer, reports its args, env and TLS files, then exits
# with the code the peer sends back (0 when the peer closes the connection instead).
MAIN_GO = b"""package main

import (
\t"bufio"
\t"encoding/json"
\t"flag"
\t"net"
\t"os"
\t"path/filepath"
\t"strconv"
\t"strings"
)

func main() {
\taddr := flag.String("peer.address", "", "the peer to dial")
\tflag.Parse()
\tfiles := map[string]string{}
\tpaths, _ := filepath.Glob("/etc/hyperledger/fabric/*")
\tfor _, p := range paths {
\t\tif b, err := os.ReadFile(p); err == nil {
\t\t\tfiles[p] = string(b)
\t\t}
\t}
\tconn, err := net.Dial("tcp", *addr)
\tif err != nil {
\t\tos.Exit(3)
\t}
\treport := map[string]any{"args": os.Args, "env": os.Environ(), "files": files}
\tif err := json.NewEncoder(conn).Encode(report); err != nil {
\t\tos.Exit(4)
\t}
\tline, _ := bufio.NewReader(conn).ReadString('\\n')
\tcode, _ := strconv.Atoi(strings.TrimSpace(line))
\tos.Exit(code)
}
"""
INDEX = b'{"index":{"fields":["owner"]},"ddoc":"indexOwnerDoc","name":"indexOwner","type":"json"}'


def go_package(label: str = "peerreport_1.0", *, cc_type: str = "golang") -> bytes:
    """A Fabric 2.x package, as ``peer lifecycle chaincode package`` writes it."""
    code = archive.targz(
        {
            "src/go.mod": GO_MOD,
            "src/main.go": MAIN_GO,
            "META-INF/statedb/couchdb/indexes/indexOwner.json": INDEX,
        }
    )
    metadata = json.dumps({"path": "", "type": cc_type, "label": label}).encode()
    return archive.targz({"metadata.json": metadata, "code.tar.gz": code})


def package_id(package: bytes) -> str:
    """Fabric's package id: label, then the SHA-256 of the package file."""
    with tarfile.open(fileobj=io.BytesIO(package)) as tar:
        member = tar.extractfile("metadata.json")
        assert member is not None
        label = json.loads(member.read())["label"]
    return f"{label}:{hashlib.sha256(package).hexdigest()}"


def pruned_env(peer_env: Mapping[str, str], propagate: tuple[str, ...]) -> dict[str, str]:
    """Fabric's Builder.NewCommand: the peer's variables named by the builder, if set."""
    names = (*propagate, *DEFAULT_PROPAGATE)
    return {name: peer_env[name] for name in names if name in peer_env}


@dataclass(frozen=True)
class Done:
    """One finished step: its exit status and stderr (the peer logs stderr)."""

    code: int
    stderr: str


@dataclass
class Peer:
    """The peer's side: the builder it is configured with and the directories it makes."""

    builder: Path
    root: Path
    env: dict[str, str]
    propagate: tuple[str, ...] = ("CCDAEMON_SOCKET",)
    running: list[asyncio.subprocess.Process] = field(default_factory=list)

    def environment(self, **extra: str) -> dict[str, str]:
        """What a step's process gets: the peer's environment (plus ``extra``), pruned."""
        return pruned_env({**self.env, **extra}, self.propagate)

    def build_context(self, package: bytes) -> tuple[Path, Path, Path, Path]:
        """src, metadata, bld and release directories, as the peer's build context makes them."""
        with tarfile.open(fileobj=io.BytesIO(package)) as outer:
            members = {m.name: outer.extractfile(m) for m in outer.getmembers()}
            metadata = members["metadata.json"].read()  # type: ignore[union-attr]
            code = members["code.tar.gz"].read()  # type: ignore[union-attr]
        label = json.loads(metadata)["label"]
        context = Path(tempfile.mkdtemp(prefix=f"fabric-{_UNSAFE.sub('-', label)}", dir=self.root))
        src, meta, bld, release = (context / name for name in ("src", "metadata", "bld", "release"))
        for directory in (src, meta, bld, release):
            directory.mkdir(mode=0o700)
        (meta / "metadata.json").write_bytes(metadata)
        (meta / "metadata.json").chmod(0o700)
        with tarfile.open(fileobj=io.BytesIO(code)) as tar:
            for member in tar.getmembers():
                # The peer's untar: directories and regular files only.
                assert member.isdir() or member.isreg(), member.name
                target = src / member.name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
        return src, meta, bld, release

    def step(self, name: str, *args: Path, **extra: str) -> Done:
        """Run ``bin/<name> ARGS`` to its end (60 s at most)."""
        done = subprocess.run(
            [str(self.builder / "bin" / name), *map(str, args)],
            check=False,
            env=self.environment(**extra),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return Done(done.returncode, done.stderr)

    def run_metadata(self, chaincode_json: bytes) -> Path:
        """A fresh run directory holding ``chaincode.json`` (0600), as the peer writes it."""
        directory = Path(tempfile.mkdtemp(prefix="fabric-run", dir=self.root))
        path = directory / "chaincode.json"
        path.write_bytes(chaincode_json)
        path.chmod(0o600)
        return directory

    async def start_run(self, bld: Path, run_dir: Path) -> asyncio.subprocess.Process:
        """Start ``bin/run BLD RUN_METADATA`` in the background; stderr is piped."""
        process = await asyncio.create_subprocess_exec(
            str(self.builder / "bin" / "run"),
            str(bld),
            str(run_dir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.environment(),
            cwd=self.root,
        )
        self.running.append(process)
        return process


def chaincode_json(ccid: str, peer_address: str, **fields: object) -> bytes:
    """A chaincode.json as the peer's runConfig marshals it (TLS fields empty by default)."""
    config: dict[str, object] = {
        "chaincode_id": ccid,
        "peer_address": peer_address,
        "client_cert": "",
        "client_key": "",
        "root_cert": "",
        "mspid": "Org1MSP",
        **fields,
    }
    return orjson.dumps(config)


@dataclass
class PeerListener:
    """The peer's chaincode port: each chaincode that dials in sends a report and is kept."""

    port: int
    reports: asyncio.Queue[tuple[dict[str, Any], asyncio.StreamWriter]]

    @property
    def address(self) -> str:
        """``host:port`` for chaincode.json."""
        return f"127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def peer_listener() -> AsyncIterator[PeerListener]:
    """A TCP listener on 127.0.0.1 standing in for the peer's chaincode address."""
    reports: asyncio.Queue[tuple[dict[str, Any], asyncio.StreamWriter]] = asyncio.Queue()
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reports.put((orjson.loads(await reader.readline()), writer))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        async with server:
            yield PeerListener(server.sockets[0].getsockname()[1], reports)
    finally:
        for writer in writers:  # the connections outlive the listening socket otherwise
            writer.close()


@dataclass(frozen=True)
class Installed:
    """A package the peer installed: its id, directories and what each step said."""

    package_id: str
    src: Path
    bld: Path
    release: Path
    detect: Done
    build: Done
    release_step: Done

    def record(self) -> dict[str, str]:
        """What build recorded in BUILD_OUTPUT_DIR."""
        record: dict[str, str] = orjson.loads((self.bld / RECORD_FILE).read_bytes())
        return record


def install(peer: Peer, package: bytes) -> Installed:
    """Install ``package`` as the peer does: detect, build, then release."""
    src, meta, bld, release = peer.build_context(package)
    detected = peer.step("detect", src, meta)
    built = peer.step("build", src, meta, bld)
    released = peer.step("release", bld, release)
    return Installed(package_id(package), src, bld, release, detected, built, released)


def _private_directory() -> Path:
    # Short, under /tmp: Unix socket paths are limited to 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="ccdp-", dir="/tmp"))
    path.chmod(0o700)
    return path


@pytest.fixture(scope="package")
def shared_daemon(engine_sockets: dict[str, str]) -> Iterator[Daemon]:
    """``ccdaemon serve`` on the default engine; its containers and images go afterwards."""
    engine_socket = engine_sockets[DEFAULT_ENGINE]
    subprocess.run(
        [str(ROOT / "scripts" / "images"), "build", "--socket", engine_socket], check=True
    )
    directory = _private_directory()
    instance = f"fb-{secrets.token_hex(3)}"
    socket = directory / "ccd.sock"
    config = directory / "ccdaemon.toml"
    config.write_text(
        f'instance = "{instance}"\n'
        f'[listen]\nsocket = "{socket}"\n'
        f'[engine]\nendpoint = "unix://{engine_socket}"\n'
        f'[runtime]\nnetwork_id = "t"\npeer_id = "p{instance}"\nstartup_timeout = 60\n'
        'attach_stdout = true\n[runtime.host_config]\nNetworkMode = "host"\n'
        "[policy]\nmemory = 268435456\n"
    )
    daemon = Daemon(directory, instance, config)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        asyncio.run(remove_engine_instance(engine_socket, instance))
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="package")
def builder() -> Iterator[Path]:
    """The builder, installed by ``ccdaemon install-builder`` as the README says."""
    directory = _private_directory()
    path = directory / "fabric-builder"
    installed = subprocess.run(
        [CCDAEMON, "install-builder", str(path)], check=True, capture_output=True, text=True
    )
    assert installed.stdout.split() == [str(path / "bin" / step) for step in STEPS]
    yield path
    shutil.rmtree(directory, ignore_errors=True)


def peer_env(socket: Path) -> dict[str, str]:
    """The peer's own environment, holding more than any builder may see."""
    return {
        **os.environ,
        "PATH": PEER_PATH,
        "CCDAEMON_SOCKET": str(socket),
        # Set in the peer, never seen by a builder: the pruning at work.
        "PYTHONPATH": "/nonexistent",
        "CORE_PEER_ID": "peer0",
    }


@pytest.fixture(scope="package")
def installed(builder: Path, shared_daemon: Daemon) -> Iterator[Installed]:
    """The Go package installed on a peer of the shared daemon: its image is built."""
    root = _private_directory()
    done = install(Peer(builder, root, peer_env(shared_daemon.socket)), go_package())
    assert done.build.code == 0, done.build.stderr
    yield done
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def bare_peer(builder: Path) -> AsyncIterator[Peer]:
    """A peer configured with the builder, with no daemon behind CCDAEMON_SOCKET."""
    root = _private_directory()
    handle = Peer(builder, root, peer_env(root / "no-daemon.sock"))
    try:
        yield handle
    finally:
        for process in handle.running:
            if process.returncode is None:
                process.kill()
                await process.wait()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def peer(bare_peer: Peer, shared_daemon: Daemon) -> Peer:
    """A peer configured with the builder and the shared daemon."""
    bare_peer.env["CCDAEMON_SOCKET"] = str(shared_daemon.socket)
    return bare_peer
