"""Import the peer's core.yaml: the settings Fabric's docker controller reads, nothing else.

A peer that launched its own chaincode containers kept those settings in core.yaml
(``peer.*``, ``vm.*``, ``chaincode.*``); pointing ccdaemon at the same file keeps the
containers it makes identical to the peer's. The rest of core.yaml is the peer's own
business and is not looked at.

Keys are found case-insensitively, as viper finds them. An empty YAML value (``Dns:``
with nothing after it) counts as not set. Fabric's ``CORE_*`` environment overrides are
the peer's environment, not ccdaemon's, so they are not applied here: set the same value
in ccdaemon's TOML or its ``CCDAEMON_*`` variables instead.

``ConfigError`` lives here, not in ``ccdaemon.config``, because config builds on this
module; ``ccdaemon.config`` re-exports it.
"""

from __future__ import annotations

import math
import platform
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ccdaemon.errors import CcdaemonError
from ccdaemon.runtime.errors import InvalidRequest
from ccdaemon.runtime.hostconfig import HostConfig

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

__all__ = ["ConfigError", "CoreYaml", "import_core_yaml", "parse_duration"]


class ConfigError(CcdaemonError):
    """A setting ccdaemon cannot use. The message names where it came from and the key.

    Attributes:
        where: the file (ccdaemon's TOML or the peer's core.yaml), or ``environment``.
        key: the dotted key as written there, or the environment variable; None when the
            fault is the file as a whole (missing, not TOML or YAML).
    """

    def __init__(self, where: str | Path, key: str | None, message: str) -> None:
        head = f"{where}: {key}" if key else str(where)
        super().__init__(f"{head}: {message}")
        self.where = str(where)
        self.key = key


@dataclass(frozen=True, slots=True)
class CoreYaml:
    """What core.yaml set, under ccdaemon's own dotted keys (as in its TOML).

    Attributes:
        path: the core.yaml file read.
        values: only the keys core.yaml set, parsed: ``runtime.peer_id`` is a str,
            ``runtime.startup_timeout`` seconds as a float, ``runtime.host_config`` a
            HostConfig, ``engine.tls.ca`` (and ``.cert``, ``.key``) a Path, the
            ``images.*`` names with Fabric's ``$(...)`` variables substituted.
        origins: for each key of ``values``, the core.yaml key it came from, so that a
            value ccdaemon refuses later is reported where the operator wrote it.
    """

    path: Path
    values: Mapping[str, Any]
    origins: Mapping[str, str]


# Fabric's metadata.DockerNamespace, the $(DOCKER_NS) of its image names.
DOCKER_NS = "hyperledger"

# Go's GOARCH for the machines Fabric publishes images for; $(ARCH) in image names.
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}

_VARIABLE = re.compile(r"\$\(([^)]*)\)")

# One "<number><unit>" element of a Go duration; "ms" is tried before "m".
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_ELEMENT = r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)"
_DURATION = re.compile(f"(?:{_DURATION_ELEMENT})+")


def parse_duration(text: str) -> float:
    """Read a Go duration (``300s``, ``5m``, ``1m30s``, ``1.5h``, ``250ms``) as seconds.

    Args:
        text: the duration, with an optional sign, as Go's ``time.ParseDuration`` takes it.

    Returns:
        The duration in seconds.

    Raises:
        ValueError: ``text`` is not a Go duration.
    """
    body = text[1:] if text[:1] in {"+", "-"} else text
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":  # the one duration Go allows without a unit
        return 0.0
    if not _DURATION.fullmatch(body):
        raise ValueError(f"not a Go duration such as 300s, 5m or 1m30s: {text!r}")
    total = sum(
        float(number) * _DURATION_UNITS[unit]
        for number, unit in re.findall(_DURATION_ELEMENT, body)
    )
    return sign * total


