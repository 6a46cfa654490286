"""The Go build cache of ccdaemon's own builder containers: one engine volume per daemon.

Builder containers are ccdaemon's (never a chaincode's), so each Go build can mount the
daemon's cache volume as its ``GOCACHE``: at the builder image's own ``GOCACHE`` when
the image sets one (the engine then fills a new volume with what the image holds there,
a standard library already compiled, say, so a cold cache is no slower than none), else
at ``/ccdaemon-cache``. Go's build cache is
content-addressed and safe for concurrent builds, so a build's output is the same with
or without it; a warm cache only skips recompiling what has not changed.

The volume is named from the instance and the builder image's id, so a new builder image
starts a new cache and the old one is removed when the new one is made; it carries the
daemon's labels and role ``cache``, so ``gc`` finds it and no other daemon's. A new
volume's root belongs to root, and builder images run as their own user (Fabric's
ccenv as uid 500): one short container of the builder image, as root, gives it to that
user before the first build. Its size is
measured at the end of every build (a ``du`` line in the builder's output); one over the
bound is removed before the next build that finds no other build using it.

``GOMODCACHE`` stays the builder image's: builders have no network, so a module cache on
the volume could never be filled, and pointing it away would hide modules an image may
carry for chaincode that is not vendored. Node and Java builds get no cache for the same
reason: without a network their package managers have nothing to fetch.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import posixpath
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from ccdaemon.engine import BuildFailed, NoSuchVolume, VolumeInUse, containers, images, volumes
from ccdaemon.runtime.dockervm import CLEANUP_TIMEOUT, remove_quietly
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL, MANAGED_LABEL, ROLE_LABEL

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ccdaemon.engine import Engine

log = logging.getLogger(__name__)

#: Where the volume is mounted, as GOCACHE, when the builder image sets no GOCACHE.
MOUNT = "/ccdaemon-cache"
#: The builder's exit status when the cache cannot be used (see PREFIX).
UNUSABLE = 97
#: The default bound on a cache's size: 2 GiB.
DEFAULT_LIMIT = 2 << 30
#: The role label value of a cache volume.
ROLE = "cache"
#: Seconds for the container that gives a new volume to the builder's user: one chown
#: of an empty directory, so a minute means the engine is stuck.
PREPARE_TIMEOUT = 60.0

#: Shell run before Fabric's build script (its text unchanged after it): the cache must
#: be a writable directory, else the build stops with UNUSABLE and says why; at exit,
#: whatever the build's outcome, the volume's size is printed for the daemon.
PREFIX = f"""
if ! touch "$GOCACHE/.ccdaemon-probe"; then
    echo "ccdaemon: the build cache $GOCACHE is not a writable directory" >&2
    exit {UNUSABLE}
fi
trap 'echo "ccdaemon: build cache holds $(du -sk "$GOCACHE" | cut -f1) KiB"' EXIT
"""
_MEASURED = re.compile(r"ccdaemon: build cache holds (\d+) KiB")
# What Linux says when the disk, or a size-bound cache volume, is full.
_FULL = "no space left on device"


@dataclass(frozen=True, slots=True)
class CacheMount:
    """A cache volume as a build mounts it: the volume, at ``target``, its GOCACHE."""

    volume: str
    target: str


def cache_dir(image_env: list[str] | None) -> str:
    """Where a builder image keeps its Go build cache: its own GOCACHE if absolute, or MOUNT."""
    for entry in image_env or []:
        name, _, value = entry.partition("=")
        if name == "GOCACHE" and posixpath.isabs(value) and posixpath.normpath(value) != "/":
            return posixpath.normpath(value)
    return MOUNT


class CacheFailed(BuildFailed):
    """Raised when a Go build failed on its build cache: unusable, or full.

    ``volume`` is the cache volume; the message says the cache is removed, so that the
    next build starts with an empty one.
    """

    def __init__(self, ccid: str, volume: str, problem: str, log: str) -> None:
        super().__init__(
            f"build of {ccid} failed: its build cache (volume {volume}) {problem}; the "
            "cache is removed, and the next build starts with an empty one",
            log,
        )
        self.volume = volume


def volume_name(instance: str, image_id: str) -> str:
    """The cache volume of ``instance`` for the builder image ``image_id`` (``sha256:...``)."""
    return f"ccdaemon-{instance}-gocache-{image_id.removeprefix('sha256:')[:12]}"


def reported_size(line: str) -> int | None:
    """The size in bytes a builder's cache line reports, or None for any other line."""
    match = _MEASURED.fullmatch(line.strip())
    return None if match is None else int(match.group(1)) * 1024


def full(log_text: str) -> bool:
    """Whether a failed build's output says a disk (the cache's, or the engine's) is full."""
    return _FULL in log_text.lower()


