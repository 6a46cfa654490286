"""TLS private keys stay inside their containers: not in logs, answers, metrics or files.

Launches run with credentials the daemon issues and with credentials the caller supplies,
and the failures run too: a launch whose image is missing, requests whose certificates
are refused, and a launch whose build fails. Every log record (DEBUG and up), every
answer, /metrics, the containers' configuration, and every file the daemon could have
written (its socket directory, new files in /tmp and in the working directory) is then
searched for each key, as PEM lines and as the base64 of the PEM that Fabric's client.key
holds. The daemon-issued key is read back from inside its container to know what to look
for.

Where else this is shown: a world-writable socket directory is refused at start
(tests/daemon/test_process.py) and the TCP listener refuses clients without a valid
certificate (tests/daemon/test_tcp.py).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ccdaemon.engine import NoSuchImage, containers, images
from ccdaemon.runtime.certs import ChaincodeCA, ClientCredentials
from tests import tarballs
from tests.conftest import ROOT, files_in
from tests.daemon.conftest import stub_images
from tests.hostile import packages as pk
from tests.hostile.conftest import hostile_daemon, record

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pytest

    from ccdaemon.engine import Engine
    from tests.hostile.conftest import Hostile

TLS_DIR = "/etc/hyperledger/fabric"
#: Engines keep container files under these; the key belongs there (inside the container).
ENGINE_DIRS = (str(Path(tempfile.gettempdir()) / "ccde"),)
#: Files larger than this are not read (no daemon writes such files; images do).
MAX_SCAN = 16 * 1024 * 1024


def needles(key_pem: bytes) -> list[bytes]:
    """What would show a key: its PEM body lines, and the base64 of the whole PEM.

    The header line is the same for every key, so only the body and a slice of the
    base64 from past the header are looked for.
    """
    lines = [line for line in key_pem.splitlines() if line and not line.startswith(b"-----")]
    encoded = base64.b64encode(key_pem)
    return [*(line for line in lines if len(line) >= 16), encoded[48:112]]


def found_in(text: bytes, keys: dict[str, bytes]) -> list[str]:
    """The names of the keys whose material appears in ``text``."""
    return [name for name, pem in keys.items() if any(n in text for n in needles(pem))]


def new_files(root: Path, since: float, *, skip: tuple[str, ...] = ()) -> Iterator[Path]:
    """Regular files under ``root`` changed since ``since`` (unreadable trees are passed)."""
    for directory, dirs, files in os.walk(root, onerror=lambda _: None):
        dirs[:] = [d for d in dirs if not str(Path(directory, d)).startswith(skip)]
        for name in files:
            path = Path(directory, name)
            with contextlib.suppress(OSError):
                info = path.lstat()
                if path.is_file() and info.st_mtime >= since and info.st_size <= MAX_SCAN:
                    yield path


def caller_credentials() -> ClientCredentials:
    """Credentials from a CA of the caller's own, as a peer with its own CA supplies them."""
    return ChaincodeCA.generate().issue()


def tls_body(creds: ClientCredentials, **override: str) -> dict[str, str]:
    """The request's tls object for ``creds`` (a field may be swapped for a bad one)."""
    body = {
        "client_cert": creds.cert_pem.decode(),
        "client_key": creds.key_pem.decode(),
        "root_cert": creds.root_pem.decode(),
    }
    body.update(override)
    return body


