"""The effective configuration as ``ccdaemon serve --check-config`` prints it.

First a summary an operator reads at a glance, then every key with its value and where
that value came from (the TOML file, the environment, the peer's core.yaml, or the
built-in default), so that a question such as "which engine endpoint won?" has its
answer on one line. Credentials in URLs are masked; files are named, never read.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ccdaemon.config import keys

if TYPE_CHECKING:
    from ccdaemon.config import Config

# user:password@ in a URL (an engine endpoint, a Go proxy).
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def describe(config: Config) -> str:
    """The summary, then each key as ``key = value  (origin)``."""
    head = f"configuration {config.source or '(built-in defaults)'} is valid"
    summary = [f"  {name:<13} {value}" for name, value in _summary(config)]
    width = max(len(key) for key in keys())
    settings = [
        f"  {key:<{width}} = {_text(config, key)}  ({config.origins.get(key, 'default')})"
        for key in keys()
    ]
    return "\n".join([head, *summary, "settings (value, and where it was set):", *settings])


def value(config: Config, key: str) -> object:
    """The effective value of a dotted key, read off ``config``."""
    section, _, name = key.partition(".")
    special: dict[str, object] = {
        "instance": config.instance,
        "ca.cert": config.ca_cert,
        "ca.key": config.ca_key,
        "fabric.core_yaml": config.core_yaml,
    }
    if key in special:
        return special[key]
    if key.startswith("engine.tls."):
        tls = config.engine.tls
        return None if tls is None else getattr(tls, name.removeprefix("tls."))
    if key.startswith("runtime.logging."):
        return getattr(config.runtime.logging, name.removeprefix("logging."))
    if key == "runtime.host_config":
        return config.runtime.host_config.to_engine()
    holders: dict[str, object] = {
        "listen": config.listen,
        "docker_api": config.docker_api,
        "engine": config.engine,
        "swarm": config.swarm,
        "runtime": config.runtime,
        "images": config.images,
        "golang": config.runtime.golang,
        "policy": config.policy,
        "shutdown": config.shutdown,
        "log": config.log,
    }
    return getattr(holders[section], name)


def _text(config: Config, key: str) -> str:
    item = value(config, key)
    if key in {"listen.socket_mode", "docker_api.socket_mode"} and isinstance(item, int):
        return f'"{item:04o}"'
    return _show(item)


def _summary(config: Config) -> list[tuple[str, str]]:
    listen, engine, runtime = config.listen, config.engine, config.runtime
    group = f", group {listen.socket_group}" if listen.socket_group else ""
    pinned = f" (API {engine.api_version})" if engine.api_version else ""
    endpoint_from = config.origins.get("engine.endpoint", "default")
    policy = config.policy.apply(runtime.host_config.to_engine())
    return [
        ("core.yaml", str(config.core_yaml or "(none)")),
        ("socket", f"{listen.socket} (mode {listen.socket_mode:04o}{group})"),
        ("tcp", listen.tcp or "(off)"),
        ("docker api", _front(config)),
        ("engine", f"{_mask(engine.endpoint)}{pinned}, from {endpoint_from}"),
        ("backend", _backend(config)),
        ("instance", config.instance),
        ("peer", f"network {runtime.network_id or '-'}, peer {runtime.peer_id or '-'}"),
        ("mspid", runtime.mspid or "(none: each launch names its own)"),
        ("limits", f"{engine.engine_limit} engine calls, {engine.build_limit} builds at once"),
        ("build cache", _build_cache(engine.build_cache_size)),
        ("startup", f"{runtime.startup_timeout:g} s; attachStdout {runtime.attach_stdout}"),
        ("go builder", f"{config.images.golang_builder} -> {config.images.golang_runtime}"),
        ("go build", _golang(config)),
        ("HostConfig", json.dumps(policy, sort_keys=True)),
        ("chaincode CA", str(config.ca_cert or "generated at start")),
        ("on stop", "stop chaincodes" if config.shutdown.stop_chaincodes else "leave them running"),
        ("log", f"{config.log.level} {config.log.format}"),
    ]


def _build_cache(size: int) -> str:
    return f"at most {size / (1 << 30):g} GiB" if size else "off"


def _golang(config: Config) -> str:
    golang = config.runtime.golang
    flags = golang.ldflags_option or "no -ldflags"
    return f"{flags}; GOPROXY={_mask(golang.goproxy)}"


def _backend(config: Config) -> str:
    if config.engine.backend == "docker":
        return "docker (a container per chaincode)"
    swarm_config = config.swarm
    placed = ", ".join(swarm_config.constraints) or "anywhere"
    images = f"pushed to {swarm_config.registry}" if swarm_config.registry else "the manager's"
    return (
        f"swarm (a service per chaincode; network {swarm_config.network}, "
        f"placed {placed}, images {images})"
    )


def _show(item: object) -> str:
    """A value as TOML-ish text; unset is ``(unset)``."""
    if item is None:
        return "(unset)"
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, str | Path):
        return json.dumps(_mask(str(item)))
    if isinstance(item, tuple | list):
        return "[" + ", ".join(_show(part) for part in item) + "]"
    if is_dataclass(item) and not isinstance(item, type):
        item = {f.name: getattr(item, f.name) for f in fields(item)}
    if isinstance(item, dict):
        return json.dumps(item, sort_keys=True, default=str)
    return str(item)


def _mask(text: str) -> str:
    return _USERINFO.sub("***@", text)


def _front(config: Config) -> str:
    front = config.docker_api
    served = []
    if front.socket is not None:
        group = f", group {front.socket_group}" if front.socket_group else ""
        served.append(f"{front.socket} (mode {front.socket_mode:04o}{group})")
    if front.tcp is not None:
        served.append(f"https://{front.tcp} (client certificates from {front.tcp_ca})")
    if not served:
        return "(off)"
    return f"{' and '.join(served)}, for a peer's vm.endpoint"
