"""ccdaemon's configuration: loaded once at start into frozen dataclasses.

Each setting is taken from the first of these that gives it:

1. the environment: ``CCDAEMON_<SECTION>_<KEY>`` in upper case (``CCDAEMON_ENGINE_ENDPOINT``,
   ``CCDAEMON_RUNTIME_LOGGING_LEVEL``, ``CCDAEMON_INSTANCE``), read as the key's type;
   ``CCDAEMON_SOCKET`` is also read for ``listen.socket`` and ``CCDAEMON_CORE_YAML`` for
   ``fabric.core_yaml``. For a setting that may be unset, an empty value unsets it;
2. the TOML file (``load``'s path, else ``$CCDAEMON_CONFIG``); relative paths in it are
   relative to its directory, as Fabric reads paths in core.yaml;
3. the peer's core.yaml named by ``[fabric] core_yaml`` (see ``ccdaemon.coreyaml``);
4. the defaults of ``sections``, with ``$DOCKER_HOST`` in place of ``engine.endpoint``'s.

A key the TOML file does not know is an error, not ignored: a mistyped key would
otherwise leave its default in force without a word. Every error is a ``ConfigError``
that names where the value came from (the file, or ``environment``) and its key.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ccdaemon.config.sections import (
    DEFAULT_ENDPOINT,
    Config,
    DockerAPIConfig,
    EngineConfig,
    ListenConfig,
    LogConfig,
    PolicyConfig,
    ShutdownConfig,
)
from ccdaemon.coreyaml import ConfigError, import_core_yaml
from ccdaemon.engine.transport import CLIENT_MAX_API, CLIENT_MIN_API, APIVersion, TLSFiles
from ccdaemon.runtime.errors import InvalidRequest
from ccdaemon.runtime.hostconfig import HostConfig
from ccdaemon.runtime.launchconfig import ChaincodeLogging
from ccdaemon.runtime.launcher import RuntimeConfig
from ccdaemon.runtime.platforms import GolangBuild, PlatformImages
from ccdaemon.runtime.swarmlauncher import SwarmConfig

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

__all__ = [
    "DEFAULT_ENDPOINT",
    "Config",
    "ConfigError",
    "DockerAPIConfig",
    "EngineConfig",
    "ListenConfig",
    "LogConfig",
    "PolicyConfig",
    "ShutdownConfig",
    "env_name",
    "load",
]

# --- how each key is read ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Kind:
    """How one key is read: ``check`` takes the TOML value, ``text`` an environment string.

    Both raise ValueError with the message that follows the key in a ConfigError.
    """

    check: Callable[[object], object]
    text: Callable[[str], object]


def _must(expected: str, value: object) -> ValueError:
    return ValueError(f"must be {expected}, got {value!r}")


def _string_kind(expected: str, valid: Callable[[str], bool]) -> _Kind:
    def check(value: object) -> str:
        if not isinstance(value, str) or not valid(value):
            raise _must(expected, value)
        return value

    return _Kind(check, check)


def _any_string() -> _Kind:
    return _string_kind("a string", lambda _: True)


def _whole(minimum: int) -> _Kind:
    expected = f"a whole number >= {minimum}"

    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _must(expected, value)
        return value

    def text(raw: str) -> int:
        try:
            return check(int(raw))
        except ValueError:
            raise _must(expected, raw) from None

    return _Kind(check, text)


def _number(minimum: float) -> _Kind:
    expected = f"a number >= {minimum:g}"

    def check(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _must(expected, value)
        if not math.isfinite(value) or value < minimum:
            raise _must(expected, value)
        return float(value)

    def text(raw: str) -> float:
        try:
            return check(float(raw))
        except ValueError:
            raise _must(expected, raw) from None

    return _Kind(check, text)


_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


def _boolean() -> _Kind:
    def check(value: object) -> bool:
        if not isinstance(value, bool):
            raise _must("true or false", value)
        return value

    def text(raw: str) -> bool:
        word = raw.strip().lower()
        if word not in _TRUE | _FALSE:
            raise _must("one of 1, true, yes, 0, false, no", raw)
        return word in _TRUE

    return _Kind(check, text)


def _path() -> _Kind:
    def check(value: object) -> Path:
        if not isinstance(value, str) or not value:
            raise _must("a file path", value)
        return Path(value)

    return _Kind(check, check)


def _optional(kind: _Kind) -> _Kind:
    """``kind``, or None for an empty string: how the environment unsets a TOML setting."""

    def check(value: object) -> object:
        return None if value == "" else kind.check(value)

    def text(raw: str) -> object:
        return None if raw == "" else kind.text(raw)

    return _Kind(check, text)


_MAX_MODE = 0o777


def _mode() -> _Kind:
    expected = 'permission bits, such as "0660" or 0o660'

    def check(value: object) -> int:
        if isinstance(value, str):
            try:
                value = int(value.removeprefix("0o"), 8)
            except ValueError:
                raise _must(expected, value) from None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_MODE:
            raise _must(expected, value)
        return value

    return _Kind(check, check)


def _strings() -> _Kind:
    """A list of strings; in the environment, comma-separated."""

    def check(value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise _must("a list of strings", value)
        return tuple(value)

    def text(raw: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    return _Kind(check, text)


def _choice(*options: str) -> _Kind:
    return _string_kind(f"one of {', '.join(options)}", lambda v: v in options)


def _level() -> _Kind:
    names = logging.getLevelNamesMapping()

    def check(value: object) -> str:
        if not isinstance(value, str) or value.upper() not in names:
            raise _must(f"a log level ({', '.join(sorted(names))})", value)
        return value.upper()

    return _Kind(check, check)


def _api_version(value: str) -> bool:
    try:
        version = APIVersion.parse(value)
    except ValueError:
        return False
    return CLIENT_MIN_API <= version <= CLIENT_MAX_API


def _endpoint(value: str) -> bool:
    # The engine client's own rule: a bare path is a Unix socket, else unix:// with a
    # path, or tcp://, http:// or https:// with a host (the port has a default).
    if value.startswith("/"):
        return True
    parts = urlsplit(value)
    if parts.scheme == "unix":
        return parts.path.startswith("/")
    return parts.scheme in {"tcp", "http", "https"} and bool(parts.hostname)


_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})", re.ASCII)
_MAX_PORT = 65535


def _host_port(value: str) -> bool:
    match = _HOST_PORT.fullmatch(value)
    return match is not None and 1 <= int(match.group(1)) <= _MAX_PORT


# Fabric's version goes into a Dockerfile unquoted; a label value into engine filters.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*", re.ASCII)
_INSTANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)

_IMAGE_NAMES = tuple(f.name for f in fields(PlatformImages))
_LOG_KEYS = tuple(f.name for f in fields(ChaincodeLogging))
_TLS_KEYS = ("ca", "cert", "key")


def _tcp_keys(table: str) -> dict[str, _Kind]:
    """``tcp`` and its mutual-TLS files, as both ``[listen]`` and ``[docker_api]`` have them."""
    return {
        f"{table}.tcp": _optional(_string_kind("host:port", _host_port)),
        **{f"{table}.tcp_{name}": _optional(_path()) for name in _TLS_KEYS},
    }


#: Every scalar key, dotted as in the TOML file.
_KEYS: dict[str, _Kind] = {
    "instance": _string_kind(
        "a label value (letters, digits, '._-')", lambda v: bool(_INSTANCE.fullmatch(v))
    ),
    "listen.socket": _path(),
    "listen.socket_mode": _mode(),
    "listen.socket_group": _optional(_any_string()),
    **_tcp_keys("listen"),
    "docker_api.socket": _optional(_path()),
    "docker_api.socket_mode": _mode(),
    "docker_api.socket_group": _optional(_any_string()),
    **_tcp_keys("docker_api"),
    "engine.endpoint": _string_kind(
        "unix:///path, tcp://host:port or https://host:port", _endpoint
    ),
    **{f"engine.tls.{name}": _optional(_path()) for name in _TLS_KEYS},
    "engine.api_version": _optional(
        _string_kind(f"an API version from {CLIENT_MIN_API} to {CLIENT_MAX_API}", _api_version)
    ),
    "engine.engine_limit": _whole(1),
    "engine.build_limit": _whole(1),
    "engine.backend": _choice("docker", "swarm"),
    "swarm.network": _string_kind("a network name", bool),
    "swarm.constraints": _strings(),
    "swarm.stop_grace": _number(0),
    "swarm.poll_interval": _number(0.05),
    "swarm.registry": _string_kind(
        "host:port[/prefix] or empty", lambda v: not v or _host_port(v.partition("/")[0])
    ),
    "runtime.network_id": _any_string(),
    "runtime.peer_id": _any_string(),
    "runtime.mspid": _any_string(),
    "runtime.startup_timeout": _number(0),
    "runtime.layout": _choice("2.x", "1.4"),
    "runtime.attach_stdout": _boolean(),
    "runtime.output_lines": _whole(0),
    "runtime.fabric_version": _string_kind("a version", lambda v: bool(_VERSION.fullmatch(v))),
    **{f"runtime.logging.{name}": _any_string() for name in _LOG_KEYS},
    **{f"images.{name}": _any_string() for name in _IMAGE_NAMES},
    "golang.dynamic_link": _boolean(),
    "golang.ldflags": _optional(_any_string()),
    "golang.goproxy": _any_string(),
    "golang.gosumdb": _optional(_any_string()),
    "ca.cert": _optional(_path()),
    "ca.key": _optional(_path()),
    "policy.memory": _whole(0),
    "policy.cpus": _number(0),
    "policy.pids_limit": _whole(0),
    "policy.no_new_privileges": _boolean(),
    "policy.max_package_size": _whole(1),
    "shutdown.stop_chaincodes": _boolean(),
    "shutdown.grace": _number(0),
    "shutdown.stop_timeout": _whole(0),
    "log.format": _choice("console", "json"),
    "log.level": _level(),
    "fabric.core_yaml": _optional(_path()),
}

#: Tables of the TOML file. ``engine.tls`` given in the TOML replaces core.yaml's TLS
#: as a whole (so ``tls = {}`` turns it off); ``runtime.host_config`` holds core.yaml's
#: hostConfig keys, read by HostConfig, each replacing the same key from core.yaml.
_TABLES = frozenset(
    {
        "listen",
        "docker_api",
        "engine",
        "engine.tls",
        "runtime",
        "runtime.logging",
        "runtime.host_config",
    }
    | {"images", "golang", "ca", "policy", "shutdown", "log", "fabric", "swarm"}
)

#: Other names the environment may use: ``CCDAEMON_SOCKET`` is also the CLI's.
_ALIASES = {"CCDAEMON_SOCKET": "listen.socket", "CCDAEMON_CORE_YAML": "fabric.core_yaml"}

_HOST_CONFIG = "runtime.host_config"
_HOST_CONFIG_FIELDS = {f.metadata["key"].lower(): f.name for f in fields(HostConfig)}


def keys() -> tuple[str, ...]:
    """Every dotted key a configuration has, in the example file's order of sections."""
    return (*_KEYS, _HOST_CONFIG)


