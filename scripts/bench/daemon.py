#!/usr/bin/env python3
"""Benchmark: the daemon itself, a real ``ccdaemon serve`` child process, against baselines.

All in one run, against one engine, every figure beside a baseline measured in the same
run (these machines are noisy; absolute numbers do not compare across runs):

1. idle RSS: the daemon's VmRSS once GET /v1/health says "ok", against a bare
   ``python -c 'import aiohttp; sleep'`` child of the same interpreter (target <= 1.5x);
2. RSS with N running chaincodes (default 200) launched at once through the API, their
   output attached (runtime.attach_stdout): MiB (target <= 60 MiB) and the ratio to the
   same bare-aiohttp baseline, read once the client has closed the burst's connections
   (the figure with them still open is shown beside it);
3. serial launch latency through the API (one launch at a time, fresh ccids, their
   images already tagged; only the launch call is timed, stops happen afterwards)
   against a raw-HTTP floor that sends the engine the same calls the daemon sends per
   launch: DELETE ?force=1 (404), create, attach (the daemon attaches before start when
   attach_stdout is on), PUT archive of the TLS files as tar.gz, start. Launches
   alternate floor, daemon, floor without attach (order rotating) so drift hits all
   alike; the ratio is of the medians (target <= 1.05x), the median of each daemon
   launch over the floor launch beside it is shown too. The daemon's own phase timings
   (from its answers) show which engine calls it made: it may skip the DELETE for a
   name it knows is free, which the floor, knowing nothing, cannot.

The daemon gets its own socket under a short /tmp directory, a unique instance label and
peer id, NetworkMode "none" and the default engine_limit. Everything made is removed at
the end, also after a failure or Ctrl-C: the daemon is stopped with SIGTERM (its exit
status must be 0), its containers go by its instance label, the floor's by a bench
label, and the image tags by name.

    scripts/bench/daemon.py [--engine docker-20.10] [-n 200] [--clients C] [--serial 40]
                            [--rounds 3] [--socket PATH] [--json]

Exit status: 0 when every target is met, 1 when one is missed, 2 on an error.
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
import timeit
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import testbed

from ccdaemon.apiclient.aio import AsyncClient
from ccdaemon.config import load
from ccdaemon.engine import Engine, EngineError, NoSuchContainer, NoSuchImage, archive
from ccdaemon.engine import containers as engine_containers
from ccdaemon.engine import images as engine_images
from ccdaemon.runtime.certs import ChaincodeCA
from ccdaemon.runtime.dockervm import LaunchSpec
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL
from ccdaemon.runtime.launchconfig import launch_config
from ccdaemon.runtime.naming import names

if TYPE_CHECKING:
    import io
    from collections.abc import Callable, Coroutine

    from ccdaemon.config import Config

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
BASE_IMAGE = "localhost/ccdaemon/busybox:latest"
#: The stand-in chaincode: Fabric's images run /usr/local/bin/chaincode; this one says
#: one line (so the attached output stream carries something) and then idles.
STUB_IMAGE = "localhost/ccdaemon/bench-chaincode:1"
STUB_SCRIPT = b'#!/bin/sh\necho "bench chaincode up: $*"\nexec sleep 3600\n'
#: Containers the floor makes carry this label, not the daemon's instance label, so the
#: daemon's event watcher and recovery never take them for its own.
FLOOR_LABEL = "ccdaemon.bench-floor"
PEER_ADDRESS = "peer0.bench:7052"
CC_TYPE = "golang"
WARMUP = 3
#: Seconds for the daemon (and the baseline) to become ready, and to exit on SIGTERM.
READY_TIMEOUT = 60.0
EXIT_TIMEOUT = 60.0
#: Seconds the daemon settles after a burst before its RSS is read: attached output
#: arrives and the event loop drains.
SETTLE = 2.0
#: Targets: (comparison, bound).
IDLE_RATIO_TARGET = 1.5
LOADED_MIB_TARGET = 60.0
LATENCY_RATIO_TARGET = 1.05
#: Container removals in flight at once during cleanup.
REMOVE_LIMIT = 8


# --- Process memory.


# --- The floor: the least a client can send the engine for one launch.


@dataclass
class Floor:
    """The floor's connection, its request parts, and the attach streams it holds open."""

    socket: str
    api: str
    spec: LaunchSpec
    attach: bool
    conn: testbed.RawHTTP = field(init=False)
    streams: list[testbed.RawHTTP] = field(default_factory=list)
    made: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.conn = testbed.RawHTTP(self.socket)

    async def launch(self, name: str) -> None:
        """One launch, as the daemon's DockerVM.start sends it."""
        prefix = f"/v{self.api}/containers"
        status = await self.conn.request("DELETE", f"{prefix}/{name}?force=1")
        check(status, 404, "DELETE ?force=1")
        # Built per launch as any client must: the id and the TLS files differ per chaincode.
        body = self.spec.create_body(attach=self.attach)
        body["Env"] = [*body["Env"], f"BENCH_NAME={name}"]
        status = await self.conn.request(
            "POST", f"{prefix}/create?name={name}", json.dumps(body).encode(), "application/json"
        )
        check(status, 201, "create")
        self.made.append(name)
        if self.attach:
            # A stream holds its connection for the container's life: a new one each time.
            stream = testbed.RawHTTP(self.socket)
            self.streams.append(stream)
            query = "stream=1&stdout=1&stderr=1&logs=0"
            check(await stream.send("POST", f"{prefix}/{name}/attach?{query}"), 200, "attach")
        tls = testbed.stdlib_targz(dict(self.spec.files))
        status = await self.conn.request(
            "PUT", f"{prefix}/{name}/archive?path=%2F", tls, "application/x-tar"
        )
        check(status, 200, "PUT archive")
        check(await self.conn.request("POST", f"{prefix}/{name}/start"), 204, "start")

    async def clear(self) -> None:
        """Untimed: remove what the launches made and end their attach streams."""
        for name in self.made:
            await self.conn.request("DELETE", f"/v{self.api}/containers/{name}?force=1")
        self.made.clear()
        for stream in self.streams:
            stream.close()
        self.streams.clear()

    def close(self) -> None:
        """Close every connection."""
        self.conn.close()
        for stream in self.streams:
            stream.close()


