"""The swarm itself (init, leave, inspect), and what every swarm-mode call shares.

That is the 503 of an engine in no swarm or not a manager (``SWARM_ERRORS``), and the
``filters`` query parameter of the list calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ccdaemon.engine.errors import EngineError, NodeAlreadyInSwarm, NodeNotInSwarm

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ccdaemon.engine.transport import Engine, ErrorMap

#: The swarm's default listen address, as ``docker swarm init`` uses it.
DEFAULT_LISTEN_ADDR = "0.0.0.0:2377"


def _leave_refused(status: int, message: str) -> EngineError:
    # 503 answers both "not part of a swarm" and the last manager leaving without force
    # ("Removing the last manager erases all current state"): only the first is that state.
    if "not part of a swarm" in message.lower():
        return NodeNotInSwarm(status, message)
    return EngineError(status, message)


_INIT_ERRORS: ErrorMap = {503: NodeAlreadyInSwarm}
_LEAVE_ERRORS: ErrorMap = {503: _leave_refused}
#: The statuses of every swarm-mode call but init and leave.
SWARM_ERRORS: ErrorMap = {503: NodeNotInSwarm}


def filters(
    labels: Mapping[str, str | None] | None = None, **keys: Sequence[str] | None
) -> dict[str, str]:
    """The ``filters`` query parameter: labels (value None: the key only) and other keys."""
    wanted: dict[str, list[str]] = {k.replace("_", "-"): list(v) for k, v in keys.items() if v}
    if labels:
        wanted["label"] = [
            key if value is None else f"{key}={value}" for key, value in labels.items()
        ]
    return {"filters": orjson.dumps(wanted).decode()} if wanted else {}


async def swarm_init(
    engine: Engine,
    *,
    advertise_addr: str = "127.0.0.1",
    listen_addr: str = DEFAULT_LISTEN_ADDR,
    data_path_port: int | None = None,
) -> str:
    """Make the engine the single manager of a new swarm and return its node id.

    Args:
        engine: the engine.
        advertise_addr: the address other nodes reach this manager at.
        listen_addr: where the manager listens for swarm traffic (``host:port``); two
            engines on one host need different ports.
        data_path_port: the UDP port of overlay (VXLAN) traffic (API 1.40+); None keeps
            the engine's default, 4789.

    Raises:
        NodeAlreadyInSwarm: the engine is already part of a swarm (503).
        InvalidParameter: the engine refused an address (400).
    """
    body: dict[str, Any] = {"ListenAddr": listen_addr, "AdvertiseAddr": advertise_addr}
    if data_path_port is not None:
        body["DataPathPort"] = data_path_port
    result = await engine.call("POST", "/swarm/init", json=body, errors=_INIT_ERRORS)
    return str(result)


async def swarm_leave(engine: Engine, *, force: bool = False) -> None:
    """Leave the swarm; ``force`` is needed for the last manager, and erases the swarm.

    The last manager leaving erases the swarm's state, services and secrets included (the
    engine's own warning when ``force`` is missing).

    Raises:
        NodeNotInSwarm: the engine is in no swarm (503).
        EngineError: the engine refused to leave without ``force`` (503, last manager).
    """
    await engine.call(
        "POST", "/swarm/leave", params={"force": "1" if force else "0"}, errors=_LEAVE_ERRORS
    )


async def swarm_inspect(engine: Engine) -> dict[str, Any]:
    """Return the swarm's inspect document (its id, spec, join tokens).

    Raises:
        NodeNotInSwarm: the engine is in no swarm, or is a worker (503).
    """
    result: dict[str, Any] = await engine.call("GET", "/swarm", errors=SWARM_ERRORS)
    return result
