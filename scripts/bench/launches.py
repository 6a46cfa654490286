#!/usr/bin/env python3
"""Benchmark: 200 launches through the launch queue versus fired at the engine unbounded.

All in one run, against the same engine:
- queue:  N launches submitted at once to ccdaemon's LaunchQueue (bounded engine work,
          DockerVM.start as the daemon runs a first launch: the names are known to be
          free, so create, PUT archive, start; a relaunch adds one forced remove);
- C=64 and C=200: the same N launches as Fabric sends them (stop t=0, kill, remove
          force, create, PUT archive, start), N at a time with at most C in flight.
Prints throughput (launches/s), p50/p95 latency, and engine errors (anything but the
"no such container" that Fabric's first three calls expect), with the queue's throughput
as a ratio to each. Containers are removed between modes, through the queue's bound.

    scripts/bench/launches.py [--engine docker-28.5] [-n 200] [--limit 8] [--rounds 2]

Docker 20.10 can deadlock under the unbounded modes (ENGINES.md); the default is 28.5.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import anyio
import testbed

from ccdaemon.engine import (
    ContainerNotRunning,
    Engine,
    EngineError,
    EngineUnavailable,
    NoSuchContainer,
    archive,
    containers,
)
from ccdaemon.launchqueue import LaunchQueue, Slot
from ccdaemon.runtime import dockervm
from ccdaemon.runtime.dockervm import LaunchSpec

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/ccdaemon/busybox:latest"
LABEL = "ccdaemon.bench"
TLS = {
    "/etc/hyperledger/fabric/client.key": b"k" * 1024,
    "/etc/hyperledger/fabric/client.crt": b"c" * 1024,
    "/etc/hyperledger/fabric/peer.crt": b"p" * 1024,
}


def spec(name: str) -> LaunchSpec:
    """A chaincode-like container that sleeps."""
    return LaunchSpec(
        container=name,
        image=IMAGE,
        args=["/bin/sleep", "600"],
        env=[f"CORE_CHAINCODE_ID_NAME={name}:1", "CORE_PEER_TLS_ENABLED=true"],
        files=TLS,
        host_config={"NetworkMode": "none"},
        labels={LABEL: "1"},
    )


async def fabric_launch(engine: Engine, name: str, errors: list[str]) -> None:
    """Fabric's DockerVM.Start sequence, errors of the first three ignored as Fabric does."""
    for call in (
        containers.stop(engine, name, grace=0),
        containers.kill(engine, name),
        containers.remove(engine, name, force=True),
    ):
        try:
            await call
        except (NoSuchContainer, ContainerNotRunning):
            pass
        except EngineError as exc:
            errors.append(repr(exc))
    item = spec(name)
    try:
        await containers.create(engine, name, item.create_body(attach=False))
        await containers.put_archive(engine, name, "/", archive.targz(TLS))
        await containers.start(engine, name)
    except (EngineError, EngineUnavailable) as exc:
        errors.append(repr(exc))


async def direct(
    engine: Engine, names: list[str], concurrency: int
) -> tuple[list[float], list[str]]:
    """All launches submitted at once, at most ``concurrency`` in flight."""
    limit = anyio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: list[str] = []

    async def one(name: str) -> None:
        started = time.perf_counter()
        async with limit:
            await fabric_launch(engine, name, errors)
        latencies.append(time.perf_counter() - started)

    async with anyio.create_task_group() as group:
        for name in names:
            group.start_soon(one, name)
    return latencies, errors


async def queued(engine: Engine, names: list[str], limit: int) -> tuple[list[float], list[str]]:
    """All launches submitted at once to the launch queue."""
    latencies: list[float] = []
    errors: list[str] = []

    async def never_build() -> None:
        raise RuntimeError("the image exists")

    async def one(queue: LaunchQueue, name: str) -> None:
        started = time.perf_counter()

        async def work(_: Slot) -> None:
            await dockervm.start(engine, spec(name), build=never_build, name_free=True)

        try:
            await queue.run(name, work)
        except (EngineError, EngineUnavailable) as exc:
            errors.append(repr(exc))
        latencies.append(time.perf_counter() - started)

    async with anyio.create_task_group() as group:
        queue = LaunchQueue(group, engine_limit=limit)
        for name in names:
            group.start_soon(one, queue, name)
    return latencies, errors


async def cleanup(engine: Engine, limit: int) -> None:
    """Remove every benchmark container, a bounded number at a time."""
    found = await containers.list_(engine, labels={LABEL: "1"})
    async with anyio.create_task_group() as group:
        queue = LaunchQueue(group, engine_limit=limit)

        async def remove(ident: str) -> None:
            async def work(_: Slot) -> None:
                await dockervm.remove_quietly(engine, ident)

            await queue.run(ident, work)

        for item in found:
            group.start_soon(remove, item["Id"])


async def run(socket: str, n: int, limit: int, rounds: int) -> dict[str, dict[str, Any]]:
    """Every mode once per round, the order rotating; returns figures per mode."""
    walls: dict[str, float] = {}
    latencies: dict[str, list[float]] = {}
    errors: dict[str, list[str]] = {}
    async with Engine(f"unix://{socket}") as engine:
        await cleanup(engine, limit)
        modes: list[tuple[str, Any]] = [
            ("queue", lambda names: queued(engine, names, limit)),
            ("C=64", lambda names: direct(engine, names, 64)),
            ("C=200", lambda names: direct(engine, names, 200)),
        ]
        for round_ in range(rounds):
            for label, mode in modes[round_ % 3 :] + modes[: round_ % 3]:
                names = [f"benchq-{label.replace('=', '')}-{round_}-{i}" for i in range(n)]
                started = time.perf_counter()
                with anyio.fail_after(900):  # a deadlocked engine must not hang the benchmark
                    took, failed = await mode(names)
                walls[label] = walls.get(label, 0.0) + time.perf_counter() - started
                latencies.setdefault(label, []).extend(took)
                errors.setdefault(label, []).extend(failed)
                await cleanup(engine, limit)
    results: dict[str, dict[str, Any]] = {}
    for label, _ in modes:
        ordered = sorted(latencies[label])
        results[label] = {
            "per_s": n * rounds / walls[label],
            "p50": statistics.median(ordered),
            "p95": ordered[int(0.95 * (len(ordered) - 1))],
            "errors": errors[label],
        }
    return results


def main() -> None:
    """Parse arguments, start the engine, run, print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    testbed.engine_arguments(parser, "docker-28.5")
    parser.add_argument("-n", type=int, default=200, help="launches per mode")
    parser.add_argument("--limit", type=int, default=8, help="the queue's engine_limit")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the mode order rotates")
    args = parser.parse_args()
    socket = testbed.chosen_socket(args)
    results = asyncio.run(run(socket, args.n, args.limit, args.rounds))
    print(
        f"engine {args.engine}, {args.n} launches per mode x {args.rounds} rounds, "
        f"queue engine_limit {args.limit}"
    )
    print(f"{'mode':<7} {'launch/s':>9} {'p50 s':>7} {'p95 s':>7} {'errors':>7} {'queue/this':>11}")
    queue_rate = results["queue"]["per_s"]
    for label, row in results.items():
        print(
            f"{label:<7} {row['per_s']:9.2f} {row['p50']:7.2f} {row['p95']:7.2f} "
            f"{len(row['errors']):7d} {queue_rate / row['per_s']:10.2f}x"
        )
    for label, row in results.items():
        for error in row["errors"][:3]:
            print(f"  {label}: {error}")


if __name__ == "__main__":
    main()