def check(status: int, wanted: int, what: str) -> None:
    """Fail loudly when the engine refuses a step: a benchmark of errors measures nothing."""
    if status != wanted:
        raise RuntimeError(f"floor: {what} answered {status}, not {wanted}")


# --- The run.


@dataclass
class Run:
    """What the run made (for cleanup) and what it measured."""

    engine_socket: str
    directory: Path
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    daemon: asyncio.subprocess.Process | None = None
    baseline: asyncio.subprocess.Process | None = None
    tagged: list[str] = field(default_factory=list)
    built_stub: bool = False
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def instance(self) -> str:
        """The daemon's instance label value."""
        return f"bench-{self.tag}"

    @property
    def api_socket(self) -> Path:
        """The daemon's API socket."""
        return self.directory / "ccd.sock"

    @property
    def log_path(self) -> Path:
        """Where the daemon's own log goes (never a pipe: an unread pipe would block it)."""
        return self.directory / "daemon.log"


def write_config(run: Run) -> Path:
    """The daemon's TOML configuration for this run."""
    return testbed.write_config(
        run.directory,
        instance=run.instance,
        api_socket=run.api_socket,
        engine_socket=run.engine_socket,
        network_id="bench",
        peer_id=f"p{run.tag}",
    )


async def start_baseline(run: Run) -> None:
    """The baseline process: the venv's interpreter with aiohttp imported, idle."""
    code = "import aiohttp, sys, time; print('ready', flush=True); time.sleep(86400)"
    run.baseline = await asyncio.create_subprocess_exec(
        str(VENV_PYTHON), "-c", code, stdout=asyncio.subprocess.PIPE, start_new_session=True
    )
    assert run.baseline.stdout is not None  # noqa: S101 -- asked for a pipe
    async with asyncio.timeout(READY_TIMEOUT):
        await run.baseline.stdout.readline()


async def start_daemon(run: Run, config: Path, log: io.TextIOWrapper) -> dict[str, Any]:
    """Start ``ccdaemon serve`` and wait until GET /v1/health says "ok"; answer it."""
    run.daemon = await testbed.spawn_daemon(config, log)
    async with asyncio.timeout(READY_TIMEOUT):
        return await testbed.wait_healthy(run.daemon, run.api_socket)


async def ensure_stub(engine: Engine) -> bool:
    """Build the stand-in chaincode image unless the engine has it; whether it was built."""
    try:
        await engine_images.inspect(engine, STUB_IMAGE)
    except NoSuchImage:
        dockerfile = (
            f"FROM {BASE_IMAGE}\nCOPY chaincode /usr/local/bin/chaincode\n"
            "RUN chmod 0755 /usr/local/bin/chaincode\n"
        )
        context = archive.tar({"Dockerfile": dockerfile.encode(), "chaincode": STUB_SCRIPT})
        await engine_images.build(engine, context, STUB_IMAGE)
        return True
    return False


