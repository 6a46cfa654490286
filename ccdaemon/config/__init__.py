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

Here: ``load``, and the checks across keys (``tcp`` needs its mutual-TLS files, the
chaincode CA both its files, the front an address of its own). ``sections`` holds the
dataclasses, ``schema`` each key's kind of value and the file's tables as msgspec Structs,
``sources`` the layers (TOML, environment, ``$DOCKER_HOST``, core.yaml) and their merge.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccdaemon.config import sources
from ccdaemon.config.schema import TLS_KEYS, env_name, keys
from ccdaemon.config.sections import (
    Config,
    DockerAPIConfig,
    EngineConfig,
    ListenConfig,
    LogConfig,
    PolicyConfig,
    ShutdownConfig,
)
from ccdaemon.coreyaml import ConfigError
from ccdaemon.engine.transport import TLSFiles
from ccdaemon.runtime.errors import InvalidRequest
from ccdaemon.runtime.hostconfig import HostConfig
from ccdaemon.runtime.launchconfig import ChaincodeLogging
from ccdaemon.runtime.launcher import RuntimeConfig
from ccdaemon.runtime.platforms import GolangBuild, PlatformImages
from ccdaemon.runtime.swarmservice import SwarmConfig

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ccdaemon.config.sources import Setting

__all__ = [
    "Config",
    "ConfigError",
    "DockerAPIConfig",
    "EngineConfig",
    "ListenConfig",
    "LogConfig",
    "PolicyConfig",
    "ShutdownConfig",
    "env_name",
    "keys",
    "load",
]

#: What each table's ``tcp`` serves, for the error that names its missing files.
_SERVES = {"listen": "the control API", "docker_api": "the Docker-API front"}


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
    docker_host = sources.docker_host(environ)
    toml = sources.toml(path) if path is not None else sources.Layer()
    env = sources.environment(environ)
    # core.yaml's own place and the Fabric version its image names need come first.
    merged = sources.merge(docker_host, toml, env)
    core = merged.get("fabric.core_yaml")
    core_yaml: Path | None = core.value if core is not None else None
    if core_yaml is not None:
        version = merged.get("runtime.fabric_version")
        imported = sources.core_yaml(
            core_yaml, version.value if version else RuntimeConfig().fabric_version
        )
        merged = sources.merge(docker_host, imported, toml, env)
    return _build(merged, core_yaml=core_yaml, source=path)


def _section(merged: Mapping[str, Setting], name: str) -> dict[str, Any]:
    """The settings directly in section ``name``, by field name."""
    prefix = f"{name}."
    return {
        key.removeprefix(prefix): setting.value
        for key, setting in merged.items()
        if key.startswith(prefix) and "." not in key.removeprefix(prefix)
    }


def _build(merged: Mapping[str, Setting], *, core_yaml: Path | None, source: Path | None) -> Config:
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


def _check_tcp(
    section: ListenConfig | DockerAPIConfig, table: str, merged: Mapping[str, Setting]
) -> None:
    """``<table>.tcp`` serves with mutual TLS only: its three files must all be set."""
    if section.tcp is None:
        return
    missing = [f"{table}.tcp_{n}" for n in TLS_KEYS if getattr(section, f"tcp_{n}") is None]
    if missing:
        raise merged[f"{table}.tcp"].error(
            f"serving {_SERVES[table]} on TCP needs mutual TLS: set {', '.join(missing)}"
        )
