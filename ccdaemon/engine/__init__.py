"""Rungs 1-2: a Docker Engine API client over a raw socket. It knows nothing of Fabric.

``Engine`` is the transport (session, negotiation, timeouts), over ``http`` (HTTP/1.1
connections), ``endpoints`` (addresses, TLS files), ``versions`` (API versions) and
``responses`` (bodies, error statuses); the call modules hold one function per engine
call: ``containers``, ``images``, ``volumes``, ``system``, ``swarm`` (services, secrets, tasks);
``streams`` reads streaming bodies and ``archive`` writes tar packages.
"""

from ccdaemon.engine import archive, containers, images, streams, swarm, system, volumes
from ccdaemon.engine.errors import (
    APIVersionError,
    ArchiveError,
    BuildFailed,
    Conflict,
    ContainerAlreadyExists,
    ContainerAlreadyRunning,
    ContainerNotRunning,
    EngineError,
    EngineUnavailable,
    ImageInUse,
    InvalidParameter,
    NodeAlreadyInSwarm,
    NodeNotInSwarm,
    NoSuchContainer,
    NoSuchImage,
    NoSuchSecret,
    NoSuchService,
    NoSuchVolume,
    NotFound,
    NotModified,
    PushFailed,
    SecretAlreadyExists,
    ServiceAlreadyExists,
    StreamBroken,
    VolumeInUse,
)
from ccdaemon.engine.transport import (
    CLIENT_MAX_API,
    CLIENT_MIN_API,
    APIVersion,
    Engine,
    EngineTimeouts,
    EngineVersion,
    TLSFiles,
)

__all__ = [
    "CLIENT_MAX_API",
    "CLIENT_MIN_API",
    "APIVersion",
    "APIVersionError",
    "ArchiveError",
    "BuildFailed",
    "Conflict",
    "ContainerAlreadyExists",
    "ContainerAlreadyRunning",
    "ContainerNotRunning",
    "Engine",
    "EngineError",
    "EngineTimeouts",
    "EngineUnavailable",
    "EngineVersion",
    "ImageInUse",
    "InvalidParameter",
    "NoSuchContainer",
    "NoSuchImage",
    "NoSuchSecret",
    "NoSuchService",
    "NoSuchVolume",
    "NodeAlreadyInSwarm",
    "NodeNotInSwarm",
    "NotFound",
    "NotModified",
    "PushFailed",
    "SecretAlreadyExists",
    "ServiceAlreadyExists",
    "StreamBroken",
    "TLSFiles",
    "VolumeInUse",
    "archive",
    "containers",
    "images",
    "streams",
    "swarm",
    "system",
    "volumes",
]
