"""Negotiation, endpoints, timeouts and pool health of the transport, against real engines."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from ccdaemon.engine import (
    APIVersion,
    APIVersionError,
    Engine,
    EngineUnavailable,
    InvalidParameter,
    NoSuchContainer,
    TLSFiles,
    archive,
    containers,
    system,
)
from ccdaemon.engine.transport import CLIENT_MAX_API
from tests.conftest import Made, engines, sleeper

if TYPE_CHECKING:
    import aiodocker

HANG_GUARD = 300


@pytest.mark.all_engines
async def test_negotiates_highest_shared_version(engine: Engine, engine_name: str) -> None:
    """The negotiated version is the highest both speak, and the engine's kind is recognised."""
    version = await engine.version()
    assert version.negotiated == min(version.api_version, CLIENT_MAX_API)
    assert version.min_api_version <= version.negotiated
    assert version.kind == engine_name.split("-", 1)[0]
    assert str(version.api_version) == await system.ping(engine)


@pytest.mark.engines("docker-20.10")
async def test_below_1_24_host_config_goes_in_start_body(
    engine_socket: str, docker: aiodocker.Docker, made: Made
) -> None:
    """Pinned to API 1.23, start sends HostConfig in its body, and the engine applies it."""
    async with Engine(f"unix://{engine_socket}", api_version="1.23") as old:
        assert (await old.version()).negotiated == APIVersion(1, 23)
        name = made.container()
        body = sleeper()
        del body["HostConfig"]
        await containers.create(old, name, body)
        await containers.start(
            old, name, host_config={"NetworkMode": "none", "Dns": ["192.0.2.53"]}
        )
    seen = await docker.containers.get(name)
    assert seen["HostConfig"]["Dns"] == ["192.0.2.53"]
    assert seen["State"]["Running"]


@pytest.mark.engines("docker-26.1", "docker-28.5")
async def test_pinned_version_below_engine_minimum_is_refused_naming_both_ranges(
    engine: Engine, engine_socket: str
) -> None:
    """Pinning 1.23 against an engine whose minimum is 1.24 fails naming both ranges.

    The engine itself refuses that version too, which the raw call shows.
    """
    async with Engine(f"unix://{engine_socket}", api_version="1.23") as old:
        with pytest.raises(APIVersionError) as caught:
            await containers.list_(old)
    assert "1.23" in str(caught.value)
    assert "1.24 to" in str(caught.value)
    assert f"1.12 to {CLIENT_MAX_API}" in str(caught.value)
    with pytest.raises(InvalidParameter, match=r"1\.23 is too old"):
        async with engine.request("GET", "/v1.23/version", versioned=False):
            pass


async def test_missing_socket_raises_engine_unavailable_naming_it(tmp_path: Path) -> None:
    """An endpoint whose socket does not exist raises EngineUnavailable naming the endpoint."""
    endpoint = f"unix://{tmp_path}/no-such.sock"
    async with Engine(endpoint) as nowhere:
        with pytest.raises(EngineUnavailable, match=r"no-such\.sock"):
            await system.ping(nowhere)


def test_endpoint_with_unknown_scheme_is_refused() -> None:
    """An endpoint that is not unix, tcp or https is refused before any connection."""
    with pytest.raises(ValueError, match="ftp://"):
        Engine("ftp://example.invalid:21")


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


async def test_cancelled_calls_leave_the_pool_healthy(engine: Engine, made: Made) -> None:
    """Cancelling waits and control calls midway leaks no connection, and later calls work."""
    name = made.container()
    await containers.create(engine, name, sleeper())
    await containers.start(engine, name)
    await containers.inspect(engine, name)  # warm the pool
    before = open_fds()
    for round_ in range(30):
        with anyio.move_on_after(0.05 if round_ % 2 else 0):
            await containers.wait(engine, name)  # blocks: the container sleeps
        with anyio.move_on_after(0):
            await containers.inspect(engine, name)
    assert (await containers.inspect(engine, name))["State"]["Running"]
    assert open_fds() <= before + 2