def import_core_yaml(path: Path, *, fabric_version: str = "2.5.0") -> CoreYaml:
    """Read the settings of Fabric's docker controller from the peer's core.yaml.

    Mapped (core.yaml key -> ccdaemon key): ``peer.id`` -> ``runtime.peer_id``,
    ``peer.networkId`` -> ``runtime.network_id``, ``vm.endpoint`` -> ``engine.endpoint``,
    ``vm.docker.tls.*.file`` -> ``engine.tls.*`` (only when ``vm.docker.tls.enabled``;
    relative paths against the core.yaml's directory, as Fabric's ``config.GetPath``),
    ``vm.docker.attachStdout`` -> ``runtime.attach_stdout``, ``vm.docker.hostConfig`` ->
    ``runtime.host_config``, ``chaincode.startuptimeout`` -> ``runtime.startup_timeout``,
    ``chaincode.logging.{level,shim,format}`` -> ``runtime.logging.*``,
    ``chaincode.builder`` -> ``images.golang_builder``, ``chaincode.golang.runtime`` ->
    ``images.golang_runtime``, ``chaincode.golang.dynamicLink`` -> ``golang.dynamic_link``,
    and ``chaincode.{java,node}.runtime`` -> both the builder and the runtime image of
    that language, since Fabric builds them in their runtime.

    Args:
        path: the core.yaml file.
        fabric_version: Fabric's version, for ``$(PROJECT_VERSION)`` and
            ``$(TWO_DIGIT_VERSION)`` in image names.

    Returns:
        The settings core.yaml gave, under ccdaemon's keys.

    Raises:
        ConfigError: the file cannot be read or is not YAML (key None), or a key has a
            value Fabric would not accept (the dotted core.yaml key is named).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(path, None, f"cannot read the peer's core.yaml: {err}") from err
    # Imported here: only a daemon pointed at a core.yaml needs the YAML parser.
    import yaml  # noqa: PLC0415

    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(path, None, f"not valid YAML: {err}") from err
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(path, None, "must be a YAML mapping at the top level")
    reader = _Reader(path, tree)
    _read_settings(reader, _image_variables(fabric_version))
    return CoreYaml(path=path, values=reader.values, origins=reader.origins)


def _read_settings(reader: _Reader, variables: Mapping[str, str]) -> None:
    """Record each setting of Fabric's docker controller that core.yaml gives."""

    def image(value: object) -> str:
        return _substitute(_string(value), variables)

    reader.map("peer.id", "runtime.peer_id", _string)
    reader.map("peer.networkId", "runtime.network_id", _string)
    reader.map("peer.localMspId", "runtime.mspid", _string)
    reader.map("vm.endpoint", "engine.endpoint", _string)
    reader.map("vm.docker.attachStdout", "runtime.attach_stdout", _boolean)
    reader.map("vm.docker.hostConfig", "runtime.host_config", _host_config)
    reader.map("chaincode.startuptimeout", "runtime.startup_timeout", _duration)
    for name in ("level", "shim", "format"):
        reader.map(f"chaincode.logging.{name}", f"runtime.logging.{name}", _string)
    reader.map("chaincode.builder", "images.golang_builder", image)
    reader.map("chaincode.golang.runtime", "images.golang_runtime", image)
    reader.map("chaincode.golang.dynamicLink", "golang.dynamic_link", _boolean)
    for language in ("java", "node"):
        for role in ("builder", "runtime"):
            reader.map(f"chaincode.{language}.runtime", f"images.{language}_{role}", image)
    if reader.get("vm.docker.tls.enabled", _boolean):
        for name in ("ca", "cert", "key"):
            reader.map(f"vm.docker.tls.{name}.file", f"engine.tls.{name}", reader.path)