def env_name(key: str) -> str:
    """The variable that overrides a dotted key: ``log.level``: ``CCDAEMON_LOG_LEVEL``."""
    return "CCDAEMON_" + key.replace(".", "_").upper()


# --- layers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Setting:
    """One value and where it was written, for the error if it is refused later."""

    value: Any
    where: str
    key: str

    def error(self, message: str) -> ConfigError:
        return ConfigError(self.where, self.key, message)

    @property
    def origin(self) -> str:
        """Where the value was set, for ``--check-config``."""
        if self.where == "environment":
            return f"environment {self.key}"
        return f"{self.where}: {self.key}"


@dataclass(slots=True)
class _Layer:
    """The settings of one source; ``tables`` are TOML tables that replace lower layers'."""

    values: dict[str, _Setting] = field(default_factory=dict)
    tables: set[str] = field(default_factory=set)


def load(path: Path | None = None, environ: Mapping[str, str] = os.environ) -> Config:
    """Load the configuration: defaults < core.yaml < TOML file < environment.

    Args:
        path: the TOML file; None reads ``$CCDAEMON_CONFIG`` if set, else no file.
        environ: the environment to read ``CCDAEMON_*`` and ``DOCKER_HOST`` from.

    Returns:
        The configuration.

    Raises:
        ConfigError: a file cannot be read or parsed, a key is unknown, or a value is
            refused; the message names the file (or ``environment``) and the key.
    """
    if path is None and environ.get("CCDAEMON_CONFIG"):
        path = Path(environ["CCDAEMON_CONFIG"])
    docker_host = _docker_host(environ)
    toml = _read_toml(path) if path is not None else _Layer()
    env = _read_env(environ)
    # core.yaml's own place and the Fabric version its image names need come first.
    merged = _merge(docker_host, toml, env)
    core = merged.get("fabric.core_yaml")
    core_yaml: Path | None = core.value if core is not None else None
    if core_yaml is not None:
        version = merged.get("runtime.fabric_version")
        imported = import_core_yaml(
            core_yaml,
            fabric_version=version.value if version else RuntimeConfig().fabric_version,
        )
        layer = _Layer(
            {
                k: _Setting(v, str(core_yaml), imported.origins[k])
                for k, v in imported.values.items()
            }
        )
        merged = _merge(docker_host, layer, toml, env)
    return _build(merged, core_yaml=core_yaml, source=path)


