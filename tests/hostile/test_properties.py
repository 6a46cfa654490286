"""Properties over random requests: the API never answers 5xx, every 4xx names its fault.

The API runs against one daemon for the module: every request body is drawn field by
field (absent, valid, any JSON value, or a hostile string) plus unknown fields, and
every path and query from arbitrary text. The answer is 2xx or 4xx, never 5xx; a 4xx is
in the contract's error form with one of its codes, and a refused field is named, one
the request carried. Nothing of the daemon's appears on the engine after any example.
"""

from __future__ import annotations

import base64
import tarfile
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import tarballs
from tests.hostile import packages as pk

if TYPE_CHECKING:
    from tests.hostile.conftest import Hostile

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: Bounded runs: the suite stays fast; each API example is two round trips.
API_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    # The daemon is shared on purpose; the only function-scoped fixture is the engine name.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: docs/api-contract.md's error codes (plus request_timeout, which no example here meets).
CONTRACT_CODES = frozenset(
    {
        "invalid_json",
        "invalid_request",
        "unknown_chaincode_type",
        "invalid_package",
        "unknown_chaincode",
        "no_such_image",
        "not_found",
        "method_not_allowed",
        "conflict",
        "package_too_large",
        "body_too_large",
        "build_failed",
        "request_timeout",
    }
)
LAUNCH_FIELDS = ("ccid", "type", "peer_address", "mspid", "package", "format", "path", "tls")
BUILD_FIELDS = ("ccid", "type", "package", "format", "path")
#: Fields whose refusals name a part of them (tls.client_key, package.metadata.label).
NESTED = ("tls", "package")

