"""The configuration's sections, as ``load`` returns them (the runtime's live with it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ccdaemon.runtime.buildcache import DEFAULT_LIMIT as DEFAULT_BUILD_CACHE_SIZE
from ccdaemon.runtime.launcher import RuntimeConfig
from ccdaemon.runtime.package import DEFAULT_MAX_SIZE
from ccdaemon.runtime.platforms import PlatformImages
from ccdaemon.runtime.swarmservice import SwarmConfig

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ccdaemon.engine.transport import TLSFiles

#: The engine's socket when neither the configuration nor ``$DOCKER_HOST`` names one.
DEFAULT_ENDPOINT = "unix:///var/run/docker.sock"


@dataclass(frozen=True, slots=True)
class ListenConfig:
    """Where the daemon serves its API (``[listen]``).

    Attributes:
        socket: the Unix socket, for the peer on the same host.
        socket_mode: the socket's permission bits (TOML: ``"0660"`` or ``0o660``).
        socket_group: the group given the socket, so that the peer's user can reach it.
        tcp: ``host:port`` to serve on as well, with mutual TLS only: needs ``tcp_ca``
            (which signs the clients' certificates), ``tcp_cert`` and ``tcp_key``.
    """

    socket: Path = Path("/run/ccdaemon/ccdaemon.sock")
    socket_mode: int = 0o660
    socket_group: str | None = None
    tcp: str | None = None
    tcp_ca: Path | None = None
    tcp_cert: Path | None = None
    tcp_key: Path | None = None


@dataclass(frozen=True, slots=True)
class DockerAPIConfig:
    """The Docker-API front (``[docker_api]``): a peer's ``vm.endpoint``, off by default.

    Attributes:
        socket: the Unix socket a peer's ``vm.endpoint`` names
            (``unix:///run/ccdaemon/docker.sock``); unset, with ``tcp`` unset too: no front.
        socket_mode: its permission bits.
        socket_group: the group given the socket (the peer's), if any.
        tcp: ``host:port`` to serve the front on as well (or alone), for a peer's
            ``vm.endpoint: tcp://host:port`` with ``vm.docker.tls.enabled``. Mutual TLS
            only: needs ``tcp_ca`` (which signs the peers' client certificates),
            ``tcp_cert`` and ``tcp_key``.
    """

    socket: Path | None = None
    socket_mode: int = 0o660
    socket_group: str | None = None
    tcp: str | None = None
    tcp_ca: Path | None = None
    tcp_cert: Path | None = None
    tcp_key: Path | None = None


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The container engine (``[engine]``), as Fabric's ``vm.endpoint`` and ``vm.docker.tls``.

    Attributes:
        endpoint: ``unix:///path``, ``tcp://host:port`` or ``https://host:port``.
            ``load`` uses ``$DOCKER_HOST`` instead of this default when it is set.
        tls: client TLS files for a tcp endpoint; None for a Unix socket.
        api_version: pin this Docker Engine API version; None negotiates it.
        engine_limit: pieces of work sent to the engine at once (the launch queue's bound).
        build_limit: image builds at once.
        build_cache_size: the bound on the daemon's Go build cache, in bytes; 0 turns
            the cache off (runtime/buildcache.py).
        backend: ``docker``: each chaincode a container of this engine, as Fabric does;
            ``swarm``: each chaincode a one-replica service of the swarm this engine
            manages (``[swarm]``, docs/swarm.md).
    """

    endpoint: str = DEFAULT_ENDPOINT
    tls: TLSFiles | None = None
    api_version: str | None = None
    engine_limit: int = 8
    build_limit: int = 2
    build_cache_size: int = DEFAULT_BUILD_CACHE_SIZE
    backend: Literal["docker", "swarm"] = "docker"


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Limits ccdaemon puts on every chaincode container, on top of core.yaml (``[policy]``).

    Attributes:
        memory: bytes, used when core.yaml's hostConfig sets no Memory; Fabric's sample
            core.yaml sets this value, so a peer importing it sees no change. 0: none.
        cpus: CPUs per container (``1.5`` = one and a half), sent as NanoCpus; 0: none.
        pids_limit: processes per container, against fork bombs; 0: none.
        no_new_privileges: add ``no-new-privileges`` to SecurityOpt, so that setuid
            binaries in a chaincode image cannot gain privileges.
        max_package_size: the largest code package accepted, in bytes.
    """

    memory: int = 2147483648
    cpus: float = 0.0
    pids_limit: int = 1024
    no_new_privileges: bool = True
    max_package_size: int = DEFAULT_MAX_SIZE

    def apply(self, host_config: dict[str, Any]) -> dict[str, Any]:
        """Add this policy to a HostConfig JSON (``HostConfig.to_engine()``'s output).

        Only what core.yaml left unset is added; nothing it set is changed or removed.

        Args:
            host_config: the HostConfig JSON; not modified.

        Returns:
            A new HostConfig JSON with Memory, NanoCpus, PidsLimit and SecurityOpt added
            where the policy asks for them.
        """
        result = dict(host_config)
        if self.memory and not result.get("Memory"):
            result["Memory"] = self.memory
        # The engine refuses NanoCpus next to CpuQuota or CpuPeriod, and core.yaml's
        # own CPU limit wins over the policy's.
        cpu_set = any(result.get(k) for k in ("NanoCpus", "CpuQuota", "CpuPeriod"))
        if self.cpus and not cpu_set:
            result["NanoCpus"] = round(self.cpus * 1e9)
        if self.pids_limit and not result.get("PidsLimit"):
            result["PidsLimit"] = self.pids_limit
        options = list(result.get("SecurityOpt") or [])
        if self.no_new_privileges and not any(
            o.partition(":")[0].partition("=")[0] == "no-new-privileges" for o in options
        ):
            result["SecurityOpt"] = [*options, "no-new-privileges"]
        return result


@dataclass(frozen=True, slots=True)
class ShutdownConfig:
    """What the daemon does on SIGTERM (``[shutdown]``).

    Attributes:
        stop_chaincodes: stop every chaincode container too, as a Fabric 2.x peer does
            when it stops. Off by default: the chaincodes keep serving the peer, which
            does not depend on ccdaemon staying up.
        grace: seconds in-flight launches get to finish.
        stop_timeout: seconds each chaincode gets between SIGTERM and SIGKILL when
            ``stop_chaincodes``.
    """

    stop_chaincodes: bool = False
    grace: float = 30.0
    stop_timeout: int = 10


@dataclass(frozen=True, slots=True)
class LogConfig:
    """The daemon's own log (``[log]``); chaincode logging is ``[runtime.logging]``.

    Attributes:
        format: ``console`` (human-readable lines) or ``json`` (one object per line).
        level: a ``logging`` level name, upper case.
    """

    format: Literal["console", "json"] = "console"
    level: str = "INFO"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, as ``load`` returns it.

    Attributes:
        listen: where the API is served.
        engine: the container engine.
        runtime: Fabric's peer-wide launch settings; its ``instance`` is ``instance``.
        images: builder and runtime image per language.
        ca_cert: the chaincode CA's certificate file (``[ca] cert``), with ``ca_key``;
            both None: a CA is generated at each start, as a Fabric peer does.
        ca_key: the chaincode CA's key file (``[ca] key``).
        policy: limits put on every chaincode container.
        shutdown: what SIGTERM does.
        log: the daemon's own log.
        swarm: how chaincodes run as services, with ``engine.backend = "swarm"``.
        instance: the ``ccdaemon.instance`` label value: which daemon owns a container,
            when several daemons (peers) share one engine.
        core_yaml: the peer's core.yaml that was imported, if any.
        source: the TOML file read, if any.
    """

    listen: ListenConfig = field(default_factory=ListenConfig)
    docker_api: DockerAPIConfig = field(default_factory=DockerAPIConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    images: PlatformImages = field(default_factory=PlatformImages)
    ca_cert: Path | None = None
    ca_key: Path | None = None
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    log: LogConfig = field(default_factory=LogConfig)
    swarm: SwarmConfig = field(default_factory=SwarmConfig)
    instance: str = "default"
    core_yaml: Path | None = None
    source: Path | None = None
    #: Where each key that is not at its default was set: ``<file>: <key>`` for the
    #: TOML file and core.yaml, ``environment <VARIABLE>`` for the environment.
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)
