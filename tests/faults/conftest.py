"""Fixtures of the load and fault tests: a summary line per test, and the orphan check.

With ``CCDAEMON_RESILIENCE_OUT=<file>`` set, each test appends one JSON line to that file
(name, requests, faults, lost, orphaned and its own figures); docs/resilience.md quotes
those lines. Without it nothing is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import orjson
import pytest

from ccdaemon.engine import containers, images
from ccdaemon.runtime.hostconfig import CCID_LABEL, INSTANCE_LABEL, ROLE_LABEL
from tests.daemon.process import daemons

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping

    from ccdaemon.engine import Engine
    from tests.daemon.process import DaemonProcess, Spawner

OUT_ENV = "CCDAEMON_RESILIENCE_OUT"


@dataclass
class Summary:
    """One test's machine-readable outcome, written when the test has passed its checks."""

    name: str
    began: float = field(default_factory=time.monotonic)

    def write(self, **figures: Any) -> None:
        """Append ``{"name", "seconds", **figures}`` to $CCDAEMON_RESILIENCE_OUT, if set."""
        out = os.environ.get(OUT_ENV)
        if not out:
            return
        line = {"name": self.name, "seconds": round(time.monotonic() - self.began, 1), **figures}
        with Path(out).open("ab") as file:
            file.write(orjson.dumps(line) + b"\n")


@pytest.fixture
def summary(request: pytest.FixtureRequest) -> Summary:
    """The test's summary line (its name is the test's node name)."""
    return Summary(request.node.name)


@pytest.fixture
def faultdir() -> Iterator[Path]:
    """A short (Unix socket paths are limited to 107 bytes), private directory."""
    directory = Path(tempfile.mkdtemp(prefix="ccf-", dir="/tmp"))
    directory.chmod(0o700)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def spawner(engine_socket: str, faultdir: Path, engine: Engine) -> AsyncIterator[Spawner]:
    """Daemons as real processes for one test; everything of its instance goes afterwards."""
    async with daemons(engine_socket, faultdir, engine) as spawned:
        yield spawned


async def orphans(
    engine: Engine, instance: str, known: Mapping[str, Mapping[str, Any]], *, kept_images: set[str]
) -> list[str]:
    """What of ``instance`` the engine holds that the daemon neither runs nor knows of.

    ``known`` is GET /v1/chaincodes by ccid. A container is accounted for when the daemon
    reports it running with that id and the engine runs it, or reports it exited with
    that id (kept for its logs until gc). Every other container of the instance (builder
    containers, containers of failed launches) is an orphan, and so is every image of
    the instance that is not in ``kept_images`` (the chaincode images the test expects).
    """
    found: list[str] = []
    for item in await containers.list_(engine, labels={INSTANCE_LABEL: instance}):
        labels = item.get("Labels") or {}
        name = str((item.get("Names") or ["/"])[0]).lstrip("/")
        state = str(item.get("State"))
        record = known.get(str(labels.get(CCID_LABEL)))
        accounted = (
            labels.get(ROLE_LABEL) != "builder"
            and record is not None
            and record["container_id"] == item["Id"]
            and (record["state"], state) in {("running", "running"), ("exited", "exited")}
        )
        if not accounted:
            found.append(f"container {name} ({state}), daemon says {record and record['state']}")
    for image in await images.list_(engine, labels={INSTANCE_LABEL: instance}):
        tags = set(image.get("RepoTags") or [])
        if not tags & kept_images:
            found.append(f"image {sorted(tags) or image['Id']}")
    return found


async def relaunch_builds(
    daemon: DaemonProcess,
    engine: Engine,
    body: dict[str, object],
    *,
    instance: str,
    tmp: Path,
    within: float,
) -> None:
    """The failed launch, sent again once the fault is gone, builds and runs.

    It answers 201 with the image built, within ``within`` seconds; nothing of the
    instance is left but the chaincode and its image; the daemon's TMPDIR ``tmp`` is
    empty.
    """
    with anyio.fail_after(within):
        status, launched = await daemon.call("POST", "/v1/chaincodes", body)
    assert status == 201, launched
    assert launched["built"] is True
    image = f"{launched['chaincode']['image']}:latest"
    assert await orphans(engine, instance, await known(daemon), kept_images={image}) == []
    assert not list(tmp.iterdir())  # noqa: ASYNC240 -- a listing of an empty directory


async def known(daemon: DaemonProcess) -> dict[str, Any]:
    """GET /v1/chaincodes by ccid."""
    status, body = await daemon.call("GET", "/v1/chaincodes")
    assert status == 200, body
    return {cc["ccid"]: cc for cc in body["chaincodes"]}