class _Reader:
    """Looks keys up in one core.yaml and collects the values under ccdaemon's keys."""

    def __init__(self, path: Path, tree: dict[Any, Any]) -> None:
        self._file = path
        self._tree = tree
        self.values: dict[str, Any] = {}
        self.origins: dict[str, str] = {}

    def get(self, dotted: str, parse: Callable[[object], Any]) -> Any:
        """The parsed value of ``dotted``, or None when core.yaml does not set it."""
        node: object = self._tree
        walked: list[str] = []
        for part in dotted.split("."):
            if not isinstance(node, dict):
                raise ConfigError(self._file, ".".join(walked), "must be a mapping")
            walked.append(part)
            node = next((v for k, v in node.items() if str(k).lower() == part.lower()), None)
            if node is None:
                return None
        try:
            return parse(node)
        except InvalidRequest as err:
            # HostConfig names its own key ("hostConfig.Memory"), below vm.docker.
            where = f"{dotted.rpartition('.')[0]}.{err.field}"
            raise ConfigError(self._file, where, str(err).removeprefix(f"{err.field}: ")) from err
        except (TypeError, ValueError) as err:
            raise ConfigError(self._file, dotted, str(err)) from err

    def map(self, dotted: str, key: str, parse: Callable[[object], Any]) -> None:
        """Record ``dotted``'s value under ccdaemon's ``key``, if core.yaml sets it."""
        value = self.get(dotted, parse)
        if value is not None:
            self.values[key] = value
            self.origins[key] = dotted

    def path(self, value: object) -> Path:
        """A file named in core.yaml: relative to the core.yaml's directory, as in Fabric."""
        text = _string(value)
        if not text:
            raise ValueError("must name a file, not be empty")
        return self._file.parent / text


def _string(value: object) -> str:
    # viper's GetString turns numbers into text (a networkId of 1 is "1"); lists,
    # mappings and booleans are almost certainly a mistake, so they are refused.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"must be a string, got {value!r}")
    return str(value)


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"must be true or false, got {value!r}")
    return value


def _duration(value: object) -> float:
    # viper's GetDuration reads a bare number, or a string without a unit, as
    # nanoseconds: `startuptimeout: 300` is 300ns to the peer (then floored to 5 s), so
    # it means the same here rather than silently becoming five minutes.
    if isinstance(value, bool):
        raise TypeError(f"must be a Go duration such as 300s, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value) * 1e-9
    elif isinstance(value, str):
        text = value.strip()
        seconds = parse_duration(text if re.search(r"[a-z\u00b5\u03bc]", text) else f"{text}ns")
    else:
        raise TypeError(f"must be a Go duration such as 300s, got {value!r}")
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"must be a duration of zero or more, got {value!r}")
    return seconds


def _host_config(value: object) -> HostConfig:
    if not isinstance(value, dict):
        raise TypeError(f"must be a mapping of Docker HostConfig keys, got {value!r}")
    return HostConfig.from_core_yaml({str(k): v for k, v in value.items()})


def _image_variables(fabric_version: str) -> dict[str, str]:
    """The variables Fabric substitutes in image names, for ``fabric_version``.

    2.x's GetDockerImageFromConfig knows four; 1.4's ParseDockerfileTemplate also
    ``$(BASE_DOCKER_NS)`` and ``$(BASE_VERSION)``, the fabric-baseimage release its
    Makefile built with (known here for the releases in ``_BASE_VERSIONS``).
    """
    version = fabric_version.removeprefix("v")
    two_digit = version if version == "latest" else ".".join(version.split(".")[:2])
    machine = platform.machine().lower()
    variables = {
        "DOCKER_NS": DOCKER_NS,
        "PROJECT_VERSION": version,
        "TWO_DIGIT_VERSION": two_digit,
        "ARCH": _GOARCH.get(machine, machine),
    }
    if two_digit.startswith("1."):
        variables["BASE_DOCKER_NS"] = DOCKER_NS
        if version in _BASE_VERSIONS:
            variables["BASE_VERSION"] = _BASE_VERSIONS[version]
    return variables


# Fabric 1.4's BASE_VERSION (its Makefile's BASEIMAGE_RELEASE), by release.
_BASE_VERSIONS = {"1.4.12": "0.4.22"}


def _substitute(name: str, variables: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        known = variables.get(match.group(1))
        if known is None:
            # Fabric would leave it in place and fail at build time; say so now.
            hint = ""
            if match.group(1) in {"BASE_VERSION", "BASE_DOCKER_NS"}:
                hint = (
                    "; it is Fabric 1.4's: set runtime.fabric_version (known: "
                    f"{', '.join(_BASE_VERSIONS)}), or name the image in [images]"
                )
            raise ValueError(
                f"unknown variable $({match.group(1)}) in {name!r}; Fabric "
                f"substitutes only {', '.join(f'$({v})' for v in variables)}{hint}"
            )
        return known

    return _VARIABLE.sub(one, name)