class BuildCaches:
    """The Go build cache volumes of one daemon (``instance``) on one engine.

    ``limit`` bounds a cache's size in bytes; 0 means builds get no cache.
    """

    def __init__(self, engine: Engine, *, instance: str, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 0:
            raise ValueError("the build cache limit must be 0 (no cache) or more bytes")
        self.limit = limit
        self._engine = engine
        self._labels = {MANAGED_LABEL: "true", INSTANCE_LABEL: instance, ROLE_LABEL: ROLE}
        self._instance = instance
        # Builds mounting each volume now, and the volumes found over the bound.
        self._users: collections.Counter[str] = collections.Counter()
        self._over: set[str] = set()
        # Volumes are made, checked and removed one at a time, never under a build.
        self._lock = anyio.Lock()

    @property
    def labels(self) -> dict[str, str]:
        """The labels of this daemon's cache volumes."""
        return dict(self._labels)

    @contextlib.asynccontextmanager
    async def use(self, builder_image: str) -> AsyncIterator[CacheMount | None]:
        """The cache volume a build with ``builder_image`` mounts, made if missing.

        Yields None when caching is off. Other caches of this daemon (an earlier builder
        image's) and a cache found over the bound are removed first, unless a build is
        using them.

        Raises:
            NoSuchImage: the builder image is missing.
        """
        if self.limit == 0:
            yield None
            return
        async with self._lock:
            image = await images.inspect(self._engine, builder_image)
            name = volume_name(self._instance, str(image["Id"]))
            config = image.get("Config") or {}
            mount = CacheMount(name, cache_dir(config.get("Env")))
            for found in await volumes.list_(self._engine, labels=self._labels):
                if found["Name"] != name:
                    await self._remove_unused(found["Name"], "its builder image changed")
            if name in self._over:
                await self._remove_unused(name, f"it was over its bound of {self.limit} bytes")
            try:
                await volumes.inspect(self._engine, name)
            except NoSuchVolume:
                await volumes.create(self._engine, name, labels=self._labels)
                try:
                    await self._give(mount, builder_image, str(config.get("User") or ""))
                except BaseException:
                    with anyio.move_on_after(CLEANUP_TIMEOUT, shield=True):
                        await self._remove_unused(name, "it could not be prepared")
                    raise
                log.info("build cache %s made for %s", name, builder_image)
            self._users[name] += 1
        try:
            yield mount
        finally:
            self._users[name] -= 1

    async def _give(self, mount: CacheMount, builder_image: str, user: str) -> None:
        """Fill the new volume with what the image holds at the target; give it to ``user``.

        The engine copies the image's content into a new volume the first time a
        container mounts it; the builds mount it without that copy.

        Raises:
            BuildFailed: the chown failed (its exit status named).
            TimeoutError: the container did not end within PREPARE_TIMEOUT.
        """
        body = {
            "Image": builder_image,
            "User": "0",
            "Entrypoint": ["/bin/sh", "-c", 'chown "$0" "$1"'],
            "Cmd": [user or "0", mount.target],
            "Labels": {**self._labels, ROLE_LABEL: "builder"},
            "HostConfig": {
                "NetworkMode": "none",
                "Mounts": [{"Type": "volume", "Source": mount.volume, "Target": mount.target}],
            },
        }
        container = await containers.create(self._engine, None, body)
        try:
            with anyio.fail_after(PREPARE_TIMEOUT):
                await containers.start(self._engine, container)
                code = await containers.wait(self._engine, container)
        finally:
            with anyio.move_on_after(CLEANUP_TIMEOUT, shield=True):
                await remove_quietly(self._engine, container)
        if code:
            raise BuildFailed(
                f"the build cache {mount.volume} could not be given to {builder_image}'s user "
                f"{user}: chown in the builder image exited with {code}",
                "",
            )

    def measured(self, volume: str, size: int) -> None:
        """Record a cache's size as a build measured it; over the bound, it is marked to go."""
        if size > self.limit:
            log.info(
                "build cache %s holds %d bytes, over its bound of %d", volume, size, self.limit
            )
            self._over.add(volume)

    async def drop(self, volume: str, why: str) -> bool:
        """Remove a cache a build found unusable or full; whether it is gone."""
        async with self._lock:
            return await self._remove_unused(volume, why)

    async def listed(self) -> list[str]:
        """The names of this daemon's cache volumes on the engine."""
        return sorted(
            found["Name"] for found in await volumes.list_(self._engine, labels=self._labels)
        )

    async def remove_all(self) -> list[str]:
        """Remove every cache of this daemon no build is using; the names removed."""
        async with self._lock:
            names = await self.listed()
            return [name for name in names if await self._remove_unused(name, "gc was asked to")]

    async def _remove_unused(self, name: str, why: str) -> bool:
        """Remove a cache volume unless a build of this daemon or any container uses it."""
        if self._users[name]:
            return False
        try:
            await volumes.remove(self._engine, name)
        except NoSuchVolume:
            pass
        except VolumeInUse as exc:
            log.info("build cache %s kept (%s): %s", name, why, exc)
            return False
        else:
            log.info("build cache %s removed: %s", name, why)
        self._over.discard(name)
        del self._users[name]
        return True
