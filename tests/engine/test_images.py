"""Image build (progress, errors inside a 200 stream), inspect and remove, on every engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiodocker
import pytest

from ccdaemon.engine import (
    BuildFailed,
    Engine,
    InvalidParameter,
    NoSuchImage,
    archive,
    containers,
    images,
)
from tests.conftest import BASE_IMAGE, TEST_LABEL, Made, shell

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.all_engines


def context(dockerfile: str, **files: bytes) -> bytes:
    return archive.tar({"Dockerfile": dockerfile.encode(), **files})


async def test_build_makes_tagged_image_and_streams_progress(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """A build streams its output line by line and returns the id of the tagged image."""
    tag = made.image()
    progress: list[str] = []
    dockerfile = f"FROM {BASE_IMAGE}\nADD payload.txt /payload.txt\nRUN echo built-marker\n"
    image_id = await images.build(
        engine,
        context(dockerfile, **{"payload.txt": b"hello\n"}),
        tag,
        labels={TEST_LABEL: "1", "ccdt.tag": tag},
        network_mode="none",
        on_progress=progress.append,
    )
    seen = await docker.images.inspect(tag)
    assert seen["Id"] == image_id
    assert seen["Config"]["Labels"]["ccdt.tag"] == tag
    assert any("built-marker" in line for line in progress)


async def test_tag_names_an_image_again(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """A tag (Podman answers 201 with a body of one newline) names the same image."""
    repository = made.image()
    await images.tag(engine, BASE_IMAGE, repository, "again")
    tagged = await docker.images.inspect(f"{repository}:again")
    assert tagged["Id"] == (await docker.images.inspect(BASE_IMAGE))["Id"]
    await images.remove(engine, f"{repository}:again")


async def test_list_by_two_labels_finds_the_image_carrying_both(engine: Engine, made: Made) -> None:
    """Both labels are matched (Podman 4.3 answers nothing to two label filters itself)."""
    tag = made.image()
    dockerfile = f"FROM {BASE_IMAGE}\nADD payload.txt /payload.txt\n"
    labels = {TEST_LABEL: "1", "ccdt.tag": tag}
    image_id = await images.build(
        engine, context(dockerfile, **{"payload.txt": tag.encode()}), tag, labels=labels
    )
    assert [i["Id"] for i in await images.list_(engine, labels=labels)] == [image_id]
    assert [i["Id"] for i in await images.list_(engine, labels={"ccdt.tag": tag})] == [image_id]
    assert await images.list_(engine, labels={TEST_LABEL: "1", "ccdt.tag": "other"}) == []
    assert await images.list_(engine, labels={"ccdt.tag": tag, "ccdt.none": None}) == []


async def test_build_error_inside_stream_raises_build_failed_with_log(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """A failing RUN step raises BuildFailed carrying the step's output; no image, no container."""
    tag = made.image()
    before = {c["Id"] for c in await docker.containers.list(all=True)}
    dockerfile = f"FROM {BASE_IMAGE}\nRUN echo 'main.go:3: syntax error' && exit 3\n"
    with pytest.raises(BuildFailed) as caught:
        await images.build(engine, context(dockerfile), tag, network_mode="none")
    assert "main.go:3: syntax error" in caught.value.log
    assert tag in caught.value.message
    with pytest.raises(NoSuchImage):
        await images.inspect(engine, tag)
    after = {c["Id"] for c in await docker.containers.list(all=True)}
    assert after <= before


@pytest.mark.parametrize("tag", ["Upper/Case:tag", "a--b_-c", "x/", "name:bad tag", "a" * 256])
async def test_build_with_invalid_tag_raises_invalid_parameter(engine: Engine, tag: str) -> None:
    """A tag that breaks the reference grammar is refused, naming it, before any context is sent."""
    with pytest.raises(InvalidParameter, match="invalid reference format") as caught:
        await images.build(engine, context(f"FROM {BASE_IMAGE}\n"), tag)
    assert repr(tag) in caught.value.message


@pytest.mark.parametrize(
    "tag",
    ["localhost/ccdaemon/busybox:latest", "dev-peer0.org1-mycc-1.0-3f2a", "host:5000/a/b:v1.2"],
)
def test_valid_references_pass_the_check(tag: str) -> None:
    """References Fabric and registries use pass the client's grammar check."""
    images.check_reference(tag)


async def test_inspect_and_remove_of_missing_image_raise_no_such_image(
    engine: Engine, made: Made
) -> None:
    """Inspect and remove of an image that does not exist raise NoSuchImage."""
    missing = made.image()
    with pytest.raises(NoSuchImage):
        await images.inspect(engine, missing)
    with pytest.raises(NoSuchImage):
        await images.remove(engine, missing)


async def test_remove_deletes_image(engine: Engine, docker: aiodocker.Docker, made: Made) -> None:
    """Removing a built image makes it disappear from the engine."""
    tag = made.image()
    await images.build(engine, context(f"FROM {BASE_IMAGE}\nLABEL x=y\n"), tag)
    await images.remove(engine, tag)
    with pytest.raises(aiodocker.DockerError):
        await docker.images.inspect(tag)


async def test_short_fabric_style_name_builds_and_runs(
    engine: Engine, docker: aiodocker.Docker, made: Made, engine_name: str
) -> None:
    """A name without registry or tag, as Fabric names images, builds and creates everywhere.

    Docker stores it as given (tag latest). Podman's compatible API stores it fully
    qualified as docker.io/library/<name>:latest and resolves the short name to that local
    image on inspect and create, so the same name works unchanged on both.
    """
    short = made.image().removeprefix("localhost/")
    made.images.append(short)
    await images.build(engine, context(f"FROM {BASE_IMAGE}\nLABEL fabric=style\n"), short)
    found = await images.inspect(engine, short)
    stored = "docker.io/library/" + short if engine_name.startswith("podman") else short
    assert f"{stored}:latest" in found["RepoTags"]
    name = made.container()
    await containers.create(engine, name, shell("true", Image=short))
    assert (await docker.containers.get(name))["Image"] == found["Id"]


async def test_build_streams_a_chunked_context(engine: Engine, made: Made) -> None:
    """A context given as an async iterable is sent with chunked encoding and builds."""
    data = context(f"FROM {BASE_IMAGE}\nADD big.bin /big.bin\n", **{"big.bin": b"x" * 300_000})

    async def pieces() -> AsyncIterator[bytes]:
        for at in range(0, len(data), 65_536):
            yield data[at : at + 65_536]

    tag = made.image()
    await images.build(engine, pieces(), tag)
    assert (await images.inspect(engine, tag))["Size"] >= 300_000
