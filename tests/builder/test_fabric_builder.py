"""The external builder driven exactly as a Fabric peer drives it, against a real daemon.

Each test plays the peer (tests/builder/conftest.py): the same arguments, directories,
pruned environment, chaincode.json and SIGTERM; the chaincode is a real Go package built
by the daemon on the engine, and what its container holds is read from inside it. Each
test runs the installed package under a chaincode id of its own.
"""

from __future__ import annotations

import base64
import signal
import time
from typing import TYPE_CHECKING

import anyio
import orjson
import pytest

from ccdaemon.apiclient.aio import AsyncClient as Client
from ccdaemon.engine import containers, images
from ccdaemon.fabricbuilder import RECORD_FILE, STEPS
from ccdaemon.fabricbuilder.executables import wrapper
from ccdaemon.runtime.certs import ChaincodeCA
from ccdaemon.runtime.hostconfig import CCID_LABEL, INSTANCE_LABEL, MANAGED_LABEL
from tests.builder.conftest import (
    INDEX,
    Installed,
    Peer,
    chaincode_json,
    go_package,
    install,
    peer_listener,
)
from tests.conftest import ROOT

if TYPE_CHECKING:
    import asyncio

    from ccdaemon.engine import Engine
    from tests.fabric.conftest import Daemon

HANG_GUARD = 120
TLS_DIR = "/etc/hyperledger/fabric"


def own_ccid(installed: Installed, tag: str) -> str:
    """A chaincode id of the installed package's own, for one test (Fabric's label:hash form)."""
    return (
        f"{installed.package_id.partition(':')[0]}-{tag}:{installed.package_id.partition(':')[2]}"
    )


async def test_install_builds_the_image_once_and_releases_the_indexes(
    peer: Peer, installed: Installed, shared_daemon: Daemon, engine: Engine
) -> None:
    """The peer's install: detect claims, build has the daemon build, release gives indexes.

    The build output records an image that carries the daemon's labels; installing the
    same package again (another peer's extraction) finds the same build and builds nothing.
    """
    assert installed.detect.code == 0, installed.detect.stderr
    assert "example.com/peerreport" in installed.build.stderr  # go build -v, relayed
    assert installed.release_step.code == 0, installed.release_step.stderr
    index = installed.release / "statedb" / "couchdb" / "indexes" / "indexOwner.json"
    assert index.read_bytes() == INDEX
    record = installed.record()
    assert record["type"] == "golang"
    assert record["build_id"].startswith("peerreport_1.0:")
    labels = (await images.inspect(engine, record["image"]))["Config"]["Labels"]
    assert labels[MANAGED_LABEL] == "true"
    assert labels[INSTANCE_LABEL] == shared_daemon.instance

    again = await anyio.to_thread.run_sync(install, peer, go_package())
    assert again.build.code == 0, again.build.stderr
    assert again.record() == record
    assert "example.com/peerreport" not in again.build.stderr
    # Asked for by its id alone: the package is not sent when the image is there.
    assert "the daemon has the image of" in again.build.stderr


async def test_run_launches_with_chaincode_json_and_exits_with_the_chaincodes_code(
    peer: Peer, installed: Installed, engine: Engine
) -> None:
    """The container runs the built image with chaincode.json's address, TLS files and env.

    ``run`` stays up while the chaincode runs and exits with its exit code (7, sent by
    the peer); a chaincode that cannot reach its peer exits 3, and so does ``run``.
    """
    tls = ChaincodeCA.generate().issue()
    ccid = own_ccid(installed, "tls")
    async with peer_listener() as listener:
        run_dir = peer.run_metadata(
            chaincode_json(
                ccid,
                listener.address,
                client_cert=tls.cert_pem.decode(),
                client_key=tls.key_pem.decode(),
                root_cert=tls.root_pem.decode(),
            )
        )
        process = await peer.start_run(installed.bld, run_dir)
        with anyio.fail_after(HANG_GUARD):
            report, writer = await listener.reports.get()
        still_running = process.returncode is None  # in the foreground while the chaincode runs
        assert still_running
        assert report["args"] == ["chaincode", f"-peer.address={listener.address}"]
        env = set(report["env"])
        assert {
            f"CORE_CHAINCODE_ID_NAME={ccid}",
            "CORE_PEER_TLS_ENABLED=true",
            f"CORE_PEER_TLS_ROOTCERT_FILE={TLS_DIR}/peer.crt",
            f"CORE_TLS_CLIENT_CERT_FILE={TLS_DIR}/client_pem.crt",
            f"CORE_TLS_CLIENT_KEY_FILE={TLS_DIR}/client_pem.key",
            "CORE_PEER_LOCALMSPID=Org1MSP",
        } <= env
        assert report["files"] == {
            f"{TLS_DIR}/client_pem.crt": tls.cert_pem.decode(),
            f"{TLS_DIR}/client_pem.key": tls.key_pem.decode(),
            f"{TLS_DIR}/peer.crt": tls.root_pem.decode(),
            f"{TLS_DIR}/client.crt": base64.b64encode(tls.cert_pem).decode(),
            f"{TLS_DIR}/client.key": base64.b64encode(tls.key_pem).decode(),
        }
        found = await containers.list_(engine, labels={CCID_LABEL: ccid})
        assert [item["Image"] for item in found] == [installed.record()["image"]]

        writer.write(b"7\n")
        await writer.drain()
        with anyio.fail_after(30):
            _, stderr = await process.communicate()
        assert process.returncode == 7, stderr.decode()
        writer.close()

    # No TLS (empty client_cert), and nobody listening: the chaincode exits 3.
    run_dir = peer.run_metadata(chaincode_json(own_ccid(installed, "notls"), "127.0.0.1:1"))
    process = await peer.start_run(installed.bld, run_dir)
    with anyio.fail_after(HANG_GUARD):
        _, stderr = await process.communicate()
    assert process.returncode == 3, stderr.decode()


