"""Errors of the engine client, in the engine's own terms.

    CcdaemonError
    ├── EngineError(status, message)      the engine answered with an error status
    │   ├── InvalidParameter               400: the engine refused a value (name, option, body)
    │   ├── NotFound                       404 not otherwise mapped
    │   │   ├── NoSuchContainer            404 on a container call
    │   │   ├── NoSuchImage                404 on an image call, or "No such image" on create
    │   │   ├── NoSuchService              404 on a swarm service call
    │   │   └── NoSuchSecret               404 on a swarm secret call
    │   ├── Conflict                       409 not otherwise mapped
    │   │   ├── ContainerAlreadyExists     409 on create
    │   │   ├── ImageInUse                 409 on image removal
    │   │   ├── ServiceAlreadyExists       409 on service create (name taken)
    │   │   └── SecretAlreadyExists        409 on secret create (name taken)
    │   ├── NotModified                    304
    │   │   ├── ContainerAlreadyRunning    304 on start
    │   │   └── ContainerNotRunning        304 on stop, 409 on kill
    │   ├── NodeAlreadyInSwarm             503 on swarm init: the engine is in a swarm already
    │   ├── NodeNotInSwarm                 503 on any other swarm call: no swarm, or no manager
    │   ├── BuildFailed(log)               an error line inside a 200 build stream
    │   ├── PushFailed(log)                an error line inside a 200 push stream, or no digest
    │   └── APIVersionError                no API version both sides speak
    ├── EngineUnavailable                  could not connect, or the engine stopped answering
    │   └── StreamBroken                   the connection broke in the middle of a stream
    └── ArchiveError                       a tar member this client refuses to write

Each class is raised where the call that knows its meaning maps the status; nothing is
guessed from message text except where the engine gives no other signal (create's 404,
a push of a missing image, which Docker reports inside a 200 stream).
"""

from __future__ import annotations

from http import HTTPStatus

from ccdaemon.errors import CcdaemonError


class EngineError(CcdaemonError):
    """The engine answered a call with an error status; carries its status and message."""

    #: The message when the engine sends none (a 304 has no body).
    describes = ""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        # An error reported inside a 200 stream (build, push): the status says nothing.
        if self.status == HTTPStatus.OK:
            return self.message
        return f"[{self.status}] {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.message!r})"


# --- 400: the engine refused what it was sent.


class InvalidParameter(EngineError):
    """Raised when the engine refuses a parameter or body with 400 (a bad name, option...)."""


# --- 404: the object named does not exist.


class NotFound(EngineError):
    """Raised for a 404 that no more specific class explains."""


class NoSuchContainer(NotFound):
    """Raised when a container call names a container the engine does not have."""


class NoSuchImage(NotFound):
    """Raised when an image is missing: image calls' 404, and create's "No such image"."""


class NoSuchVolume(NotFound):
    """Raised when a volume call names a volume the engine does not have."""


# --- 409: the engine's state does not allow the call.


class Conflict(EngineError):
    """Raised for a 409 that no more specific class explains."""


class ContainerAlreadyExists(Conflict):
    """Raised when create names a container that already exists."""


class ImageInUse(Conflict):
    """Raised when an image cannot be removed because a container uses it."""


class VolumeInUse(Conflict):
    """Raised when a volume cannot be removed because a container (even a stopped one) uses it."""


# --- 304: nothing to do, which the caller may or may not care about.


class NotModified(EngineError):
    """Raised for a 304 that no more specific class explains."""


class ContainerAlreadyRunning(NotModified):
    """Raised when start finds the container already running (304)."""

    describes = "container already running"


class ContainerNotRunning(NotModified):
    """Raised when stop (304) or kill (409) finds the container not running."""

    describes = "container not running"


# --- Swarm mode (ccdaemon/engine/swarm.py).


class NoSuchService(NotFound):
    """Raised when a swarm service call names a service the swarm does not have."""


class NoSuchSecret(NotFound):
    """Raised when a swarm secret call names a secret the swarm does not have."""


class ServiceAlreadyExists(Conflict):
    """Raised when service create names a service that already exists (409)."""


class SecretAlreadyExists(Conflict):
    """Raised when secret create names a secret that already exists (409)."""


class NodeAlreadyInSwarm(EngineError):
    """Raised when swarm init finds the engine already part of a swarm (503)."""


class NodeNotInSwarm(EngineError):
    """Raised for a swarm call's 503: the engine is in no swarm, or is not a manager."""


# --- Errors reported inside a successful response, and version trouble.


class BuildFailed(EngineError):
    """Raised when an image build reports an error inside its 200 stream, or makes no image.

    ``log`` holds the build's output up to and including the error.
    """

    def __init__(self, message: str, log: str) -> None:
        super().__init__(200, message)
        self.log = log


class PushFailed(EngineError):
    """Raised when an image push reports an error inside its 200 stream, or names no digest.

    ``log`` holds the push's output up to and including the error.
    """

    def __init__(self, message: str, log: str) -> None:
        super().__init__(200, message)
        self.log = log


class APIVersionError(EngineError):
    """Raised when the engine and this client share no API version, or refuse a pinned one."""


# --- The engine could not be reached.


class EngineUnavailable(CcdaemonError):
    """Raised when the engine cannot be connected to, or stops answering a control call."""


class StreamBroken(EngineUnavailable):
    """Raised when the connection breaks in the middle of a stream (logs, attach, build, events)."""


# --- Client-side refusals.


class ArchiveError(CcdaemonError, ValueError):
    """Raised when a tar member's path or content cannot be written safely."""
