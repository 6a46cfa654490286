"""The daemon's metrics, rendered and parsed back as a Prometheus server would read them."""

from __future__ import annotations

import tracemalloc

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import ccdaemon
from ccdaemon.daemon.metrics import (
    BUILD_BUCKETS,
    LAUNCH_BUCKETS,
    Metrics,
    SeriesHistogram,
    call_name,
)
from ccdaemon.launchqueue import QueueStats

CC = "mycc:8a1f"


def scrape(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a render, by sample name and labels."""
    body, _ = metrics.render()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return scrape(metrics).get((name, frozenset(labels.items())))


def families(metrics: Metrics) -> dict[str, str]:
    body, _ = metrics.render()
    return {f.name: f.type for f in text_string_to_metric_families(body.decode())}


def test_fabric_and_own_names_and_types() -> None:
    """Fabric's names as a peer exports them; counters' samples get prometheus_client's _total."""
    assert families(Metrics()) == {
        "chaincode_launch_duration": "histogram",
        "chaincode_launch_failures": "counter",
        "chaincode_launch_timeouts": "counter",
        "dockercontroller_chaincode_container_build_duration": "histogram",
        "ccdaemon_launch_phase_duration_seconds": "histogram",
        "ccdaemon_engine_call_duration_seconds": "histogram",
        "ccdaemon_engine_errors": "counter",
        "ccdaemon_queue_names": "gauge",
        "ccdaemon_queue_waiting": "gauge",
        "ccdaemon_queue_engine_busy": "gauge",
        "ccdaemon_queue_builds": "gauge",
        "ccdaemon_chaincodes": "gauge",
        "ccdaemon_info": "gauge",
    }


def test_render_answers_the_text_content_type() -> None:
    body, content_type = Metrics().render()
    assert content_type.startswith("text/plain; version=")
    assert b"# TYPE chaincode_launch_duration histogram" in body


def test_successful_launch_counts_no_failure_and_times_each_phase() -> None:
    metrics = Metrics()
    metrics.launch(
        CC, 1.5, success=True, timeout=False, phases={"create": 0.02, "build": 1.2, "start": 0.1}
    )
    assert sample(metrics, "chaincode_launch_duration_count", chaincode=CC, success="true") == 1
    assert sample(metrics, "chaincode_launch_duration_sum", chaincode=CC, success="true") == 1.5
    assert sample(metrics, "chaincode_launch_failures_total", chaincode=CC) is None
    assert sample(metrics, "chaincode_launch_timeouts_total", chaincode=CC) is None
    for phase, seconds in {"create": 0.02, "build": 1.2, "start": 0.1}.items():
        assert sample(metrics, "ccdaemon_launch_phase_duration_seconds_sum", phase=phase) == seconds
    # The build phase's 1.2 s lands in the 2.5 s bucket, not the 1 s one.
    bucket = "ccdaemon_launch_phase_duration_seconds_bucket"
    assert sample(metrics, bucket, phase="build", le="1.0") == 0
    assert sample(metrics, bucket, phase="build", le="2.5") == 1


def test_failures_and_timeouts_are_counted_apart_as_in_fabric() -> None:
    metrics = Metrics()
    metrics.launch(CC, 3.0, success=False, timeout=False, phases={})
    metrics.launch(CC, 300.0, success=False, timeout=True, phases={})
    metrics.launch(CC, 310.0, success=False, timeout=True, phases={})
    assert sample(metrics, "chaincode_launch_failures_total", chaincode=CC) == 1
    assert sample(metrics, "chaincode_launch_timeouts_total", chaincode=CC) == 2
    assert sample(metrics, "chaincode_launch_duration_count", chaincode=CC, success="false") == 3
    assert sample(metrics, "chaincode_launch_duration_count", chaincode=CC, success="true") is None


def test_a_timeout_cannot_succeed() -> None:
    with pytest.raises(ValueError, match="timed out"):
        Metrics().launch(CC, 1.0, success=True, timeout=True, phases={})


def test_histogram_buckets_span_their_ranges() -> None:
    metrics = Metrics()
    metrics.launch(CC, 0.05, success=True, timeout=False, phases={})
    metrics.build(CC, 0.5, success=False)
    metrics.engine_call("inspect", 0.0005, None)
    samples = scrape(metrics)

    def bounds(name: str) -> list[str]:
        return [
            dict(labels)["le"] for sample_name, labels in samples if sample_name == f"{name}_bucket"
        ]

    assert bounds("chaincode_launch_duration")[0] == "0.1"
    assert bounds("chaincode_launch_duration")[-2:] == ["600.0", "+Inf"]
    assert bounds("dockercontroller_chaincode_container_build_duration")[0] == "1.0"
    assert bounds("dockercontroller_chaincode_container_build_duration")[-2:] == ["1800.0", "+Inf"]
    assert bounds("ccdaemon_engine_call_duration_seconds")[0] == "0.001"
    assert bounds("ccdaemon_engine_call_duration_seconds")[-2:] == ["60.0", "+Inf"]


def test_build_is_recorded_with_fabric_labels() -> None:
    metrics = Metrics()
    metrics.build(CC, 42.0, success=False)
    name = "dockercontroller_chaincode_container_build_duration"
    assert sample(metrics, f"{name}_count", chaincode=CC, success="false") == 1
    assert sample(metrics, f"{name}_sum", chaincode=CC, success="false") == 42.0
    assert sample(metrics, f"{name}_bucket", chaincode=CC, success="false", le="30.0") == 0
    assert sample(metrics, f"{name}_bucket", chaincode=CC, success="false", le="60.0") == 1


def test_engine_calls_are_timed_and_errors_counted_by_kind() -> None:
    metrics = Metrics()
    metrics.engine_call("container_start", 0.03, None)
    metrics.engine_call("container_start", 0.01, "NoSuchContainer")
    metrics.engine_call("container_inspect", 0.002, "NoSuchContainer")
    metrics.engine_call("image_build", 5.0, "BuildFailed")
    call = "ccdaemon_engine_call_duration_seconds_count"
    assert sample(metrics, call, call="container_start") == 2
    assert sample(metrics, call, call="container_inspect") == 1
    assert sample(metrics, "ccdaemon_engine_errors_total", kind="NoSuchContainer") == 2
    assert sample(metrics, "ccdaemon_engine_errors_total", kind="BuildFailed") == 1


def test_queue_gauges_from_stats_and_from_a_watched_source() -> None:
    metrics = Metrics()
    metrics.set_queue(QueueStats(names=3, waiting=5, engine_busy=2, builds=1))
    assert sample(metrics, "ccdaemon_queue_names") == 3
    assert sample(metrics, "ccdaemon_queue_waiting") == 5
    assert sample(metrics, "ccdaemon_queue_engine_busy") == 2
    assert sample(metrics, "ccdaemon_queue_builds") == 1

    current = [QueueStats(names=1, waiting=0, engine_busy=1, builds=0)]
    metrics.watch_queue(lambda: current[0])
    assert sample(metrics, "ccdaemon_queue_engine_busy") == 1
    current[0] = QueueStats(names=9, waiting=7, engine_busy=8, builds=2)
    assert sample(metrics, "ccdaemon_queue_waiting") == 7


def test_chaincode_states_drop_to_zero_rather_than_vanish() -> None:
    metrics = Metrics()
    metrics.set_chaincodes({"running": 2, "exited": 1})
    assert sample(metrics, "ccdaemon_chaincodes", state="running") == 2
    assert sample(metrics, "ccdaemon_chaincodes", state="exited") == 1
    metrics.set_chaincodes({"running": 3})
    assert sample(metrics, "ccdaemon_chaincodes", state="running") == 3
    assert sample(metrics, "ccdaemon_chaincodes", state="exited") == 0


def test_info_carries_the_version() -> None:
    assert sample(Metrics(version="1.2.3"), "ccdaemon_info", version="1.2.3") == 1
    assert sample(Metrics(), "ccdaemon_info", version=ccdaemon.__version__) == 1


def test_instances_share_nothing_and_leave_the_global_registry_alone() -> None:
    first, second = Metrics(), Metrics()
    first.launch(CC, 1.0, success=False, timeout=False, phases={"start": 0.5})
    assert sample(first, "chaincode_launch_failures_total", chaincode=CC) == 1
    assert sample(second, "chaincode_launch_failures_total", chaincode=CC) is None
    assert (
        prometheus_client.REGISTRY.get_sample_value(
            "chaincode_launch_failures_total", {"chaincode": CC}
        )
        is None
    )


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("POST", "/containers/create", "POST /containers/create"),
        ("POST", "/containers/dev-peer0-mycc-1.0/start", "POST /containers/{name}/start"),
        ("DELETE", "/containers/dev-peer0-mycc-1.0", "DELETE /containers/{name}"),
        ("GET", "/containers/json", "GET /containers/json"),
        ("GET", "/images/dev-peer0-mycc-abc/json", "GET /images/{name}/json"),
        ("GET", "/version", "GET /version"),
    ],
)
def test_engine_calls_are_named_by_route_not_by_object(method: str, path: str, name: str) -> None:
    """Container and image names never become label values (one series per chaincode)."""
    assert call_name(method, path) == name


