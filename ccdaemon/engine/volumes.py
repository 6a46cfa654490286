"""Volume calls: create, inspect, list by label, remove."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ccdaemon.engine.errors import EngineError, NoSuchVolume, VolumeInUse
from ccdaemon.engine.images import label_filter, labelled
from ccdaemon.engine.transport import segment

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ccdaemon.engine.transport import Engine, ErrorMap


def _remove_refused(status: int, message: str) -> EngineError:
    # Podman 4.3 answers a volume in use with 500 "volume is being used", not 409.
    if status == 409 or "being used" in message or "in use" in message:  # noqa: PLR2004
        return VolumeInUse(status, message)
    return EngineError(status, message)


_REMOVE_ERRORS: ErrorMap = {404: NoSuchVolume, 409: _remove_refused, 500: _remove_refused}


async def create(
    engine: Engine,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    driver_opts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Create a volume of the local driver and return its inspect document.

    Names are ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``. ``driver_opts`` are the local driver's
    mount options (``type``, ``device``, ``o``: a size-bound tmpfs, for example).

    Raises:
        InvalidParameter: the engine refused the name or an option (400).
    """
    body = {
        "Name": name,
        "Driver": "local",
        "Labels": dict(labels or {}),
        "DriverOpts": dict(driver_opts or {}),
    }
    result: dict[str, Any] = await engine.call("POST", "/volumes/create", json=body, subject=name)
    return result


async def inspect(engine: Engine, name: str) -> dict[str, Any]:
    """Return the volume's inspect document (``Name``, ``Labels``, ``Mountpoint``...).

    Raises:
        NoSuchVolume: no such volume (404).
    """
    result: dict[str, Any] = await engine.call(
        "GET", f"/volumes/{segment(name)}", errors={404: NoSuchVolume}, subject=name
    )
    return result


async def list_(
    engine: Engine, *, labels: Mapping[str, str | None] | None = None
) -> list[dict[str, Any]]:
    """List volumes, optionally only those carrying each label (with that value unless None)."""
    result = await engine.call("GET", "/volumes", params=label_filter(labels))
    found: list[dict[str, Any]] = (result or {}).get("Volumes") or []
    return [volume for volume in found if labelled(volume, labels)]


async def remove(engine: Engine, name: str) -> None:
    """Remove a volume and its content (never forced: a volume in use stays).

    Raises:
        NoSuchVolume: no such volume (404).
        VolumeInUse: a container, running or not, mounts it (409; Podman's 500).
    """
    await engine.call("DELETE", f"/volumes/{segment(name)}", errors=_REMOVE_ERRORS, subject=name)
