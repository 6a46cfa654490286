"""The peer benchmark's engine side: the events that split its figures, its housekeeping.

Read from the engine after each run (its event stream for the run's window) and done to
it around each run (the stand-in tags a peer asks for, the removal of what a run made).
See peer.py.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccdaemon.engine import EngineError, NoSuchContainer, NoSuchImage
from ccdaemon.engine import containers as engine_containers
from ccdaemon.engine import images as engine_images
from ccdaemon.engine import system as engine_system
from ccdaemon.engine import volumes as engine_volumes
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL

if TYPE_CHECKING:
    from ccdaemon.engine import Engine
    from tests.fabricnet import Network


async def engine_events(engine: Engine, since: float) -> list[dict[str, Any]]:
    """The engine's container and image events from ``since`` (epoch s) until now."""
    filters = {"type": ["container", "image"], "event": ["start", "die", "tag"]}
    async with engine_system.events(
        engine, filters=filters, since=f"{since:.3f}", until=f"{time.time():.3f}"
    ) as stream:
        return sorted([event async for event in stream], key=_when)


def _when(event: dict[str, Any]) -> float:
    return int(event["timeNano"]) / 1e9


def _attributes(event: dict[str, Any]) -> dict[str, Any]:
    return dict((event.get("Actor") or {}).get("Attributes") or {})


def install_phases(
    events: list[dict[str, Any]], builders: set[str], network_id: str, start: float, end: float
) -> dict[str, float]:
    """The install split at the builder container's start and die and the image's tag."""
    within = [e for e in events if start <= _when(e) <= end]
    runs = [
        e for e in within if e["Type"] == "container" and _attributes(e).get("image") in builders
    ]
    began = [_when(e) for e in runs if e["Action"] == "start"]
    died = [_when(e) for e in runs if e["Action"] == "die"]
    tagged = [
        _when(e)
        for e in within
        if e["Type"] == "image"
        and e["Action"] == "tag"
        and str(_attributes(e).get("name", "")).startswith(network_id)
    ]
    if not (began and died and tagged):
        return {}
    return {
        "pre": min(began) - start,
        "compile": max(died) - min(began),
        "image": max(tagged) - max(died),
        "finish": end - max(tagged),
        "builder_runs": len(began),
    }


def builder_starts(events: list[dict[str, Any]], builders: set[str], start: float) -> int:
    """How many builder containers started after ``start``."""
    return sum(
        1
        for e in events
        if e["Type"] == "container"
        and e["Action"] == "start"
        and _attributes(e).get("image") in builders
        and _when(e) >= start
    )


def chaincode_start(events: list[dict[str, Any]], network_id: str, start: float) -> float | None:
    """When (epoch s) the first chaincode container of ``network_id`` started after ``start``."""
    for e in events:
        if (
            e["Type"] == "container"
            and e["Action"] == "start"
            and str(_attributes(e).get("name", "")).startswith(network_id)
            and _when(e) >= start
        ):
            return _when(e)
    return None


def cpu_seconds(pid: int | None) -> float:
    """User and system CPU seconds of ``pid`` and its waited-for children (0: no process)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime, cutime, cstime: fields 14 to 17 of proc(5); after ")" they are 11 to 14.
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


async def remove_made(engine: Engine, instance: str, prefixes: tuple[str, ...]) -> None:
    """Remove containers and images carrying ``instance``'s label or named by a prefix.

    The instance's volumes (its build cache) go too.
    """
    if not prefixes:
        return
    for item in await engine_containers.list_(engine):
        names = [str(name).lstrip("/") for name in item.get("Names") or []]
        labels = item.get("Labels") or {}
        if labels.get(INSTANCE_LABEL) == instance or any(n.startswith(prefixes) for n in names):
            try:
                await engine_containers.remove(engine, str(item["Id"]), force=True)
            except NoSuchContainer:
                pass
    for image in await engine_images.list_(engine):
        tags = [str(tag) for tag in image.get("RepoTags") or []]
        labels = image.get("Labels") or {}
        if labels.get(INSTANCE_LABEL) == instance or any(t.startswith(prefixes) for t in tags):
            try:
                await engine_images.remove(engine, str(image["Id"]), force=True)
            except NoSuchImage:
                pass
            except EngineError as exc:
                print(f"cleanup: cannot remove image {tags or image['Id']}: {exc}", file=sys.stderr)
    await remove_volumes(engine, instance)


async def remove_volumes(engine: Engine, instance: str) -> None:
    """Remove the volumes carrying ``instance``'s label (its daemon's build cache)."""
    for volume in await engine_volumes.list_(engine, labels={INSTANCE_LABEL: instance}):
        try:
            await engine_volumes.remove(engine, str(volume["Name"]))
        except EngineError as exc:
            print(f"cleanup: cannot remove volume {volume['Name']}: {exc}", file=sys.stderr)


async def tag_standins(engine: Engine, net: Network, added: list[str]) -> None:
    """Tag the stand-ins with the names ``net``'s peer asks for; note the tags added."""
    for name, standin in net.standin_images().items():
        try:
            want = (await engine_images.inspect(engine, standin))["Id"]
        except NoSuchImage:
            raise RuntimeError(
                f"no stand-in {standin}: scripts/images build {standin} makes it"
            ) from None
        try:
            have = (await engine_images.inspect(engine, name))["Id"]
        except NoSuchImage:
            have = None
        if have is None:
            repository, _, tag = name.rpartition(":")
            await engine_images.tag(engine, standin, repository, tag)
            added.append(name)
        elif have != want:
            raise RuntimeError(f"{name} exists and is not the stand-in {standin}")


async def untag(engine: Engine, names: list[str]) -> None:
    """Remove the tags this run added (a tag of an image with other tags: only the tag)."""
    for name in names:
        try:
            await engine_images.remove(engine, name)
        except NoSuchImage:
            pass