async def test_sigterm_to_run_leaves_no_container_within_five_seconds(
    peer: Peer, installed: Installed, engine: Engine
) -> None:
    """The peer's stop (SIGTERM, SIGKILL 5 s later): ``run`` removes the container first."""
    ccid = own_ccid(installed, "term")
    async with peer_listener() as listener:
        run_dir = peer.run_metadata(chaincode_json(ccid, listener.address))
        process = await peer.start_run(installed.bld, run_dir)
        with anyio.fail_after(HANG_GUARD):
            await listener.reports.get()  # running, and connected to the peer
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(5):
            _, stderr = await process.communicate()
        elapsed = time.monotonic() - began
    assert elapsed < 5
    assert process.returncode != 0
    assert "SIGTERM: stopping chaincode" in stderr.decode()
    assert await containers.list_(engine, labels={CCID_LABEL: ccid}) == []


async def test_run_rebuilds_an_image_removed_since_install(
    peer: Peer, installed: Installed, engine: Engine
) -> None:
    """With the image removed since install (``ccdaemon gc``), ``run`` rebuilds it and runs."""
    image = installed.record()["image"]
    await images.remove(engine, image, force=True)  # untagged even under exited containers
    ccid = own_ccid(installed, "rebuilt")
    async with peer_listener() as listener:
        run_dir = peer.run_metadata(chaincode_json(ccid, listener.address))
        process = await peer.start_run(installed.bld, run_dir)
        with anyio.fail_after(HANG_GUARD):
            report, writer = await listener.reports.get()
        assert f"CORE_CHAINCODE_ID_NAME={ccid}" in report["env"]
        writer.close()  # the chaincode reads no exit code and exits 0
        with anyio.fail_after(30):
            _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert "building it again" in stderr.decode()
    await images.inspect(engine, image)


#: Longer than the 60 s after which ``run`` once gave up on a daemon that was away.
AWAY = 65.0


async def test_run_outlives_a_long_daemon_absence_and_still_reports_the_exit(
    peer: Peer, installed: Installed, shared_daemon: Daemon, engine: Engine
) -> None:
    """The daemon killed for over a minute: ``run`` waits on, the chaincode serves on.

    Back, the daemon re-adopts the container; ``run`` then answers the chaincode's own
    exit code, so the peer's handle on its chaincode was never lost.
    """
    ccid = own_ccid(installed, "away")
    async with peer_listener() as listener:
        run_dir = peer.run_metadata(chaincode_json(ccid, listener.address))
        process = await peer.start_run(installed.bld, run_dir)
        with anyio.fail_after(HANG_GUARD):
            _, writer = await listener.reports.get()
            told = await _stderr_until(process, "waiting for it to exit")
        shared_daemon.stop(signal.SIGKILL)
        try:
            await anyio.sleep(AWAY)
            still_waiting = process.returncode is None
            assert still_waiting, told
            [found] = await containers.list_(engine, labels={CCID_LABEL: ccid})
            assert found["State"] == "running"
        finally:
            shared_daemon.start()
        writer.write(b"5\n")
        await writer.drain()
        with anyio.fail_after(30):
            _, stderr = await process.communicate()
        writer.close()
    assert process.returncode == 5, told + stderr.decode()
    assert "still waiting for chaincode" in stderr.decode()


async def _stderr_until(process: asyncio.subprocess.Process, text: str) -> str:
    """What the process writes to stderr up to and including the line holding ``text``."""
    assert process.stderr is not None
    seen: list[str] = []
    while not seen or text not in seen[-1]:
        line = await process.stderr.readline()
        assert line, "".join(seen)
        seen.append(line.decode())
    return "".join(seen)


BROKEN = [
    (b"{not json", "is not JSON"),
    (b"[]", "is not a JSON object"),
    (chaincode_json("broken_1.0:1", ""), "'peer_address' is missing"),
    (chaincode_json("broken_1.0:1", "127.0.0.1:1", mspid=7), "'mspid' must be a string"),
    (chaincode_json("broken_1.0:1", "127.0.0.1:1", client_cert="PEM"), "go together"),
]


