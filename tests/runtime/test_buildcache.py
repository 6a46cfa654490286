"""The Go build cache of ccdaemon's builder containers, on real Go builds.

Each test has its own instance, so its cache volumes are its own; they are removed when
it ends. The chaincode is tests/runtime/test_builder.py's reporter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import secrets
import tarfile
from typing import TYPE_CHECKING

import anyio
import pytest

from ccdaemon.engine import Engine, NoSuchVolume, archive, containers, images, volumes
from ccdaemon.launchqueue import LaunchQueue
from ccdaemon.runtime import buildcache
from ccdaemon.runtime.buildcache import BuildCaches, CacheFailed
from ccdaemon.runtime.builder import BuildRequest, build_image
from ccdaemon.runtime.certs import ChaincodeCA
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL, HostConfig
from ccdaemon.runtime.launcher import Launcher, LaunchRequest, RuntimeConfig
from ccdaemon.runtime.package import read_code_package
from ccdaemon.runtime.platforms import GolangBuild, PlatformImages, platform_for
from tests.conftest import BASE_IMAGE, Made
from tests.runtime.test_builder import (  # noqa: F401 -- fabric_images: a fixture
    GO_MOD,
    HANG_GUARD,
    MAIN_GO,
    fabric_images,
    request_for,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.usefixtures("fabric_images")

# `go build -v` names the reporter's package on a line of its own when it compiles it,
# that is, when the cache does not hold it.
COMPILED = "example.com/reporter"


@pytest.fixture
async def instance(engine: Engine) -> AsyncIterator[str]:
    """A fresh daemon instance name; its volumes (its caches) are removed at the end."""
    name = f"ccdt-{secrets.token_hex(3)}"
    yield name
    for volume in await volumes.list_(engine, labels={INSTANCE_LABEL: name}):
        with contextlib.suppress(NoSuchVolume):
            await volumes.remove(engine, volume["Name"])


def cached(made: Made, caches: BuildCaches | None, main_go: bytes = MAIN_GO) -> BuildRequest:
    return dataclasses.replace(request_for(made, main_go), cache=caches)


async def build(engine: Engine, request: BuildRequest) -> list[str]:
    """Build; the builder's output lines."""
    progress: list[str] = []
    with anyio.fail_after(HANG_GUARD):
        await build_image(engine, request, progress=progress.append)
    return progress


async def binary(engine: Engine, made: Made, image: str) -> bytes:
    """The chaincode binary in ``image``, read from a container never started."""
    container = made.container("read")
    await containers.create(engine, container, {"Image": image, "Cmd": ["x"]})
    data = await containers.get_archive(engine, container, "/usr/local/bin/chaincode")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("chaincode")
        assert member is not None
        return member.read()


async def cache_of(engine: Engine, instance: str) -> str:
    found = await volumes.list_(engine, labels={INSTANCE_LABEL: instance})
    assert len(found) == 1, found
    return str(found[0]["Name"])


async def write_into(engine: Engine, made: Made, volume: str, script: str) -> None:
    """Run ``script`` in a busybox container with ``volume`` at /v."""
    container = made.container("write")
    mount = {"Type": "volume", "Source": volume, "Target": "/v"}
    body = {"Image": BASE_IMAGE, "Cmd": ["sh", "-c", script], "HostConfig": {"Mounts": [mount]}}
    await containers.create(engine, container, body)
    await containers.start(engine, container)
    assert await containers.wait(engine, container) == 0
    await containers.remove(engine, container, force=True)


