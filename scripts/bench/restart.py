#!/usr/bin/env python3
"""Benchmark: a ``ccdaemon serve`` child restarted over N running chaincodes (re-adoption).

N chaincodes (default 200) are launched at once through a daemon's API with their
output attached (runtime.attach_stdout); the daemon is stopped with SIGTERM (exit status
0; the chaincodes keep running, shutdown.stop_chaincodes being off) and started again.
The figure is the time from the process's start (just before the exec) to the READY=1
it sends to the NOTIFY_SOCKET the benchmark gives it (a datagram Unix socket the
benchmark reads, as systemd's). Then GET /v1/chaincodes must list all N running and
adopted, and the daemon is stopped again. Target: at most 2 s.

The baseline, in the same run, is a second daemon with its own instance label and no
chaincode of its own, against the same engine holding the same N containers: the
start's fixed cost (interpreter, imports, engine handshake). Starts alternate, the
order swapping each round; the table gives each one's median and largest over the
rounds, and the difference of the medians (what N chaincodes add).

    scripts/bench/restart.py [--engine docker-20.10 | --socket PATH] [-n 200] [--rounds 3]
                             [--json]

Everything made is removed at the end, also after a failure or Ctrl-C: the daemons are
stopped with SIGTERM, their containers go by their instance labels (a few removals at a
time), the image tags by name.

Exit status: 0 when the target is met, 1 when it is missed, 2 on an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import testbed
from daemon import EXIT_TIMEOUT, READY_TIMEOUT, ensure_stub, launch_body, remove_made, tag_images

from ccdaemon.apiclient.aio import AsyncClient
from ccdaemon.engine import Engine
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL

#: Target: seconds from process start to READY=1 with N chaincodes re-adopted.
READY_TARGET = 2.0


@dataclass
class Instance:
    """One daemon configuration (its own label, socket, log) and its process, if running."""

    name: str
    directory: Path
    engine_socket: str
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    process: asyncio.subprocess.Process | None = None
    exits: list[int | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory.mkdir(mode=0o700)
        self.config = testbed.write_config(
            self.directory,
            instance=self.instance,
            api_socket=self.api_socket,
            engine_socket=self.engine_socket,
            network_id="bench",
            peer_id=f"p{self.tag}",
        )

    @property
    def instance(self) -> str:
        """The daemon's instance label value."""
        return f"bench-{self.tag}"

    @property
    def api_socket(self) -> Path:
        """The daemon's API socket."""
        return self.directory / "ccd.sock"

    @property
    def notify_socket(self) -> Path:
        """Where the benchmark listens for the daemon's sd_notify datagrams."""
        return self.directory / "notify.sock"


