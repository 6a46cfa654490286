"""Hostile requests on the Docker-API front: refused before the engine sees them.

Each case is refused with the status it should have and a Docker-style ``message``
naming the rule; the engine shows nothing of the daemon since the request (no event
naming its peer, no container or image with its labels); the front and the control
API answer after. The controls at the top are the same requests made right: they are
let through and do make what they ask, so the "nothing made" check can fail.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import anyio
import orjson
import pytest
import pytest_asyncio

from ccdaemon.engine import Engine, NoSuchContainer, containers
from ccdaemon.runtime.hostconfig import CCID_LABEL, INSTANCE_LABEL
from tests.conftest import DEFAULT_ENGINE
from tests.hostile.frontbed import BUILDER, CCID, FOREIGN_IMAGE, FrontBed, front_daemon, now

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

pytestmark = pytest.mark.asyncio(loop_scope="module")

MiB = 1024 * 1024


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def front(engine_sockets: dict[str, str]) -> AsyncIterator[FrontBed]:
    """One daemon with the front for the module."""
    engine_socket = engine_sockets[DEFAULT_ENGINE]
    async with (
        Engine(f"unix://{engine_socket}") as engine,
        front_daemon(engine, engine_socket) as bed,
    ):
        yield bed


# --- controls: right requests are let through, and make what they ask -------------------


async def test_a_chaincode_create_as_fabric_sends_it_is_made_and_labelled(front: FrontBed) -> None:
    since = now()
    name = front.names()[0]
    answer = await front.call("POST", f"/containers/create?name={name}", front.chaincode())
    assert answer[0] == 201, answer
    made = await front.hostile.made(since)
    assert any(m.startswith("container ") for m in made), made
    inspected = await containers.inspect(front.hostile.engine, name)
    labels = inspected["Config"]["Labels"]
    assert labels[CCID_LABEL] == CCID
    assert labels[INSTANCE_LABEL] == front.hostile.daemon.config.instance
    assert "no-new-privileges" in inspected["HostConfig"]["SecurityOpt"]
    assert await front.call("DELETE", f"/containers/{name}?force=1") == (204, "")
    with pytest.raises(NoSuchContainer):
        await containers.inspect(front.hostile.engine, name)


async def test_a_builder_create_as_fabric_sends_it_is_made(front: FrontBed) -> None:
    body = {"Image": BUILDER, "Cmd": ["/bin/sh", "-c", "true"], "HostConfig": {}}
    answer = await front.call("POST", "/containers/create", body)
    assert answer[0] == 201, answer
    assert isinstance(answer[1], dict)
    made = str(answer[1]["Id"])
    assert await front.call("DELETE", f"/containers/{made}?force=1") == (204, "")


async def test_a_chaincode_create_as_moby_sends_it_nulls_included_is_made(
    front: FrontBed,
) -> None:
    """Fabric 3.x's client sends every HostConfig slice it never set as null: unset."""
    name = front.names()[0]
    body = front.chaincode()
    body["HostConfig"] |= {"CapDrop": None, "CapAdd": None, "Dns": None, "Binds": None}
    answer = await front.call("POST", f"/containers/create?name={name}", body)
    assert answer[0] == 201, answer
    inspected = await containers.inspect(front.hostile.engine, name)
    assert not inspected["HostConfig"]["CapDrop"]
    assert not inspected["HostConfig"]["Binds"]
    assert await front.call("DELETE", f"/containers/{name}?force=1") == (204, "")


# --- create bodies ------------------------------------------------------------------------


def host(**fields: Any) -> Callable[[FrontBed], dict[str, Any]]:
    """A chaincode's create body whose HostConfig also has ``fields``."""

    def body(front: FrontBed) -> dict[str, Any]:
        made = front.chaincode()
        return {**made, "HostConfig": {**made["HostConfig"], **fields}}

    return body


def top(**fields: Any) -> Callable[[FrontBed], dict[str, Any]]:
    """A chaincode's create body with ``fields`` set at its top level."""
    return lambda front: front.chaincode(**fields)


