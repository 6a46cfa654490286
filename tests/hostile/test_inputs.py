"""Hostile requests, each refused with its 4xx and nothing made on the engine.

One daemon serves the whole module (2 MiB package limit). For every case the answer's
status, code and field are checked, then the engine: no event names the daemon's peer
and no container or image carries its instance label. Policy (privileged mode, mounts,
capabilities, networks, images, commands) has no field in the API: each such name is
refused as unknown, which is what keeps a request from asking for it.
"""

from __future__ import annotations

import gzip
import json
import logging
import tarfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from tests import tarballs
from tests.hostile import packages as pk
from tests.hostile.conftest import PACKAGE_LIMIT, record

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.hostile.conftest import Hostile

pytestmark = pytest.mark.asyncio(loop_scope="module")

CCID = "good_1.0:" + "a" * 64
GOOD: dict[str, object] = {
    "ccid": CCID,
    "type": "golang",
    "peer_address": "peer0:7052",
    "mspid": "Org1MSP",
}
_DROP = object()


def launch(**fields: object) -> dict[str, object]:
    """A valid launch body with ``fields`` changed (``_DROP`` removes one)."""
    body = {**GOOD, **fields}
    return {key: value for key, value in body.items() if value is not _DROP}


def build(**fields: object) -> dict[str, object]:
    """A POST /v1/images body with ``fields`` changed."""
    body: dict[str, object] = {"ccid": CCID, "package": pk.b64(pk.package()), **fields}
    return {key: value for key, value in body.items() if value is not _DROP}


@dataclass(frozen=True)
class Case:
    """One hostile request and the answer it must get."""

    group: str
    name: str
    #: A JSON body, raw bytes, or a function making either (bombs are made when used).
    body: object
    status: int
    code: str
    field: str | None = None
    method: str = "POST"
    path: str = "/v1/chaincodes"

    def materialise(self) -> object:
        """The body to send."""
        return self.body() if callable(self.body) else self.body