async def start(instance: Instance) -> float:
    """Start the daemon; seconds from just before its exec to its READY=1.

    Raises:
        RuntimeError: the daemon exited before it was ready.
    """
    instance.notify_socket.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(instance.notify_socket))
        notify.setblocking(False)  # noqa: FBT003 -- the socket API's own flag
        env = {**os.environ, "NOTIFY_SOCKET": str(instance.notify_socket)}
        env.pop("WATCHDOG_USEC", None)
        loop = asyncio.get_running_loop()
        with (instance.directory / "daemon.log").open("a") as log:
            began = time.perf_counter()
            instance.process = await testbed.spawn_daemon(instance.config, log, env)
        async with asyncio.timeout(READY_TIMEOUT):
            exited = asyncio.ensure_future(instance.process.wait())
            try:
                while True:
                    received = asyncio.ensure_future(loop.sock_recv(notify, 4096))
                    done, _ = await asyncio.wait(
                        {received, exited}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if received not in done:
                        received.cancel()
                        raise RuntimeError(f"{instance.name}: the daemon exited at start")
                    if b"READY=1" in received.result().split(b"\n"):
                        return time.perf_counter() - began
            finally:
                exited.cancel()


async def stop(instance: Instance) -> None:
    """SIGTERM, then wait for the exit (killed after EXIT_TIMEOUT); its status is kept."""
    process = instance.process
    if process is None or process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(EXIT_TIMEOUT):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        instance.exits.append(None)
        return
    instance.exits.append(process.returncode)


async def adopted(instance: Instance, expected: int) -> None:
    """Check that the API lists ``expected`` chaincodes, all running and re-adopted.

    Raises:
        RuntimeError: it does not.
    """
    async with AsyncClient(instance.api_socket) as client:
        listed = await client.list()
    running = [cc for cc in listed if cc["state"] == "running" and cc["adopted"]]
    if len(listed) != expected or len(running) != expected:
        raise RuntimeError(
            f"{instance.name}: {len(running)} of {len(listed)} listed chaincodes running "
            f"and adopted after the restart, {expected} expected"
        )


async def populate(instance: Instance, engine: Engine, count: int, tagged: list[str]) -> None:
    """Start the daemon, launch ``count`` chaincodes at once (images tagged first), stop it."""
    ccids = [f"load{i}:{instance.tag}" for i in range(count)]
    await tag_images(engine, ccids, tagged, network_id="bench", peer_id=f"p{instance.tag}")
    await start(instance)
    async with AsyncClient(instance.api_socket) as client:
        await asyncio.gather(*(client.launch(launch_body(ccid)) for ccid in ccids))
    await stop(instance)


async def bench(loaded: Instance, empty: Instance, args: argparse.Namespace) -> dict[str, Any]:
    """Populate, then the alternating timed restarts; cleanup in ``finally``."""
    figures: dict[str, Any] = {"n": args.n, "rounds": args.rounds}
    starts: dict[str, list[float]] = {loaded.name: [], empty.name: []}
    expected = {loaded.name: args.n, empty.name: 0}
    tagged: list[str] = []
    built_stub = False
    try:
        async with Engine(f"unix://{loaded.engine_socket}") as engine:
            built_stub = await ensure_stub(engine)
            await populate(loaded, engine, args.n, tagged)
            figures["engine"] = (await engine.version()).version
        for number in range(args.rounds):
            order = [loaded, empty] if number % 2 == 0 else [empty, loaded]
            for instance in order:
                seconds = await start(instance)
                await adopted(instance, expected[instance.name])
                await stop(instance)
                starts[instance.name].append(seconds)
                print(f"round {number}: {instance.name} ready in {seconds:.3f} s", file=sys.stderr)
    finally:
        for instance in (loaded, empty):
            await stop(instance)
        async with Engine(f"unix://{loaded.engine_socket}") as engine:
            labels = [{INSTANCE_LABEL: i.instance} for i in (loaded, empty)]
            await remove_made(engine, labels, tagged, built_stub=built_stub)
    figures["ready_s"] = starts
    figures["exits"] = {i.name: i.exits for i in (loaded, empty)}
    return figures


def met(figures: dict[str, Any]) -> bool:
    """Whether every start with N chaincodes met the target and every exit status was 0."""
    loaded = figures["ready_s"][f"{figures['n']} chaincodes"]
    exits_clean = all(code == 0 for codes in figures["exits"].values() for code in codes)
    return max(loaded) <= READY_TARGET and exits_clean


def report(figures: dict[str, Any]) -> None:
    """Print the table."""
    n = figures["n"]
    loaded, empty = (figures["ready_s"][name] for name in (f"{n} chaincodes", "0 chaincodes"))
    p50, base = statistics.median(loaded), statistics.median(empty)
    print(
        f"engine docker {figures['engine']}; {figures['rounds']} alternating rounds; "
        "process start to READY=1 (sd_notify), then all re-adopted checked through the API"
    )
    print(f"  {n} chaincodes:  median {p50:.3f} s, max {max(loaded):.3f} s  "
          f"(target <= {READY_TARGET:g} s: {'met' if met(figures) else 'NOT met'})")  # fmt: skip
    print(f"  0 chaincodes:  median {base:.3f} s, max {max(empty):.3f} s  (baseline)")
    print(f"  {n} chaincodes add {p50 - base:.3f} s ({p50 / base:.2f}x the baseline)")
    print(f"  SIGTERM exit statuses: {figures['exits']}")


def main() -> int:
    """Parse arguments, run the benchmark, print the table (or JSON); 0 when the target is met."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    testbed.engine_arguments(parser)
    parser.add_argument("-n", type=int, default=200, help="running chaincodes to re-adopt")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the order swaps")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    engine_socket = testbed.chosen_socket(args)
    # Short: Unix socket paths are limited to 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="ccdr-", dir="/tmp"))
    loaded = Instance(f"{args.n} chaincodes", directory / "loaded", engine_socket)
    empty = Instance("0 chaincodes", directory / "empty", engine_socket)
    failed = False
    try:
        figures = asyncio.run(bench(loaded, empty, args))
    except BaseException:
        failed = True
        raise
    finally:
        if failed:
            for instance in (loaded, empty):
                log = instance.directory / "daemon.log"
                tail = log.read_text(errors="replace").splitlines()[-20:] if log.exists() else []
                print(f"{instance.name}: daemon log:", *tail, sep="\n  ", file=sys.stderr)
        shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0 if met(figures) else 1
    report(figures)
    return 0 if met(figures) else 1


if __name__ == "__main__":
    testbed.exit_with(main)