async def test_cached_builds_make_the_uncached_builds_binary_byte_for_byte(
    engine: Engine, made: Made, instance: str
) -> None:
    """Uncached, cold and warm builds of one source give the same binary.

    The warm build compiles nothing again (``go build -v`` no longer names the package),
    and the cache is a volume carrying the daemon's labels and role ``cache``.
    """
    caches = BuildCaches(engine, instance=instance)
    plain, cold, warm = cached(made, None), cached(made, caches), cached(made, caches)
    plain_log = await build(engine, plain)
    cold_log = await build(engine, cold)
    warm_log = await build(engine, warm)
    assert COMPILED in plain_log
    assert COMPILED in cold_log
    assert COMPILED not in warm_log
    assert any(buildcache.reported_size(line) for line in warm_log)
    expected = await binary(engine, made, plain.image)
    assert await binary(engine, made, cold.image) == expected
    assert await binary(engine, made, warm.image) == expected
    volume = await volumes.inspect(engine, await cache_of(engine, instance))
    assert volume["Labels"]["ccdaemon.role"] == "cache"
    assert volume["Labels"]["ccdaemon.managed"] == "true"
    image_id = (await images.inspect(engine, plain.platform.builder_image))["Id"]
    assert volume["Name"] == buildcache.volume_name(instance, image_id)


async def test_concurrent_builds_share_one_cache_correctly(
    engine: Engine, made: Made, instance: str
) -> None:
    """Three builds at once (build_limit 3) on one empty cache: each binary is right.

    Two of them are the same source, one differs by a line: the two give the uncached
    build's binary, the third its own, and a fourth build finds everything cached.
    """
    changed = MAIN_GO.replace(b"os.Exit(3)", b"os.Exit(5)")
    caches = BuildCaches(engine, instance=instance)
    requests = [cached(made, caches), cached(made, caches), cached(made, caches, changed)]
    async with anyio.create_task_group() as group:
        queue = LaunchQueue(group, build_limit=3)
        with anyio.fail_after(HANG_GUARD):
            async with anyio.create_task_group() as builds:
                for request in requests:
                    builds.start_soon(
                        queue.build_once, request.image, lambda r=request: build_image(engine, r)
                    )
    plain, plain_changed = cached(made, None), cached(made, None, changed)
    await build(engine, plain)
    await build(engine, plain_changed)
    expected = await binary(engine, made, plain.image)
    assert await binary(engine, made, requests[0].image) == expected
    assert await binary(engine, made, requests[1].image) == expected
    assert await binary(engine, made, requests[2].image) == await binary(
        engine, made, plain_changed.image
    )
    assert COMPILED not in await build(engine, cached(made, caches))


async def test_the_chaincode_container_never_mounts_the_cache(
    engine: Engine, made: Made, instance: str
) -> None:
    """A launch that builds (with the cache) runs a chaincode container with no mounts."""
    code = archive.targz({"src/go.mod": GO_MOD, "src/main.go": MAIN_GO})
    package = read_code_package(
        code,
        cc_type="golang",
        path="",
        label="cached",
        max_size=1 << 20,
        max_entries=100,
        max_expanded=1 << 20,
    )
    config = RuntimeConfig(
        network_id="dev",
        peer_id=f"p{secrets.token_hex(3)}",
        host_config=HostConfig(network_mode="none"),
        instance=instance,
    )
    request = LaunchRequest(
        "cached_1:" + "4" * 64, "golang", "peer0:7052", "Org1MSP", package=package
    )
    async with anyio.create_task_group() as group:
        launcher = Launcher(
            engine,
            LaunchQueue(group),
            ChaincodeCA.generate(),
            config,
            build_cache_size=buildcache.DEFAULT_LIMIT,
        )
        container, image = launcher.names(request.ccid)
        made.containers.append(container)
        made.images.append(image)
        with anyio.fail_after(HANG_GUARD):
            await launcher.launch(request)
    found = await containers.inspect(engine, container)
    assert found["Mounts"] == []
    assert not found["HostConfig"].get("Mounts")
    assert not found["HostConfig"].get("Binds")
    await cache_of(engine, instance)  # the build did have its cache