def _cases() -> list[Case]:
    json_cases = [
        Case("malformed JSON", "not JSON", b"{not json", 400, "invalid_json"),
        Case("malformed JSON", "empty body", b"", 400, "invalid_json"),
        Case("malformed JSON", "an array", b"[1, 2]", 400, "invalid_json"),
        Case("malformed JSON", "a string", b'"ccid"', 400, "invalid_json"),
        Case("malformed JSON", "null", b"null", 400, "invalid_json"),
        Case("malformed JSON", "NaN", b'{"ccid": NaN}', 400, "invalid_json"),
        Case("malformed JSON", "invalid UTF-8", b'{"ccid": "\xff\xfe"}', 400, "invalid_json"),
        Case("malformed JSON", "lone surrogate", b'{"ccid": "\\ud800"}', 400, "invalid_json"),
        Case("malformed JSON", "nested 100000 deep", b"[" * 100_000, 400, "invalid_json"),
        Case("malformed JSON", "trailing garbage", b'{"ccid": "a"} x', 400, "invalid_json"),
    ]
    type_cases = [
        Case("wrong types", f"{name} as {kind}", launch(**{name: value}), 400, code, field)
        for name, kind, value, code, field in [
            ("ccid", "number", 5, "invalid_request", "ccid"),
            ("ccid", "array", [CCID], "invalid_request", "ccid"),
            ("ccid", "null", None, "invalid_request", "ccid"),
            ("type", "boolean", True, "invalid_request", "type"),
            ("peer_address", "object", {"host": "peer0"}, "invalid_request", "peer_address"),
            ("mspid", "float", 1.5, "invalid_request", "mspid"),
            ("tls", "string", "yes", "invalid_request", "tls"),
            ("tls", "array", [], "invalid_request", "tls"),
            ("tls", "enabled as string", {"enabled": "yes"}, "invalid_request", "tls.enabled"),
            ("package", "number", 123, "invalid_request", "package"),
            ("image", "number", 1, "invalid_request", "image"),
            ("ccid", "huge number", 10**30, "invalid_request", "ccid"),
        ]
    ]
    policy_cases = [
        Case("policy: no such field", name, launch(**{name: value}), 400, "invalid_request", name)
        for name, value in [
            ("HostConfig", {"Privileged": True}),
            ("Privileged", True),
            ("privileged", True),
            ("Binds", ["/:/host"]),
            ("Mounts", [{"Source": "/", "Target": "/host"}]),
            ("CapAdd", ["SYS_ADMIN"]),
            ("NetworkMode", "host"),
            ("network", "host"),
            ("Image", "localhost/ccdaemon/busybox:latest"),
            ("env", ["LD_PRELOAD=/x"]),
            ("Env", ["A=1"]),
            ("cmd", ["/bin/sh"]),
            ("Entrypoint", ["/bin/sh"]),
            ("User", "root"),
            ("Devices", ["/dev/sda"]),
            ("SecurityOpt", ["seccomp=unconfined"]),
            ("PidMode", "host"),
            ("Labels", {"ccdaemon.instance": "other"}),
        ]
    ] + [
        Case(
            "policy: no such field",
            "tls.HostConfig",
            launch(tls={"HostConfig": {}}),
            400,
            "invalid_request",
            "tls.HostConfig",
        ),
        Case(
            "policy: no such field",
            "build: Binds",
            build(Binds=["/:/host"]),
            400,
            "invalid_request",
            "Binds",
            path="/v1/images",
        ),
        Case(
            "policy: image not built by this daemon",
            "image: busybox",
            launch(image="localhost/ccdaemon/busybox:latest"),
            400,
            "invalid_request",
            "image",
        ),
        Case(
            "policy: image not built by this daemon",
            "image with package",
            launch(image="x", package=pk.b64(pk.package())),
            400,
            "invalid_request",
            "image",
        ),
    ]
    ccid_cases = [
        Case("ids", name, launch(ccid=ccid), 400, "invalid_request", "ccid")
        for name, ccid in [
            ("path traversal", "../../etc/passwd:x"),
            ("absolute path", "/etc/passwd:x"),
            ("slash", "a/b:c"),
            ("dot-dot label", "..:x"),
            ("leading dash", "-rm:x"),
            ("semicolon", "a;reboot:x"),
            ("command substitution", "$(reboot):x"),
            ("backticks", "`id`:x"),
            ("pipe", "a|b:c"),
            ("ampersand", "a&b:c"),
            ("space", "a b:c"),
            ("newline", "a\nb:c"),
            ("NUL", "a\x00b:c"),
            ("two colons", "a:b:c"),
            ("empty", ""),
            ("10 KB", "a" * 10_240),
            ("10 KB after the colon", "a:" + "b" * 10_240),
            ("Cyrillic a", "myc\u0441_1.0:abc"),
            ("fullwidth colon", "mycc_1.0\uff1aabc"),
            ("fullwidth letters", "\uff4dycc:abc"),
            ("zero-width space", "my\u200bcc:abc"),
            ("right-to-left override", "my\u202ecc:abc"),
            ("ligature fi", "\ufb01le:abc"),
            ("combining accent", "cafe\u0301:abc"),
            ("image rule: '..'", "a..b:c"),
            ("image rule: '__'", "a__b:c"),
            ("image rule: '-' before ':'", "mycc-:abc"),
            ("image rule: trailing '.'", "mycc:abc."),
        ]
    ]
    field_cases = [
        Case("fields", name, launch(**{field: value}), 400, code, field)
        for name, field, value, code in [
            ("peer_address shell", "peer_address", "peer0:7052; reboot", "invalid_request"),
            ("peer_address subst", "peer_address", "$(id):7052", "invalid_request"),
            ("peer_address no port", "peer_address", "peer0", "invalid_request"),
            ("peer_address port 99999", "peer_address", "peer0:99999", "invalid_request"),
            ("peer_address port 0", "peer_address", "peer0:0", "invalid_request"),
            ("peer_address Cyrillic", "peer_address", "p\u0435er0:7052", "invalid_request"),
            ("peer_address newline", "peer_address", "peer0:7052\n-x", "invalid_request"),
            ("peer_address 10 KB", "peer_address", "p" * 10_240 + ":7052", "invalid_request"),
            ("mspid shell", "mspid", "Org1MSP;reboot", "invalid_request"),
            ("mspid newline", "mspid", "Org1MSP\nA=1", "invalid_request"),
            ("mspid 10 KB", "mspid", "M" * 10_240, "invalid_request"),
            ("type shell", "type", "golang;reboot", "unknown_chaincode_type"),
            ("type 10 KB", "type", "g" * 10_240, "invalid_request"),
            ("type Cyrillic", "type", "g\u043elang", "unknown_chaincode_type"),
            ("image traversal", "image", "../../etc/passwd", "invalid_request"),
            ("image 10 KB", "image", "a" * 10_240, "invalid_request"),
            ("format unknown", "format", "3.x", "invalid_request"),
        ]
    ]
    bad_cert = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
    tls_cases = [
        Case("tls", name, launch(tls=tls), 400, "invalid_request", field)
        for name, tls, field in [
            ("cert only", {"client_cert": bad_cert}, "tls.client_key"),
            (
                "garbage PEMs",
                dict.fromkeys(("client_cert", "client_key", "root_cert"), bad_cert),
                "tls.client_cert",
            ),
            (
                "certificates with TLS off",
                {"enabled": False, "client_cert": "x", "client_key": "x", "root_cert": "x"},
                "tls",
            ),
            ("unknown key", {"client_pass": "x"}, "tls.client_pass"),
        ]
    ]
    return json_cases + type_cases + policy_cases + ccid_cases + field_cases + tls_cases


