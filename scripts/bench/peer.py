#!/usr/bin/env python3
"""Benchmark: a real Fabric peer building and running chaincode through each of three seams.

One run, the same Fabric peer binaries (2.5.10 by default), the same engine (Docker
20.10 by default) and the same test chaincode (tests/fabric/chaincode/kvcc, variant v1)
for every seam:

- straight: the peer has no external builder; its own Docker controller's
            ``vm.endpoint`` is the engine's socket (the baseline);
- builder:  the peer's only builder is ccdaemon's external builder, talking to a
            ``ccdaemon serve`` process's control API (what tests/fabric does);
- front:    the peer's own Docker controller, its ``vm.endpoint`` at the Docker-API
            front (``[docker_api] socket``) of a ``ccdaemon serve`` process.

Per seam and round, on a network laid out afresh (new scratch directory, new
``peer.networkId``, so container and image names are new and the install really
builds; a new daemon with a new instance label for the daemon seams):

- install: wall time of ``peer lifecycle chaincode install`` (the Go build included);
- first invoke: wall time of the first ``invoke init --isInit`` right after approve and
  commit (the peer launches the chaincode then).

The engine's event stream, read afterwards for the same window, splits each figure.
An install: ``pre`` (install start to the builder container's start: the CLI, the peer
taking the package; for builder also its detect and build steps up to the daemon's
builder container), ``compile`` (the builder container's start to its die: the Go
build itself), ``image`` (the die to the chaincode image's tag: output copied out, the
runtime image built), ``finish`` (the tag to the CLI's exit: for builder the daemon's
answer, the release step, the peer's copy of the build output). A first invoke:
``launch`` (its start to the chaincode container's start) and ``boot+tx`` (the rest:
the chaincode dials the peer, registers and runs init; the transaction is ordered and
committed). ``peer cpu`` and ``daemon cpu`` are the CPU seconds each process (with the
children it waited for: a builder seam's steps) spent during the install.

The builder seam also installs the unchanged package on a second, fresh peer of the
same daemon while the image exists: ``re-install`` is that install's wall time and
``build step`` the wall time of the builder's ``build`` step in it, as the peer runs it
(its ``bin/build`` wrapped by a shell that notes the time before and after), with no
builder container run (checked from the events).

Seams run interleaved, the order rotating each round (straight, builder, front; then
builder, front, straight; ...); each figure is the median over the rounds, and each
ratio is of those medians (the ratio of the paired per-round figures is shown beside).
Targets: install builder/straight <= 1.1, first invoke builder/straight <= 1.05,
install front/straight <= 1.05, first invoke (first launch) front/straight <= 1.05,
builder re-install build step < 1 s.

    flock /tmp/ccd-suite.lock .venv/bin/python scripts/bench/peer.py [--rounds 2]
        [--engine docker-20.10 | --socket PATH] [--fabric 2.5.10] [--json] [--keep]

The lock keeps runs on the shared engines from overlapping; the engine must hold the
stand-ins localhost/ccdaemon/goenv:1.24 and baseos:1 (scripts/images build). Progress
and each run's figures go to stderr as they come.

Reading the output: the table has one row per seam, each cell the median over the
rounds in seconds, the columns as above; then the builder's re-install; then each
round's figures; then one line per ratio (median over median, against straight),
its target, "yes" or "NO", and the same ratio round by round. With ``--json`` the last
line is one JSON object: ``rounds`` (every figure of every seam run), ``median`` (by
seam), ``ratios`` (name -> value, target, paired, met), ``daemon_exits`` and ``met``.

Everything made is removed at the end of each seam run, also after a failure: both
programs of the network stopped and its scratch directory deleted (kept, and named, on
a failure or with ``--keep``), the daemon stopped with SIGTERM (exit 0 expected), the
containers and images of the run (by the daemon's instance label, and by name: the
network id starts the names of the peer's own containers and images), and the stand-in
tags (hyperledger/fabric-ccenv, -baseos) this run added (only those; never the images).

Exit status: 0 when every target is met, 1 when one is missed, 2 on an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import testbed

ROOT = Path(__file__).resolve().parents[2]
# The Fabric kit lives with the tests; this script uses it rather than copying it.
sys.path.insert(0, str(ROOT))

from peerengine import (  # noqa: E402
    builder_starts,
    chaincode_start,
    cpu_seconds,
    engine_events,
    install_phases,
    remove_made,
    tag_standins,
    untag,
)
from peerreport import SEAMS, report, summarise  # noqa: E402

from ccdaemon.engine import Engine  # noqa: E402
from tests.fabricnet import Network  # noqa: E402
from tests.fabricnet.network import GO_BUILDER, GO_RUNTIME  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

LABEL = "kv_1"
NAME = "kv"
#: The same for every seam: a cold Go build and a first launch fit in it.
CORE_OVERRIDES = {"chaincode.startuptimeout": "120s"}
READY_TIMEOUT = 60.0
EXIT_TIMEOUT = 60.0


@dataclass
class SeamRun:
    """One seam in one round: what it made (for cleanup) and what it measured."""

    seam: str
    round: int
    engine_socket: str
    scratch: Path
    instance: str = field(default_factory=lambda: f"benchpeer-{secrets.token_hex(3)}")
    networks: list[Network] = field(default_factory=list)
    daemon: asyncio.subprocess.Process | None = None
    daemon_exit: int | str | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def daemon_dir(self) -> Path:
        """The daemon's configuration, sockets and log."""
        return self.scratch / "d"

    @property
    def api_socket(self) -> Path:
        """The daemon's control API (the builder's CCDAEMON_SOCKET)."""
        return self.daemon_dir / "ccd.sock"

    @property
    def front_socket(self) -> Path:
        """The daemon's Docker-API front (the front seam's vm.endpoint)."""
        return self.daemon_dir / "docker.sock"

    @property
    def daemon_log(self) -> Path:
        """The daemon's output."""
        return self.daemon_dir / "daemon.log"


