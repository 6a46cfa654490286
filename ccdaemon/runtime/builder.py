"""Fabric's two-stage chaincode image build.

1. An ephemeral builder container (the platform's builder image, no network) receives
   the code package in /chaincode/input and runs the platform's build script; its
   output is streamed as progress.
2. The result, /chaincode/output, comes back as ``binpackage.tar``; the chaincode image
   is built FROM the runtime image with it ADDed, Fabric's labels and ccdaemon's.

A Go build given the daemon's build cache mounts it in the builder container (see
buildcache); a build that finds the cache unusable or full fails saying so, and the cache
is removed, so the next build starts with an empty one.

Fabric leaves its builder container behind when the build fails (the removal is not
forced); here it is always removed, and a failed build leaves no image either.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from ccdaemon.engine import (
    BuildFailed,
    EngineError,
    EngineUnavailable,
    NoSuchImage,
    archive,
    containers,
    images,
    streams,
)
from ccdaemon.runtime import buildcache, gotoolchain
from ccdaemon.runtime.buildcache import CacheFailed
from ccdaemon.runtime.dockervm import CLEANUP_TIMEOUT, remove_quietly
from ccdaemon.runtime.hostconfig import CCID_LABEL, MANAGED_LABEL, ROLE_LABEL

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ccdaemon.engine import Engine
    from ccdaemon.runtime.buildcache import BuildCaches, CacheMount
    from ccdaemon.runtime.platforms import Platform

log = logging.getLogger(__name__)

#: Lines of builder output a BuildFailed keeps.
LOG_TAIL = 200


@dataclass(frozen=True, slots=True)
class BuildRequest:
    """What to build: the code, how, and the image's name."""

    ccid: str
    image: str
    platform: Platform
    code_package: bytes  # the .tar.gz the builder extracts into /chaincode/input
    path: str = ""  # the package metadata's path (the Go import path)
    fabric_version: str = "2.5.0"
    #: More labels for the image and the builder container (the daemon's instance).
    labels: Mapping[str, str] = field(default_factory=dict)
    #: The daemon's build caches; a Go build mounts one (None: no cache).
    cache: BuildCaches | None = None


async def build_image(
    engine: Engine, request: BuildRequest, *, progress: Callable[[str], object] | None = None
) -> str:
    """Build the chaincode image and return its id; nothing is left behind on failure.

    No overall timeout: builds take as long as they take (the caller's startup timeout
    bounds a launch that waits for one).

    Raises:
        GoTooOld: the module's go.mod asks for a newer Go than the builder image has.
        CacheFailed: the build failed on its cache (unusable, or full); the cache is
            removed, so the next build starts with an empty one.
        BuildFailed: the build script exited non-zero (the log tail holds the compiler's
            words), or the image build failed.
        InvalidRequest: the package's path is not a plausible import path.
        EngineError: the engine refused a step (a missing builder image: NoSuchImage).
    """
    await _check_go(engine, request)
    if request.cache is None or request.platform.type != "GOLANG":
        binpackage, builder = await _compile(engine, request, progress, None)
    else:
        try:
            async with request.cache.use(request.platform.builder_image) as mount:
                binpackage, builder = await _compile(engine, request, progress, mount)
        except CacheFailed as exc:
            # Out of use() and with its builder gone, so the volume can go.
            with anyio.move_on_after(CLEANUP_TIMEOUT, shield=True):
                await request.cache.drop(exc.volume, str(exc))
            raise
    context = archive.tar(
        {
            "Dockerfile": request.platform.dockerfile(
                request.ccid, fabric_version=request.fabric_version, labels=request.labels
            ).encode(),
            "binpackage.tar": binpackage,
        }
    )
    failure: Exception | None = None
    image_id = ""
    async with anyio.create_task_group() as group:
        # The builder container goes while the image is built, not before it.
        group.start_soon(_remove_finished_builder, engine, builder)
        try:
            image_id = await images.build(
                engine,
                context,
                request.image,
                network_mode="none",
                on_progress=progress,
            )
        except Exception as exc:  # noqa: BLE001 -- raised as it is once the group is done
            failure = exc
    if failure is not None:
        if isinstance(failure, BuildFailed):
            with anyio.move_on_after(CLEANUP_TIMEOUT, shield=True):
                await _remove_image_quietly(engine, request.image)
        raise failure
    return image_id