def _package_cases() -> list[Case]:
    """Packages that escape, lie or explode, through both routes that take one."""
    symlink = {"type": tarfile.SYMTYPE}
    hardlink = {"type": tarfile.LNKTYPE}
    bodies: list[tuple[str, Callable[[], bytes], int, str, str | None]] = [
        ("not base64", lambda: b"", 400, "invalid_request", "package"),
        ("not gzip", lambda: b"just text", 400, "invalid_package", None),
        ("gzip, not tar", lambda: gzip.compress(b"x" * 1000), 400, "invalid_package", None),
        (
            "outer '..'",
            lambda: pk.package(tarballs.entry("../escape", b"x")),
            400,
            "invalid_package",
            None,
        ),
        (
            "outer absolute",
            lambda: pk.package(tarballs.entry("/etc/cron.d/x", b"x")),
            400,
            "invalid_package",
            None,
        ),
        (
            "outer symlink",
            lambda: pk.package(tarballs.entry("link", None, linkname="/etc", **symlink)),
            400,
            "invalid_package",
            None,
        ),
        (
            "code '..'",
            lambda: pk.package(code_tar=pk.code(tarballs.entry("src/../../x", b"x"))),
            400,
            "invalid_package",
            None,
        ),
        (
            "code absolute",
            lambda: pk.package(code_tar=pk.code(tarballs.entry("/etc/passwd", b"x"))),
            400,
            "invalid_package",
            None,
        ),
        (
            "code symlink out",
            lambda: pk.package(
                code_tar=pk.code(tarballs.entry("src/x", None, linkname="/etc/shadow", **symlink))
            ),
            400,
            "invalid_package",
            None,
        ),
        (
            "code relative symlink out",
            lambda: pk.package(
                code_tar=pk.code(
                    tarballs.entry("src/x", None, linkname="../../../../etc", **symlink)
                )
            ),
            400,
            "invalid_package",
            None,
        ),
        (
            "code hardlink out",
            lambda: pk.package(
                code_tar=pk.code(tarballs.entry("src/x", None, linkname="/etc/shadow", **hardlink))
            ),
            400,
            "invalid_package",
            None,
        ),
        (
            "code device",
            lambda: pk.package(
                code_tar=pk.code(tarballs.entry("src/sda", None, type=tarfile.BLKTYPE))
            ),
            400,
            "invalid_package",
            None,
        ),
        (
            "label traversal",
            lambda: pk.package(meta=pk.metadata(label="../../x")),
            400,
            "invalid_request",
            "package.metadata.label",
        ),
        (
            "metadata not JSON",
            lambda: pk.package(meta=b"{"),
            400,
            "invalid_request",
            "package.metadata",
        ),
        (
            "tar bomb: 10,001 entries",
            lambda: pk.package(code_tar=pk.many_entries()),
            413,
            "package_too_large",
            None,
        ),
        (
            "tar bomb: 513 MiB member",
            lambda: pk.package(code_tar=pk.forged_size()),
            413,
            "package_too_large",
            None,
        ),
        ("gzip bomb: package", pk.zeros_gzip, 413, "package_too_large", None),
        (
            "gzip bomb: code.tar.gz",
            lambda: pk.package(code_tar=pk.zeros_gzip()),
            413,
            "package_too_large",
            None,
        ),
        (
            "over the package limit",
            lambda: bytes(PACKAGE_LIMIT + 1),
            413,
            "package_too_large",
            None,
        ),
    ]
    cases: list[Case] = []
    for name, make, status, code, field in bodies:

        def encoded(make: Callable[[], bytes] = make, name: str = name) -> str:
            return "***" if name == "not base64" else pk.b64(make())

        cases.append(
            Case(
                "packages",
                f"launch: {name}",
                lambda e=encoded: launch(package=e()),
                status,
                code,
                field,
            )
        )
        cases.append(
            Case(
                "packages",
                f"build: {name}",
                lambda e=encoded: build(package=e()),
                status,
                code,
                field,
                path="/v1/images",
            )
        )
    return cases


