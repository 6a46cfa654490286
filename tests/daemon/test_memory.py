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


def test_the_daemon_loads_the_docker_api_front_only_when_configured() -> None:
    # The front and its modules hold 0.7 MiB resident; a daemon without [docker_api]
    # imports serve and never reaches the import in _start.
    code = (
        "import sys, ccdaemon.daemon.serve; "
        "print(sorted(m for m in sys.modules if m.startswith('ccdaemon.dockerfront')))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert found.strip() == "[]"
