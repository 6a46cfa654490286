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
CLI returns at the endorsement, so the figure ends when the channel lists it) and
``invoke`` (the first ``invoke put``, on the running chaincode). ``total`` is their sum.
Seams alternate, the order swapping each round; each figure is the median over the
rounds, and the ratio front/straight is of the medians of ``total``.

    flock /tmp/ccd-suite.lock .venv/bin/python scripts/bench/front14.py [--rounds 3]
        [--engine docker-20.10 | --socket PATH] [--json]

The engine must hold localhost/ccdaemon/goenv:1.24 and baseos:1 (scripts/images build);
the 1.4 stand-ins (hyperledger/fabric-ccenv:1.4, fabric-baseos:amd64-0.4.22) are put
in place for the run and removed after. Each run's figures go to stderr as they come.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

import testbed

sys.path.insert(0, str(testbed.ROOT))

from tests.fabricnet.legacy import LegacyNetwork
from tests.front.peer14 import (
    CORE_OVERRIDES,
    KV,
    remove_network_objects,
    serving_front14,
    standins,
)

SEAMS = ("straight", "front")
STEPS = ("install", "instantiate", "invoke")


def timed_deploy(net: LegacyNetwork) -> dict[str, float]:
    """Install, instantiate and invoke ``kv`` once on ``net`` (up); seconds per step."""
    figures: dict[str, float] = {}
    steps = (
        ("install", lambda: net.install(KV, "1", variant="v1")),
        ("instantiate", lambda: net.instantiate(KV, "1", "init")),
        ("invoke", lambda: net.invoke(KV, "put", "colour", "blue")),
    )
    for step, run in steps:
        began = time.monotonic()
        run()
        figures[step] = time.monotonic() - began
    figures["total"] = sum(figures.values())
    return figures


def straight(engine_socket: str) -> dict[str, float]:
    """One round of the straight seam."""
    net = LegacyNetwork.create(f"unix://{engine_socket}", core_overrides=CORE_OVERRIDES)
    try:
        net.up()
        return timed_deploy(net)
    finally:
        net.down()
        asyncio.run(remove_network_objects(engine_socket, net.network_id))
        net.remove()


def front(engine_socket: str) -> dict[str, float]:
    """One round of the front seam (daemon, front, peer; all removed after)."""
    with serving_front14(engine_socket) as served:
        return timed_deploy(served.net)


def main() -> None:
    """Run the rounds and print the medians and the ratio."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each seam (3)")
    parser.add_argument("--engine", default="docker-20.10", help="engine of scripts/engines")
    parser.add_argument("--socket", help="use the engine already answering on this socket")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args()
    engine_socket = args.socket or testbed.engine_socket(args.engine)
    runs: dict[str, list[dict[str, float]]] = {seam: [] for seam in SEAMS}
    seams = {"straight": straight, "front": front}
    with standins(engine_socket):
        for number in range(args.rounds):
            order = SEAMS if number % 2 == 0 else SEAMS[::-1]
            for seam in order:
                figures = seams[seam](engine_socket)
                runs[seam].append(figures)
                shown = "  ".join(f"{k} {v:6.2f}" for k, v in figures.items())
                print(f"round {number + 1} {seam:9} {shown}", file=sys.stderr)
    median = {
        seam: {k: statistics.median(r[k] for r in runs[seam]) for k in (*STEPS, "total")}
        for seam in SEAMS
    }
    ratio = median["front"]["total"] / median["straight"]["total"]
    print(f"{'seam':9} " + " ".join(f"{k:>12}" for k in (*STEPS, "total")))
    for seam in SEAMS:
        print(f"{seam:9} " + " ".join(f"{v:12.2f}" for v in median[seam].values()))
    print(
        f"install+instantiate+first invoke, front/straight: {ratio:.3f} "
        f"(median of {args.rounds} round(s), {engine_socket})"
    )
    if args.json:
        print(json.dumps({"rounds": runs, "median": median, "ratio": ratio}))


if __name__ == "__main__":
    main()