def _other_cases() -> list[Case]:
    """Oversized bodies, hostile paths and queries on the other routes."""
    enc = "/v1/chaincodes/"
    return [
        Case(
            "bodies",
            "body over the limit",
            lambda: b"{" + b" " * (3 * PACKAGE_LIMIT),
            413,
            "body_too_large",
        ),
        Case(
            "bodies",
            "build body over the limit",
            lambda: b" " * (3 * PACKAGE_LIMIT),
            413,
            "body_too_large",
            path="/v1/images",
        ),
        Case(
            "paths",
            "GET traversal",
            None,
            404,
            "unknown_chaincode",
            method="GET",
            path=enc + "..%2F..%2Fetc%2Fpasswd",
        ),
        Case(
            "paths",
            "DELETE traversal",
            None,
            404,
            "unknown_chaincode",
            method="DELETE",
            path=enc + "..%2F..%2Fetc%3Ax",
        ),
        Case(
            "paths",
            "wait on a look-alike",
            None,
            404,
            "unknown_chaincode",
            path=enc + "myc%D1%81%3Aabc/wait",
        ),
        Case(
            "paths",
            "logs of a NUL id",
            None,
            404,
            "unknown_chaincode",
            method="GET",
            path=enc + "a%00b/logs",
        ),
        Case(
            "paths",
            "DELETE with timeout=-1",
            None,
            400,
            "invalid_request",
            "timeout",
            method="DELETE",
            path=enc + "a%3Ab?timeout=-1",
        ),
        Case(
            "paths",
            "DELETE with timeout=1e9",
            None,
            400,
            "invalid_request",
            "timeout",
            method="DELETE",
            path=enc + "a%3Ab?timeout=1e9",
        ),
        Case(
            "paths",
            "dontremove=maybe",
            None,
            400,
            "invalid_request",
            "dontremove",
            method="DELETE",
            path=enc + "a%3Ab?dontremove=maybe",
        ),
        Case(
            "paths",
            "list state=../x",
            None,
            400,
            "invalid_request",
            "state",
            method="GET",
            path="/v1/chaincodes?state=../x",
        ),
        Case(
            "paths",
            "gc dry_run=rm",
            None,
            400,
            "invalid_request",
            "dry_run",
            path="/v1/gc?dry_run=rm",
        ),
        Case(
            "paths",
            "unknown route",
            None,
            404,
            "not_found",
            method="GET",
            path="/v1/../../etc/passwd",
        ),
        Case("paths", "PUT a chaincode", {}, 405, "method_not_allowed", method="PUT"),
    ]


CASES = _cases() + _package_cases() + _other_cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.group}: {c.name}" for c in CASES])
async def test_hostile_request_is_refused_and_nothing_is_made(hostile: Hostile, case: Case) -> None:
    """The request gets its 4xx with the code (and field) named, and the engine shows nothing."""
    since = time.time() - 0.05
    body = case.materialise()
    if isinstance(body, dict):
        # The standard library writes what orjson will not (integers past 64 bits).
        body = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    answer: tuple[int, Any] = await hostile.daemon.call(
        case.method, case.path, body, headers=headers
    )
    made = await hostile.made(since)
    record(case.group, case.name, f"{case.method} {case.path.split('?')[0]}", answer, len(made))
    status, got = answer
    assert status == case.status, got
    assert isinstance(got, dict), got
    assert got["error"]["code"] == case.code, got
    assert got["error"].get("field") == case.field, got
    if status == 413:
        assert isinstance(got["error"].get("limit"), int), got  # the limit gone over
    # Every answer is short: nothing the caller sent is echoed back at length.
    assert len(str(got)) < 2048, len(str(got))
    assert made == []


RAW = [
    (
        "request line over 8190 bytes",
        b"GET /v1/chaincodes/" + b"a" * 10_240 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    ("header over 8190 bytes", b"GET /v1/health HTTP/1.1\r\nX: " + b"a" * 10_240 + b"\r\n\r\n"),
    ("200 headers", b"GET /v1/health HTTP/1.1\r\n" + b"X-A: 1\r\n" * 200 + b"\r\n"),
    ("negative Content-Length", b"POST /v1/chaincodes HTTP/1.1\r\nContent-Length: -5\r\n\r\n"),
    ("not HTTP (a TLS hello)", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"),
]


@pytest.mark.parametrize(("case", "data"), RAW, ids=[case for case, _ in RAW])
async def test_requests_the_http_parser_refuses_get_400_and_one_warning(
    hostile: Hostile, caplog: pytest.LogCaptureFixture, case: str, data: bytes
) -> None:
    """The HTTP parser refuses these before the daemon's code runs: 400, one warning.

    Their answer is aiohttp's plain text, not the JSON error form; the log line is one
    WARNING without a traceback (aiohttp's own is an ERROR with one).
    """
    since = time.time() - 0.05
    async with await anyio.connect_unix(str(hostile.daemon.socket)) as stream:
        await stream.send(data)
        answer = bytearray()
        with anyio.fail_after(10):
            while True:
                try:
                    answer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
    made = await hostile.made(since)
    status = int(answer.split(b" ", 2)[1])
    record("HTTP parser", case, "socket", (status, None), len(made))
    assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), bytes(answer[:200])
    assert made == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    if not data.startswith(b"\x16"):  # aiohttp does not log a request line it cannot read
        assert any(r.getMessage().startswith("refused a malformed") for r in caplog.records)
