#!/usr/bin/env python3
"""Benchmark: Fabric's launch sequence through ccdaemon's engine client, aiodocker and a raw floor.

Each launch is what Fabric's DockerVM.Start sends when the image exists: stop t=0, kill,
remove force (errors ignored), create, PUT archive of three ~1 KB TLS files (tar.gz), start.
N launches run at concurrency C, for each client in its own child process (so CPU and peak
RSS are the client's own), in rounds whose order rotates, all against the same engine in
one run. Every figure is reported beside its ratio to the raw-HTTP floor, measured in the
same run: these machines are noisy, absolute numbers are not comparable across runs.

    scripts/bench/client.py [--engine docker-20.10] [-n 60] [-c 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import timeit
from functools import partial
from pathlib import Path
from typing import Any

from testbed import RawHTTP, chosen_socket, engine_arguments, stdlib_targz

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/ccdaemon/busybox:latest"
CLIENTS = ("floor", "ccdaemon", "aiodocker")
TLS_FILES = {
    "/etc/hyperledger/fabric/client.key": b"k" * 1024,
    "/etc/hyperledger/fabric/client.crt": b"c" * 1024,
    "/etc/hyperledger/fabric/peer.crt": b"p" * 1024,
}
CREATE_BODY: dict[str, Any] = {
    "Image": IMAGE,
    "Cmd": ["/bin/sleep", "600"],
    "Env": ["CORE_CHAINCODE_ID_NAME=bench:1", "CORE_PEER_TLS_ENABLED=true"],
    "Labels": {"ccdaemon.bench": "1"},
    "HostConfig": {"NetworkMode": "none"},
}
WARMUP = 4

# --- The floor: testbed.RawHTTP, one kept-alive Unix connection per worker.


def expect(status: int, wanted: int, what: str) -> None:
    """Fail the benchmark loudly when the engine refuses a step."""
    if status != wanted:
        raise RuntimeError(f"{what} answered {status}, not {wanted}")


async def run_floor(socket: str, names: list[str], concurrency: int) -> list[float]:
    """Launch ``names`` with the floor client; return per-launch latencies."""
    async with asyncio.timeout(30):
        probe = RawHTTP(socket)
        await probe.request("GET", "/version")
        probe.close()
    prefix = "/v1.41"
    create = json.dumps(CREATE_BODY).encode()
    pool = [RawHTTP(socket) for _ in range(concurrency)]

    async def launch(conn: RawHTTP, name: str) -> None:
        await conn.request("POST", f"{prefix}/containers/{name}/stop?t=0")
        await conn.request("POST", f"{prefix}/containers/{name}/kill")
        await conn.request("DELETE", f"{prefix}/containers/{name}?force=1")
        status = await conn.request(
            "POST", f"{prefix}/containers/create?name={name}", create, "application/json"
        )
        expect(status, 201, "create")
        tls = stdlib_targz(TLS_FILES)
        status = await conn.request(
            "PUT", f"{prefix}/containers/{name}/archive?path=%2F", tls, "application/x-tar"
        )
        expect(status, 200, "PUT archive")
        status = await conn.request("POST", f"{prefix}/containers/{name}/start")
        expect(status, 204, "start")

    try:
        return await drive(pool, names, launch)
    finally:
        for conn in pool:
            conn.close()


# --- ccdaemon's engine client.


async def run_ccdaemon(socket: str, names: list[str], concurrency: int) -> list[float]:
    """Launch ``names`` with ccdaemon's engine client; return per-launch latencies."""
    from ccdaemon.engine import Engine, EngineError, archive, containers  # noqa: PLC0415

    async with Engine(f"unix://{socket}") as engine:

        async def launch(_: object, name: str) -> None:
            # Fabric ignores every error of these three. Plain try/except, not
            # contextlib.suppress, for all clients alike: the harness should cost nothing.
            try:
                await containers.stop(engine, name, grace=0)
            except EngineError:
                pass
            try:
                await containers.kill(engine, name)
            except EngineError:
                pass
            try:
                await containers.remove(engine, name, force=True)
            except EngineError:
                pass
            await containers.create(engine, name, CREATE_BODY)
            await containers.put_archive(engine, name, "/", archive.targz(TLS_FILES))
            await containers.start(engine, name)

        return await drive([None] * concurrency, names, launch)


# --- aiodocker, the independent aiohttp-based client.


async def run_aiodocker(socket: str, names: list[str], concurrency: int) -> list[float]:
    """Launch ``names`` with aiodocker; return per-launch latencies."""
    import aiodocker  # noqa: PLC0415

    docker = aiodocker.Docker(url=f"unix://{socket}")
    try:

        async def launch(_: object, name: str) -> None:
            container = docker.containers.container(name)
            try:
                await container.stop(t=0)
            except aiodocker.DockerError:
                pass
            try:
                await container.kill()
            except aiodocker.DockerError:
                pass
            try:
                await container.delete(force=True)
            except aiodocker.DockerError:
                pass
            created = await docker.containers.create(CREATE_BODY, name=name)
            await created.put_archive("/", stdlib_targz(TLS_FILES))  # type: ignore[no-untyped-call]
            await created.start()

        return await drive([None] * concurrency, names, launch)
    finally:
        await docker.close()


