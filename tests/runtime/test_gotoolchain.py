"""Reading a module's ``go`` line and a builder image's Go version, and comparing them."""

from __future__ import annotations

import pytest

from ccdaemon.engine import archive
from ccdaemon.runtime import gotoolchain
from ccdaemon.runtime.errors import GoTooOld


@pytest.mark.parametrize(
    ("files", "path", "wanted"),
    [
        ({"src/go.mod": b"module m\n\ngo 1.22\n"}, "", "1.22"),
        ({"src/go.mod": b"module m\ngo 1.22.3 // pinned\ntoolchain go1.24.1\n"}, "", "1.22.3"),
        ({"src/go.mod": b"module m\n\ngo 1.21rc1\n"}, "", "1.21"),
        (
            {"src/example.com/cc/go.mod": b"module example.com/cc\ngo 1.23\n"},
            "example.com/cc",
            "1.23",
        ),
        ({"src/go.mod": b"module m\n"}, "", None),
        ({"src/example.com/cc/main.go": b"package main\n"}, "example.com/cc", None),
    ],
)
def test_module_go_is_read_where_fabrics_script_looks(
    files: dict[str, bytes], path: str, wanted: str | None
) -> None:
    """src/go.mod first, else src/<path>/go.mod; no go line or no go.mod: nothing to check."""
    assert gotoolchain.module_go(archive.targz(files), path) == wanted


def test_image_go_comes_from_golang_version() -> None:
    """The official golang images' GOLANG_VERSION (``1.24.4``); absent: unknown."""
    assert gotoolchain.image_go({"Env": ["PATH=/bin", "GOLANG_VERSION=1.24.4"]}) == "1.24.4"
    assert gotoolchain.image_go({"Env": ["PATH=/bin"]}) is None
    assert gotoolchain.image_go({}) is None


@pytest.mark.parametrize(
    ("wanted", "builder", "refused"),
    [
        ("1.22", "1.24.4", False),
        ("1.24", "1.24.0", False),
        ("1.24.5", "1.24.4", True),
        ("1.25", "1.24.4", True),
        ("1.22", "1.19.8", True),
        ("1.22", None, False),
        (None, "1.19", False),
    ],
)
def test_check_refuses_only_a_builder_older_than_the_module(
    wanted: str | None, builder: str | None, refused: bool
) -> None:
    """Versions compare as numbers (1.9 < 1.19); the message names both and the setting."""
    if not refused:
        gotoolchain.check("cc:1", wanted=wanted, builder_image="img", builder_go=builder)
        return
    with pytest.raises(GoTooOld) as caught:
        gotoolchain.check("cc:1", wanted=wanted, builder_image="img", builder_go=builder)
    assert f"needs Go {wanted}" in str(caught.value)
    assert f"img has Go {builder}" in str(caught.value)
    assert gotoolchain.SETTING in str(caught.value)
