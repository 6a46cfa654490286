#!/usr/bin/env python3
"""Soak: the load cycle of tests/faults/test_load.py, repeated against one daemon process.

A real ``ccdaemon serve`` child process (its own socket, instance label and peer id,
default engine_limit, attach_stdout on) gets the same seeded plan of launches and stops
again and again (tests/faults/loadgen.py: ``--requests`` requests over ``--ids`` ids from
``--clients`` concurrent API clients) for ``--minutes`` minutes. Every cycle is checked as
the load test checks it (documented answers only; the engine runs exactly what each id's
last request implies); a cycle that fails stops the soak with exit status 1.

After each cycle, once the daemon has settled, three samples are taken:
- RSS: VmRSS from /proc/PID/status;
- fds: the entries of /proc/PID/fd;
- tasks: the daemon's live asyncio tasks (GET /v1/health "tasks").
Each cycle ends in the same state (same plan, same ids), so a daemon that leaks nothing
shows the same figures after every cycle. The report gives each series' least-squares
slope per cycle and per hour, over all cycles and over the last half (the first cycles
include warm-up: the chaincode CA, caches, the engine's first containers), and calls a
series flat when the last half's slope per cycle is under 1% of its mean (and an integer
series, fds or tasks, flat also when its last half does not change at all).

    scripts/bench/soak.py [--engine docker-28.5] [--minutes 10] [--requests 1000]
                          [--ids 100] [--clients 50] [--seed N] [--socket PATH] [--json]

The default engine is Docker 28.5: Debian's 20.10 deadlocked (ENGINES.md) in the 8th
1,000-request cycle of a soak, even with the daemon's bound of 8 engine calls.

Exit status: 0 when every series is flat and every cycle passed, 1 otherwise, 2 on an
error. Everything made is removed at the end (SIGTERM to the daemon, its containers by
its instance label, the image tags by name).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import testbed

ROOT = Path(__file__).resolve().parents[2]
# The load cycle lives with the tests; this script shares it rather than copying it.
sys.path.insert(0, str(ROOT))

from ccdaemon.config import load  # noqa: E402
from ccdaemon.engine import Engine, EngineError, NoSuchContainer, NoSuchImage  # noqa: E402
from ccdaemon.engine import containers as engine_containers  # noqa: E402
from ccdaemon.engine import images as engine_images  # noqa: E402
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL  # noqa: E402
from tests.daemon.conftest import RunningDaemon, stub_images  # noqa: E402
from tests.faults import loadgen  # noqa: E402

READY_TIMEOUT = 60.0
EXIT_TIMEOUT = 60.0
#: Seconds after a cycle before sampling: attach streams of removed containers close.
SETTLE = 2.0
#: Flat: the last half's slope per cycle is under this share of the series' mean.
FLAT_SHARE = 0.01
SERIES = ("rss_mib", "fds", "tasks")


@dataclass
class Soak:
    """What the soak made (for cleanup) and what it measured."""

    engine_socket: str
    directory: Path
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    daemon: asyncio.subprocess.Process | None = None
    tagged: list[str] = field(default_factory=list)
    samples: list[dict[str, float]] = field(default_factory=list)

    @property
    def instance(self) -> str:
        """The daemon's instance label value."""
        return f"soak-{self.tag}"

    @property
    def api_socket(self) -> Path:
        """The daemon's API socket."""
        return self.directory / "ccd.sock"


def write_config(soak: Soak) -> Path:
    """The daemon's TOML configuration (as the load test's daemon, default engine_limit)."""
    return testbed.write_config(
        soak.directory,
        instance=soak.instance,
        api_socket=soak.api_socket,
        engine_socket=soak.engine_socket,
        network_id="t",
        peer_id=f"s{soak.tag}",
        mspid="Org1MSP",
    )


def sample(pid: int) -> tuple[float, int]:
    """VmRSS in MiB and the number of open file descriptors of ``pid``."""
    return testbed.memory_mib(pid)[0], sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


