"""The Docker-API front on TCP with mutual TLS, for a peer's ``vm.endpoint: tcp://``.

First a daemon in this process whose front serves both its Unix socket and
``[docker_api] tcp`` on a free 127.0.0.1 port, with certificates made here
(tests/tlscerts.py): a client certificate from ``tcp_ca`` is served; no certificate,
another CA's, plain HTTP and a handshake that never ends are dropped, each logged in a
line below ERROR, and the listener serves on; the front's policy is the same over TCP
as over the socket. Then a real Fabric 2.5.10 peer whose core.yaml sets
``vm.docker.tls`` and whose ``vm.endpoint`` is the front on TCP alone (a daemon
process, configured by TOML) deploys, invokes and queries ``kv``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import socket
import time
from typing import TYPE_CHECKING

import anyio
import orjson
import pytest
import pytest_asyncio
from anyio.streams.tls import TLSStream

from ccdaemon.config import DockerAPIConfig
from ccdaemon.daemon import serve
from ccdaemon.daemon.sockets import StartError
from ccdaemon.engine import containers
from ccdaemon.runtime.hostconfig import CCID_LABEL, INSTANCE_LABEL, MANAGED_LABEL
from tests.conftest import DEFAULT_ENGINE
from tests.daemon.conftest import make_config
from tests.fabric.conftest import (
    KV_NAME,
    Daemon,
    deploy_kv,
    ensure_images,
    instance_objects,
    remove_engine_instance,
    short_directory,
)
from tests.fabricnet import Network, container_name
from tests.fabricnet.configs import PEER_ID
from tests.fabricnet.procs import wait_for
from tests.front.conftest import tag_standins
from tests.front.tcpbed import (
    HANDSHAKE,
    PING,
    REFUSED_WITHIN,
    TCPBed,
    engine_leftovers,
    kv_container,
    logged,
    no_errors,
    tcp_daemon,
    tcp_front_toml,
)
from tests.hostile.conftest import private_dir
from tests.hostile.frontbed import now, parse, request
from tests.tlscerts import free_port, mutual_tls

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

on_module_loop = pytest.mark.asyncio(loop_scope="module")
FABRIC = "2.5.10"


@pytest.fixture(autouse=True)
def _default_engine(engine_name: str) -> str:
    # The root conftest starts the engines the collected tests name; module fixtures
    # cannot take a function's parameter.
    return engine_name


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tcp(engine_sockets: dict[str, str]) -> AsyncIterator[TCPBed]:
    """The module's daemon: its front on its socket and on TCP with mutual TLS."""
    async with tcp_daemon(engine_sockets[DEFAULT_ENGINE]) as bed:
        yield bed


# --- served and refused -------------------------------------------------------------------


@on_module_loop
async def test_a_client_with_a_certificate_from_tcp_ca_gets_ping(tcp: TCPBed) -> None:
    assert await tcp.call(PING) == (200, "OK")
    answer = await tcp.call(request("GET", "/v1.41/version"))
    assert not isinstance(answer, str), answer
    assert answer[0] == 200, answer
    assert answer[1]["MinAPIVersion"] == "1.12"  # the front's answer, not the engine's


@on_module_loop
@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no client certificate", "PEER_DID_NOT_RETURN_A_CERTIFICATE"),
        ("a certificate from another CA", "CERTIFICATE_VERIFY_FAILED"),
    ],
)
async def test_a_client_without_a_good_certificate_is_refused_in_the_handshake(
    tcp: TCPBed, caplog: pytest.LogCaptureFixture, case: str, reason: str
) -> None:
    caplog.set_level(logging.DEBUG)
    chain = None if case == "no client certificate" else tcp.tls.stranger
    told = await tcp.refusal(chain)
    # anyio closes a failed handshake's connection without sending OpenSSL's alert.
    assert told == "closed" or told.startswith("alert "), told
    record = await logged(caplog, "TLS handshake with 127.0.0.1:")
    assert record.levelno == logging.INFO, record
    assert f"refused: {reason}" in record.getMessage(), record.getMessage()
    no_errors(caplog)
    await tcp.serves()


