"""API versions: the ones this client speaks, and choosing one with an engine.

The engine's ``/version`` gives its range; the highest version both sides speak is
chosen, or a pinned one checked against the engine's range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ccdaemon.engine.errors import APIVersionError

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True, order=True, slots=True)
class APIVersion:
    """A Docker Engine API version such as 1.41, ordered numerically."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> APIVersion:
        """Parse ``"1.41"`` (a leading ``v`` is allowed).

        Raises:
            ValueError: ``text`` is not of the form MAJOR.MINOR.
        """
        major, sep, minor = text.strip().removeprefix("v").partition(".")
        if not sep or not major.isdigit() or not minor.isdigit():
            raise ValueError(f"{text!r} is not an API version of the form 1.41")
        return cls(int(major), int(minor))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


#: The API versions this client speaks: from the oldest Fabric 1.4's engines allowed to
#: the newest engine it has been tested against (Docker 28.5).
CLIENT_MIN_API = APIVersion(1, 12)
CLIENT_MAX_API = APIVersion(1, 51)


@dataclass(frozen=True, slots=True)
class EngineVersion:
    """What the engine says of itself, and the API version chosen to talk to it."""

    kind: Literal["docker", "podman"]
    version: str
    api_version: APIVersion
    min_api_version: APIVersion
    negotiated: APIVersion
    raw: Mapping[str, Any]


def negotiate(info: Any, endpoint: str, pinned: APIVersion | None) -> EngineVersion:
    """Choose the API version to speak with the engine whose ``/version`` answered ``info``.

    Args:
        info: the engine's ``/version`` answer.
        endpoint: the engine's endpoint, for the messages.
        pinned: the version to speak instead of the highest shared one.

    Raises:
        APIVersionError: no API version is spoken by both sides, or ``pinned`` is outside
            the engine's range.
    """
    if not isinstance(info, dict) or "ApiVersion" not in info:
        raise APIVersionError(200, f"the engine at {endpoint} sent no ApiVersion")
    server_max = APIVersion.parse(info["ApiVersion"])
    server_min = APIVersion.parse(info.get("MinAPIVersion") or str(CLIENT_MIN_API))
    ranges = (
        f"the engine at {endpoint} speaks API {server_min} to {server_max}; "
        f"this client speaks {CLIENT_MIN_API} to {CLIENT_MAX_API}"
    )
    if pinned is not None:
        if not server_min <= pinned <= server_max:
            raise APIVersionError(400, f"pinned API version {pinned} refused: {ranges}")
        chosen = pinned
    else:
        chosen = min(server_max, CLIENT_MAX_API)
        if chosen < max(server_min, CLIENT_MIN_API):
            raise APIVersionError(400, f"no API version in common: {ranges}")
    components = info.get("Components") or []
    podman = any("podman" in str(c.get("Name", "")).lower() for c in components)
    return EngineVersion(
        kind="podman" if podman else "docker",
        version=str(info.get("Version", "")),
        api_version=server_max,
        min_api_version=server_min,
        negotiated=chosen,
        raw=info,
    )