async def _check_go(engine: Engine, request: BuildRequest) -> None:
    """Refuse, before any container is made, a module needing a newer Go than the builder's.

    Raises:
        GoTooOld: both versions and the setting named.
        NoSuchImage: the builder image is missing.
    """
    if request.platform.type != "GOLANG":
        return
    wanted = await anyio.to_thread.run_sync(
        gotoolchain.module_go, request.code_package, request.path
    )
    if wanted is None:
        return
    found = await images.inspect(engine, request.platform.builder_image)
    gotoolchain.check(
        request.ccid,
        wanted=wanted,
        builder_image=request.platform.builder_image,
        builder_go=gotoolchain.image_go(found.get("Config") or {}),
    )


async def _compile(
    engine: Engine,
    request: BuildRequest,
    progress: Callable[[str], object] | None,
    cache: CacheMount | None,
) -> tuple[bytes, str]:
    """Run the build script in an ephemeral builder container, with the ``cache`` volume.

    Returns /chaincode/output and the builder container, which the caller removes; on
    failure or cancellation it is removed here.
    """
    platform = request.platform
    command = platform.build_command(request.path)
    env = list(platform.build_env)
    host_config: dict[str, object] = {"NetworkMode": "none"}
    if cache is not None:
        command[-1] = buildcache.PREFIX + command[-1]
        env.append(f"GOCACHE={cache.target}")
        # No copy: a new volume got the image's content once, when the daemon made it.
        mount = {"Type": "volume", "Source": cache.volume, "Target": cache.target}
        host_config["Mounts"] = [{**mount, "VolumeOptions": {"NoCopy": True}}]
    body = {
        "Image": platform.builder_image,
        "Cmd": command,
        "Env": env,
        "Labels": {
            MANAGED_LABEL: "true",
            CCID_LABEL: request.ccid,
            ROLE_LABEL: "builder",
            **request.labels,
        },
        "AttachStdout": True,
        "AttachStderr": True,
        "HostConfig": host_config,
    }
    builder = await containers.create(engine, None, body)  # the engine names it
    compiled = False
    try:
        await containers.put_archive(engine, builder, "/chaincode/input", request.code_package)
        tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL)
        async with containers.attach(engine, builder, tty=False) as frames:
            await containers.start(engine, builder)
            async for line in streams.lines(frames):
                tail.append(line.text)
                if progress is not None:
                    progress(line.text)
                size = buildcache.reported_size(line.text)
                if request.cache is not None and cache is not None and size is not None:
                    request.cache.measured(cache.volume, size)
        code = await containers.wait(engine, builder)
        if code:
            raise _failed(request, code, "\n".join(tail), cache)
        output = await containers.get_archive(engine, builder, "/chaincode/output/.")
        compiled = True
    finally:
        if not compiled:
            await _remove_builder(engine, builder)
    return output, builder


def _failed(
    request: BuildRequest, code: int, log_text: str, cache: CacheMount | None
) -> BuildFailed:
    """The error of a build that exited ``code``: CacheFailed when the cache is at fault."""
    if cache is not None and code == buildcache.UNUSABLE:
        return CacheFailed(request.ccid, cache.volume, "is not usable", log_text)
    if cache is not None and buildcache.full(log_text):
        return CacheFailed(request.ccid, cache.volume, "or the engine's disk is full", log_text)
    return BuildFailed(
        f"build of {request.ccid} failed: the {request.platform.type} build exited with {code}",
        log_text,
    )


async def _remove_finished_builder(engine: Engine, builder: str) -> None:
    """Remove a builder whose output is out, beside the image build; failing is only logged.

    What is left (the engine went away) carries the builder role label, and the next
    daemon start removes it.
    """
    try:
        await _remove_builder(engine, builder)
    except (EngineError, EngineUnavailable) as exc:
        log.warning("builder container %s was not removed: %s", builder, exc)


async def _remove_builder(engine: Engine, builder: str) -> None:
    """Remove the builder container, shielded: cancellation must not leave it behind."""
    with anyio.move_on_after(CLEANUP_TIMEOUT, shield=True):
        await remove_quietly(engine, builder)


async def _remove_image_quietly(engine: Engine, image: str) -> None:
    with contextlib.suppress(NoSuchImage):
        await images.remove(engine, image, force=True)
