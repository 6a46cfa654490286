"""The configuration's sources, each one layer of settings, and their merge.

From lowest to highest: ``$DOCKER_HOST``, the peer's core.yaml, the TOML file, the
``CCDAEMON_*`` environment. msgspec checks the TOML file against the file's Structs and
each variable against its key's kind (``schema``); a refusal, which msgspec places by its
path (``$.engine.engine_limit``), is told again under the source and the key as written
there. Each setting remembers where it was written, so that a value refused later (or
``--check-config``) names that place.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ccdaemon.config import schema
from ccdaemon.coreyaml import ConfigError, import_core_yaml
from ccdaemon.runtime.errors import InvalidRequest
from ccdaemon.runtime.hostconfig import HostConfig

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

#: Other names the environment may use: ``CCDAEMON_SOCKET`` is also the CLI's.
_ALIASES = {"CCDAEMON_SOCKET": "listen.socket", "CCDAEMON_CORE_YAML": "fabric.core_yaml"}
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}
_WORDS = "one of 1, true, yes, 0, false, no"
_UNKNOWN = re.compile(r"Object contains unknown field `(.*)`", re.DOTALL)
_HOST_CONFIG_FIELDS = {f.metadata["key"].lower(): f.name for f in fields(HostConfig)}


@dataclass(frozen=True, slots=True)
class Setting:
    """One value and where it was written, for the error if it is refused later."""

    value: Any
    where: str
    key: str

    def error(self, message: str) -> ConfigError:
        """This value refused, naming where it was written."""
        return ConfigError(self.where, self.key, message)

    @property
    def origin(self) -> str:
        """Where the value was set, for ``--check-config``."""
        if self.where == "environment":
            return f"environment {self.key}"
        return f"{self.where}: {self.key}"


@dataclass(slots=True)
class Layer:
    """The settings of one source; ``tables`` are TOML tables that replace lower layers'."""

    values: dict[str, Setting] = field(default_factory=dict)
    tables: set[str] = field(default_factory=set)


