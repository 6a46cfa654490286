"""``ccdaemon gc``: remove the daemon's own exited containers and unused chaincode images.

Only objects carrying all of the daemon's labels (managed, instance) are candidates, so
another daemon's chaincodes and everything the operator made by hand are never touched.
Containers are removed in the launch queue's order for their name, so a collection never
races a launch of the same chaincode. An image still used by a container stays (the
engine refuses), and so do the images of chaincodes the daemon runs or is launching.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ccdaemon.engine import Conflict, NoSuchImage, images
from ccdaemon.runtime.hostconfig import CCID_LABEL, ROLE_LABEL
from ccdaemon.supervise.registry import ENDED

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ccdaemon.supervise.supervisor import Supervisor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Collected:
    """What a collection removed (or, in a dry run, would remove)."""

    dry_run: bool
    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


async def collect(
    supervisor: Supervisor, labels: Mapping[str, str], *, dry_run: bool = False
) -> Collected:
    """Remove exited containers and images of chaincodes not running, with ``labels``."""
    result = Collected(dry_run=dry_run)
    await _containers(supervisor, result)
    await _images(supervisor, labels, result)
    log.info(
        "gc%s: %d containers, %d images",
        " (dry run)" if dry_run else "",
        len(result.containers),
        len(result.images),
    )
    return result


async def _containers(supervisor: Supervisor, result: Collected) -> None:
    registry = supervisor.registry
    for ccid, name in await supervisor.launcher.ended():
        cc = registry.get(ccid)
        if cc is not None and cc.state not in ENDED:
            continue  # a launch or stop of it is under way
        result.containers.append(name)
        if not result.dry_run:
            await supervisor.launcher.stop(ccid)
            if cc is not None and registry.get(ccid) is cc:
                registry.forget(ccid)


async def _images(supervisor: Supervisor, labels: Mapping[str, str], result: Collected) -> None:
    live = [cc for cc in supervisor.registry.all() if cc.state not in ENDED]
    busy = {cc.ccid for cc in live}
    in_use = {cc.image.removesuffix(":latest") for cc in live}
    for image in await images.list_(supervisor.engine, labels=labels):
        image_labels = image.get("Labels") or {}
        ccid = image_labels.get(CCID_LABEL)
        tags = [tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"]
        # A peer's own build through the Docker-API front names no chaincode: it is
        # busy while a chaincode runs on it.
        peer_built = ccid is None and image_labels.get(ROLE_LABEL) == "image"
        if not tags or not (ccid is not None or peer_built):
            continue
        if ccid in busy or any(tag.removesuffix(":latest") in in_use for tag in tags):
            continue
        if not result.dry_run:
            try:
                await images.remove(supervisor.engine, str(image["Id"]))
            except (Conflict, NoSuchImage) as exc:
                log.info("gc kept image %s: %s", tags[0], exc)
                continue
        result.images.append(tags[0])