async def health(session: aiohttp.ClientSession) -> dict[str, Any]:
    """GET /v1/health's body (200 only)."""
    async with session.get("http://ccdaemon/v1/health") as answer:
        body = await answer.json()
        if answer.status != 200:
            raise RuntimeError(f"health answered {answer.status}: {body}")
        return dict(body)


async def start_daemon(soak: Soak, config: Path, log: Any) -> None:
    """Start ``ccdaemon serve``; wait until GET /v1/health says "ok"."""
    soak.daemon = await testbed.spawn_daemon(config, log)
    async with asyncio.timeout(READY_TIMEOUT):
        await testbed.wait_healthy(soak.daemon, soak.api_socket)


async def soak_run(soak: Soak, args: argparse.Namespace, log: Any) -> None:
    """Cycles until the time is up; a sample after each."""
    config_path = write_config(soak)
    config = load(config_path, environ={})
    deadline = time.monotonic() + args.minutes * 60
    try:
        async with Engine(f"unix://{soak.engine_socket}") as engine:
            await start_daemon(soak, config_path, log)
            assert soak.daemon is not None  # noqa: S101 -- started just above
            ccids = loadgen.make_ids(args.ids, soak.tag)
            connector = aiohttp.UnixConnector(path=str(soak.api_socket))
            async with aiohttp.ClientSession(connector=connector) as session:
                await stub_images(engine, RunningDaemon(config, session, tagged=soak.tagged), ccids)
                plan = loadgen.plan(ccids, args.requests, args.seed)
                number = 0
                while not number or time.monotonic() < deadline:
                    cycle = await loadgen.run_cycle(soak.api_socket, plan, args.clients)
                    check(cycle, await loadgen.engine_containers(engine, soak.instance))
                    await asyncio.sleep(SETTLE)
                    rss, fds = sample(soak.daemon.pid)
                    tasks = (await health(session))["tasks"]
                    figures = {
                        "cycle": number,
                        "seconds": round(cycle.seconds, 1),
                        "rss_mib": round(rss, 2),
                        "fds": fds,
                        "tasks": tasks,
                    }
                    soak.samples.append(figures)
                    print(
                        f"cycle {number}: {len(cycle.answers)} requests in {cycle.seconds:.1f} s;"
                        f" RSS {rss:.2f} MiB, {fds} fds, {tasks} tasks",
                        flush=True,
                    )
                    number += 1
    finally:
        await cleanup(soak)


def check(cycle: loadgen.Cycle, found: dict[str, tuple[str, str]]) -> None:
    """Fail the soak on an undocumented answer or an end state the requests do not imply."""
    unexplained = cycle.unexplained()
    if unexplained:
        first = unexplained[0]
        raise RuntimeError(
            f"{len(unexplained)} undocumented answers, e.g. {first.status} {first.body}"
        )
    problems, _, _ = loadgen.final_problems(cycle.answers, found)
    if problems:
        raise RuntimeError(f"{len(problems)} ids end wrong, e.g. {problems[0]}")


async def cleanup(soak: Soak) -> None:
    """Stop the daemon (SIGTERM), then remove its containers and the image tags."""
    if soak.daemon is not None and soak.daemon.returncode is None:
        soak.daemon.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(EXIT_TIMEOUT):
                await soak.daemon.wait()
        except TimeoutError:
            soak.daemon.kill()
            await soak.daemon.wait()
    async with Engine(f"unix://{soak.engine_socket}") as engine:
        for item in await engine_containers.list_(engine, labels={INSTANCE_LABEL: soak.instance}):
            with contextlib.suppress(NoSuchContainer):
                await engine_containers.remove(engine, str(item["Id"]), force=True)
        for image in soak.tagged:
            try:
                await engine_images.remove(engine, image)
            except NoSuchImage:
                pass
            except EngineError as exc:
                print(f"cleanup: cannot remove image {image}: {exc}", file=sys.stderr)