async def test_open_streams_do_not_starve_control_calls(engine: Engine, made: Made) -> None:
    """With 100 followed log streams open, 20 launch sequences still complete."""
    chatty = made.container("logs")
    await containers.create(engine, chatty, sleeper())
    await containers.start(engine, chatty)
    tls = archive.targz({"/etc/hyperledger/fabric/peer.crt": b"x" * 1024})

    async def follow(ready: anyio.Event) -> None:
        async with containers.logs(engine, chatty, follow=True, tty=False) as frames:
            ready.set()
            async for _ in frames:
                pass

    async def launch(name: str) -> None:
        # Fabric ignores every error of these three; here the container never exists yet.
        for call in (
            containers.stop(engine, name, grace=0),
            containers.kill(engine, name),
            containers.remove(engine, name, force=True),
        ):
            with pytest.raises(NoSuchContainer):
                await call
        await containers.create(engine, name, sleeper())
        await containers.put_archive(engine, name, "/", tls)
        await containers.start(engine, name)

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as streams_group:
            for _ in range(100):
                ready = anyio.Event()
                streams_group.start_soon(follow, ready)
                await ready.wait()
            async with anyio.create_task_group() as launches:
                for i in range(20):
                    launches.start_soon(launch, made.container(f"l{i}"))
            streams_group.cancel_scope.cancel()
    running = await containers.list_(engine, labels={"ccdaemon.test": "1"}, all_=False)
    names = {n.lstrip("/") for c in running for n in c["Names"]}
    assert {f"{made.prefix}-l{i}-{i + 1}" for i in range(20)} <= names


def tls_endpoint(engine_socket: str) -> tuple[str, TLSFiles]:
    """Docker 20.10's mutual-TLS TCP endpoint, as scripts/engines sets it up."""
    tls = Path(engine_socket).parent / "tls"
    port = os.environ.get("CCDAEMON_TLS_PORT", "23760")
    return f"tcp://127.0.0.1:{port}", TLSFiles(tls / "ca.pem", tls / "cert.pem", tls / "key.pem")


@pytest.mark.engines("docker-20.10")
async def test_tcp_endpoint_with_client_certificate_launches(
    engine_socket: str, docker: aiodocker.Docker, made: Made
) -> None:
    """tcp:// with vm.docker.tls-style files speaks mutual TLS and runs the launch calls."""
    endpoint, files = tls_endpoint(engine_socket)
    async with Engine(endpoint, tls=files) as remote:
        assert (await remote.version()).kind == "docker"
        name = made.container()
        await containers.create(remote, name, sleeper())
        await containers.put_archive(remote, name, "/", archive.targz({"/etc/f": b"x"}))
        await containers.start(remote, name)
    assert (await docker.containers.get(name))["State"]["Running"]


@pytest.mark.engines("docker-20.10")
async def test_tls_endpoint_refuses_client_without_certificate(engine_socket: str) -> None:
    """An engine run with --tlsverify refuses a client that trusts it but has no certificate."""
    endpoint, files = tls_endpoint(engine_socket)
    async with Engine(endpoint, tls=TLSFiles(ca=files.ca)) as anonymous:
        with pytest.raises(EngineUnavailable, match=r"127\.0\.0\.1"):
            await system.ping(anonymous)


@pytest.mark.engines("docker-20.10")
async def test_tls_endpoint_with_unknown_ca_is_refused(engine_socket: str) -> None:
    """A client that does not trust the engine's CA refuses the engine, naming the failure."""
    endpoint, files = tls_endpoint(engine_socket)
    async with Engine(endpoint, tls=TLSFiles(cert=files.cert, key=files.key)) as wary:
        with pytest.raises(EngineUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await system.ping(wary)


@pytest.mark.engines("docker-26.1")
async def test_engine_restart_under_a_client_needs_no_new_client(
    engine: Engine, engine_name: str, made: Made
) -> None:
    """After the engine restarts, the same client's next calls work.

    Kept-alive connections the restart killed are dropped, and the API version is
    negotiated again.
    """
    for _ in range(3):
        await containers.list_(engine)  # leave kept-alive connections in the pool
    with anyio.fail_after(HANG_GUARD):
        await engines("restart", engine_name)
    assert await containers.list_(engine) is not None
    name = made.container()
    await containers.create(engine, name, sleeper())
    await containers.start(engine, name)
    assert (await containers.inspect(engine, name))["State"]["Running"]