async def tag_images(
    engine: Engine, ccids: list[str], tagged: list[str], *, network_id: str, peer_id: str
) -> None:
    """Give each ccid the image name a daemon will look for (no build at launch).

    Each name goes into ``tagged`` as soon as it exists, for the cleanup.
    """
    for ccid in ccids:
        image = names(ccid, network_id=network_id, peer_id=peer_id).image
        await engine_images.tag(engine, STUB_IMAGE, image)
        tagged.append(image)


def launch_body(ccid: str) -> dict[str, Any]:
    """A launch request as a peer sends it; TLS credentials issued by the daemon's CA."""
    return {"ccid": ccid, "type": CC_TYPE, "peer_address": PEER_ADDRESS, "mspid": "BenchMSP"}


def floor_spec(config: Config, tag: str) -> LaunchSpec:
    """The floor's container: the daemon's create body for a chaincode, from its library.

    Same command, environment, TLS files and HostConfig (policy applied) as the daemon
    sends; computed once, outside the timed region.
    """
    ccid = f"floor:{tag}"
    launch = launch_config(
        ccid=ccid,
        cc_type=CC_TYPE,
        peer_address=PEER_ADDRESS,
        tls=ChaincodeCA.generate().issue(),
        mspid="BenchMSP",
        layout=config.runtime.layout,
        logging=config.runtime.logging,
    )
    return LaunchSpec(
        container="",
        image=STUB_IMAGE,
        args=launch.args,
        env=launch.env,
        files=launch.files,
        host_config=config.policy.apply(config.runtime.host_config.to_engine()),
        labels={FLOOR_LABEL: tag},
    )


async def measure_loaded(
    run: Run, engine: Engine, client: AsyncClient, count: int, clients: int
) -> None:
    """Launch ``count`` chaincodes through the API, all at once or ``clients`` at a time.

    Then read the daemon's memory.
    """
    assert run.daemon is not None  # noqa: S101 -- started before
    ccids = [f"load{i}:{run.tag}" for i in range(count)]
    await tag_images(engine, ccids, run.tagged, network_id="bench", peer_id=f"p{run.tag}")
    # All at once measures the burst too: 200 requests in flight leave the allocator
    # fragmented, and RSS keeps what a peak touched.
    gate = asyncio.Semaphore(clients or count)

    async def launch(ccid: str) -> dict[str, Any]:
        async with gate:
            return await client.launch(launch_body(ccid))

    began = time.perf_counter()
    answers = await asyncio.gather(*(launch(ccid) for ccid in ccids))
    wall = time.perf_counter() - began
    await asyncio.sleep(SETTLE)
    # Read with the burst's API connections still open, then again once the client has
    # closed them: the daemon keeps each idle keep-alive connection (its parser, buffers)
    # until the client closes it, which is the client's doing, not the chaincodes' cost.
    with_connections = testbed.memory_mib(run.daemon.pid)[0]
    await client.close()
    await asyncio.sleep(SETTLE)
    health = await client.health()
    running = health["chaincodes"]["running"]
    if running != count:
        raise RuntimeError(f"{running} chaincodes running after {count} launches")
    rss, hwm = testbed.memory_mib(run.daemon.pid)
    run.figures["loaded"] = {
        "count": count,
        "clients": clients,
        "rss_mib": rss,
        "hwm_mib": hwm,
        "rss_connections_open_mib": with_connections,
        "launch_wall_s": wall,
        "launches_per_s": count / wall,
        "built": sum(1 for a in answers if a["built"]),
    }
    await asyncio.gather(*(client.stop(ccid, timeout=0) for ccid in ccids))
    await asyncio.sleep(SETTLE)
    run.figures["after_stop_rss_mib"] = testbed.memory_mib(run.daemon.pid)[0]


