"""Image tag and push to the test bed's registry (scripts/engines up registry).

Docker only: the swarm backend pushes from a Docker manager. The registry speaks plain
HTTP on 127.0.0.1, which Docker allows without --insecure-registry.
"""

from __future__ import annotations

import os
import re
import socket
import time
from typing import TYPE_CHECKING

import aiohttp
import pytest

from ccdaemon.engine import Engine, InvalidParameter, NoSuchImage, PushFailed, images
from tests.conftest import BASE_IMAGE, Made, engines

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import aiodocker

pytestmark = pytest.mark.engines("docker-28.5", "docker-20.10")

REGISTRY = f"127.0.0.1:{os.environ.get('CCDAEMON_REGISTRY_PORT', '5000')}"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@pytest.fixture
async def registry() -> AsyncIterator[aiohttp.ClientSession]:
    """The bed's registry, started if need be (idempotent), and an HTTP client to it."""
    await engines("up", "registry")
    async with aiohttp.ClientSession(f"http://{REGISTRY}") as session:
        yield session


@pytest.fixture
async def pushed(registry: aiohttp.ClientSession) -> AsyncIterator[list[tuple[str, str]]]:
    """(repository path, digest) pairs a test pushed; their manifests are deleted at the end."""
    made: list[tuple[str, str]] = []
    yield made
    for path, digest in made:
        async with registry.delete(f"/v2/{path}/manifests/{digest}") as resp:
            assert resp.status in {202, 404}, await resp.text()


async def manifest_digest(session: aiohttp.ClientSession, path: str, reference: str) -> str:
    """The registry's own digest for a tag's manifest (its Docker-Content-Digest header)."""
    async with session.get(
        f"/v2/{path}/manifests/{reference}", headers={"Accept": MANIFEST_V2}
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == MANIFEST_V2
        return resp.headers["Docker-Content-Digest"]


def unused_port() -> int:
    """A local TCP port nothing listens on (taken from the kernel, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_push_returns_the_digest_the_registry_serves_and_pulls_back(
    engine: Engine,
    docker: aiodocker.Docker,
    made: Made,
    registry: aiohttp.ClientSession,
    pushed: list[tuple[str, str]],
) -> None:
    """A tagged image pushes; its digest is the registry's, and pulls back as the same image."""
    path = f"{made.prefix}/busybox"
    repository = f"{REGISTRY}/{path}"
    made.images.append(f"{repository}:t1")
    await images.tag(engine, BASE_IMAGE, repository, "t1")
    progress: list[str] = []
    began = time.perf_counter()
    digest = await images.push(engine, repository, "t1", on_progress=progress.append)
    took = time.perf_counter() - began
    pushed.append((path, digest))
    print(f"push of {BASE_IMAGE} took {took:.2f} s")  # noqa: T201 -- a figure for docs/swarm.md
    assert DIGEST.fullmatch(digest)
    assert await manifest_digest(registry, path, "t1") == digest
    # Layer lines vary with what the registry holds (Pushed, Layer already exists, Mounted
    # from another repository); the first and last lines do not.
    assert progress[0] == f"The push refers to repository [{repository}]"
    assert any(line.startswith(f"t1: digest: {digest} ") for line in progress)
    base = await images.inspect(engine, BASE_IMAGE)
    tagged = await images.inspect(engine, f"{repository}:t1")
    assert tagged["Id"] == base["Id"]
    assert f"{repository}@{digest}" in tagged["RepoDigests"]

    # Without the tag, the digest alone brings back the very same image.
    await images.remove(engine, f"{repository}:t1")
    by_digest = f"{repository}@{digest}"
    made.images.append(by_digest)
    await docker.images.pull(by_digest)
    assert (await images.inspect(engine, by_digest))["Id"] == base["Id"]


async def test_push_with_credentials_the_registry_does_not_ask_for(
    engine: Engine, made: Made, registry: aiohttp.ClientSession, pushed: list[tuple[str, str]]
) -> None:
    """Credentials travel in the body and are accepted; the digest is the same as without."""
    path = f"{made.prefix}/auth"
    repository = f"{REGISTRY}/{path}"
    made.images.append(f"{repository}:t2")
    await images.tag(engine, BASE_IMAGE, repository, "t2")
    digest = await images.push(
        engine,
        repository,
        "t2",
        auth={"username": "ccdaemon", "password": "unused", "serveraddress": REGISTRY},
    )
    pushed.append((path, digest))
    assert await manifest_digest(registry, path, "t2") == digest


async def test_push_to_a_registry_that_is_not_running_raises_push_failed(
    engine: Engine, made: Made
) -> None:
    """Nothing listens at the registry's address: PushFailed, naming that registry."""
    dead = f"127.0.0.1:{unused_port()}"
    repository = f"{dead}/{made.prefix}/busybox"
    made.images.append(f"{repository}:t1")
    await images.tag(engine, BASE_IMAGE, repository, "t1")
    with pytest.raises(PushFailed) as caught:
        await images.push(engine, repository, "t1")
    assert f"to registry {dead} failed" in caught.value.message
    assert "connection refused" in caught.value.message
    assert "connection refused" in caught.value.log
    assert caught.value.status == 200


async def test_push_of_a_missing_image_raises_no_such_image(engine: Engine, made: Made) -> None:
    """A name the engine does not hold: NoSuchImage, though Docker says so inside a 200 stream."""
    repository = f"{REGISTRY}/{made.prefix}/never-tagged"
    with pytest.raises(NoSuchImage, match="does not exist locally") as caught:
        await images.push(engine, repository, "t1")
    assert repository in caught.value.message


async def test_tag_of_a_missing_image_raises_no_such_image(engine: Engine, made: Made) -> None:
    """Tagging names a source image that does not exist: the engine's 404, as NoSuchImage."""
    with pytest.raises(NoSuchImage):
        await images.tag(engine, f"{made.image()}:none", f"{REGISTRY}/{made.prefix}/x", "t1")


@pytest.mark.parametrize("repository", ["Upper/Case", f"{REGISTRY}/a--b_-c"])
async def test_push_with_an_invalid_name_raises_invalid_parameter(
    engine: Engine, repository: str
) -> None:
    """A name that breaks the reference grammar is refused before the engine is asked."""
    with pytest.raises(InvalidParameter, match="invalid reference format"):
        await images.push(engine, repository, "t1")
