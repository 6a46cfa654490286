"""Tar packaging with Fabric's header rules, and PUT/GET archive on every engine."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from typing import TYPE_CHECKING

import pytest

from ccdaemon.engine import ArchiveError, Engine, NoSuchContainer, NotFound, archive, containers
from tests.conftest import Made, files_in, shell, sleeper

if TYPE_CHECKING:
    import aiodocker

TLS_FILES = {
    "/etc/hyperledger/fabric/client.key": b"LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0t\n" * 20,
    "/etc/hyperledger/fabric/client.crt": b"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t\n" * 20,
    "/etc/hyperledger/fabric/peer.crt": b"-----BEGIN CERTIFICATE-----\nMIIB\n" * 20,
}


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def test_tar_headers_follow_fabric() -> None:
    """Members keep absolute names, mode 0100644, zero times and no owner, in the given order."""
    headers = members(archive.tar(TLS_FILES))
    assert [m.name for m in headers] == list(TLS_FILES)
    for member in headers:
        assert member.mode == 0o100644
        assert (member.mtime, member.uid, member.gid) == (0, 0, 0)
        assert member.isreg()


def test_tar_holds_contents_and_is_deterministic() -> None:
    """Each member's bytes come back unchanged, and the same input gives the same archive."""
    data = archive.targz(TLS_FILES)
    assert data == archive.targz(dict(TLS_FILES))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        for path, content in TLS_FILES.items():
            extracted = tar.extractfile(path)
            assert extracted is not None
            assert extracted.read() == content


def test_tar_splits_long_names_into_prefix() -> None:
    """A path longer than 100 bytes is split at a slash into USTAR's prefix and name fields."""
    path = "/chaincode/input/src/" + "a" * 90 + "/" + "b" * 60 + "/main.go"
    assert [m.name for m in members(archive.tar({path: b"package main\n"}))] == [path]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../etc/passwd", "'..'"),
        ("/a/../../b", "'..'"),
        ("", "empty"),
        ("a\0b", "NUL"),
        ("x" * 300, "too long"),
    ],
)
def test_tar_refuses_unsafe_paths(path: str, reason: str) -> None:
    """A path that escapes with '..', is empty, holds NUL or does not fit raises ArchiveError."""
    with pytest.raises(ArchiveError, match=reason):
        archive.tar({path: b""})


@pytest.mark.all_engines
async def test_put_archive_places_files_in_container(engine: Engine, made: Made) -> None:
    """A tar.gz uploaded at / before start is what the container reads at Fabric's paths."""
    name = made.container()
    await containers.create(engine, name, shell("cat /etc/hyperledger/fabric/peer.crt"))
    await containers.put_archive(engine, name, "/", archive.targz(TLS_FILES))
    assert await files_in(engine, name) == TLS_FILES
    await containers.start(engine, name)
    assert await containers.wait(engine, name) == 0
    async with containers.logs(engine, name) as frames:
        output = b"".join([frame.data async for frame in frames])
    assert output == TLS_FILES["/etc/hyperledger/fabric/peer.crt"]


@pytest.mark.all_engines
async def test_an_archive_reads_stat_header_is_given_as_the_engine_sent_it(
    engine: Engine, made: Made
) -> None:
    """The path stat (base64 JSON, case-sensitive) comes through intact: moby's client reads it."""
    name = made.container()
    await containers.create(engine, name, sleeper())
    await containers.put_archive(engine, name, "/", archive.targz(TLS_FILES))
    query = {"path": "/etc/hyperledger/fabric/peer.crt"}
    async with engine.request("GET", f"/containers/{name}/archive", params=query) as resp:
        await resp.read()
        stat = json.loads(base64.b64decode(resp.headers["x-docker-container-path-stat"]))
    assert stat["name"] == "peer.crt"
    assert stat["size"] == len(TLS_FILES["/etc/hyperledger/fabric/peer.crt"])


@pytest.mark.all_engines
async def test_put_archive_to_missing_container_raises_no_such_container(
    engine: Engine, made: Made
) -> None:
    """Uploading into a container that does not exist raises NoSuchContainer."""
    with pytest.raises(NoSuchContainer):
        await containers.put_archive(engine, made.container(), "/", archive.targz(TLS_FILES))


@pytest.mark.all_engines
async def test_archive_of_missing_path_raises_not_found(
    engine: Engine, docker: aiodocker.Docker, made: Made, engine_name: str
) -> None:
    """Upload to and download from a path missing inside the container raise NotFound.

    Podman differs on upload: it creates the missing directory and extracts there.
    """
    name = made.container()
    await containers.create(engine, name, sleeper())
    if engine_name.startswith("podman"):
        await containers.put_archive(engine, name, "/no/such/dir", archive.tar(TLS_FILES))
        assert await containers.get_archive(engine, name, "/no/such/dir/etc/hyperledger")
    else:
        with pytest.raises(NotFound) as uploaded:
            await containers.put_archive(engine, name, "/no/such/dir", archive.tar(TLS_FILES))
        assert not isinstance(uploaded.value, NoSuchContainer)
    with pytest.raises(NotFound) as downloaded:
        await containers.get_archive(engine, name, "/no/such/file")
    assert not isinstance(downloaded.value, NoSuchContainer)
    assert (await docker.containers.get(name))["State"]["Status"] == "created"
