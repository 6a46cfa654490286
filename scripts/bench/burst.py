#!/usr/bin/env python3
"""Benchmark: time to running under a burst, through the daemon vs. straight at the engine.

In one run, against one engine, bursts of N launches (default 200) submitted at once:

- daemon: N ``POST /v1/chaincodes`` at once to a real ``ccdaemon serve`` child (output
  attached, images already tagged, names known free), which admits them first come,
  first served, ``engine_limit`` (8) at a time;
- direct: a client that sends the same N launches' engine calls at once, each launch on
  a connection of its own: the raw-HTTP floor of scripts/bench/daemon.py (DELETE
  ?force=1 answered 404, create, attach, PUT archive of the TLS files as tar.gz, start).

A launch's time to running runs from the burst's submission to the answer that says
its container has started (the daemon's launch answer; the engine's 204 to start).
Bursts alternate, the order swapping each round, so drift hits both alike; between
bursts, untimed, the daemon stops its chaincodes (t=0, through its API) and the direct
client's containers are removed, a few at a time. The figures are p50 and p95 over all
rounds' launches and their ratios daemon/direct (targets: p50 <= 0.6x, since serving
first come first served beats processor sharing near 0.5x; p95 <= 1.05x), with each
round's beside them.

    scripts/bench/burst.py [--engine docker-20.10 | --socket PATH] [-n 200] [--rounds 4]
                           [--json]

Everything made is removed at the end, also after a failure or Ctrl-C, as daemon.py
does. Exit status: 0 when both targets are met, 1 when one is missed, 2 on an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import TYPE_CHECKING, Any

import testbed
from daemon import (
    FLOOR_LABEL,
    SETTLE,
    Floor,
    Run,
    cleanup,
    ensure_stub,
    floor_spec,
    launch_body,
    percentile,
    remove_made,
    run_in_scratch,
    start_daemon,
    tag_images,
    write_config,
)

from ccdaemon.apiclient.aio import AsyncClient
from ccdaemon.config import load
from ccdaemon.engine import Engine

if TYPE_CHECKING:
    import io

    from ccdaemon.runtime.dockervm import LaunchSpec

MODES = ("daemon", "direct")
#: Launches of each mode before the timed rounds: connections, the daemon's CA, caches.
WARMUP = 8
#: Targets, daemon over direct.
P50_TARGET = 0.6
P95_TARGET = 1.05


async def daemon_burst(run: Run, ccids: list[str]) -> list[float]:
    """Launch ``ccids`` at once through the API; each one's seconds to running.

    A fresh client per burst, so both modes open their connections inside the burst.
    """
    async with AsyncClient(run.api_socket) as client:
        began = time.perf_counter()

        async def launch(ccid: str) -> float:
            await client.launch(launch_body(ccid))
            return time.perf_counter() - began

        times = await asyncio.gather(*(launch(ccid) for ccid in ccids))
        # Untimed: Fabric's stop, t=0; the daemon bounds the removals itself.
        await asyncio.gather(*(client.stop(ccid, timeout=0) for ccid in ccids))
    return list(times)


async def direct_burst(  # noqa: PLR0913 -- the burst's parts, each named
    run: Run, engine: Engine, api: str, spec: LaunchSpec, names: list[str], *, attach: bool
) -> list[float]:
    """Send the engine every launch of ``names`` at once; each one's seconds to running."""
    floors = [Floor(run.engine_socket, api, spec, attach=attach) for _ in names]
    try:
        began = time.perf_counter()

        async def launch(floor: Floor, name: str) -> float:
            await floor.launch(name)
            return time.perf_counter() - began

        times = await asyncio.gather(
            *(launch(floor, name) for floor, name in zip(floors, names, strict=True))
        )
    finally:
        # Untimed: the streams end, and the containers go a few at a time (never all
        # at once: Docker 20.10 deadlocks under heavy concurrent removal, ENGINES.md).
        for floor in floors:
            floor.close()
        await remove_made(engine, [{FLOOR_LABEL: run.tag}], [], built_stub=False)
    return list(times)