def daemon_toml(run: SeamRun, core_yaml: Path) -> str:
    """The daemon's configuration for the builder or the front seam.

    Both read the peer's core.yaml for names (and its vm.docker settings). The builder
    seam names the Go builder and runtime images itself, as tests/fabric does; the front
    seam must not: it serves the names the peer asks for (hyperledger/fabric-ccenv...).
    """
    text = (
        f'instance = "{run.instance}"\n'
        "[fabric]\n"
        f'core_yaml = "{core_yaml}"\n'
        "[listen]\n"
        f'socket = "{run.api_socket}"\n'
        "[engine]\n"
        f'endpoint = "unix://{run.engine_socket}"\n'
        "[log]\n"
        'level = "DEBUG"\n'
    )
    if run.seam == "front":
        return text + f'[docker_api]\nsocket = "{run.front_socket}"\n'
    return text + (
        "[runtime]\n"
        "attach_stdout = true\n"
        "[images]\n"
        f'golang_builder = "{GO_BUILDER}"\n'
        f'golang_runtime = "{GO_RUNTIME}"\n'
        "[golang]\n"
        'goproxy = "off"\n'
    )


async def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float, float]:
    """Run a blocking kit call in a thread; its result, its start (epoch s) and its seconds."""

    def call() -> tuple[T, float, float]:
        began, clock = time.time(), time.perf_counter()
        result = fn(*args, **kwargs)
        return result, began, time.perf_counter() - clock

    return await asyncio.to_thread(call)


def cpu_now(run: SeamRun, net: Network) -> dict[str, float]:
    """CPU seconds so far of the peer (its builder steps included) and of the daemon."""
    found = {"peer": cpu_seconds(net.peer.pid)}
    if run.daemon is not None:
        found["daemon"] = cpu_seconds(run.daemon.pid)
    return found


