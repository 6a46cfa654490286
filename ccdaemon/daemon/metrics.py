"""The daemon's Prometheus metrics, served at ``GET /metrics``.

Two families of names:

- Fabric's own (core/chaincode/metrics.go and core/container/dockercontroller/metrics.go
  in Fabric 2.5), with the same labels and label values, so that dashboards and alerts
  written for a peer's built-in launcher keep working once ccdaemon launches instead:
  ``chaincode_launch_duration``, ``chaincode_launch_failures``,
  ``chaincode_launch_timeouts`` and ``dockercontroller_chaincode_container_build_duration``.
- ccdaemon's own, prefixed ``ccdaemon_``: launch phases, engine calls, the launch queue,
  managed chaincodes by state, and the version.

How names appear in the exposition: prometheus_client appends ``_total`` to every
counter's samples, so Fabric's counters read ``chaincode_launch_failures_total`` and
``chaincode_launch_timeouts_total`` where a peer's Go client writes them without the
suffix (a recording rule can alias them if a dashboard needs the exact peer name).
Counters and histograms also carry a ``_created`` sample with their creation time;
histograms expose ``_bucket``, ``_sum`` and ``_count`` samples as usual; the version is
``ccdaemon_info{version="..."} 1.0``.

Everything lives in a registry of the ``Metrics`` instance, never prometheus_client's
global default one: two daemons (or two tests) in one process do not share counts, and
nothing another library registers globally leaks into ``/metrics``.
"""

from __future__ import annotations

import bisect
import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric

from ccdaemon import __version__

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from ccdaemon.launchqueue import QueueStats

#: A launch: a fraction of a second when the image exists, minutes when it is built first.
LAUNCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: An image build: seconds for a cached layer, up to half an hour for a large Java project.
BUILD_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0)
#: One engine call: a millisecond for an inspect, up to a minute (the launch buckets to 60 s)
#: for a slow stop.
ENGINE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, *LAUNCH_BUCKETS[:9])
#: One launch phase: milliseconds for an upload, minutes for a build.
PHASE_BUCKETS = (0.005, 0.01, 0.025, 0.05, *LAUNCH_BUCKETS)