@on_module_loop
async def test_plain_http_on_the_tls_port_gets_no_http_answer(
    tcp: TCPBed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await tcp.raw(PING)
    assert not answer.startswith(b"HTTP"), answer  # nothing, or a TLS alert record
    record = await logged(caplog, "TLS handshake with 127.0.0.1:")
    assert "HTTP_REQUEST" in record.getMessage(), record.getMessage()
    no_errors(caplog)
    await tcp.serves()


@on_module_loop
async def test_a_handshake_that_never_ends_is_dropped_while_others_are_served(
    tcp: TCPBed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with anyio.fail_after(REFUSED_WITHIN):
        slow = [await anyio.connect_tcp("127.0.0.1", tcp.port) for _ in range(4)]
    try:
        began = time.monotonic()
        await tcp.serves()  # served while four handshakes hang
        with anyio.fail_after(HANDSHAKE + 8):
            for stream in slow:
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, OSError)):
                    await stream.receive()  # closed, unanswered
        assert time.monotonic() - began >= HANDSHAKE - 0.5
    finally:
        for stream in slow:
            await stream.aclose()
    record = await logged(caplog, "dropped")
    assert record.levelno == logging.DEBUG, record
    no_errors(caplog)
    await tcp.serves()


@on_module_loop
async def test_after_its_answer_the_front_closes_without_waiting_for_the_clients_close(
    tcp: TCPBed,
) -> None:
    """A client that reads its answer and then neither closes nor sends close_notify.

    The front closes the TCP connection at once: waiting for the client's close_notify
    would hold the connection for as long as the client likes.
    """
    received = bytearray()
    with anyio.fail_after(REFUSED_WITHIN):
        raw = await anyio.connect_tcp("127.0.0.1", tcp.port)
    async with raw:
        with anyio.fail_after(REFUSED_WITHIN):
            stream = await TLSStream.wrap(
                raw,
                hostname="127.0.0.1",
                ssl_context=tcp.tls.client_context(tcp.tls.client),
                standard_compatible=False,
            )
            await stream.send(PING)  # Connection: close
            while not received.endswith(b"\r\n\r\nOK"):
                received += await stream.receive()
            # Below TLS, on the socket itself: whatever records follow, then the end.
            with pytest.raises(anyio.EndOfStream):  # noqa: PT012 -- read to the end
                while True:
                    await raw.receive()
    assert parse(bytes(received)) == (200, "OK")
    await tcp.serves()


# --- the front's policy, over TCP ---------------------------------------------------------


@on_module_loop
async def test_over_tcp_a_container_not_named_as_a_chaincode_is_refused_as_on_the_socket(
    tcp: TCPBed,
) -> None:
    since = now()
    data = request("POST", "/containers/create?name=evil", orjson.dumps(tcp.bed.chaincode()))
    over_tcp = await tcp.call(data)
    over_socket = await tcp.bed.call("POST", "/containers/create?name=evil", tcp.bed.chaincode())
    assert over_tcp == over_socket
    await tcp.bed.refused(
        "docker front tcp", "a foreign name", over_tcp, since, 403, "is not this peer's name"
    )
    await tcp.serves()


@on_module_loop
async def test_over_tcp_a_chaincode_create_is_made_and_labelled(tcp: TCPBed) -> None:
    """The control for the refusal above: over TLS the front makes what Fabric asks.

    After the refusal, since its check counts every event naming the peer since then.
    """
    name = tcp.bed.names()[0]
    body = tcp.bed.chaincode()
    answer = await tcp.call(request("POST", f"/containers/create?name={name}", orjson.dumps(body)))
    assert answer[0] == 201, answer
    inspected = await containers.inspect(tcp.bed.hostile.engine, name)
    labels = inspected["Config"]["Labels"]
    assert labels[CCID_LABEL] == body["Env"][0].partition("=")[2]
    assert labels[INSTANCE_LABEL] == tcp.bed.hostile.daemon.config.instance
    assert "no-new-privileges" in inspected["HostConfig"]["SecurityOpt"]
    assert await tcp.call(request("DELETE", f"/containers/{name}?force=1")) == (204, "")


# --- a front that cannot bind fails the start, naming why ---------------------------------