async def start_daemon(run: SeamRun, core_yaml: Path, log: IO[Any]) -> None:
    """Write the daemon's configuration, start it and wait for its health."""
    run.daemon_dir.mkdir(parents=True, exist_ok=True)
    config = run.daemon_dir / "ccdaemon.toml"
    config.write_text(daemon_toml(run, core_yaml))
    run.daemon = await testbed.spawn_daemon(config, log)
    async with asyncio.timeout(READY_TIMEOUT):
        await testbed.wait_healthy(run.daemon, run.api_socket)
    if run.seam == "front" and not run.front_socket.exists():
        raise RuntimeError(f"the daemon serves no Docker-API front at {run.front_socket}")


def new_network(run: SeamRun, name: str, fabric: str) -> Network:
    """A network laid out for the run's seam in scratch/``name`` (not started)."""
    scratch = run.scratch / name
    if run.seam == "builder":
        net = Network.create(
            run.api_socket, version=fabric, scratch=scratch, core_overrides=CORE_OVERRIDES
        )
    else:
        endpoint = run.front_socket if run.seam == "front" else Path(run.engine_socket)
        net = Network.create(
            None,
            engine=f"unix://{endpoint}",
            version=fabric,
            scratch=scratch,
            core_overrides=CORE_OVERRIDES,
        )
    run.networks.append(net)
    return net


async def measure(
    run: SeamRun, engine: Engine, fabric: str, log: IO[Any], tagged: list[str]
) -> None:
    """Install and first-invoke on a fresh network (and, for builder, re-install)."""
    net = await asyncio.to_thread(new_network, run, "net", fabric)
    if run.seam != "builder":
        await tag_standins(engine, net, tagged)
    if run.seam != "straight":
        await start_daemon(run, net.core_yaml, log)
    await asyncio.to_thread(net.up)
    builders = {GO_BUILDER, *(k for k, v in net.standin_images().items() if v == GO_BUILDER)}
    package, _, _ = await timed(net.admin.package, LABEL)

    before = cpu_now(run, net)
    package_id, install_at, install_s = await timed(net.admin.install, package)
    figures = run.figures
    figures.update(network_id=net.network_id, install=install_s)
    figures.update({f"install_{k}_cpu": v - before[k] for k, v in cpu_now(run, net).items()})
    await asyncio.to_thread(net.admin.deploy, NAME, package_id)
    before = cpu_now(run, net)
    invoked, invoke_at, invoke_s = await timed(net.admin.invoke, NAME, "init", is_init=True)
    figures["first_invoke"] = invoke_s
    figures.update({f"invoke_{k}_cpu": v - before[k] for k, v in cpu_now(run, net).items()})
    if invoked.status != 200:
        raise RuntimeError(f"{run.seam}: init answered {invoked.status}: {invoked.output}")
    events = await engine_events(engine, install_at - 1)
    figures.update(
        install_phases(events, builders, net.network_id, install_at, install_at + install_s)
    )
    started = chaincode_start(events, net.network_id, invoke_at)
    if started is not None:
        figures.update(launch=started - invoke_at, boot_tx=invoke_at + invoke_s - started)
    if run.seam == "builder":
        await reinstall(run, engine, package, builders, fabric)


#: In place of the builder's ``build`` on the re-installing peer: the real step, timed.
#: (The builder finds its step by its file name: the real one keeps the name ``build``.)
TIMED_STEP = """#!/bin/sh
began=$(date +%s.%N)
"${0%/*}/real/build" "$@"
code=$?
echo "$began $(date +%s.%N) $code" >> "$0.times"
exit $code
"""


async def reinstall(
    run: SeamRun, engine: Engine, package: Path, builders: set[str], fabric: str
) -> None:
    """The unchanged package installed on a fresh peer of the same daemon: the image exists.

    The fresh peer's ``build`` executable is wrapped to time the step as the peer runs it
    (a shell and two ``date`` calls: a few milliseconds).
    """
    net = await asyncio.to_thread(new_network, run, "net2", fabric)
    step = net.builder / "bin" / "build"
    (step.parent / "real").mkdir()
    step.rename(step.parent / "real" / "build")
    step.write_text(TIMED_STEP)
    step.chmod(0o755)
    await asyncio.to_thread(net.up)
    mark = net.peer.mark()
    _, at, seconds = await timed(net.admin.install, package)
    events = await engine_events(engine, at)
    began, ended, code = step.with_name("build.times").read_text().split()
    if code != "0":
        raise RuntimeError(f"the re-install's build step exited with {code}")
    run.figures.update(
        reinstall=seconds,
        build_step=float(ended) - float(began),
        reinstall_builder_runs=builder_starts(events, builders, at),
        reinstall_image_reused="has the image of" in net.peer.text(mark),
    )


