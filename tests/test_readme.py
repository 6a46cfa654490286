"""The README's matrix of what is tested with real Fabric peers matches the tests.

Every test a cell names must be collected, with the parameter the cell gives (which must
name the cell's release and, where it names one, the cell's engine; a test may add to
it, as ``[…-sigkill]``); every release and front case the real-peer tests run must appear
in some cell. The tests are collected
with the defaults (no ``CCDAEMON_TEST_*`` narrowing), in a subprocess.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
RELEASES = {"1.4.12", "2.5.10", "3.1.5"}
SEAMS = {"external builder", "Docker-API front"}
ENGINES = {
    "Docker 20.10": "docker-20.10",
    "Docker 26.1": "docker-26.1",
    "Docker 28.5": "docker-28.5",
    "Podman 4.3": "podman-4.3",
}
#: The parametrised real-peer tests whose every case the matrix must show.
CASE_FILES = ("tests/fabric/test_peer.py", "tests/front/test_front_peer.py")
_MATRIX = re.compile(r"<!-- matrix -->\n(.*?)<!-- /matrix -->", re.DOTALL)
_REF = re.compile(r"`(tests/[\w/]+\.py)(?:\[([^\]]+)\])?`")

Cell = tuple[str, str, str]  # release, seam, engine name


def _holds(param: str, node: str) -> bool:
    """Whether the case of ``node`` is ``param``, or ``param`` narrowed (``[…-sigkill]``)."""
    case = node.rpartition("[")[2].rstrip("]")
    return case == param or case.startswith(f"{param}-")


def matrix() -> dict[Cell, str]:
    """The README's matrix: (release, seam, engine) -> the cell's text."""
    found = _MATRIX.search(README.read_text())
    assert found, "README.md has no <!-- matrix --> … <!-- /matrix --> section"
    rows = [
        [part.strip() for part in line.strip().strip("|").split("|")]
        for line in found.group(1).splitlines()
        if line.startswith("|")
    ]
    header, _rule, *body = rows
    engines = [ENGINES[name] for name in header[1:]]
    cells: dict[Cell, str] = {}
    for row in body:
        release, _, seam = row[0].partition(", ")
        for engine, text in zip(engines, row[1:], strict=True):
            cells[release, seam, engine] = text
    return cells


@pytest.fixture(scope="module")
def collected() -> list[str]:
    """Node ids of every test the matrix names and of the case files, as CI collects them."""
    files = {path for cell in matrix().values() for path, _ in _REF.findall(cell)}
    missing = sorted(path for path in files if not (ROOT / path).is_file())
    assert not missing, f"README's matrix names files that do not exist: {missing}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCDAEMON_TEST_")}
    collect = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*collect, *sorted(files | set(CASE_FILES))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_the_matrix_has_every_release_seam_and_engine() -> None:
    """Each cell is there, once, and says what holds it (tests), or why nothing does."""
    cells = matrix()
    assert set(cells) == {(r, s, e) for r in RELEASES for s in SEAMS for e in ENGINES.values()}
    for cell, text in cells.items():
        named = _REF.findall(text)
        assert named or text == "not tested" or text.startswith("not possible"), (cell, text)


def test_every_test_the_matrix_names_exists_with_its_parameter(collected: list[str]) -> None:
    """A named file has tests; a named parameter is a collected case of the cell."""
    for (release, seam, engine), text in matrix().items():
        for path, param in _REF.findall(text):
            ids = [node for node in collected if node.startswith(f"{path}::")]
            assert ids, f"{path} (named for {release}, {seam}, {engine}) holds no test"
            if not param:
                continue
            assert any(_holds(param, node) for node in ids), f"no {path}[{param}]"
            assert release in param, f"{path}[{param}] is named for {release}"
            engines = [name for name in ENGINES.values() if name in param]
            assert engines in ([], [engine]), f"{path}[{param}] is named for {engine}"


def test_every_case_the_real_peer_tests_run_is_in_the_matrix(collected: list[str]) -> None:
    """A release or front case added to the tests must be added to the matrix too."""
    text = "".join(matrix().values())
    for path in CASE_FILES:
        params = {
            node.rpartition("[")[2].rstrip("]")
            for node in collected
            if node.startswith(f"{path}::") and node.endswith("]")
        }
        assert params, f"{path} has no parametrised cases"
        named = [param for ref, param in _REF.findall(text) if ref == path and param]
        missing = sorted(p for p in params if not any(_holds(n, f"[{p}]") for n in named))
        assert not missing, f"README's matrix lacks {path} cases {missing}"