async def test_an_unusable_cache_fails_the_build_saying_so_and_the_next_recovers(
    engine: Engine, made: Made, instance: str
) -> None:
    """A cache the builder's user cannot write: CacheFailed naming it; it is gone after."""
    caches = BuildCaches(engine, instance=instance)
    await build(engine, cached(made, caches))
    volume = await cache_of(engine, instance)
    await write_into(engine, made, volume, "chown -R 0:0 /v && chmod -R 0555 /v")
    with anyio.fail_after(HANG_GUARD), pytest.raises(CacheFailed) as caught:
        await build_image(engine, cached(made, caches))
    assert f"build cache (volume {volume}) is not usable" in str(caught.value)
    assert "not a writable directory" in caught.value.log
    with pytest.raises(NoSuchVolume):
        await volumes.inspect(engine, volume)
    request = cached(made, caches)
    await build(engine, request)
    assert await binary(engine, made, request.image)


async def test_a_full_cache_fails_the_build_saying_so_and_the_next_recovers(
    engine: Engine, made: Made, instance: str
) -> None:
    """A cache on a 1 MiB tmpfs fills up: CacheFailed says so, and the next build works."""
    caches = BuildCaches(engine, instance=instance)
    builder_image = request_for(made).platform.builder_image
    image_id = (await images.inspect(engine, builder_image))["Id"]
    volume = buildcache.volume_name(instance, image_id)
    opts = {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    await volumes.create(engine, volume, labels=caches.labels, driver_opts=opts)
    with anyio.fail_after(HANG_GUARD), pytest.raises(CacheFailed) as caught:
        await build_image(engine, cached(made, caches))
    assert f"build cache (volume {volume}) or the engine's disk is full" in str(caught.value)
    with pytest.raises(NoSuchVolume):
        await volumes.inspect(engine, volume)
    await build(engine, cached(made, caches))
    assert (await volumes.inspect(engine, volume)).get("Options") in (None, {})


@pytest.mark.parametrize(("limit", "kept"), [(buildcache.DEFAULT_LIMIT, True), (1, False)])
async def test_a_cache_over_its_bound_is_emptied_before_the_next_build(
    engine: Engine, made: Made, instance: str, limit: int, *, kept: bool
) -> None:
    """A cache measured over the bound is removed before the next build; under it, it stays."""
    caches = BuildCaches(engine, instance=instance, limit=limit)
    await build(engine, cached(made, caches))
    volume = await cache_of(engine, instance)
    await write_into(engine, made, volume, "echo mark > /v/mark")
    request = cached(made, caches)
    log = await build(engine, request)
    assert (COMPILED not in log) is kept
    await write_into(engine, made, volume, "test -f /v/mark" if kept else "test ! -f /v/mark")


async def test_a_new_builder_image_gets_a_new_cache_and_the_old_one_goes(
    engine: Engine, made: Made, instance: str
) -> None:
    """Built with the old builder (Go 1.19), then the new (1.24): one cache each, in turn."""
    caches = BuildCaches(engine, instance=instance)
    old = platform_for(
        "golang",
        PlatformImages(golang_builder="localhost/ccdaemon/goenv:1.19"),
        GolangBuild(dynamic_link=True),  # the old builder has no cgo
    )
    await build(engine, dataclasses.replace(cached(made, caches), platform=old))
    old_cache = await cache_of(engine, instance)
    old_id = (await images.inspect(engine, old.builder_image))["Id"]
    assert old_cache == buildcache.volume_name(instance, old_id)
    await build(engine, cached(made, caches))
    new_cache = await cache_of(engine, instance)  # the only one: the old one is gone
    assert new_cache != old_cache
    with pytest.raises(NoSuchVolume):
        await volumes.inspect(engine, old_cache)


async def test_no_cache_with_a_limit_of_zero(engine: Engine, made: Made, instance: str) -> None:
    """Limit 0: no volume, and the builder runs Fabric's command as it is."""
    await build(engine, cached(made, BuildCaches(engine, instance=instance, limit=0)))
    assert await volumes.list_(engine, labels={INSTANCE_LABEL: instance}) == []