BODIES: list[tuple[str, Callable[[FrontBed], dict[str, Any]], int, str]] = [
    ("privileged", host(Privileged=True), 403, "HostConfig.Privileged"),
    ("bind mount of /", host(Binds=["/:/host"]), 403, "HostConfig.Binds"),
    ("mount of /", host(Mounts=[{"Type": "bind", "Source": "/", "Target": "/h"}]), 403, "Mounts"),
    ("a host device", host(Devices=[{"PathOnHost": "/dev/sda"}]), 403, "HostConfig.Devices"),
    ("added capability", host(CapAdd=["SYS_ADMIN"]), 403, "HostConfig.CapAdd"),
    ("host pid namespace", host(PidMode="host"), 403, "HostConfig.PidMode"),
    ("host ipc namespace", host(IpcMode="host"), 403, "HostConfig.IpcMode"),
    ("host user namespace", host(UsernsMode="host"), 403, "HostConfig.UsernsMode"),
    ("host uts namespace", host(UTSMode="host"), 403, "HostConfig.UTSMode"),
    ("host network", host(NetworkMode="host"), 403, "NetworkMode 'host'"),
    ("another container's network", host(NetworkMode="container:x"), 403, "NetworkMode"),
    ("published port", host(PortBindings={"80/tcp": [{"HostPort": "80"}]}), 403, "PortBindings"),
    ("restart policy", host(RestartPolicy={"Name": "always"}), 403, "HostConfig.RestartPolicy"),
    ("cgroup parent", host(CgroupParent="/"), 403, "HostConfig.CgroupParent"),
    ("sysctls", host(Sysctls={"kernel.shmmax": "1"}), 403, "HostConfig.Sysctls"),
    ("seccomp unconfined", host(SecurityOpt=["seccomp=unconfined"]), 403, "SecurityOpt"),
    ("apparmor unconfined", host(SecurityOpt=["apparmor=unconfined"]), 403, "SecurityOpt"),
    ("memory above the policy", host(Memory=512 * MiB), 403, "above the policy's"),
    ("unlimited swap", host(MemorySwap=-1), 403, "MemorySwap -1"),
    ("memory not a number", host(Memory="lots"), 400, "HostConfig.Memory must be"),
    ("HostConfig not an object", top(HostConfig=[1]), 400, "HostConfig must be"),
    ("a volume", top(Volumes={"/data": {}}), 403, "create field Volumes"),
    ("an entrypoint", top(Entrypoint=["/bin/sh"]), 403, "create field Entrypoint"),
    ("a user", top(User="0"), 403, "create field User"),
    ("labels of its own", top(Labels={"ccdaemon.managed": "x"}), 403, "create field Labels"),
    ("a tty with stdin", top(Tty=True, OpenStdin=True), 403, "create field"),
    ("a network endpoint", top(NetworkingConfig={"EndpointsConfig": {"b": {}}}), 403, "Networking"),
    ("Env not strings", top(Env=[1]), 400, "create field Env must be"),
    ("an image not the chaincode's", top(Image=FOREIGN_IMAGE), 403, "is not chaincode"),
    ("two chaincode ids", top(Env=[f"CORE_CHAINCODE_ID_NAME={CCID}"] * 2), 403, "once"),
    ("no chaincode id", top(Env=["A=b"]), 403, "CORE_CHAINCODE_ID_NAME once"),
    ("an id outside Fabric's", top(Env=["CORE_CHAINCODE_ID_NAME=../x:1"]), 403, "ID_NAME"),
    ("no image", lambda _: {"Cmd": ["x"]}, 400, "names no Image"),
]


@pytest.mark.parametrize(("case", "body", "status", "words"), BODIES, ids=[c[0] for c in BODIES])
async def test_a_create_asking_for_more_than_fabric_does_is_refused(
    front: FrontBed,
    case: str,
    body: Callable[[FrontBed], dict[str, Any]],
    status: int,
    words: str,
) -> None:
    since = now()
    answer = await front.call("POST", f"/containers/create?name={front.names()[0]}", body(front))
    await front.refused("docker front create", case, answer, since, status, words)


def _other_peer(front: FrontBed) -> str:
    return front.names()[0].replace(front.hostile.daemon.config.runtime.peer_id, "pother")


NAMED: list[tuple[str, Callable[[FrontBed], str | None], Callable[[FrontBed], Any], str]] = [
    ("a foreign name", lambda _: "evil", FrontBed.chaincode, "is not this peer's name"),
    ("another peer's name", _other_peer, FrontBed.chaincode, "is not this peer's name"),
    (
        "an unnamed chaincode",
        lambda _: None,
        FrontBed.chaincode,
        "an unnamed container must be a builder",
    ),
    (
        "an unnamed foreign image",
        lambda _: None,
        lambda _: {"Image": FOREIGN_IMAGE, "Cmd": ["/bin/sh", "-c", "x"]},
        "is not a builder image",
    ),
    (
        "a builder running bash",
        lambda _: None,
        lambda _: {"Image": BUILDER, "Cmd": ["/bin/bash", "-c", "x"]},
        "runs /bin/sh -c SCRIPT",
    ),
    (
        "a builder running a program",
        lambda _: None,
        lambda _: {"Image": BUILDER, "Cmd": ["/bin/sh", "-c", "x", "y"]},
        "runs /bin/sh -c SCRIPT",
    ),
    (
        # Fabric 3.1.5's script for a go.mod newer than the builder's Go (platform.go's
        # shape). Not driven through a real peer: were the guard broken, that test would
        # download from go.dev.
        "a builder that downloads Go",
        lambda _: None,
        lambda _: {
            "Image": BUILDER,
            "Cmd": [
                "/bin/sh",
                "-c",
                (
                    "\nset -e\n\ncurl -sLO https://go.dev/dl/go1.99.0.linux-amd64.tar.gz\n"
                    "rm -rf /usr/local/go\n"
                    'tar -C /usr/local -xzfv "go1.99.0.linux-amd64.tar.gz"\ngo version\n'
                    "cd /chaincode/input/src\nGO111MODULE=on go build -v -mod=readonly\n"
                ),
            ],
        },
        "go.mod asks Go 1.99.0, newer than builder image",
    ),
    (
        "a privileged builder",
        lambda _: None,
        lambda _: {
            "Image": BUILDER,
            "Cmd": ["/bin/sh", "-c", "x"],
            "HostConfig": {"Privileged": 1},
        },
        "HostConfig.Privileged",
    ),
]