@pytest.mark.parametrize("buckets", [LAUNCH_BUCKETS, BUILD_BUCKETS])
def test_series_histogram_renders_as_prometheus_clients_histogram(
    buckets: tuple[float, ...],
) -> None:
    """The same exposition, byte for byte but the creation times (bounds hit exactly too)."""
    light, stock = CollectorRegistry(), CollectorRegistry()
    ours = SeriesHistogram("h", "A histogram.", ("chaincode", "success"), buckets, registry=light)
    theirs = prometheus_client.Histogram(
        "h", "A histogram.", ["chaincode", "success"], buckets=buckets, registry=stock
    )
    for i, amount in enumerate([0.0, 0.05, *buckets, buckets[-1] + 1, 2.5, 0.3]):
        labels = (f"cc{i % 3}:1", "true" if i % 2 else "false")
        ours.observe(labels, amount)
        theirs.labels(*labels).observe(amount)

    def lines(registry: CollectorRegistry, *, created: bool) -> list[str]:
        text = prometheus_client.generate_latest(registry).decode()
        return [line for line in text.splitlines() if ("_created{" in line) == created]

    assert lines(light, created=False) == lines(stock, created=False)
    ours_created, theirs_created = lines(light, created=True), lines(stock, created=True)
    assert [line.split()[0] for line in ours_created] == [
        line.split()[0] for line in theirs_created
    ]
    assert all(float(line.split()[1]) > 0 for line in ours_created)


def test_a_chaincodes_launch_series_takes_under_a_kibibyte() -> None:
    """Fabric's histograms are labelled by ccid: a series per chaincode, kept for good."""
    metrics = Metrics()
    metrics.launch("warm:0", 0.2, success=True, timeout=False, phases={"start": 0.1})
    ccids = [f"load{i}:{i:064x}" for i in range(200)]  # made before tracing: the records' own
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for ccid in ccids:
            metrics.launch(ccid, 0.3, success=True, timeout=False, phases={"start": 0.2})
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown / len(ccids) < 1024  # prometheus_client's Histogram child: 3.5 KiB