async def test_broken_chaincode_json_fails_run_with_a_clear_message_and_launches_nothing(
    peer: Peer, installed: Installed, shared_daemon: Daemon, engine: Engine
) -> None:
    """Each broken chaincode.json: ``run`` exits 1 naming the file and fault; nothing runs."""
    for content, message in BROKEN:
        run_dir = peer.run_metadata(content)
        process = await peer.start_run(installed.bld, run_dir)
        with anyio.fail_after(30):
            _, stderr = await process.communicate()
        assert process.returncode == 1
        assert str(run_dir / "chaincode.json") in stderr.decode()
        assert message in stderr.decode()
    assert await containers.list_(engine, labels={CCID_LABEL: "broken_1.0:1"}) == []
    async with Client(shared_daemon.socket) as client:
        assert "broken_1.0:1" not in {cc["ccid"] for cc in await client.list()}


@pytest.mark.parametrize(
    ("cc_type", "types", "claimed"),
    [
        ("golang", None, True),
        ("GOLANG", None, True),
        ("node", None, True),
        ("java", None, True),
        ("car", None, False),
        ("ccaas", None, False),
        ("k8s", None, False),
        ("node", "golang", False),
        ("ccaas", "golang, ccaas", True),
    ],
)
def test_detect_claims_only_the_configured_types(
    bare_peer: Peer, cc_type: str, types: str | None, claimed: bool
) -> None:
    """Detect exits 0 for a claimed type (default golang, node, java; any case), else 1."""
    src, meta, _, _ = bare_peer.build_context(go_package(cc_type=cc_type))
    extra = {} if types is None else {"CCDAEMON_BUILDER_TYPES": types}
    if types is not None:
        bare_peer.propagate = (*bare_peer.propagate, "CCDAEMON_BUILDER_TYPES")
    done = bare_peer.step("detect", src, meta, **extra)
    assert done.code == (0 if claimed else 1), done.stderr
    if not claimed:
        assert f"type {cc_type.lower()!r} is not one this builder claims" in done.stderr


def test_detect_refuses_a_package_without_metadata(bare_peer: Peer) -> None:
    """No metadata.json: not claimed, and the reason names the file."""
    src, meta, _, _ = bare_peer.build_context(go_package())
    (meta / "metadata.json").unlink()
    done = bare_peer.step("detect", src, meta)
    assert done.code == 1
    assert str(meta / "metadata.json") in done.stderr


async def test_unreachable_daemon_fails_build_and_run_naming_the_socket(bare_peer: Peer) -> None:
    """With no daemon on CCDAEMON_SOCKET, build and run exit 3 and name the socket."""
    missing = bare_peer.env["CCDAEMON_SOCKET"]
    src, meta, bld, _ = bare_peer.build_context(go_package())
    done = await anyio.to_thread.run_sync(bare_peer.step, "build", src, meta, bld)
    assert done.code == 3
    assert f"no daemon socket at {missing}" in done.stderr
    record = {"build_id": "peerreport_1.0:ab", "type": "golang", "image": "localhost/x"}
    (bld / RECORD_FILE).write_bytes(orjson.dumps(record))
    run_dir = bare_peer.run_metadata(chaincode_json("peerreport_1.0:ab", "127.0.0.1:1"))
    process = await bare_peer.start_run(bld, run_dir)
    with anyio.fail_after(30):
        _, stderr = await process.communicate()
    assert process.returncode == 3
    assert f"no daemon socket at {missing}" in stderr.decode()


def test_chaincode_as_a_service_releases_connection_json_without_the_daemon(
    bare_peer: Peer,
) -> None:
    """A claimed ccaas package: build keeps connection.json, release hands it to the peer.

    Nothing is built, so no daemon is asked (there is none behind the socket here).
    """
    bare_peer.propagate = (*bare_peer.propagate, "CCDAEMON_BUILDER_TYPES")
    bare_peer.env["CCDAEMON_BUILDER_TYPES"] = "ccaas"
    src, meta, bld, release = bare_peer.build_context(go_package(cc_type="ccaas"))
    connection = b'{"address": "cc.example:9999", "dial_timeout": "10s", "tls_required": false}'
    (src / "connection.json").write_bytes(connection)
    assert bare_peer.step("detect", src, meta).code == 0
    done = bare_peer.step("build", src, meta, bld)
    assert done.code == 0, done.stderr
    assert bare_peer.step("release", bld, release).code == 0
    assert (release / "chaincode" / "server" / "connection.json").read_bytes() == connection
    assert (release / "statedb" / "couchdb" / "indexes" / "indexOwner.json").read_bytes() == INDEX


def test_deploy_executables_are_the_installed_ones_for_the_system_python() -> None:
    """deploy/fabric-builder/bin holds the same four wrappers, run by ``python3`` on PATH."""
    for step in STEPS:
        path = ROOT / "deploy" / "fabric-builder" / "bin" / step
        assert path.read_text() == wrapper("/usr/bin/env python3")
        assert path.stat().st_mode & 0o111 == 0o111