@pytest.mark.parametrize(("case", "name", "body", "words"), NAMED, ids=[c[0] for c in NAMED])
async def test_a_container_that_is_not_this_peers_chaincode_or_builder_is_refused(
    front: FrontBed,
    case: str,
    name: Callable[[FrontBed], str | None],
    body: Callable[[FrontBed], Any],
    words: str,
) -> None:
    since = now()
    given = name(front)
    target = f"/containers/create?name={given}" if given else "/containers/create"
    answer = await front.call("POST", target, body(front))
    await front.refused("docker front create", case, answer, since, 403, words)


RAW_BODIES = [
    ("not JSON", b"{nope", 400, "not JSON"),
    ("a JSON array", b"[]", 400, "must be a JSON object"),
    ("over 1 MiB", orjson.dumps({"Image": "x", "Env": ["A=" + "a" * 2 * MiB]}), 413, "larger"),
]


@pytest.mark.parametrize(
    ("case", "data", "status", "words"), RAW_BODIES, ids=[c[0] for c in RAW_BODIES]
)
async def test_a_create_body_that_is_not_a_create_is_refused(
    front: FrontBed, case: str, data: bytes, status: int, words: str
) -> None:
    since = now()
    answer = await front.call("POST", f"/containers/create?name={front.names()[0]}", data)
    await front.refused("docker front create", case, answer, since, status, words)


# --- routes and paths ---------------------------------------------------------------------

ROUTES = [
    ("exec", "POST", "/containers/{name}/exec", "is not a call of Fabric's"),
    ("exec, versioned", "POST", "/v1.41/containers/{name}/exec", "is not a call of Fabric's"),
    ("list containers", "GET", "/containers/json?all=1", "is not a call of Fabric's"),
    ("update limits", "POST", "/containers/{name}/update", "is not a call of Fabric's"),
    ("export", "GET", "/containers/{name}/export", "is not a call of Fabric's"),
    ("commit", "POST", "/commit?container={name}", "is not a call of Fabric's"),
    ("create a volume", "POST", "/volumes/create", "is not a call of Fabric's"),
    ("create a network", "POST", "/networks/create", "is not a call of Fabric's"),
    ("join a swarm", "POST", "/swarm/init", "is not a call of Fabric's"),
    ("plugins", "GET", "/plugins", "is not a call of Fabric's"),
    ("pull an image", "POST", "/images/create?fromImage=alpine", "is not a call of Fabric's"),
    ("push an image", "POST", "/images/{image}/push", "is not a call of Fabric's"),
    ("remove an image", "DELETE", "/images/{image}", "is not a call of Fabric's"),
    ("the engine's info", "GET", "/info", "is not a call of Fabric's"),
    ("events", "GET", "/events", "is not a call of Fabric's"),
    ("a create with a query of its own", "POST", "/containers/create?name={name}&x=1", "x is not"),
    ("attach with stdin", "POST", "/containers/{name}/attach?stdin=1", "stdin='1'"),
    ("kill with a shell word", "POST", "/containers/{name}/kill?signal=$(id)", "signal="),
]


@pytest.mark.parametrize(("case", "method", "target", "words"), ROUTES, ids=[c[0] for c in ROUTES])
async def test_a_call_fabric_does_not_make_is_refused(
    front: FrontBed, case: str, method: str, target: str, words: str
) -> None:
    since = now()
    name, image = front.names()
    answer = await front.call(method, target.format(name=name, image=image), b"{}")
    status = 400 if "=" in words else 403
    await front.refused("docker front route", case, answer, since, status, words)


