"""What each builder step loads: ``run`` starts inside the peer's first invoke.

Each step runs as the installed executable does (``python -IS``, ccdaemon's and its
dependencies' directories put first on the path), with ``-X importtime`` to list every
module it imports. No daemon is needed: ``build`` and ``run`` meet a missing socket
after their imports, ``detect`` and ``release`` need none.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import orjson

from ccdaemon.fabricbuilder import RECORD_FILE, STEPS
from ccdaemon.fabricbuilder.executables import import_paths, install

if TYPE_CHECKING:
    from pathlib import Path

#: What no step may load: an event loop, a general HTTP client, the engine's layers.
HEAVY = {"asyncio", "aiohttp", "anyio", "http.client", "ccdaemon.engine", "ccdaemon.daemon"}
#: What ``run`` may not load besides: each costs its start-up 5 to 20 ms (-X importtime),
#: and a Unix socket needs no TLS.
RUN_HEAVY = HEAVY | {"typing", "dataclasses", "pathlib", "orjson", "urllib.parse", "ssl"}


def imported(tmp_path: Path, step: str, *args: Path) -> tuple[int, set[str], str]:
    """Run ``step`` as its executable runs; its exit status, the modules it loaded, stderr."""
    [executable] = [
        path for path in install(tmp_path, sys.executable, import_paths()) if path.name == step
    ]
    shebang = executable.read_text().splitlines()[0]
    assert shebang == f"#!{sys.executable} -IS"
    done = subprocess.run(
        [sys.executable, "-IS", "-X", "importtime", str(executable), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={"CCDAEMON_SOCKET": str(tmp_path / "absent.sock")},
        timeout=30,
    )
    modules = {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    return done.returncode, modules, done.stderr


def test_detect_and_release_load_no_client(tmp_path: Path) -> None:
    """The detect and release steps need no daemon: they load neither client nor loop."""
    metadata = tmp_path / "metadata"
    metadata.mkdir()
    (metadata / "metadata.json").write_bytes(orjson.dumps({"type": "golang", "label": "cc_1"}))
    code, modules, err = imported(tmp_path, "detect", tmp_path, metadata)
    assert code == 0, err
    assert not modules & (HEAVY | {"ccdaemon.apiclient"})
    bld, release = tmp_path / "bld", tmp_path / "release"
    bld.mkdir()
    release.mkdir()
    record = {"build_id": "cc_1:ab", "type": "golang", "image": "img"}
    (bld / RECORD_FILE).write_bytes(orjson.dumps(record))
    code, modules, err = imported(tmp_path, "release", bld, release)
    assert code == 0, err
    assert not modules & (HEAVY | {"ccdaemon.apiclient"})


def test_run_loads_only_the_lean_client(tmp_path: Path) -> None:
    """The run step loads the client on sockets alone: no loop, typing, pathlib or TLS."""
    bld, run_dir = tmp_path / "bld", tmp_path / "run"
    bld.mkdir()
    run_dir.mkdir()
    record = {"build_id": "cc_1:ab", "type": "golang", "image": "img"}
    (bld / RECORD_FILE).write_bytes(orjson.dumps(record))
    config = {"chaincode_id": "cc_1:ab", "peer_address": "peer0:7052", "mspid": "Org1MSP"}
    (run_dir / "chaincode.json").write_bytes(orjson.dumps(config))
    code, modules, err = imported(tmp_path, "run", bld, run_dir)
    assert code == 3, err  # the daemon's socket is absent: after every import
    assert "no daemon socket at" in err
    assert "ccdaemon.apiclient.client" in modules
    assert not modules & RUN_HEAVY, sorted(modules & RUN_HEAVY)


def test_every_step_is_installed(tmp_path: Path) -> None:
    """One executable per step, each run isolated and without site (``-IS``)."""
    written = install(tmp_path, sys.executable, import_paths())
    assert sorted(path.name for path in written) == sorted(STEPS)
    for path in written:
        assert path.read_text().startswith(f"#!{sys.executable} -IS\n")