class Metrics:
    """The daemon's metrics, in a registry of their own.

    Args:
        version: reported by ``ccdaemon_info``; the installed package's by default.
    """

    def __init__(self, *, version: str = __version__) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._launch_duration = SeriesHistogram(
            "chaincode_launch_duration",
            "The time to launch a chaincode.",
            ("chaincode", "success"),
            LAUNCH_BUCKETS,
            registry=r,
        )
        self._launch_failures = Counter(
            "chaincode_launch_failures",
            "The number of chaincode launches that have failed.",
            ["chaincode"],
            registry=r,
        )
        self._launch_timeouts = Counter(
            "chaincode_launch_timeouts",
            "The number of chaincode launches that have timed out.",
            ["chaincode"],
            registry=r,
        )
        self._build_duration = SeriesHistogram(
            "dockercontroller_chaincode_container_build_duration",
            "The time to build a chaincode image in seconds.",
            ("chaincode", "success"),
            BUILD_BUCKETS,
            registry=r,
        )
        self._phase_duration = Histogram(
            "ccdaemon_launch_phase_duration_seconds",
            "The time spent in one phase of a launch (stop, create, build, upload, start).",
            ["phase"],
            buckets=PHASE_BUCKETS,
            registry=r,
        )
        self._engine_duration = Histogram(
            "ccdaemon_engine_call_duration_seconds",
            "The time of one call to the container engine, failed or not.",
            ["call"],
            buckets=ENGINE_BUCKETS,
            registry=r,
        )
        self._engine_errors = Counter(
            "ccdaemon_engine_errors",
            "Failed calls to the container engine, by error class.",
            ["kind"],
            registry=r,
        )
        self._queue_names = Gauge(
            "ccdaemon_queue_names", "Container names with work queued or running.", registry=r
        )
        self._queue_waiting = Gauge(
            "ccdaemon_queue_waiting", "Pieces of work waiting for their turn.", registry=r
        )
        self._queue_engine_busy = Gauge(
            "ccdaemon_queue_engine_busy", "Engine slots in use.", registry=r
        )
        self._queue_builds = Gauge("ccdaemon_queue_builds", "Image builds in flight.", registry=r)
        self._chaincodes = Gauge(
            "ccdaemon_chaincodes", "Managed chaincodes, by state.", ["state"], registry=r
        )
        Info("ccdaemon", "The running ccdaemon.", registry=r).info({"version": version})
        self._states: set[str] = set()
        self._queue_source: Callable[[], QueueStats] | None = None

    def launch(
        self,
        chaincode: str,
        seconds: float,
        *,
        success: bool,
        timeout: bool,
        phases: Mapping[str, float],
    ) -> None:
        """Record one launch, as Fabric's RuntimeLauncher does, and the time of each phase.

        As in Fabric, a timeout counts in ``chaincode_launch_timeouts`` and any other
        failure in ``chaincode_launch_failures``, never both; either makes the launch
        unsuccessful in ``chaincode_launch_duration``.

        Args:
            chaincode: the chaincode's id (Fabric labels launches with the ccid).
            seconds: the whole launch.
            success: whether the chaincode was launched.
            timeout: whether it failed because its startup timed out.
            phases: seconds spent per phase, by phase name.

        Raises:
            ValueError: ``timeout`` with ``success``, which cannot both be true.
        """
        if success and timeout:
            raise ValueError("a launch that timed out did not succeed")
        self._launch_duration.observe((chaincode, _bool(success)), seconds)
        if timeout:
            self._launch_timeouts.labels(chaincode).inc()
        elif not success:
            self._launch_failures.labels(chaincode).inc()
        for phase, phase_seconds in phases.items():
            self._phase_duration.labels(phase).observe(phase_seconds)

    def build(self, chaincode: str, seconds: float, *, success: bool) -> None:
        """Record one image build, as Fabric's Docker controller does."""
        self._build_duration.observe((chaincode, _bool(success)), seconds)

    def engine_call(self, call: str, seconds: float, error: str | None) -> None:
        """Record one engine call, and its error class name when it failed."""
        self._engine_duration.labels(call).observe(seconds)
        if error is not None:
            self._engine_errors.labels(error).inc()

    def engine_request(self, method: str, path: str, seconds: float, error: str | None) -> None:
        """The Engine's call observer: one engine call, named without its object's name."""
        self.engine_call(call_name(method, path), seconds, error)

    def set_queue(self, stats: QueueStats) -> None:
        """Show what the launch queue holds now."""
        self._queue_names.set(stats.names)
        self._queue_waiting.set(stats.waiting)
        self._queue_engine_busy.set(stats.engine_busy)
        self._queue_builds.set(stats.builds)

    def watch_queue(self, source: Callable[[], QueueStats]) -> None:
        """Read the queue's stats from ``source`` at every ``render``, so a scrape sees them now."""
        self._queue_source = source

    def set_chaincodes(self, counts: Mapping[str, int]) -> None:
        """Show how many managed chaincodes are in each state.

        A state seen before but absent from ``counts`` drops to 0 rather than vanishing,
        so that its series reads 0, not "no data", once the last chaincode leaves it.
        """
        self._states.update(counts)
        for state in self._states:
            self._chaincodes.labels(state).set(counts.get(state, 0))

    def render(self) -> tuple[bytes, str]:
        """The exposition in Prometheus text format, and its Content-Type."""
        if self._queue_source is not None:
            self.set_queue(self._queue_source())
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class SeriesHistogram:
    """A labelled histogram with one series per chaincode, at a tenth of the memory.

    prometheus_client's Histogram keeps a child per label set with a locked value object
    per bucket: 3.5 KiB a chaincode for Fabric's histograms, labelled by ccid (0.7 MiB
    for 200). This keeps a list of counts per label set (0.3 KiB) and makes the same
    samples (buckets, count, sum, created) at each scrape. Observed from the event loop
    only: no lock.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        *,
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = tuple(float(bound) for bound in buckets)
        # Bounds as prometheus_client writes them (Go's way): "0.1", "600.0", "+Inf".
        self._le = (*(repr(bound) for bound in self._bounds), "+Inf")
        # Per label values: [count per bucket (not cumulative), +Inf's last], sum, created.
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        registry.register(self)

    def observe(self, labels: tuple[str, ...], amount: float) -> None:
        """Observe ``amount`` in the series of ``labels`` (values in ``labelnames`` order)."""
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = ([0] * len(self._le), [0.0, time.time()])
        counts, totals = series
        # Prometheus' buckets are upper bounds, inclusive: the first bound >= amount.
        counts[bisect.bisect_left(self._bounds, amount)] += 1
        totals[0] += amount

    def describe(self) -> Iterator[Metric]:
        """The family without samples, for the registry's check of duplicate names."""
        yield Metric(self._name, self._documentation, "histogram")

    def collect(self) -> Iterator[Metric]:
        """The family with every series' samples, in prometheus_client's order."""
        family = Metric(self._name, self._documentation, "histogram")
        for values, (counts, (total, created)) in self._series.items():
            labels = dict(zip(self._labelnames, values, strict=True))
            seen = 0
            for le, count in zip(self._le, counts, strict=True):
                seen += count
                family.add_sample(f"{self._name}_bucket", {**labels, "le": le}, seen)
            family.add_sample(f"{self._name}_count", labels, seen)
            family.add_sample(f"{self._name}_sum", labels, total)
            family.add_sample(f"{self._name}_created", labels, created)
        yield family


def _bool(value: bool) -> str:
    # Fabric's label values are Go's strconv.FormatBool: "true" and "false".
    return "true" if value else "false"


# The routes whose second step is an action, not an object's name.
_ACTIONS = frozenset({"create", "json", "build", "prune", "load", "search"})


def call_name(method: str, path: str) -> str:
    """``POST /containers/<name>/start`` -> ``POST /containers/{name}/start``.

    Object names (container names hold chaincode ids) would make one series per
    chaincode; the label keeps only the route.
    """
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[1] not in _ACTIONS:  # noqa: PLR2004 -- /kind/<name>...
        parts[1] = "{name}"
    return f"{method} /{'/'.join(parts)}"
