"""The trimmer gives the C heap back after bursts, not after every request; what loads lazily."""

from __future__ import annotations

import subprocess
import sys

from ccdaemon.daemon import memory


def test_trims_only_when_idle_after_enough_work() -> None:
    trims: list[int] = []
    trimmer = memory.Trimmer(every=3, trim=lambda: trims.append(1))
    trimmer.finished()
    trimmer.finished()
    trimmer.idle()
    assert trims == []  # two pieces of work: not worth a walk of the heap
    trimmer.finished()
    assert trims == []  # work finished, but none idle yet
    trimmer.idle()
    assert trims == [1]
    trimmer.idle()
    assert trims == [1]  # nothing finished since


def test_glibc_malloc_trim_is_found_and_runs() -> None:
    trim = memory._malloc_trim()  # noqa: SLF001 -- the C binding itself
    assert trim is not None  # Debian's glibc
    assert trim() in {0, 1}  # 1: memory was released, 0: there was none to release


#: Modules a daemon with the container backend and no Docker-API front does not use idle,
#: each a measurable part of its idle RSS (scripts/bench/daemon.py).
NOT_AT_IDLE = (
    "ccdaemon.dockerfront",  # the Docker-API front (0.7 MiB): only when [docker_api] is set
    "h11",
    "ccdaemon.runtime.relay",
    "ccdaemon.runtime.swarmlauncher",  # the swarm backend: only when configured
    "importlib.metadata",  # 1.1 MiB: the version is written in ccdaemon/__init__.py
    "ctypes",  # 0.3 MiB: malloc_trim is bound at the first trim
    "cryptography",  # the chaincode CA: made at the first launch that needs it
)


def test_serve_loads_nothing_an_idle_container_daemon_does_not_use() -> None:
    # A daemon imports the command line and serve; the rest loads where first needed.
    code = (
        "import sys, ccdaemon.cli, ccdaemon.daemon.serve; "
        f"print(' '.join(m for m in {NOT_AT_IDLE!r} if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    assert found.split() == []