async def bench(run: Run, args: argparse.Namespace, log: io.TextIOWrapper) -> None:
    """Warm-up, then the alternating bursts; cleanup in ``finally`` whatever happens."""
    config_path = write_config(run)
    config = load(config_path, environ={})
    ccids = [f"burst{i}:{run.tag}" for i in range(args.n)]
    warm = [f"warm{i}:{run.tag}" for i in range(WARMUP)]
    times: dict[str, list[list[float]]] = {mode: [] for mode in MODES}
    try:
        async with Engine(f"unix://{run.engine_socket}") as engine:
            run.built_stub = await ensure_stub(engine)
            network = {"network_id": "bench", "peer_id": f"p{run.tag}"}
            await tag_images(engine, warm + ccids, run.tagged, **network)
            health = await start_daemon(run, config_path, log)
            run.figures["engine"] = health["engine"]
            api = str(health["engine"]["api_version"])
            spec = floor_spec(config, run.tag)

            async def burst(mode: str, label: str, batch: list[str]) -> list[float]:
                if mode == "daemon":
                    return await daemon_burst(run, batch)
                names = [f"bench-{run.tag}-{label}-{i}" for i in range(len(batch))]
                attach = config.runtime.attach_stdout
                return await direct_burst(run, engine, api, spec, names, attach=attach)

            for mode in MODES:
                await burst(mode, "warm", warm)
            for number in range(args.rounds):
                order = MODES if number % 2 == 0 else MODES[::-1]
                for mode in order:
                    await asyncio.sleep(SETTLE)
                    times[mode].append(await burst(mode, f"r{number}", ccids))
                    last = times[mode][-1]
                    print(
                        f"round {number} {mode}: p50 {statistics.median(last):.2f} s, "
                        f"p95 {percentile(last, 0.95):.2f} s",
                        file=sys.stderr,
                    )
    finally:
        await cleanup(run)
    run.figures["times_s"] = times


def summary(figures: dict[str, Any]) -> dict[str, Any]:
    """p50 and p95 of each mode over every round, their ratios, and each round's."""
    times = figures["times_s"]
    pooled = {mode: [t for batch in times[mode] for t in batch] for mode in MODES}
    result: dict[str, Any] = {
        "p50_s": {mode: statistics.median(values) for mode, values in pooled.items()},
        "p95_s": {mode: percentile(values, 0.95) for mode, values in pooled.items()},
        "round_p50_s": {mode: [statistics.median(b) for b in times[mode]] for mode in MODES},
        "round_p95_s": {mode: [percentile(b, 0.95) for b in times[mode]] for mode in MODES},
    }
    for stat in ("p50", "p95"):
        values, rounds = result[f"{stat}_s"], result[f"round_{stat}_s"]
        result[f"{stat}_ratio"] = values["daemon"] / values["direct"]
        # Each round's daemon burst over the direct burst beside it: less exposed to drift.
        result[f"round_{stat}_ratio"] = [
            d / f for d, f in zip(rounds["daemon"], rounds["direct"], strict=True)
        ]
    return result


def met(figures: dict[str, Any]) -> bool:
    """Whether both ratios are within their targets and the daemon exited 0."""
    result = summary(figures)
    return bool(
        result["p50_ratio"] <= P50_TARGET
        and result["p95_ratio"] <= P95_TARGET
        and figures["daemon_exit"] == 0
    )


def report(figures: dict[str, Any], args: argparse.Namespace) -> None:
    """Print the table."""
    result = summary(figures)
    engine = figures["engine"]
    print(
        f"engine {args.engine} ({engine['kind']} {engine['version']}, API "
        f"{engine['api_version']}); bursts of {args.n} launches submitted at once, "
        f"{args.rounds} rounds, order alternating; time from submission to running"
    )
    for stat, target in (("p50", P50_TARGET), ("p95", P95_TARGET)):
        values, ratio = result[f"{stat}_s"], result[f"{stat}_ratio"]
        verdict = "met" if ratio <= target else "NOT met"
        print(
            f"  {stat}: daemon {values['daemon']:.2f} s, direct {values['direct']:.2f} s, "
            f"ratio {ratio:.3f}x (target <= {target}x: {verdict})"
        )
    for stat in ("p50", "p95"):
        rounds = result[f"round_{stat}_s"]
        ratios = ", ".join(f"{x:.3f}x" for x in result[f"round_{stat}_ratio"])
        print(f"  per-round {stat} s: " + "; ".join(
            f"{mode} {', '.join(f'{x:.2f}' for x in rounds[mode])}" for mode in MODES
        ) + f"; ratios {ratios}")  # fmt: skip
    print(f"  daemon exit status at SIGTERM: {figures['daemon_exit']}")


def main() -> int:
    """Parse arguments, run the benchmark, print the table (or JSON); 0 when targets are met."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    testbed.engine_arguments(parser)
    parser.add_argument("-n", type=int, default=200, help="launches per burst")
    parser.add_argument("--rounds", type=int, default=4, help="rounds; the order swaps")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    socket = testbed.chosen_socket(args)
    run = run_in_scratch(socket, bench, args)
    if args.json:
        print(json.dumps({**run.figures, **summary(run.figures)}, indent=2, default=str))
    else:
        report(run.figures, args)
    return 0 if met(run.figures) else 1


if __name__ == "__main__":
    testbed.exit_with(main)