HOSTILE_TEXT = [
    "../../etc/passwd",
    "/etc/shadow",
    "$(reboot)",
    "`id`",
    "a;b|c&d",
    "a\nb",
    "a\x00b",
    "my\u0441c:abc",
    "mycc\uff1aabc",
    "\u202e",
    "a" * 10_240,
    "",
    " ",
    "peer0:7052",
    "golang",
    "Org1MSP",
    "good_1.0:" + "a" * 64,
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
hostile_text = st.sampled_from(HOSTILE_TEXT)
ccids = st.from_regex(r"[a-z0-9]{1,8}(_[0-9.]{1,4})?:[0-9a-f]{1,64}", fullmatch=True)
hostile_packages = st.sampled_from(
    [
        pk.package(tarballs.entry("../escape", b"x")),
        pk.package(code_tar=pk.code(tarballs.entry("/etc/passwd", b"x"))),
        pk.package(
            code_tar=pk.code(tarballs.entry("src/x", None, linkname="/", type=tarfile.SYMTYPE))
        ),
        pk.package(meta=pk.metadata(label="a/b")),
        pk.package(meta=pk.metadata(type="cobol")),
        pk.package(meta=pk.metadata(path="$(reboot)")),
        tarballs.tar_gz([]),
        b"",
    ]
).map(pk.b64)


def field_values(name: str) -> st.SearchStrategy[object]:
    """What a field may hold in a drawn request: plausible, hostile or any JSON."""
    plausible: dict[str, st.SearchStrategy[object]] = {
        "ccid": ccids,
        "type": st.sampled_from(["golang", "GOLANG", "node", "java", "car", "cobol"]),
        "peer_address": st.sampled_from(["peer0:7052", "[::1]:7052", "p:1"]),
        "mspid": st.sampled_from(["Org1MSP", "org-1.msp"]),
        "package": hostile_packages
        | st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
        "format": st.sampled_from(["2.x", "1.4"]),
        "image": st.sampled_from(["localhost/ccdaemon/busybox:latest", "dev-p-x-0a1b"])
        | st.text(max_size=40),
        "path": st.sampled_from(["example.com/cc", ""]),
        "tls": st.fixed_dictionaries({"enabled": st.booleans()})
        | st.dictionaries(
            st.sampled_from(["enabled", "client_cert", "client_key", "root_cert", "x"]),
            json_values | hostile_text,
            max_size=4,
        ),
    }
    return plausible[name] | hostile_text | json_values


@st.composite
def bodies(draw: st.DrawFn, fields: tuple[str, ...]) -> dict[str, object]:
    """A request body: each field absent or drawn, and sometimes an unknown field."""
    body: dict[str, object] = {}
    for name in fields:
        if draw(st.integers(0, 4)) > 0:  # present four times in five
            body[name] = draw(field_values(name))
    body.update(
        draw(
            st.dictionaries(
                st.text(min_size=1, max_size=12).filter(lambda k: k not in fields),
                json_values,
                max_size=1,
            )
        )
    )
    return body


def check_answer(status: int, got: Any, sent: dict[str, object] | None) -> None:
    """2xx or 4xx; a 4xx in the error form, with a contract code and, if any, a sent field."""
    assert status < 500, got
    if status < 400:
        return
    assert isinstance(got, dict), got
    error = got["error"]
    assert error["code"] in CONTRACT_CODES, got
    assert isinstance(error["message"], str)
    assert error["message"], got
    if error["code"] in {"invalid_request", "unknown_chaincode_type"}:
        field = error["field"]
        assert isinstance(field, str), got
        assert field, got
        if sent is not None and field not in sent:
            # A part of a nested field, or one that was required and missing.
            top = field.split(".")[0]
            assert top in NESTED or top in LAUNCH_FIELDS or top in sent, got


async def answer_and_check(
    hostile: Hostile, method: str, path: str, body: bytes | None, sent: dict[str, object] | None
) -> None:
    since = time.time() - 0.05
    status, got = await hostile.daemon.call(
        method, path, body, headers={"Content-Type": "application/json"}
    )
    check_answer(status, got, sent)
    assert await hostile.made(since) == []


@API_SETTINGS
@given(body=bodies((*LAUNCH_FIELDS, "image")))
async def test_any_launch_body_gets_a_4xx_naming_its_fault(
    hostile: Hostile, body: dict[str, object]
) -> None:
    """Random launch bodies: never a 5xx, each 4xx names a contract code and a sent field."""
    await answer_and_check(hostile, "POST", "/v1/chaincodes", orjson.dumps(body), body)


@API_SETTINGS
@given(body=bodies(BUILD_FIELDS))
async def test_any_build_body_gets_a_4xx_naming_its_fault(
    hostile: Hostile, body: dict[str, object]
) -> None:
    """Random POST /v1/images bodies: the same, with no valid package to build."""
    await answer_and_check(hostile, "POST", "/v1/images", orjson.dumps(body), body)


@API_SETTINGS
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
async def test_any_bytes_as_a_body_get_a_4xx(hostile: Hostile, raw: bytes) -> None:
    """Arbitrary bytes as a launch body: invalid_json, or a 4xx if they happen to be JSON."""
    await answer_and_check(hostile, "POST", "/v1/chaincodes", raw, None)


@API_SETTINGS
@given(
    # Kept under the HTTP parser's 8190-byte line: longer lines are test_inputs.py's.
    ccid=st.text(max_size=40) | hostile_text.filter(lambda text: len(text) < 1024),
    route=st.sampled_from([("GET", ""), ("DELETE", ""), ("POST", "/wait"), ("GET", "/logs")]),
    query=st.dictionaries(
        st.sampled_from(["timeout", "dontremove", "follow", "tail", "state", "x"]),
        st.text(max_size=12) | hostile_text.filter(lambda text: len(text) < 1024),
        max_size=2,
    ),
)
async def test_any_chaincode_path_and_query_get_a_4xx(
    hostile: Hostile, ccid: str, route: tuple[str, str], query: dict[str, str]
) -> None:
    """Arbitrary ids in the path and values in the query: 404 or 400, never 5xx."""
    method, suffix = route
    query_text = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in query.items())
    path = f"/v1/chaincodes/{quote(ccid, safe='')}{suffix}?{query_text}"
    await answer_and_check(hostile, method, path, None, None)