@pytest.mark.parametrize("case", ["port in use", "no key file"])
async def test_a_front_on_tcp_that_cannot_serve_stops_the_start(
    engine_socket: str, case: str
) -> None:
    with private_dir() as directory, socket.socket() as taken:
        tls = mutual_tls(directory)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1] if case == "port in use" else free_port()
        front = DockerAPIConfig(
            socket=directory / "docker.sock",
            tcp=f"127.0.0.1:{port}",
            tcp_ca=tls.ca,
            tcp_cert=tls.server[0],
            tcp_key=directory / "absent.key" if case == "no key file" else tls.server[1],
        )
        config = make_config(engine_socket, directory, docker_api=front)
        with (
            anyio.fail_after(60),
            pytest.RaisesGroup(StartError, flatten_subgroups=True) as caught,
        ):
            await serve.run(config, stop=anyio.Event())
        words = "cannot serve the Docker-API front on" if case == "port in use" else "cannot load"
        assert words in str(caught.value.exceptions[0]), caught.value
        assert not (directory / "docker.sock").exists()  # the socket bound first is removed


# --- a real Fabric 2.5.10 peer, vm.docker.tls on ------------------------------------------


def test_a_fabric_peer_with_vm_docker_tls_runs_kv_through_the_front_on_tcp(
    engine_sockets: dict[str, str],
) -> None:
    """The peer's DockerVM (builder container, attach, build, create, upload, start) over TLS."""
    engine_socket = engine_sockets[DEFAULT_ENGINE]
    ensure_images(engine_socket)
    directory = short_directory("ccft-")
    tls = mutual_tls(directory)  # server: the front's; client: the peer's vm.docker.tls
    address = f"127.0.0.1:{free_port()}"
    daemon = Daemon(directory, f"ftcp-{secrets.token_hex(3)}", directory / "ccdaemon.toml")
    net = Network.create(
        None,
        engine=f"tcp://{address}",
        version=FABRIC,
        core_overrides={
            "chaincode.startuptimeout": "120s",
            "vm.docker.tls.enabled": True,
            "vm.docker.tls.ca.file": str(tls.ca),
            "vm.docker.tls.cert.file": str(tls.client[0]),
            "vm.docker.tls.key.file": str(tls.client[1]),
        },
    )
    daemon.config.write_text(tcp_front_toml(daemon, engine_socket, net.core_yaml, address, tls))
    standins = net.standin_images()
    network_id, instance = net.network_id, daemon.instance
    asyncio.run(tag_standins(engine_socket, standins, add=True))
    try:
        daemon.start()
        wait_for(
            lambda: "Docker-API front on https://" in daemon.text(), within=30, what="the front"
        )
        net.up()
        kv = deploy_kv(net)
        net.admin.invoke(KV_NAME, "put", "colour", "green")
        assert net.admin.query(KV_NAME, "get", "colour") == "green"

        name = container_name(network_id, PEER_ID, kv.package_id)
        record = daemon.ps()[kv.package_id]
        assert (record["state"], record["container"]) == ("running", name)
        labels, security = asyncio.run(kv_container(engine_socket, name))
        assert labels[MANAGED_LABEL] == "true"
        assert labels[INSTANCE_LABEL] == instance
        assert labels[CCID_LABEL] == kv.package_id
        assert "no-new-privileges" in security

        log = daemon.text()
        assert (
            f"Docker-API front on https://{address} (client certificates required): point "
            f"the peer's vm.endpoint at tcp://{address} with vm.docker.tls.enabled"
        ) in log
        assert "peer builds image" in log  # the install's build, through the front
        assert f"peer created chaincode container {name}" in log
        assert "Traceback" not in log
        assert " ERROR " not in log
    except BaseException:
        for program, text in (("peer", net.peer.tail(80)), ("daemon", daemon.tail(80))):
            print(f"\n--- {program} log (last lines)\n{text}")  # noqa: T201
        raise
    finally:
        net.down()
        daemon.stop()
        asyncio.run(remove_engine_instance(engine_socket, instance))
        asyncio.run(tag_standins(engine_socket, standins, add=False))
        net.remove()
        shutil.rmtree(directory, ignore_errors=True)
    # Whatever the peer made through the front carried the daemon's labels: removing the
    # instance's objects left nothing that names the peer's network, nor the stand-in tags.
    assert asyncio.run(instance_objects(engine_socket, instance)) == ({}, [])
    assert asyncio.run(engine_leftovers(engine_socket, network_id, set(standins))) == []