def toml(path: Path) -> Layer:
    """The TOML file's layer, or ConfigError: unreadable, not TOML, a key unknown or refused."""
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as err:
        raise ConfigError(path, None, f"cannot read the configuration: {err}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(path, None, f"not valid TOML: {err}") from err
    layer = Layer()
    for key, value in _given(document, _decode(document, path), ""):
        if key in schema.TABLES:
            layer.tables.add(key)
        elif key == schema.HOST_CONFIG:
            layer.values[key] = _host_config(path, value)
        else:
            layer.values[key] = Setting(_checked(path, document, key, value), str(path), key)
    return layer


def _host_config(path: Path, value: dict[str, Any]) -> Setting:
    """``[runtime.host_config]``: only the keys given, as HostConfig field -> value."""
    try:
        given = HostConfig.from_core_yaml(value)
    except InvalidRequest as err:
        key = f"{schema.HOST_CONFIG}.{err.field.removeprefix('hostConfig.')}"
        raise ConfigError(path, key, str(err).removeprefix(f"{err.field}: ")) from err
    names = [_HOST_CONFIG_FIELDS[k.lower()] for k in value]
    return Setting({n: getattr(given, n) for n in names}, str(path), schema.HOST_CONFIG)


def environment(environ: Mapping[str, str]) -> Layer:
    """The ``CCDAEMON_*`` variables' layer, or ConfigError: a text refused, two names differ."""
    texts: dict[str, tuple[list[str], str]] = {}  # key -> (its variables, the text)
    scalars = {schema.env_name(key): key for key in schema.KINDS if key != schema.HOST_CONFIG}
    for name, key in (scalars | _ALIASES).items():
        raw = environ.get(name)
        if raw is None:
            continue
        names, other_raw = texts.setdefault(key, ([], raw))
        if other_raw != raw:
            raise ConfigError("environment", name, f"disagrees with {names[0]}; set only one")
        names.append(name)
    # A key named twice is reported under its first name, and comes from its last.
    values = {key: _text(key, names[0], raw) for key, (names, raw) in texts.items()}
    return Layer({k: Setting(values[k], "environment", n[-1]) for k, (n, _) in texts.items()})


def docker_host(environ: Mapping[str, str]) -> Layer:
    """The lowest layer: ``$DOCKER_HOST``, the engine every Docker client uses by default."""
    raw = environ.get("DOCKER_HOST")
    if not raw:
        return Layer()
    endpoint = _text("engine.endpoint", "DOCKER_HOST", raw)
    return Layer({"engine.endpoint": Setting(endpoint, "environment", "DOCKER_HOST")})


def _text(key: str, name: str, raw: str) -> Any:
    """The variable ``name``'s text as a value of ``key``, checked as the file's would be."""
    try:
        return schema.checked(key, msgspec.convert(_read(key, raw), schema.KINDS[key], strict=True))
    except (ValueError, msgspec.ValidationError) as err:
        words = _WORDS if schema.members(key) == (bool,) else schema.expected(key)
        raise ConfigError("environment", name, f"must be {words}, got {raw!r}") from err


def _read(key: str, raw: str) -> Any:
    """Text as the file would give ``key``'s value: ``"5"`` as 5, ``"a, b"`` as a list."""
    plain = schema.members(key)
    if plain == (bool,):
        word = raw.strip().lower()
        if word not in _TRUE | _FALSE:
            raise ValueError(_WORDS)
        return word in _TRUE
    if plain == (tuple,):
        return [part.strip() for part in raw.split(",") if part.strip()]
    return plain[0](raw) if plain in {(int,), (float,)} else raw


def core_yaml(path: Path, fabric_version: str) -> Layer:
    """The peer's core.yaml's layer (``ccdaemon.coreyaml``), each key where it was written."""
    imported = import_core_yaml(path, fabric_version=fabric_version)
    return Layer(
        {k: Setting(v, str(path), imported.origins[k]) for k, v in imported.values.items()}
    )


def merge(*layers: Layer) -> dict[str, Setting]:
    """Later layers win; a TOML ``engine.tls`` table drops the TLS files of lower ones."""
    merged: dict[str, Setting] = {}
    for layer in layers:
        if "engine.tls" in layer.tables:
            for name in schema.TLS_KEYS:
                merged.pop(f"engine.tls.{name}", None)
        for key, setting in layer.values.items():
            if key == schema.HOST_CONFIG and isinstance(setting.value, dict):
                # The TOML's keys, over core.yaml's HostConfig or the default one.
                below = merged.get(key)
                base = below.value if below is not None else HostConfig()
                merged[key] = replace(setting, value=replace(base, **setting.value))
            else:
                merged[key] = setting
    return merged


# --- decoding: msgspec's checks, told again in the source's terms ----------------------


def _decode(document: Mapping[str, Any], path: Path) -> msgspec.Struct:
    """The TOML ``document`` as the file's Structs: unknown keys, tables and types checked."""
    try:
        return msgspec.convert(document, schema.Document, strict=True)
    except msgspec.ValidationError as err:
        reason, at, where = str(err).rpartition(" - at `")
        # At the top level msgspec names no path; an item of a list is refused as the list.
        key = ".".join(re.findall(r"\.([^.\[`]+)", where)) if at else ""
        unknown = _UNKNOWN.fullmatch(reason if at else str(err))
        if unknown is None:
            raise _must(path, document, key) from err
        known = ", ".join(sorted(schema.TABLES[key].__struct_fields__))
        name = f"{key}.{unknown[1]}".lstrip(".")
        raise ConfigError(path, name, f"unknown key (known here: {known})") from err


def _checked(path: Path, document: Mapping[str, Any], key: str, value: Any) -> Any:
    """A decoded value after its kind's named check; a path relative to the file's directory."""
    try:
        value = schema.checked(key, value)
    except ValueError as err:
        raise _must(path, document, key) from err
    return path.parent / value if isinstance(value, Path) else value


def _must(path: Path, document: Mapping[str, Any], key: str) -> ConfigError:
    """``key`` refused: what its kind must be, and its value as the file wrote it."""
    value: Any = document
    for name in key.split("."):
        value = value[name]
    return ConfigError(path, key, f"must be {schema.expected(key)}, got {value!r}")


def _given(
    document: Mapping[str, Any], decoded: msgspec.Struct, prefix: str
) -> Iterator[tuple[str, Any]]:
    """Each dotted key ``document`` gives, tables too, in its order, with its decoded value."""
    for name in document:
        key, value = f"{prefix}{name}", getattr(decoded, name)
        yield key, value
        if key in schema.TABLES:
            yield from _given(document[name], value, f"{key}.")