def _read_toml(path: Path) -> _Layer:
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as err:
        raise ConfigError(path, None, f"cannot read the configuration: {err}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(path, None, f"not valid TOML: {err}") from err
    layer = _Layer()
    for key, raw in _walk(path, "", document, layer):
        try:
            value = _KEYS[key].check(raw)
        except ValueError as err:
            raise ConfigError(path, key, str(err)) from err
        if isinstance(value, Path) and not value.is_absolute():
            value = path.parent / value
        layer.values[key] = _Setting(value, str(path), key)
    return layer


def _walk(
    path: Path, prefix: str, table: dict[str, Any], layer: _Layer
) -> Iterator[tuple[str, Any]]:
    """Yield each scalar key of ``table`` with its value; refuse keys nobody reads.

    Raises:
        ConfigError: an unknown key, a table where a value belongs or the reverse, or
            (through the caller's check) a refused value.
    """
    for name, value in table.items():
        key = f"{prefix}{name}"
        if key == _HOST_CONFIG:
            layer.values[key] = _toml_host_config(path, value)
            layer.tables.add(key)
        elif key in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(path, key, f"must be a table, got {value!r}")
            layer.tables.add(key)
            yield from _walk(path, f"{key}.", value, layer)
        elif key in _KEYS:
            yield key, value
        else:
            known = sorted(
                {
                    k.removeprefix(prefix).split(".")[0]
                    for k in (*_KEYS, *_TABLES)
                    if k.startswith(prefix)
                }
            )
            raise ConfigError(path, key, f"unknown key (known here: {', '.join(known)})")


def _toml_host_config(path: Path, value: object) -> _Setting:
    """``[runtime.host_config]``: only the keys given, as HostConfig field -> value."""
    if not isinstance(value, dict):
        raise ConfigError(path, _HOST_CONFIG, f"must be a table, got {value!r}")
    try:
        given = HostConfig.from_core_yaml(value)
    except InvalidRequest as err:
        key = f"runtime.host_config.{err.field.removeprefix('hostConfig.')}"
        raise ConfigError(path, key, str(err).removeprefix(f"{err.field}: ")) from err
    names = [_HOST_CONFIG_FIELDS[k.lower()] for k in value]
    return _Setting({n: getattr(given, n) for n in names}, str(path), _HOST_CONFIG)


def _read_env(environ: Mapping[str, str]) -> _Layer:
    layer = _Layer()
    given: dict[str, tuple[str, str]] = {}  # key -> (variable, text), to catch disagreement
    for name, key in ({env_name(key): key for key in _KEYS} | _ALIASES).items():
        raw = environ.get(name)
        if raw is None:
            continue
        other, other_raw = given.setdefault(key, (name, raw))
        if other_raw != raw:
            raise ConfigError("environment", name, f"disagrees with {other}; set only one")
        try:
            value = _KEYS[key].text(raw)
        except ValueError as err:
            raise ConfigError("environment", name, str(err)) from err
        layer.values[key] = _Setting(value, "environment", name)
    return layer


def _docker_host(environ: Mapping[str, str]) -> _Layer:
    """The lowest layer: ``$DOCKER_HOST``, the engine every Docker client uses by default."""
    raw = environ.get("DOCKER_HOST")
    if not raw:
        return _Layer()
    try:
        value = _KEYS["engine.endpoint"].text(raw)
    except ValueError as err:
        raise ConfigError("environment", "DOCKER_HOST", str(err)) from err
    return _Layer({"engine.endpoint": _Setting(value, "environment", "DOCKER_HOST")})


def _merge(*layers: _Layer) -> dict[str, _Setting]:
    """Later layers win; a TOML ``engine.tls`` table drops the TLS files of lower ones."""
    merged: dict[str, _Setting] = {}
    for layer in layers:
        if "engine.tls" in layer.tables:
            for name in _TLS_KEYS:
                merged.pop(f"engine.tls.{name}", None)
        for key, setting in layer.values.items():
            if key == _HOST_CONFIG and isinstance(setting.value, dict):
                # The TOML's keys, over core.yaml's HostConfig or the default one.
                below = merged.get(key)
                base = below.value if below is not None else HostConfig()
                merged[key] = replace(setting, value=replace(base, **setting.value))
            else:
                merged[key] = setting
    return merged


# --- the dataclasses ------------------------------------------------------------------


def _section(merged: Mapping[str, _Setting], name: str) -> dict[str, Any]:
    """The settings directly in section ``name``, by field name."""
    prefix = f"{name}."
    return {
        key.removeprefix(prefix): setting.value
        for key, setting in merged.items()
        if key.startswith(prefix) and "." not in key.removeprefix(prefix)
    }


def _build(
    merged: Mapping[str, _Setting], *, core_yaml: Path | None, source: Path | None
) -> Config:
    listen = ListenConfig(**_section(merged, "listen"))
    _check_tcp(listen, "listen", merged)
    tls_files = {k: v for k, v in _section(merged, "engine.tls").items() if v is not None}
    engine = EngineConfig(
        **_section(merged, "engine"), tls=TLSFiles(**tls_files) if tls_files else None
    )
    instance = merged["instance"].value if "instance" in merged else Config().instance
    try:
        images = PlatformImages(**_section(merged, "images"))
        golang = GolangBuild(**_section(merged, "golang"))
    except InvalidRequest as err:
        raise merged[err.field].error(str(err).removeprefix(f"{err.field}: ")) from err
    runtime = RuntimeConfig(
        **{"host_config": HostConfig(), **_section(merged, "runtime")},
        logging=ChaincodeLogging(**_section(merged, "runtime.logging")),
        instance=instance,
        images=images,
        golang=golang,
    )
    ca = _section(merged, "ca")
    if (ca.get("cert") is None) != (ca.get("key") is None):
        given = merged["ca.cert" if ca.get("cert") is not None else "ca.key"]
        raise given.error("the chaincode CA needs both [ca] cert and key, or neither")
    docker_api = DockerAPIConfig(**_section(merged, "docker_api"))
    _check_tcp(docker_api, "docker_api", merged)
    for name in ("socket", "tcp"):  # the front and the control API on one address
        mine = getattr(docker_api, name)
        if mine is not None and mine == getattr(listen, name):
            raise merged[f"docker_api.{name}"].error(f"must not be the control API's listen.{name}")
    return Config(
        listen=listen,
        docker_api=docker_api,
        engine=engine,
        runtime=runtime,
        images=images,
        ca_cert=ca.get("cert"),
        ca_key=ca.get("key"),
        policy=PolicyConfig(**_section(merged, "policy")),
        shutdown=ShutdownConfig(**_section(merged, "shutdown")),
        log=LogConfig(**_section(merged, "log")),
        swarm=SwarmConfig(**_section(merged, "swarm")),
        instance=instance,
        core_yaml=core_yaml,
        source=source,
        origins={key: setting.origin for key, setting in merged.items()},
    )


#: What each table's ``tcp`` serves, for the error that names its missing files.
_SERVES = {"listen": "the control API", "docker_api": "the Docker-API front"}


def _check_tcp(
    section: ListenConfig | DockerAPIConfig, table: str, merged: Mapping[str, _Setting]
) -> None:
    """``<table>.tcp`` serves with mutual TLS only: its three files must all be set."""
    if section.tcp is None:
        return
    missing = [f"{table}.tcp_{n}" for n in _TLS_KEYS if getattr(section, f"tcp_{n}") is None]
    if missing:
        raise merged[f"{table}.tcp"].error(
            f"serving {_SERVES[table]} on TCP needs mutual TLS: set {', '.join(missing)}"
        )