def slope(values: list[float]) -> float:
    """Least-squares slope of ``values`` against their index (0 for fewer than two)."""
    if len(values) < 2 or len(set(values)) == 1:
        return 0.0
    return statistics.linear_regression(range(len(values)), values).slope


def figures(samples: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Per series: first, last, mean, slopes per cycle and per hour, and the flat verdict."""
    cycle_seconds = statistics.mean(s["seconds"] + SETTLE for s in samples)
    half = samples[len(samples) // 2 :]
    result = {}
    for name in SERIES:
        values = [s[name] for s in samples]
        late = [s[name] for s in half]
        late_slope = slope(late)
        mean = statistics.mean(late)
        result[name] = {
            "first": values[0],
            "last": values[-1],
            "slope_per_cycle": slope(values),
            "slope_per_hour": slope(values) * 3600 / cycle_seconds,
            "last_half_slope_per_cycle": late_slope,
            "last_half_slope_per_hour": late_slope * 3600 / cycle_seconds,
            "last_half_share_per_cycle": abs(late_slope) / mean if mean else 0.0,
            "flat": len(half) >= 2 and (abs(late_slope) < FLAT_SHARE * mean or len(set(late)) == 1),
        }
    return result


def report(soak: Soak, args: argparse.Namespace) -> bool:
    """Print the figures; return whether every series is flat."""
    samples = soak.samples
    series = figures(samples)
    print(
        f"\nsoak on {args.engine}: {len(samples)} cycles of {args.requests} requests over "
        f"{args.ids} ids from {args.clients} clients (seed {args.seed}), "
        f"{sum(s['seconds'] for s in samples) / 60:.1f} min of load; every cycle checked"
    )
    print(
        f"{'series':<8} {'first':>9} {'last':>9} {'slope/cycle':>12} {'slope/hour':>11} "
        f"{'last half/cycle':>16} {'last half/hour':>15} {'share':>7}  flat?"
    )
    for name, row in series.items():
        print(
            f"{name:<8} {row['first']:>9.2f} {row['last']:>9.2f} {row['slope_per_cycle']:>+12.3f} "
            f"{row['slope_per_hour']:>+11.2f} {row['last_half_slope_per_cycle']:>+16.3f} "
            f"{row['last_half_slope_per_hour']:>+15.2f} "
            f"{row['last_half_share_per_cycle']:>7.2%}  {'yes' if row['flat'] else 'NO'}"
        )
    print(f"flat: last half's slope per cycle under {FLAT_SHARE:.0%} of its mean")
    return all(row["flat"] for row in series.values())


def main() -> int:
    """Parse arguments, soak, report; 0 when every series is flat."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    testbed.engine_arguments(parser, "docker-28.5")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to repeat cycles")
    parser.add_argument("--requests", type=int, default=1000, help="requests per cycle")
    parser.add_argument("--ids", type=int, default=100, help="chaincode ids")
    parser.add_argument("--clients", type=int, default=50, help="concurrent API clients")
    parser.add_argument("--seed", type=int, default=20260301, help="the plan's seed")
    parser.add_argument("--json", action="store_true", help="print samples and figures as JSON")
    args = parser.parse_args()
    socket = testbed.chosen_socket(args)
    directory = Path(tempfile.mkdtemp(prefix="ccds-", dir="/tmp"))  # short: socket paths
    directory.chmod(0o700)
    soak = Soak(socket, directory)
    log_path = directory / "daemon.log"
    try:
        with log_path.open("w") as log:
            asyncio.run(soak_run(soak, args, log))
    except BaseException:
        if log_path.exists():
            tail = log_path.read_text(errors="replace").splitlines()[-30:]
            print("daemon log, last lines:", *tail, sep="\n  ", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    flat = report(soak, args)
    if args.json:
        print(json.dumps({"samples": soak.samples, "series": figures(soak.samples)}, indent=2))
    return 0 if flat else 1


if __name__ == "__main__":
    testbed.exit_with(main)