async def measure_serial(
    run: Run, engine: Engine, client: AsyncClient, config: Config, args: argparse.Namespace
) -> None:
    """Serial launches: floor (with and without attach) and daemon, rounds interleaved."""
    # The API version the daemon negotiated, so both send the same paths.
    api = str(run.figures["engine"]["api_version"])
    spec = floor_spec(config, run.tag)
    floors = {
        "floor": Floor(run.engine_socket, api, spec, attach=config.runtime.attach_stdout),
        "floor-no-attach": Floor(run.engine_socket, api, spec, attach=False),
    }
    rounds = args.rounds
    warm = [f"warm{i}:{run.tag}" for i in range(WARMUP)]
    ccids = [[f"serial{r}-{i}:{run.tag}" for i in range(args.serial)] for r in range(rounds)]
    every = warm + [ccid for batch in ccids for ccid in batch]
    await tag_images(engine, every, run.tagged, network_id="bench", peer_id=f"p{run.tag}")
    latencies: dict[str, list[float]] = {"daemon": [], **{k: [] for k in floors}}
    per_round: dict[str, list[float]] = {k: [] for k in latencies}
    server: list[dict[str, float]] = []

    async def one(kind: str, label: str) -> float:
        """One timed launch of ``kind``: a container name for a floor, a ccid for the daemon."""
        began = time.perf_counter()
        if kind != "daemon":
            await floors[kind].launch(label)
            return time.perf_counter() - began
        answer = await client.launch(launch_body(label))
        elapsed = time.perf_counter() - began
        server.append(answer["timings"])
        return elapsed

    async def round_(number: int, batch: list[str]) -> dict[str, list[float]]:
        """Launches alternate kind by kind, the order rotating, so drift hits all alike."""
        kinds = ["floor", "daemon", "floor-no-attach"]
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for i, ccid in enumerate(batch):
            for kind in kinds[i % 3 :] + kinds[: i % 3]:
                label = ccid if kind == "daemon" else f"bench-{run.tag}-{kind}-{number}-{i}"
                times[kind].append(await one(kind, label))
        # Untimed: the floors' containers go, and the daemon's by Fabric's stop (t=0).
        for floor in floors.values():
            await floor.clear()
        await asyncio.gather(*(client.stop(ccid, timeout=0) for ccid in batch))
        return times

    try:
        # Warm-up, untimed: connections, the daemon's first-call paths, the engine's caches.
        await round_(-1, warm)
        server.clear()
        for number in range(rounds):
            for kind, times in (await round_(number, ccids[number])).items():
                latencies[kind] += times
                per_round[kind].append(statistics.median(times))
    finally:
        for floor in floors.values():
            floor.close()
    run.figures["serial"] = summarize(latencies, per_round, server, args)