PATHS = [
    ("dot-dot after the version", "/v1.41/../containers/create"),
    ("dot-dot, percent-encoded", "/containers/%2e%2e/create"),
    ("dot-dot in an upper case escape", "/v1.41/%2E%2E/containers/create"),
    ("an encoded slash", "/containers%2Fcreate"),
    ("a double escape", "/containers/%252e%252e/exec"),
    ("an empty segment", "/containers//create"),
    ("a NUL", "/containers/create%00"),
    ("an escape of no UTF-8", "/containers/%ff/start"),
    ("a single dot", "/./containers/create"),
    ("a relative target", "containers/create"),
    ("an absolute URL", "http://docker/containers/create"),
    ("a backslash", "/containers\\create"),
]


@pytest.mark.parametrize(("case", "target"), PATHS, ids=[c[0] for c in PATHS])
async def test_a_path_trick_is_refused_as_malformed(
    front: FrontBed, case: str, target: str
) -> None:
    since = now()
    answer = await front.call("POST", target, front.chaincode())
    await front.refused("docker front path", case, answer, since, 400, "path")


async def test_a_query_parameter_given_twice_is_refused(front: FrontBed) -> None:
    since = now()
    name = front.names()[0]
    target = f"/containers/create?name={name}&name=evil"
    answer = await front.call("POST", target, front.chaincode())
    await front.refused("docker front path", "name twice", answer, since, 400, "given twice")


# --- containers and images that are not the peer's ------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def foreign(front: FrontBed) -> AsyncIterator[str]:
    """A container made on the engine by someone else, under this peer's naming scheme."""
    name = front.names("other_1.0:" + secrets.token_hex(32))[0]
    engine = front.hostile.engine
    await containers.create(engine, name, {"Image": FOREIGN_IMAGE, "Cmd": ["sleep", "600"]})
    await anyio.sleep(0.2)  # its create event must fall before the test's ``since``
    yield name
    await containers.remove(engine, name, force=True)


FOREIGN = [
    ("start", "POST", "start"),
    ("stop", "POST", "stop?t=0"),
    ("kill", "POST", "kill"),
    ("remove", "DELETE", "?force=1"),
    ("upload", "PUT", "archive?path=/"),
    ("download", "GET", "archive?path=/etc"),
    ("attach", "POST", "attach?stream=1&stdout=1"),
    ("inspect", "GET", "json"),
    ("wait", "POST", "wait"),
]


@pytest.mark.parametrize(("case", "method", "action"), FOREIGN, ids=[c[0] for c in FOREIGN])
async def test_a_container_ccdaemon_did_not_make_is_not_touched(
    front: FrontBed, foreign: str, case: str, method: str, action: str
) -> None:
    since = now()
    target = f"/containers/{foreign}" + (action if action.startswith("?") else f"/{action}")
    body = bytes(1024) if method == "PUT" else b""
    answer = await front.call(method, target, body)
    await front.refused("docker front foreign", case, answer, since, 403, "is not one of this peer")
    state = (await containers.inspect(front.hostile.engine, foreign))["State"]
    assert state["Status"] == "created"


@pytest.mark.parametrize(("case", "method", "action"), FOREIGN, ids=[c[0] for c in FOREIGN])
async def test_a_container_replaced_behind_the_fronts_back_is_not_touched(
    front: FrontBed, case: str, method: str, action: str
) -> None:
    """The front made it, so it knows its id; replaced under the same name, it is refused.

    The front names a container it knows by its id: the engine answers that one is gone,
    and the name is checked again, so the stranger now under it is never touched.
    """
    name = front.names()[0]
    engine = front.hostile.engine
    made = await front.call("POST", f"/containers/create?name={name}", front.chaincode())
    assert made[0] == 201, made
    await containers.remove(engine, name, force=True)
    await containers.create(engine, name, {"Image": FOREIGN_IMAGE, "Cmd": ["sleep", "600"]})
    try:
        await anyio.sleep(0.2)  # its create event must fall before ``since``
        since = now()
        target = f"/containers/{name}" + (action if action.startswith("?") else f"/{action}")
        answer = await front.call(method, target, bytes(1024) if method == "PUT" else b"")
        await front.refused("docker front swapped", case, answer, since, 403, "is not one of")
        assert (await containers.inspect(engine, name))["State"]["Status"] == "created"
    finally:
        await containers.remove(engine, name, force=True)


async def test_only_the_peers_images_are_inspected(front: FrontBed) -> None:
    answer = await front.call("GET", f"/images/{BUILDER}/json")
    assert not isinstance(answer, str)
    status, body = answer
    assert status == 200
    assert isinstance(body, dict)
    assert BUILDER in body["RepoTags"]
    since = now()
    answer = await front.call("GET", f"/images/{FOREIGN_IMAGE}/json")
    await front.refused("docker front image", "a foreign image", answer, since, 403, "neither")
