"""``ccdaemon gc``: remove the daemon's own exited containers and unused chaincode images.

Build cache volumes are listed and removed only when asked (``caches``): a cache is
worth keeping, and is bounded in size by itself.

Only objects carrying all of the daemon's labels (managed, instance) are candidates (the
backend lists them), so
another daemon's chaincodes and everything the operator made by hand are never touched.
Containers are removed in the launch queue's order for their name, so a collection never
races a launch of the same chaincode. An image still used by a container stays (the
engine refuses), and so do the images of chaincodes the daemon runs or is launching.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ccdaemon.supervise.registry import ENDED

if TYPE_CHECKING:
    from ccdaemon.supervise.supervisor import Supervisor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Collected:
    """What a collection removed (or, in a dry run, would remove)."""

    dry_run: bool
    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    #: Build cache volumes removed (or that would be), when caches were asked for.
    caches: list[str] = field(default_factory=list)
    #: Build cache volumes left alone: not asked for, or in use by a build.
    caches_kept: list[str] = field(default_factory=list)


async def collect(
    supervisor: Supervisor, *, dry_run: bool = False, caches: bool = False
) -> Collected:
    """Remove the daemon's exited containers and the images of chaincodes not running.

    ``dry_run`` only says what would be removed; build cache volumes are removed with
    ``caches``, else only listed as kept.
    """
    result = Collected(dry_run=dry_run)
    await _containers(supervisor, result)
    await _images(supervisor, result)
    await _caches(supervisor, result, remove=caches)
    log.info(
        "gc%s: %d containers, %d images, %d build caches",
        " (dry run)" if dry_run else "",
        len(result.containers),
        len(result.images),
        len(result.caches),
    )
    return result


async def _caches(supervisor: Supervisor, result: Collected, *, remove: bool) -> None:
    found = await supervisor.backend.caches()
    if not remove:
        result.caches_kept.extend(found)
        return
    if result.dry_run:
        result.caches.extend(found)
        return
    removed = await supervisor.backend.remove_caches()
    result.caches.extend(removed)
    result.caches_kept.extend(name for name in found if name not in removed)


async def _containers(supervisor: Supervisor, result: Collected) -> None:
    registry = supervisor.registry
    for ccid, name in await supervisor.backend.ended():
        cc = registry.get(ccid)
        if cc is not None and cc.state not in ENDED:
            continue  # a launch or stop of it is under way
        result.containers.append(name)
        if not result.dry_run:
            await supervisor.backend.stop(ccid)
            if cc is not None and registry.get(ccid) is cc:
                registry.forget(ccid)


async def _images(supervisor: Supervisor, result: Collected) -> None:
    live = [cc for cc in supervisor.registry.all() if cc.state not in ENDED]
    busy = {cc.ccid for cc in live}
    in_use = {cc.image.removesuffix(":latest") for cc in live}
    for image in await supervisor.backend.images():
        # A peer's own build (no ccid) is busy while a chaincode runs on it.
        if image.ccid in busy or any(tag.removesuffix(":latest") in in_use for tag in image.tags):
            continue
        if not result.dry_run:
            kept = await supervisor.backend.remove_image(image.image_id)
            if kept is not None:
                log.info("gc kept image %s: %s", image.tags[0], kept)
                continue
        result.images.append(image.tags[0])
