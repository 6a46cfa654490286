#!/usr/bin/env python3
"""Benchmark: a stock Fabric 1.4.12 peer straight at the engine vs. through ccdaemon's front.

One run, the same 1.4.12 binaries, the same engine (Docker 20.10 by default) and the
same chaincode (tests/fabric/chaincode/kvcc14, variant v1) for both seams:

- straight: the peer's ``vm.endpoint`` is the engine's socket (the baseline);
- front:    its ``vm.endpoint`` is the Docker-API front of a ``ccdaemon serve`` process
            (configured as tests/front/peer14.py does), which forwards to the same engine.

Per seam and round, on a network laid out afresh (new scratch directory and
``peer.networkId``, so the image is really built): ``install`` (``peer chaincode
install``, which only packages in 1.4), ``instantiate`` (the peer builds the chaincode
in its builder container, builds the image, launches the container and runs Init; the
CLI returns at the endorsement, so the figure ends when the channel lists it; this is
the first launch), ``invoke`` (the first ``invoke put``, on the running chaincode) and
``relaunch`` (the chaincode made to exit with ``invoke exit 3``, its container seen
exited on the engine, a second to let the peer see it go; then the first ``query``,
which relaunches it: DockerVM.Start with the image present). ``total`` is the sum.
Seams alternate, the order swapping each round; each figure is the median over the
rounds, and each ratio front/straight is of two medians; beside it, the median of the
per-round ratios (rounds are paired, so drift across the run cancels). The front seam's
daemon CPU seconds per step (user + system, from /proc) show what the front itself
costs, apart from the Go build's wall-time noise.

    flock /tmp/ccd-suite.lock .venv/bin/python scripts/bench/front14.py [--rounds 5]
        [--engine docker-20.10 | --socket PATH] [--json]

The engine must hold localhost/ccdaemon/goenv:1.24 and baseos:1 (scripts/images build);
the 1.4 stand-ins (hyperledger/fabric-ccenv:1.4, fabric-baseos:amd64-0.4.22) are put
in place for the run and removed after. Each run's figures go to stderr as they come.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import testbed

sys.path.insert(0, str(testbed.ROOT))

from ccdaemon.engine import Engine, containers
from tests.fabricnet.admin import CLIError
from tests.fabricnet.legacy import LegacyNetwork
from tests.front.peer14 import (
    CORE_OVERRIDES,
    KV,
    remove_network_objects,
    serving_front14,
    standins,
)

SEAMS = ("straight", "front")
STEPS = ("install", "instantiate", "invoke", "relaunch")
#: Seconds for the peer to see its chaincode's stream end before the relaunching query.
SETTLE = 1.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_deploy(
    net: LegacyNetwork, engine_socket: str, daemon_pid: int | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """Install, instantiate, invoke and relaunch ``kv`` once on ``net`` (up).

    Returns:
        The seconds of each step, and the daemon's CPU seconds in each (when a
        ``daemon_pid`` is given).
    """
    figures: dict[str, float] = {}
    cpu: dict[str, float] = {}
    steps = (
        ("install", lambda: net.install(KV, "1", variant="v1")),
        ("instantiate", lambda: net.instantiate(KV, "1", "init")),
        ("invoke", lambda: net.invoke(KV, "put", "colour", "blue")),
        ("relaunch", lambda: relaunch_query(net)),
    )
    for step, run in steps:
        if step == "relaunch":
            make_exit(net, engine_socket)
        used = cpu_seconds(daemon_pid) if daemon_pid else 0.0
        began = time.monotonic()
        run()
        figures[step] = time.monotonic() - began
        if daemon_pid:
            cpu[step] = cpu_seconds(daemon_pid) - used
    figures["total"] = sum(figures.values())
    if daemon_pid:
        cpu["total"] = sum(cpu.values())
    return figures, cpu


def make_exit(net: LegacyNetwork, engine_socket: str) -> None:
    """``kv`` exits (``exit 3``); back once the engine has its container exited."""
    try:
        net.invoke(KV, "exit", "3")
    except CLIError:
        pass  # the chaincode ends without answering, as asked
    name = net.container_name(KV, "1")

    async def exited() -> bool:
        async with Engine(f"unix://{engine_socket}") as engine:
            return not (await containers.inspect(engine, name))["State"]["Running"]

    deadline = time.monotonic() + 60
    while not asyncio.run(exited()):
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} still runs 60 s after exit 3")
        time.sleep(0.1)
    time.sleep(SETTLE)


def relaunch_query(net: LegacyNetwork) -> None:
    """The first query after the exit: the peer relaunches ``kv`` to answer it."""
    answer = net.query(KV, "get", "colour")
    if answer != "blue":
        raise SystemExit(f"the relaunched kv answered {answer!r}, not 'blue'")


def straight(engine_socket: str) -> tuple[dict[str, float], dict[str, float]]:
    """One round of the straight seam."""
    net = LegacyNetwork.create(f"unix://{engine_socket}", core_overrides=CORE_OVERRIDES)
    try:
        net.up()
        return timed_deploy(net, engine_socket)
    finally:
        net.down()
        asyncio.run(remove_network_objects(engine_socket, net.network_id))
        net.remove()


def front(engine_socket: str) -> tuple[dict[str, float], dict[str, float]]:
    """One round of the front seam (daemon, front, peer; all removed after)."""
    with serving_front14(engine_socket) as served:
        process = served.daemon.process
        return timed_deploy(served.net, engine_socket, process.pid if process else None)


def main() -> None:
    """Run the rounds and print the medians and the ratio."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each seam (5)")
    testbed.engine_arguments(parser)
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args()
    engine_socket = testbed.chosen_socket(args)
    runs: dict[str, list[dict[str, float]]] = {seam: [] for seam in SEAMS}
    daemon_cpu: list[dict[str, float]] = []
    seams = {"straight": straight, "front": front}
    with standins(engine_socket):
        for number in range(args.rounds):
            order = SEAMS if number % 2 == 0 else SEAMS[::-1]
            for seam in order:
                figures, cpu = seams[seam](engine_socket)
                runs[seam].append(figures)
                if cpu:
                    daemon_cpu.append(cpu)
                shown = "  ".join(f"{k} {v:6.2f}" for k, v in figures.items())
                print(f"round {number + 1} {seam:9} {shown}", file=sys.stderr)
    median = {
        seam: {k: statistics.median(r[k] for r in runs[seam]) for k in (*STEPS, "total")}
        for seam in SEAMS
    }
    ratios = {k: median["front"][k] / median["straight"][k] for k in (*STEPS, "total")}
    pairs = list(zip(runs["straight"], runs["front"], strict=True))
    paired = {k: statistics.median(f[k] / s[k] for s, f in pairs) for k in (*STEPS, "total")}
    cpu_median = {k: statistics.median(c[k] for c in daemon_cpu) for k in (*STEPS, "total")}
    print(f"{'seam':9} " + " ".join(f"{k:>12}" for k in (*STEPS, "total")))
    for seam in SEAMS:
        print(f"{seam:9} " + " ".join(f"{v:12.2f}" for v in median[seam].values()))
    print(f"{'ratio':9} " + " ".join(f"{v:12.3f}" for v in ratios.values()))
    print(f"{'paired':9} " + " ".join(f"{v:12.3f}" for v in paired.values()))
    print(f"{'cpu front':9} " + " ".join(f"{v:12.2f}" for v in cpu_median.values()))
    print(
        f"front/straight: first launch (instantiate) {ratios['instantiate']:.3f} "
        f"(paired {paired['instantiate']:.3f}), relaunch {ratios['relaunch']:.3f} "
        f"(paired {paired['relaunch']:.3f}), total {ratios['total']:.3f}; the daemon's CPU "
        f"{cpu_median['instantiate']:.2f} s in a first launch, {cpu_median['relaunch']:.2f} s "
        f"in a relaunch (medians of {args.rounds} round(s), {engine_socket})"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "rounds": runs,
                    "median": median,
                    "ratios": ratios,
                    "paired": paired,
                    "daemon_cpu": {"rounds": daemon_cpu, "median": cpu_median},
                }
            )
        )


if __name__ == "__main__":
    main()
