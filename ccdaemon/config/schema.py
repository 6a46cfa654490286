"""What the configuration may hold: each dotted key's kind of value, as types msgspec checks.

A kind is a type, most ``Annotated`` with a ``msgspec.Meta``: msgspec checks the type and
range, and ``Meta.description`` ends a refusal: ``must be <description>, got <value>``.
What no type or range says (an endpoint's scheme, an API version, a ``host:port``) is a
small named check, ``Meta.extra["check"]``. A kind that admits None may be unset, by an
empty string. The file's tables are Structs built from the keys (each field UNSET unless
given) that refuse a key they do not know.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from dataclasses import fields
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from msgspec import UNSET, Meta, Struct, UnsetType, defstruct

from ccdaemon.engine.transport import CLIENT_MAX_API, CLIENT_MIN_API, APIVersion
from ccdaemon.runtime.launchconfig import ChaincodeLogging
from ccdaemon.runtime.platforms import PlatformImages

#: Core.yaml's hostConfig keys, read by HostConfig; the one table not of Structs.
HOST_CONFIG = "runtime.host_config"
TLS_KEYS = ("ca", "cert", "key")

_MAX_MODE = 0o777
_MAX_PORT = 65535
_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})", re.ASCII)
_LEVELS = logging.getLevelNamesMapping()


def _endpoint(value: str) -> str:
    # The engine client's own rule: a bare path is a Unix socket, else unix:// with a
    # path, or tcp://, http:// or https:// with a host (the port has a default).
    if value.startswith("/"):
        return value
    parts = urlsplit(value)
    if parts.scheme == "unix":
        valid = parts.path.startswith("/")
    else:
        valid = parts.scheme in {"tcp", "http", "https"} and bool(parts.hostname)
    if not valid:
        raise ValueError(value)
    return value


def _api_version(value: str) -> str:
    if not CLIENT_MIN_API <= APIVersion.parse(value) <= CLIENT_MAX_API:
        raise ValueError(value)
    return value


def _host_port(value: str) -> str:
    match = _HOST_PORT.fullmatch(value)
    if match is None or not 1 <= int(match.group(1)) <= _MAX_PORT:
        raise ValueError(value)
    return value


def _registry(value: str) -> str:
    if value:
        _host_port(value.partition("/")[0])
    return value


def _mode(value: int | str) -> int:
    # As a number (TOML's 0o660) or as octal text, "0660" or "0o660".
    mode = value if isinstance(value, int) else int(value.removeprefix("0o"), 8)
    if not 0 <= mode <= _MAX_MODE:
        raise ValueError(value)
    return mode


def _level(value: str) -> str:
    if value.upper() not in _LEVELS:
        raise ValueError(value)
    return value.upper()


def _file(value: str) -> Path:
    if not value:
        raise ValueError(value)
    return Path(value)


def _checked(description: str, check: object) -> Meta:
    return Meta(description=description, extra={"check": check})


_FINITE = sys.float_info.max  # TOML reads inf; a duration must be finite
_Whole = Annotated[int, Meta(ge=0, description="a whole number >= 0")]
_WholeFrom1 = Annotated[int, Meta(ge=1, description="a whole number >= 1")]
_Number = Annotated[float, Meta(ge=0, le=_FINITE, description="a number >= 0")]
_File = Annotated[str, _checked("a file path", _file)]
_HostPort = Annotated[str, _checked("host:port", _host_port)]
_Mode = Annotated[int | str, _checked('permission bits, such as "0660" or 0o660', _mode)]


def _served(table: str, socket: Any) -> dict[str, Any]:
    """A socket and ``tcp`` with its mutual-TLS files, as [listen] and [docker_api] have."""
    return {
        f"{table}.socket": socket,
        f"{table}.socket_mode": _Mode,
        f"{table}.socket_group": str | None,
        f"{table}.tcp": _HostPort | None,
        **{f"{table}.tcp_{name}": _File | None for name in TLS_KEYS},
    }


#: Every key of the file, dotted, with its kind, in the example file's order of sections.
KINDS: dict[str, Any] = {
    # A label value: it goes into engine filters.
    "instance": Annotated[
        str,
        Meta(
            pattern=r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z",
            description="a label value (letters, digits, '._-')",
        ),
    ],
    **_served("listen", _File),
    **_served("docker_api", _File | None),
    "engine.endpoint": Annotated[
        str, _checked("unix:///path, tcp://host:port or https://host:port", _endpoint)
    ],
    **{f"engine.tls.{name}": _File | None for name in TLS_KEYS},
    "engine.api_version": Annotated[
        str, _checked(f"an API version from {CLIENT_MIN_API} to {CLIENT_MAX_API}", _api_version)
    ]
    | None,
    "engine.engine_limit": _WholeFrom1,
    "engine.build_limit": _WholeFrom1,
    "engine.build_cache_size": _Whole,
    "engine.backend": Literal["docker", "swarm"],
    "swarm.network": Annotated[str, Meta(min_length=1, description="a network name")],
    "swarm.constraints": Annotated[
        tuple[Annotated[str, Meta(min_length=1)], ...], Meta(description="a list of strings")
    ],
    "swarm.stop_grace": _Number,
    "swarm.poll_interval": Annotated[
        float, Meta(ge=0.05, le=_FINITE, description="a number >= 0.05")
    ],
    "swarm.registry": Annotated[str, _checked("host:port[/prefix] or empty", _registry)],
    "runtime.network_id": str,
    "runtime.peer_id": str,
    "runtime.mspid": str,
    "runtime.startup_timeout": _Number,
    "runtime.layout": Literal["2.x", "1.4"],
    "runtime.attach_stdout": bool,
    "runtime.output_lines": _Whole,
    # It goes into a Dockerfile, unquoted.
    "runtime.fabric_version": Annotated[
        str, Meta(pattern=r"\A[A-Za-z0-9][A-Za-z0-9._+-]*\Z", description="a version")
    ],
    **{f"runtime.logging.{f.name}": str for f in fields(ChaincodeLogging)},
    **{f"images.{f.name}": str for f in fields(PlatformImages)},  # PlatformImages checks them
    "golang.dynamic_link": bool,
    "golang.ldflags": str | None,
    "golang.goproxy": str,
    "golang.gosumdb": str | None,
    "ca.cert": _File | None,
    "ca.key": _File | None,
    "policy.memory": _Whole,
    "policy.cpus": _Number,
    "policy.pids_limit": _Whole,
    "policy.no_new_privileges": bool,
    "policy.max_package_size": _WholeFrom1,
    "shutdown.stop_chaincodes": bool,
    "shutdown.grace": _Number,
    "shutdown.stop_timeout": _Whole,
    "log.format": Literal["console", "json"],
    "log.level": Annotated[str, _checked(f"a log level ({', '.join(sorted(_LEVELS))})", _level)],
    "fabric.core_yaml": _File | None,
    # Last, as --check-config shows it: given in the TOML, its keys replace core.yaml's.
    HOST_CONFIG: dict[str, Any],
}

#: The tables, by dotted key ("" is the file), each a Struct of its keys and tables.
TABLES: dict[str, type[Struct]] = {}


def _table(prefix: str) -> type[Struct]:
    """The Struct of the table at ``prefix`` (``engine.``), its tables' Structs made too."""
    fields_ = []
    for name in dict.fromkeys(
        k.removeprefix(prefix).split(".")[0] for k in KINDS if k.startswith(prefix)
    ):
        key = f"{prefix}{name}"
        kind = KINDS[key] if key in KINDS else _table(f"{key}.")
        fields_.append((name, kind | UnsetType, UNSET))
    struct = defstruct(prefix.rstrip(".") or "Document", fields_, forbid_unknown_fields=True)
    TABLES[prefix.rstrip(".")] = struct
    return struct