def summarize(
    latencies: dict[str, list[float]],
    per_round: dict[str, list[float]],
    server: list[dict[str, float]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The serial figures: medians, p95, per-round medians, paired ratio, daemon phases."""
    pairs = [d / f for d, f in zip(latencies["daemon"], latencies["floor"], strict=True)]
    return {
        "launches": args.serial,
        "rounds": args.rounds,
        "p50_ms": {k: statistics.median(v) * 1000 for k, v in latencies.items()},
        "p95_ms": {k: percentile(v, 0.95) * 1000 for k, v in latencies.items()},
        "round_p50_ms": {k: [x * 1000 for x in v] for k, v in per_round.items()},
        # Each daemon launch over the floor launch beside it: less exposed to drift.
        "paired_ratio_p50": statistics.median(pairs),
        "daemon_phases_p50_ms": {
            phase: statistics.median(t[phase] for t in server if phase in t) * 1000
            for phase in sorted({p for t in server for p in t})
        },
    }


def percentile(values: list[float], share: float) -> float:
    """The value ``share`` of the way up the sorted values (nearest rank)."""
    ordered = sorted(values)
    return ordered[round(share * (len(ordered) - 1))]


async def bench(run: Run, args: argparse.Namespace, log: io.TextIOWrapper) -> None:
    """Everything, in order; cleanup in ``finally`` whatever happens."""
    config_path = write_config(run)
    config = load(config_path, environ={})
    try:
        async with Engine(f"unix://{run.engine_socket}") as engine:
            run.built_stub = await ensure_stub(engine)
            await start_baseline(run)
            health = await start_daemon(run, config_path, log)
            assert run.daemon is not None  # noqa: S101
            assert run.baseline is not None  # noqa: S101
            await asyncio.sleep(SETTLE)
            rss, hwm = testbed.memory_mib(run.daemon.pid)
            base_rss, base_hwm = testbed.memory_mib(run.baseline.pid)
            run.figures["engine"] = health["engine"]
            run.figures["idle"] = {"rss_mib": rss, "hwm_mib": hwm}
            run.figures["baseline"] = {"rss_mib": base_rss, "hwm_mib": base_hwm}
            async with AsyncClient(run.api_socket) as client:
                await measure_loaded(run, engine, client, args.n, args.clients)
                await measure_serial(run, engine, client, config, args)
            # What the daemon does per launch that the floor does not: issue a certificate.
            ca = ChaincodeCA.generate()
            issue = min(timeit.repeat(ca.issue, number=20, repeat=3)) / 20
            run.figures["cert_issue_ms"] = issue * 1000
    finally:
        await cleanup(run)


async def cleanup(run: Run) -> None:
    """Stop the daemon (SIGTERM, exit 0 expected) and remove everything the run made."""
    with contextlib.suppress(ProcessLookupError):
        if run.baseline is not None:
            run.baseline.kill()
            await run.baseline.wait()
    if run.daemon is not None:
        if run.daemon.returncode is None:
            run.daemon.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(EXIT_TIMEOUT):
                    await run.daemon.wait()
            except TimeoutError:
                run.daemon.kill()
                await run.daemon.wait()
                run.figures["daemon_exit"] = "killed: no exit within 60 s of SIGTERM"
        run.figures.setdefault("daemon_exit", run.daemon.returncode)
    async with Engine(f"unix://{run.engine_socket}") as engine:
        labels = [{INSTANCE_LABEL: run.instance}, {FLOOR_LABEL: run.tag}]
        await remove_made(engine, labels, run.tagged, built_stub=run.built_stub)


async def remove_made(
    engine: Engine, labels: list[dict[str, str]], images: list[str], *, built_stub: bool
) -> None:
    """Remove the containers with each of ``labels``, then ``images``, and the stub if built.

    A few removals at a time: Docker 20.10 deadlocks under heavy concurrent removal
    (ENGINES.md), and a daemon's engine_limit is 8 too.
    """
    gate = asyncio.Semaphore(REMOVE_LIMIT)

    async def remove(container: str) -> None:
        async with gate:
            with contextlib.suppress(NoSuchContainer):
                await engine_containers.remove(engine, container, force=True)

    for selector in labels:
        found = await engine_containers.list_(engine, labels=selector)
        await asyncio.gather(*(remove(str(item["Id"])) for item in found))
    for image in [*images, *([STUB_IMAGE] if built_stub else [])]:
        try:
            await engine_images.remove(engine, image)
        except NoSuchImage:
            pass
        except EngineError as exc:
            print(f"cleanup: cannot remove image {image}: {exc}", file=sys.stderr)


# --- Reporting.


def verdicts(figures: dict[str, Any]) -> list[tuple[str, str, str, str, str, bool | None]]:
    """The table's rows: measure, value, baseline, ratio, target, met (None: no target)."""
    base = figures["baseline"]["rss_mib"]
    idle = figures["idle"]["rss_mib"]
    loaded = figures["loaded"]
    serial = figures["serial"]
    p50 = serial["p50_ms"]
    p95 = serial["p95_ms"]
    hop = p50["daemon"] - serial["daemon_phases_p50_ms"].get("total", 0.0)
    count = loaded["count"]
    exit_ = figures["daemon_exit"]
    return [
        ("idle RSS", f"{idle:.1f} MiB", f"{base:.1f} MiB", f"{idle / base:.2f}x",
         f"<= {IDLE_RATIO_TARGET}x", idle / base <= IDLE_RATIO_TARGET),
        ("idle VmHWM", f"{figures['idle']['hwm_mib']:.1f} MiB",
         f"{figures['baseline']['hwm_mib']:.1f} MiB",
         f"{figures['idle']['hwm_mib'] / figures['baseline']['hwm_mib']:.2f}x", "-", None),
        (f"RSS, {count} running", f"{loaded['rss_mib']:.1f} MiB", f"{base:.1f} MiB",
         f"{loaded['rss_mib'] / base:.2f}x", f"<= {LOADED_MIB_TARGET:g} MiB",
         loaded["rss_mib"] <= LOADED_MIB_TARGET),
        (f"  with {count} API conns open", f"{loaded['rss_connections_open_mib']:.1f} MiB",
         f"{base:.1f} MiB", f"{loaded['rss_connections_open_mib'] / base:.2f}x", "-", None),
        (f"VmHWM, {count} running", f"{loaded['hwm_mib']:.1f} MiB", f"{base:.1f} MiB",
         f"{loaded['hwm_mib'] / base:.2f}x", "-", None),
        (f"RSS after {count} stops", f"{figures['after_stop_rss_mib']:.1f} MiB",
         f"{idle:.1f} MiB (idle)", f"{figures['after_stop_rss_mib'] / idle:.2f}x", "-", None),
        (
            f"{count} launches, {loaded['clients'] or 'all'} at a time",
            f"{loaded['launches_per_s']:.1f} /s",
            "-",
            "-",
            "-",
            None,
        ),
        ("serial launch p50", f"{p50['daemon']:.2f} ms", f"{p50['floor']:.2f} ms",
         f"{p50['daemon'] / p50['floor']:.3f}x", f"<= {LATENCY_RATIO_TARGET}x",
         p50["daemon"] / p50["floor"] <= LATENCY_RATIO_TARGET),
        ("  paired daemon/floor p50", "-", "-", f"{serial['paired_ratio_p50']:.3f}x", "-",
         None),
        ("serial launch p95", f"{p95['daemon']:.2f} ms", f"{p95['floor']:.2f} ms",
         f"{p95['daemon'] / p95['floor']:.3f}x", "-", None),
        ("  vs floor w/o attach", f"{p50['daemon']:.2f} ms", f"{p50['floor-no-attach']:.2f} ms",
         f"{p50['daemon'] / p50['floor-no-attach']:.3f}x", "-", None),
        ("  API hop (client-server)", f"{hop:.2f} ms", "-", "-", "-", None),
        ("  cert issue per launch", f"{figures['cert_issue_ms']:.2f} ms", "-", "-", "-", None),
        ("SIGTERM exit status", str(exit_), "0", "-", "0", exit_ == 0),
    ]  # fmt: skip


def report(figures: dict[str, Any], args: argparse.Namespace) -> bool:
    """Print the table and the detail; return whether every target is met."""
    rows = verdicts(figures)
    engine = figures["engine"]
    serial = figures["serial"]
    print(
        f"engine {args.engine} ({engine['kind']} {engine['version']}, API "
        f"{engine['api_version']}); {figures['loaded']['count']} concurrent launches; "
        f"{serial['launches']} serial launches x {serial['rounds']} rounds per kind"
    )
    header = ("measure", "value", "baseline", "ratio", "target", "met?")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        met = row[5] if isinstance(row[5], str) else {True: "yes", False: "NO", None: "-"}[row[5]]
        cells = [str(cell).ljust(width) for cell, width in zip(row[:5], widths, strict=True)]
        print("  ".join([*cells, met]))
    print("per-round p50 ms: " + "; ".join(
        f"{kind} {', '.join(f'{x:.2f}' for x in values)}"
        for kind, values in serial["round_p50_ms"].items()
    ))  # fmt: skip
    print("daemon phases p50 ms (server side): " + ", ".join(
        f"{phase} {value:.2f}" for phase, value in serial["daemon_phases_p50_ms"].items()
    ))  # fmt: skip
    return all(row[5] is not False for row in rows)


def run_in_scratch(
    socket: str,
    bench: Callable[[Run, argparse.Namespace, io.TextIOWrapper], Coroutine[Any, Any, None]],
    args: argparse.Namespace,
) -> Run:
    """Run ``bench`` in a new scratch directory, removed after; the log's tail on a failure."""
    # Short: Unix socket paths are limited to 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="ccdb-", dir="/tmp"))
    directory.chmod(0o700)
    run = Run(socket, directory)
    failed = False
    try:
        with run.log_path.open("w") as log:
            asyncio.run(bench(run, args, log))
    except BaseException:
        failed = True
        raise
    finally:
        if failed and run.log_path.exists():
            tail = run.log_path.read_text(errors="replace").splitlines()[-30:]
            print("daemon log, last lines:", *tail, sep="\n  ", file=sys.stderr)
        shutil.rmtree(directory, ignore_errors=True)
    return run


def main() -> int:
    """Parse arguments, run the benchmark, print the table (or JSON); 0 when all targets met."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    testbed.engine_arguments(parser)
    parser.add_argument("-n", type=int, default=200, help="chaincodes launched at once")
    parser.add_argument(
        "--clients",
        type=int,
        default=0,
        help="launch the n chaincodes this many at a time (default 0: all at once)",
    )
    parser.add_argument("--serial", type=int, default=40, help="serial launches per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the order rotates")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    socket = testbed.chosen_socket(args)
    run = run_in_scratch(socket, bench, args)
    if args.json:
        print(json.dumps(run.figures, indent=2, default=str))
        met = all(row[5] is not False for row in verdicts(run.figures))
    else:
        met = report(run.figures, args)
    return 0 if met else 1


if __name__ == "__main__":
    testbed.exit_with(main)
