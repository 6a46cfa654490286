"""What the engine holds of this daemon's containers and images, read by its labels.

The container backend's side of recovery and collection: the chaincode containers an
earlier run left (running or ended), the unfinished ones no one can use (created but
never started, builders), which are removed here, and the images a collection may take.
What to do with what is found (adopt, report, keep) is supervision's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ccdaemon.engine import Conflict, NoSuchContainer, NoSuchImage, containers, images
from ccdaemon.runtime.backend import Found, ImageCandidate, Recovery, parse_time
from ccdaemon.runtime.dockervm import remove_quietly
from ccdaemon.runtime.hostconfig import CCID_LABEL, ROLE_LABEL

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ccdaemon.engine import Engine

log = logging.getLogger(__name__)

#: Container states in which a chaincode counts as running.
_LIVE = frozenset({"running", "paused", "restarting"})
#: Container states of a launch that never finished.
_UNFINISHED = frozenset({"created", "configured", "initialized", "dead", "removing"})
#: Container states of a chaincode that no longer runs (``created``: never started).
_ENDED = frozenset({"exited", "dead", "created"})


def _name(item: Mapping[str, object]) -> str:
    names = item.get("Names")
    return str(names[0] if isinstance(names, list) and names else "/").lstrip("/")


async def recover_containers(engine: Engine, labels: Mapping[str, str]) -> Recovery:
    """The chaincode containers with ``labels``; unfinished ones and builders removed."""
    found, removed = [], []
    for item in await containers.list_(engine, labels=labels):
        item_labels = item.get("Labels") or {}
        name = _name(item)
        state = str(item.get("State", ""))
        ccid = item_labels.get(CCID_LABEL)
        if ccid is None or item_labels.get(ROLE_LABEL) == "builder" or state in _UNFINISHED:
            await remove_quietly(engine, str(item["Id"]))
            removed.append(name)
            log.warning("removed unfinished container %s (%s) left by an earlier run", name, state)
            continue
        container_id = str(item["Id"])
        try:
            details = (await containers.inspect(engine, container_id))["State"]
        except NoSuchContainer:
            continue  # gone between list and inspect
        running = state in _LIVE
        found.append(
            Found(
                ccid=ccid,
                container=name,
                container_id=container_id,
                image=str(item.get("Image", "")),
                running=running,
                started_at=parse_time(details.get("StartedAt")),
                exit_code=None if running else int(details.get("ExitCode", -1)),
                finished_at=None if running else parse_time(details.get("FinishedAt")),
            )
        )
    return Recovery(found, removed)


async def ended_containers(engine: Engine, labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """Chaincodes with ``labels`` whose container no longer runs: (ccid, container).

    Exited, dead, or never started; a builder container is its build's own.
    """
    found = []
    for item in await containers.list_(engine, labels=labels):
        item_labels = item.get("Labels") or {}
        ccid = item_labels.get(CCID_LABEL)
        if ccid is None or item_labels.get(ROLE_LABEL) == "builder":
            continue
        if item.get("State") in _ENDED:
            found.append((ccid, _name(item)))
    return found


async def chaincode_images(engine: Engine, labels: Mapping[str, str]) -> list[ImageCandidate]:
    """The tagged chaincode images with ``labels``: ccdaemon's builds and a peer's own.

    A peer's build through the Docker-API front names no chaincode (role ``image``).
    """
    found = []
    for image in await images.list_(engine, labels=labels):
        image_labels = image.get("Labels") or {}
        ccid = image_labels.get(CCID_LABEL)
        tags = [tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"]
        peer_built = ccid is None and image_labels.get(ROLE_LABEL) == "image"
        if tags and (ccid is not None or peer_built):
            found.append(ImageCandidate(str(image["Id"]), tags, ccid))
    return found


async def remove_image(engine: Engine, image_id: str) -> str | None:
    """Remove an image; None when it went, else the engine's reason for keeping it."""
    try:
        await images.remove(engine, image_id)
    except (Conflict, NoSuchImage) as exc:
        return str(exc)
    return None