async def cleanup(run: SeamRun, engine: Engine, *, keep: bool) -> None:
    """Stop the networks and the daemon; remove the run's containers, images and scratch."""
    for net in run.networks:
        try:
            await asyncio.to_thread(net.down)
        except Exception as exc:  # noqa: BLE001 -- go on cleaning
            print(f"cleanup: {run.seam}: network down: {exc}", file=sys.stderr)
    if run.daemon is not None:
        if run.daemon.returncode is None:
            run.daemon.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(EXIT_TIMEOUT):
                    await run.daemon.wait()
            except TimeoutError:
                run.daemon.kill()
                await run.daemon.wait()
                run.daemon_exit = "killed: no exit within 60 s of SIGTERM"
        if run.daemon_exit is None:
            run.daemon_exit = run.daemon.returncode
    prefixes = tuple(net.network_id for net in run.networks)
    await remove_made(engine, run.instance, prefixes)
    if keep:
        print(f"{run.seam} round {run.round + 1}: kept {run.scratch}", file=sys.stderr)
        return
    for net in run.networks:
        net.remove()
    shutil.rmtree(run.scratch, ignore_errors=True)


async def bench(args: argparse.Namespace, socket: str) -> list[SeamRun]:
    """Every seam once per round, the order rotating; the runs with their figures."""
    runs: list[SeamRun] = []
    async with Engine(f"unix://{socket}") as engine:
        added: list[str] = []
        try:
            for round_ in range(args.rounds):
                for seam in SEAMS[round_ % 3 :] + SEAMS[: round_ % 3]:
                    # Short: Unix socket paths are limited to 107 bytes.
                    scratch = Path(tempfile.mkdtemp(prefix=f"ccbp-{seam[0]}", dir="/tmp"))
                    run = SeamRun(seam, round_, socket, scratch)
                    runs.append(run)
                    print(f"round {round_ + 1}: {seam} ...", file=sys.stderr, flush=True)
                    failed = True
                    try:
                        run.daemon_dir.mkdir(parents=True, exist_ok=True)
                        with run.daemon_log.open("w") as log:
                            await measure(run, engine, args.fabric, log, added)
                        failed = False
                    except BaseException:
                        for net in run.networks:
                            print(f"--- {net.scratch} peer log:\n{net.peer.tail(40)}")
                        if run.daemon_log.exists():
                            tail = run.daemon_log.read_text(errors="replace").splitlines()[-40:]
                            print("--- daemon log:", *tail, sep="\n")
                        raise
                    finally:
                        await cleanup(run, engine, keep=args.keep or failed)
                    print(
                        f"  {json.dumps(run.figures, default=str)} daemon exit {run.daemon_exit}",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            await untag(engine, added)
    return runs


def main() -> int:
    """Parse arguments, run the benchmark, print; 0 when every target is met."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    testbed.engine_arguments(parser)
    parser.add_argument("--fabric", default="2.5.10", help="Fabric release of the peer")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the seam order rotates")
    parser.add_argument("--json", action="store_true", help="end with the figures as one JSON line")
    parser.add_argument("--keep", action="store_true", help="keep each run's scratch directory")
    args = parser.parse_args()
    if args.socket:
        args.engine = None
    socket = testbed.chosen_socket(args)
    runs = asyncio.run(bench(args, socket))
    summary = summarise(runs)
    report(runs, summary, args)
    if args.json:
        rounds = [
            {"seam": r.seam, "round": r.round + 1, "daemon_exit": r.daemon_exit, **r.figures}
            for r in runs
        ]
        print(json.dumps({"rounds": rounds, **summary}, default=str))
    return 0 if summary["met"] else 1


if __name__ == "__main__":
    testbed.exit_with(main)