Document = _table("")


def keys() -> tuple[str, ...]:
    """Every dotted key a configuration has, in the example file's order of sections."""
    return tuple(KINDS)


def env_name(key: str) -> str:
    """The variable that overrides a dotted key: ``log.level``: ``CCDAEMON_LOG_LEVEL``."""
    return "CCDAEMON_" + key.replace(".", "_").upper()


def _flat(kind: Any) -> tuple[list[Any], list[Meta]]:
    """The members of ``kind``'s union, ``Annotated`` peeled off, and the Meta on the way."""
    if get_origin(kind) is Annotated:
        inner, *extras = get_args(kind)
        members, metas = _flat(inner)
        return members, [*(m for m in extras if isinstance(m, Meta)), *metas]
    if get_origin(kind) in {Union, UnionType}:
        flat = [_flat(arg) for arg in get_args(kind)]
        return [m for f in flat for m in f[0]], [m for f in flat for m in f[1]]
    return [kind], []


@functools.cache  # read once per key: a load looks each key up again
def _parts(key: str) -> tuple[list[Any], list[Meta]]:
    return _flat(KINDS[key])


def members(key: str) -> tuple[Any, ...]:
    """The plain types a value of ``key`` may have: ``(int,)``, ``(int, str)``, ``(tuple,)``."""
    return tuple(get_origin(m) or m for m in _parts(key)[0] if m is not NoneType)


def expected(key: str) -> str:
    """What a value of ``key`` must be, in words: ``a whole number >= 1``."""
    if key in TABLES or members(key) == (dict,):
        return "a table"
    plain, metas = _parts(key)
    if described := next((m.description for m in metas if m.description), None):
        return described
    if get_origin(plain[0]) is Literal:
        return f"one of {', '.join(get_args(plain[0]))}"
    return {bool: "true or false", str: "a string"}[plain[0]]


def checked(key: str, value: Any) -> Any:
    """``value``, of ``key``'s type, after its kind's named check; ``""`` unsets, if it may.

    Raises:
        ValueError: the check refuses ``value``.
    """
    plain, metas = _parts(key)
    if value == "" and NoneType in plain:
        return None
    checks = [m.extra["check"] for m in metas if m.extra]
    return checks[0](value) if checks else value
