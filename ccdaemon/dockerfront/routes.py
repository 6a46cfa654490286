"""The Docker Engine API calls the front serves: Fabric's, and nothing else.

A request target is decided on its decoded, normalised form: percent-escapes decoded
once (an escape that decodes to another escape, a ``/``, a NUL or a control character
is refused), no empty, ``.`` or ``..`` segments, an optional ``/vX.Y`` version prefix
taken off. The call is then one of the routes below or refused (403, naming the rule);
its query may hold only the parameters of that call, once each. The front forwards
exactly the call it decided on, rebuilt from these parts at the engine's version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from ccdaemon.dockerfront.policy import Refused

#: What the API version prefix looks like (Docker's own clients send v1.12 to v1.52).
_VERSION = re.compile(r"v(\d{1,2})\.(\d{1,3})")
_BAD = re.compile(r"[\x00-\x1f\x7f%\\/]")
_FLAG = frozenset({"", "0", "1", "true", "false"})


@dataclass(frozen=True, slots=True)
class Call:
    """One request, decided.

    Attributes:
        op: which of Fabric's calls (``container.start``, ``build``...).
        target: the container id or name, or the image name, the call is about.
        params: its query parameters.
        version: the API version the client asked for in its path, if any.
    """

    op: str
    target: str = ""
    params: dict[str, str] = field(default_factory=dict)
    version: str | None = None


# (method, op) by path shape: "C" is a container id or name, "I" an image name.
_CONTAINER_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "start"): "container.start",
    ("POST", "stop"): "container.stop",
    ("POST", "kill"): "container.kill",
    ("POST", "wait"): "container.wait",
    ("POST", "attach"): "container.attach",
    ("GET", "json"): "container.inspect",
    ("PUT", "archive"): "archive.put",
    ("GET", "archive"): "archive.get",
}

# Each call's query parameters and a check of each value.
_PARAMS: dict[str, dict[str, frozenset[str] | re.Pattern[str] | None]] = {
    "ping": {},
    "version": {},
    "container.create": {"name": None, "platform": frozenset({""})},
    "container.start": {},
    "container.stop": {"t": re.compile(r"\d{1,4}")},
    "container.kill": {"signal": re.compile(r"[A-Z0-9]{1,10}")},
    "container.remove": {"force": _FLAG, "v": _FLAG},
    "container.wait": {"condition": frozenset({"not-running", "next-exit", "removed"})},
    "container.attach": {
        "logs": _FLAG,
        "stream": _FLAG,
        "stdout": _FLAG,
        "stderr": _FLAG,
        "stdin": frozenset({"", "0", "false"}),
    },
    "container.inspect": {},
    "archive.put": {"path": None, "noOverwriteDirNonDir": _FLAG},
    "archive.get": {"path": None},
    "image.inspect": {},
    "build": {},  # the build's own allow-list is FrontPolicy.build's
}


def decide(method: str, target: str) -> Call:
    """The call ``method target`` is, or Refused (403; 400 for a malformed target)."""
    path, _, query = target.partition("?")
    segments = _segments(path)
    version = None
    if segments and _VERSION.fullmatch(segments[0]):
        version, segments = segments[0][1:], segments[1:]
    call = _route(method, segments)
    params = _params(call.op, query)
    return Call(call.op, call.target, params, version)


def _segments(path: str) -> list[str]:
    if not path.startswith("/"):
        raise Refused(f"request target {path[:80]!r} is not an absolute path", status=400)
    try:
        segments = [unquote(s, errors="strict") for s in path[1:].split("/")]
    except UnicodeDecodeError:
        raise Refused(f"path {path[:120]!r} escapes no UTF-8 text", status=400) from None
    for s in segments:
        if s in {"", ".", ".."} or _BAD.search(s):
            raise Refused(f"path {path[:120]!r} is not a plain path; refused", status=400)
    return segments


def _route(method: str, segments: list[str]) -> Call:  # noqa: PLR0911 -- one return per route
    shown = "/" + "/".join(segments)
    match segments:
        case ["_ping"] if method in {"GET", "HEAD"}:
            return Call("ping")
        case ["version"] if method == "GET":
            return Call("version")
        case ["containers", "create"] if method == "POST":
            return Call("container.create")
        case ["containers", container] if method == "DELETE":
            return Call("container.remove", container)
        case ["containers", container, action] if (method, action) in _CONTAINER_ROUTES:
            return Call(_CONTAINER_ROUTES[method, action], container)
        case ["images", *name, "json"] if method == "GET" and name:
            return Call("image.inspect", "/".join(name))
        case ["build"] if method == "POST":
            return Call("build")
    raise Refused(
        f"{method} {shown[:120]} is not a call of Fabric's Docker controller; ccdaemon's "
        "Docker-API front serves only those"
    )


def _params(op: str, query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise Refused(f"query {query[:80]!r} is malformed", status=400) from None
    allowed = _PARAMS[op]
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise Refused(f"query parameter {key} is given twice", status=400)
        if op != "build":
            if key not in allowed:
                raise Refused(f"query parameter {key} is not one Fabric sends with {op}")
            rule = allowed[key]
            valid = (
                rule is None
                or (isinstance(rule, frozenset) and value in rule)
                or (isinstance(rule, re.Pattern) and rule.fullmatch(value) is not None)
            )
            if not valid:
                raise Refused(f"query parameter {key}={value[:40]!r} is refused", status=400)
        params[key] = value
    return params
