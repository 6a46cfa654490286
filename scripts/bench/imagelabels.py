#!/usr/bin/env python3
"""Benchmark: what labelling a chaincode image costs, by where the labels are written.

A chaincode image build as Fabric makes it (FROM the runtime image, ADD binpackage.tar,
one LABEL, ENV), with ccdaemon's three ownership labels written three ways:

- none:       no labels of ccdaemon's (the baseline: Fabric's own build);
- parameter:  the build's ``labels`` query parameter (the engine adds a LABEL step);
- dockerfile: continuing the Dockerfile's own LABEL instruction (what ccdaemon does,
              in its builds and in the peer's builds through the Docker-API front).

Each build has a binary of its own (so no step is cached) and a new tag; kinds alternate, the order
reversing each round; the figure is the median build time and its ratio to ``none``.

    scripts/bench/imagelabels.py [--engine docker-20.10] [--socket PATH] [--rounds 6]

The engine must hold localhost/ccdaemon/baseos:1 (scripts/images build). Every image
made is removed at the end, also after a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time

import testbed

sys.path.insert(0, str(testbed.ROOT))

from ccdaemon.engine import Engine, NoSuchImage, archive, images

RUNTIME = "localhost/ccdaemon/baseos:1"
KINDS = ("none", "parameter", "dockerfile")
LABELS = {"ccdaemon.managed": "true", "ccdaemon.instance": "bench", "ccdaemon.role": "image"}
FABRIC_LABEL = (
    'LABEL org.hyperledger.fabric.chaincode.id.name="kv" \\\n'
    '      org.hyperledger.fabric.chaincode.type="GOLANG" \\\n'
    '      org.hyperledger.fabric.version="1.4.12"\n'
)
OUR_LABELS = "".join(f'{key}="{value}" ' for key, value in LABELS.items())


def dockerfile(*, ours: bool) -> bytes:
    """Fabric's Dockerfile, ``ours``: with ccdaemon's labels first in its LABEL."""
    label = FABRIC_LABEL.replace("LABEL ", f"LABEL {OUR_LABELS}", 1) if ours else FABRIC_LABEL
    text = f"FROM {RUNTIME}\nADD binpackage.tar /usr/local/bin\n{label}ENV A=1\n"
    return text.encode()


async def run(engine: Engine, rounds: int) -> dict[str, list[float]]:
    """Build each kind ``rounds`` times; the seconds of each build."""
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    run_id = secrets.token_hex(3)
    for number in range(rounds):
        for kind in KINDS if number % 2 == 0 else KINDS[::-1]:
            tag = f"localhost/ccdaemon/imagelabels-{run_id}-{kind}-{number}:1"
            binpackage = archive.tar({"chaincode": os.urandom(4 << 20)})
            context = archive.targz(
                {"Dockerfile": dockerfile(ours=kind == "dockerfile"), "binpackage.tar": binpackage}
            )
            began = time.perf_counter()
            try:
                await images.build(
                    engine,
                    context,
                    tag,
                    labels=LABELS if kind == "parameter" else None,
                    network_mode="none",
                )
                times[kind].append(time.perf_counter() - began)
            finally:
                try:
                    await images.remove(engine, tag, force=True)
                except NoSuchImage:
                    pass
    return times


def main() -> None:
    """Run the builds and print each kind's median and its ratio to ``none``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    testbed.engine_arguments(parser)
    parser.add_argument("--rounds", type=int, default=6, help="builds of each kind (6)")
    args = parser.parse_args()
    socket = testbed.chosen_socket(args)

    async def measure() -> dict[str, list[float]]:
        async with Engine(f"unix://{socket}") as engine:
            return await run(engine, args.rounds)

    times = asyncio.run(measure())
    base = statistics.median(times["none"])
    for kind in KINDS:
        median = statistics.median(times[kind])
        shown = " ".join(f"{t:.3f}" for t in times[kind])
        print(f"{kind:10} median {median:.3f} s  ratio {median / base:.3f}  ({shown})")


if __name__ == "__main__":
    main()