async def drive(workers: list[Any], names: list[str], launch: Any) -> list[float]:
    """Run ``launch`` over ``names`` with one task per worker; return per-launch latency (s)."""
    queue = list(reversed(names))
    latencies: list[float] = []

    async def work(worker: object) -> None:
        while queue:
            name = queue.pop()
            started = time.perf_counter()
            await launch(worker, name)
            latencies.append(time.perf_counter() - started)

    async with asyncio.TaskGroup() as group:
        for worker in workers:
            group.create_task(work(worker))
    return latencies


RUNNERS = {"floor": run_floor, "ccdaemon": run_ccdaemon, "aiodocker": run_aiodocker}


def worker_main(args: argparse.Namespace) -> None:
    """Child process: warm up, then run one batch and print its figures as JSON."""
    runner = RUNNERS[args.worker]
    warm = [f"{args.prefix}-w{i}" for i in range(WARMUP)]
    names = [f"{args.prefix}-{i}" for i in range(args.n)]

    async def both() -> tuple[list[float], float, float]:
        await runner(args.socket, warm, 1)
        cpu, wall = time.process_time(), time.perf_counter()
        latencies = await runner(args.socket, names, args.c)
        return latencies, time.process_time() - cpu, time.perf_counter() - wall

    latencies, cpu, wall = asyncio.run(both())
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the forking parent.
    status = Path("/proc/self/status").read_text()
    peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
    print(json.dumps({"latencies": latencies, "cpu": cpu, "wall": wall, "rss_mib": peak}))


async def cleanup(socket: str) -> None:
    """Remove every container the benchmark made."""
    from ccdaemon.engine import Engine, containers  # noqa: PLC0415

    async with Engine(f"unix://{socket}") as engine:
        for found in await containers.list_(engine, labels={"ccdaemon.bench": "1"}):
            await containers.remove(engine, found["Id"], force=True)


def main() -> None:
    """Parse arguments; as the parent, start the engine and run the interleaved rounds."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    engine_arguments(parser)
    parser.add_argument("-n", type=int, default=60, help="launches per client per round")
    parser.add_argument("-c", type=int, default=8, help="launches in flight at once")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; client order rotates")
    parser.add_argument("--worker", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    socket = chosen_socket(args)
    results: dict[str, list[dict[str, Any]]] = {client: [] for client in CLIENTS}
    for round_ in range(args.rounds):
        order = CLIENTS[round_ % 3 :] + CLIENTS[: round_ % 3]
        for client in order:
            child = subprocess.run(
                [sys.executable, __file__, "--worker", client, "--socket", socket,
                 "--prefix", f"bench-{client}-{round_}", "-n", str(args.n), "-c", str(args.c)],
                check=True, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            results[client].append(json.loads(child.stdout))
            asyncio.run(cleanup(socket))
    report(results, args)


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    """Print each client's figures and their ratios to the floor."""
    rows = {}
    for client, runs in results.items():
        latencies = sorted(x for run in runs for x in run["latencies"])
        launches = len(latencies)
        rows[client] = {
            "p50_ms": statistics.median(latencies) * 1000,
            "p95_ms": latencies[int(0.95 * (launches - 1))] * 1000,
            "per_s": launches / sum(run["wall"] for run in runs),
            "cpu_ms": sum(run["cpu"] for run in runs) * 1000 / launches,
            "rss_mib": max(run["rss_mib"] for run in runs),
        }
    from ccdaemon.engine import archive  # noqa: PLC0415

    packaging = {
        "stdlib tarfile (floor, aiodocker)": stdlib_targz,
        "ccdaemon archive.targz": archive.targz,
    }
    for label, pack in packaging.items():
        cost = min(timeit.repeat(partial(pack, TLS_FILES), number=200, repeat=3)) / 200
        print(f"packaging the TLS tar.gz, {label}: {cost * 1e6:.0f} us per launch")
    floor = rows["floor"]
    print(
        f"engine {args.engine}, {args.n} launches x {args.rounds} rounds per client, "
        f"concurrency {args.c}"
    )
    titles = ("p50 ms", "p95 ms", "launch/s", "cpu ms/launch", "peak RSS MiB")
    print(f"{'client':<10} " + " ".join(f"{title:>16}" for title in titles))
    for client, row in rows.items():
        cells = [
            f"{row[key]:7.2f} ({row[key] / floor[key]:4.2f}x)"
            for key in ("p50_ms", "p95_ms", "per_s", "cpu_ms", "rss_mib")
        ]
        print(f"{client:<10} " + " ".join(f"{cell:>16}" for cell in cells))
    cpu_ratio = rows["ccdaemon"]["cpu_ms"] / floor["cpu_ms"]
    below = rows["ccdaemon"]["cpu_ms"] < rows["aiodocker"]["cpu_ms"]
    print(
        f"target: ccdaemon cpu/launch <= 1.2x floor ({cpu_ratio:.2f}x) "
        f"and below aiodocker ({below})"
    )


if __name__ == "__main__":
    main()
