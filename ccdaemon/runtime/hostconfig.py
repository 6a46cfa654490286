"""The chaincode container's HostConfig, as Fabric builds it from ``vm.docker.hostConfig``.

Every key core.yaml accepts is here with Fabric's meaning; what Fabric ignores
(``Privileged``, ``Binds``, ``Links``, ``PortBindings``) is not, so no request can ask
for it. As in go-dockerclient, zero values are left out of the request, and an empty
NetworkMode means ``host``, Fabric's default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ccdaemon.runtime.errors import InvalidRequest

if TYPE_CHECKING:
    from collections.abc import Callable

#: Labels on every container and image ccdaemon makes; nothing without them is touched.
MANAGED_LABEL = "ccdaemon.managed"
CCID_LABEL = "ccdaemon.ccid"
#: Which daemon made it: several daemons (peers) may share one engine.
INSTANCE_LABEL = "ccdaemon.instance"
#: Set to "builder" on the ephemeral containers that compile chaincode.
ROLE_LABEL = "ccdaemon.role"


@dataclass(frozen=True, slots=True)
class LogConfig:
    """The container's log driver and its options (core.yaml ``LogConfig``)."""

    type: str = ""
    config: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class HostConfig:
    """``vm.docker.hostConfig``: one field per core.yaml key, JSON key in the metadata."""

    network_mode: str = field(default="host", metadata={"key": "NetworkMode"})
    dns: tuple[str, ...] = field(default=(), metadata={"key": "Dns"})
    dns_search: tuple[str, ...] = field(default=(), metadata={"key": "DnsSearch"})
    extra_hosts: tuple[str, ...] = field(default=(), metadata={"key": "ExtraHosts"})
    cap_add: tuple[str, ...] = field(default=(), metadata={"key": "CapAdd"})
    cap_drop: tuple[str, ...] = field(default=(), metadata={"key": "CapDrop"})
    ipc_mode: str = field(default="", metadata={"key": "IpcMode"})
    pid_mode: str = field(default="", metadata={"key": "PidMode"})
    uts_mode: str = field(default="", metadata={"key": "UTSMode"})
    log_config: LogConfig = field(default_factory=LogConfig, metadata={"key": "LogConfig"})
    readonly_rootfs: bool = field(default=False, metadata={"key": "ReadonlyRootfs"})
    security_opt: tuple[str, ...] = field(default=(), metadata={"key": "SecurityOpt"})
    cgroup_parent: str = field(default="", metadata={"key": "CgroupParent"})
    memory: int = field(default=0, metadata={"key": "Memory"})
    memory_swap: int = field(default=0, metadata={"key": "MemorySwap"})
    memory_swappiness: int = field(default=0, metadata={"key": "MemorySwappiness"})
    oom_kill_disable: bool = field(default=False, metadata={"key": "OomKillDisable"})
    cpu_shares: int = field(default=0, metadata={"key": "CpuShares"})
    cpuset: str = field(default="", metadata={"key": "Cpuset"})
    cpuset_cpus: str = field(default="", metadata={"key": "CpusetCpus"})
    cpuset_mems: str = field(default="", metadata={"key": "CpusetMems"})
    cpu_quota: int = field(default=0, metadata={"key": "CpuQuota"})
    cpu_period: int = field(default=0, metadata={"key": "CpuPeriod"})
    blkio_weight: int = field(default=0, metadata={"key": "BlkioWeight"})

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise InvalidRequest(
                    f"hostConfig.{f.metadata['key']}", f"must not be negative: {value}"
                )

    def to_engine(self) -> dict[str, Any]:
        """The HostConfig JSON for create: zero values left out, NetworkMode never empty."""
        result: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, LogConfig):
                if value.type:
                    result["LogConfig"] = {"Type": value.type, "Config": dict(value.config)}
            elif value:
                result[f.metadata["key"]] = list(value) if isinstance(value, tuple) else value
        result["NetworkMode"] = self.network_mode or "host"
        return result

    @classmethod
    def from_core_yaml(cls, section: dict[str, Any]) -> HostConfig:
        """Read core.yaml's ``vm.docker.hostConfig`` mapping (keys as Fabric spells them).

        Raises:
            InvalidRequest: a key Fabric does not support, or a value of the wrong type;
                the field names the key.
        """
        by_key = {f.metadata["key"].lower(): f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in section.items():
            known = by_key.get(key.lower())
            if known is None:
                raise InvalidRequest(f"hostConfig.{key}", "is not a key Fabric supports")
            if value is None:
                continue  # an empty YAML key, as in Fabric's sample `Dns:`
            kwargs[known.name] = _coerce(f"hostConfig.{key}", known.type, value)
        return cls(**kwargs)


_CHECKS: dict[object, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "tuple[str, ...]": (
        lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "a list of strings",
    ),
}


def _coerce(where: str, kind: object, value: Any) -> Any:
    if kind == "LogConfig":
        return _log_config(where, value)
    check, expected = _CHECKS[kind]
    if not check(value):
        raise InvalidRequest(where, f"must be {expected}, not {value!r}")
    return tuple(value) if isinstance(value, list) else value


def _log_config(where: str, value: Any) -> LogConfig:
    if not isinstance(value, dict) or not isinstance(value.get("Type", ""), str):
        raise InvalidRequest(where, "must be a mapping with Type and Config")
    options = value.get("Config") or {}
    if not isinstance(options, dict):
        raise InvalidRequest(where, "Config must be a mapping")
    return LogConfig(
        str(value.get("Type", "")), tuple((str(k), str(v)) for k, v in options.items())
    )