async def test_no_private_key_leaves_its_container(
    engine: Engine, engine_socket: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issued and supplied keys, in success and failure, appear nowhere outside the containers."""
    caplog.set_level(logging.DEBUG)
    began = time.time() - 1
    answers: list[bytes] = []
    keys: dict[str, bytes] = {}
    tagged: list[str] = []
    try:
        async with hostile_daemon(engine, engine_socket) as hostile:
            await exercise(hostile, engine, answers, keys, tagged)
            socket_dir = hostile.daemon.socket.parent
            files = [p for p in socket_dir.iterdir() if p.is_file()]
            files += list(new_files(Path(tempfile.gettempdir()), began, skip=ENGINE_DIRS))
            files += list(new_files(ROOT, began, skip=(str(ROOT / ".venv"), str(ROOT / ".git"))))
            logs = caplog.text.encode() + b"".join(
                repr(record.__dict__).encode() for record in caplog.records
            )
    finally:
        for image in tagged:
            with contextlib.suppress(NoSuchImage):
                await images.remove(engine, image)

    assert set(keys) == {"issued", "supplied", "missing image", "refused", "build failed"}
    # The search finds what it looks for: each key in its own PEM and in client.key's form.
    for name, pem in keys.items():
        assert found_in(b"x" + pem + base64.b64encode(pem), {name: pem}) == [name]
    # The daemon's own records were captured (its start is logged), at DEBUG and up.
    assert any(record.name.startswith("ccdaemon") for record in caplog.records)
    assert found_in(logs, keys) == []
    assert [found_in(answer, keys) for answer in answers] == [[]] * len(answers)
    leaked: dict[str, list[str]] = {}
    for path in files:
        with contextlib.suppress(OSError):
            if hit := found_in(path.read_bytes(), keys):
                leaked[str(path)] = hit
    assert leaked == {}
    record("secrets", "TLS keys in logs, answers, metrics, files", "all", "none found", 0)


async def exercise(
    hostile: Hostile,
    engine: Engine,
    answers: list[bytes],
    keys: dict[str, bytes],
    tagged: list[str],
) -> None:
    """Launch and fail in every way that handles a key; keep the answers and the keys."""
    daemon = hostile.daemon

    async def call(method: str, path: str, body: object = None, **kw: Any) -> tuple[int, Any]:
        status, got = await daemon.call(method, path, body, **kw)
        answers.append(got.encode() if isinstance(got, str) else orjson.dumps(got))
        return status, got

    base = {"type": "golang", "peer_address": "peer0:7052", "mspid": "Org1MSP"}
    issued, supplied = "issued_1.0:" + "1" * 64, "supplied_1.0:" + "2" * 64
    daemon.tagged = tagged
    await stub_images(engine, daemon, [issued, supplied])

    # Issued by the daemon: the key is known only from inside the container.
    status, got = await call("POST", "/v1/chaincodes", {"ccid": issued, **base})
    assert status == 201, got
    inside = await files_in(engine, got["chaincode"]["container"], TLS_DIR)
    keys["issued"] = base64.b64decode(inside[f"{TLS_DIR}/client.key"])
    assert keys["issued"] == inside[f"{TLS_DIR}/client_pem.key"]

    creds = caller_credentials()
    keys["supplied"] = creds.key_pem
    status, got = await call(
        "POST", "/v1/chaincodes", {"ccid": supplied, **base, "tls": tls_body(creds)}
    )
    assert status == 201, got
    inside = await files_in(engine, got["chaincode"]["container"], TLS_DIR)
    assert inside[f"{TLS_DIR}/client_pem.key"] == creds.key_pem

    # A launch that fails at the engine: no image, no package to build it from.
    creds = caller_credentials()
    keys["missing image"] = creds.key_pem
    status, got = await call(
        "POST",
        "/v1/chaincodes",
        {"ccid": "missing_1.0:" + "3" * 64, **base, "tls": tls_body(creds)},
    )
    assert status == 404, got

    # Refused certificates: a key for another certificate, and a key where a cert goes.
    creds, other = caller_credentials(), caller_credentials()
    keys["refused"] = creds.key_pem
    for tls in (
        tls_body(other, client_key=creds.key_pem.decode()),
        tls_body(other, client_cert=creds.key_pem.decode()),
        tls_body(other, root_cert=creds.key_pem.decode()),
    ):
        status, got = await call(
            "POST", "/v1/chaincodes", {"ccid": "refused:x", **base, "tls": tls}
        )
        assert status == 400, got
        assert got["error"]["field"].startswith("tls."), got

    # A build that fails (Go refuses the code), streamed, with the caller's key.
    creds = caller_credentials()
    keys["build failed"] = creds.key_pem
    broken = pk.package(
        code_tar=tarballs.tar_gz([tarballs.entry(f"src/{pk.GO_PATH}/main.go", b"package")])
    )
    status, got = await call(
        "POST",
        "/v1/chaincodes",
        {
            "ccid": "broken_1.0:" + "4" * 64,
            **base,
            "package": pk.b64(broken),
            "tls": tls_body(creds),
        },
        headers={"Accept": "application/x-ndjson"},
    )
    assert status == 200
    assert '"build_failed"' in got, got

    # Everything the daemon tells about what it runs, and the engine's view of it.
    await call("GET", "/v1/chaincodes")
    for ccid in (issued, supplied):
        path = "/v1/chaincodes/" + ccid.replace(":", "%3A")
        await call("GET", path)
        await call("GET", path + "/logs?tail=all")
        container = await containers.inspect(engine, daemon.names(ccid)[0])
        answers.append(orjson.dumps(container))
    await call("GET", "/metrics")
    await call("GET", "/v1/health")
    for ccid in (issued, supplied):
        await call("DELETE", "/v1/chaincodes/" + ccid.replace(":", "%3A") + "?timeout=0")
