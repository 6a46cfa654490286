"""Errors of the chaincode runtime: what a caller asked for that cannot be done.

CcdaemonError
└── LaunchError
    ├── InvalidRequest(field)      a value that breaks Fabric's rules; names the field
    │   └── UnknownChaincodeType   a chaincode type no platform handles
    ├── PackageError               a code package that cannot be read safely
    │   └── PackageTooLarge        a package over the configured size limit
    ├── StartupTimeout             the launch did not finish within the startup timeout
    ├── UnknownChaincode           no managed chaincode has that id
    ├── TaskFailed                 a swarm task ended before its container ran
    ├── GoTooOld                   the builder image's Go is older than go.mod asks
    └── BackendUnfit               the engine cannot serve the configured backend
"""

from __future__ import annotations

from ccdaemon.errors import CcdaemonError


class LaunchError(CcdaemonError):
    """Base class of the runtime's own errors (the engine's are EngineError)."""


class InvalidRequest(LaunchError):
    """Raised when a value breaks Fabric's rules; ``field`` names the value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnknownChaincodeType(InvalidRequest):
    """Raised for a chaincode type no platform handles."""


class PackageError(LaunchError):
    """Raised when a code package cannot be read safely (names the member at fault)."""


class PackageTooLarge(PackageError):
    """Raised when a package is over a limit: ``limit`` is that limit (bytes, or entries)."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class StartupTimeout(LaunchError):
    """Raised when a launch does not finish within the startup timeout."""


class UnknownChaincode(LaunchError):
    """Raised for a chaincode id the daemon does not manage."""

    def __init__(self, ccid: str) -> None:
        super().__init__(f"no managed chaincode {ccid!r}")
        self.ccid = ccid


class TaskFailed(LaunchError):
    """Raised when a swarm task ends before its container ran (the engine's reason)."""

    def __init__(self, service: str, state: str, reason: str) -> None:
        super().__init__(f"task of service {service} is {state} before it ran: {reason}")
        self.service = service
        self.state = state
        self.reason = reason


class GoTooOld(LaunchError):
    """Raised before a build when the chaincode's go.mod asks for a newer Go than the builder's.

    The message names both versions and the setting that picks the builder image.
    """

    def __init__(self, message: str, *, wanted: str, builder: str) -> None:
        super().__init__(message)
        self.wanted = wanted
        self.builder = builder


class BackendUnfit(LaunchError):
    """Raised at start when the engine cannot serve the configured backend (says what to do)."""
