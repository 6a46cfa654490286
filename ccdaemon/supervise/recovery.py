"""On daemon start: take back the running chaincodes, clear what a crash left half-made.

A daemon that was killed (SIGKILL, power loss) may leave, among its own containers
(found by its labels): running chaincodes, which it re-adopts with their true state and
follows again; exited ones, which it reports with their exit codes and keeps for their
logs until ``gc``; and containers of launches or builds it never finished (created but
never started, builder containers), which it removes, since no one can use them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ccdaemon.engine import NoSuchContainer, containers, swarm
from ccdaemon.runtime.dockervm import remove_quietly
from ccdaemon.runtime.hostconfig import CCID_LABEL, ROLE_LABEL
from ccdaemon.supervise.events import parse_time
from ccdaemon.supervise.registry import Chaincode, State

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ccdaemon.engine import Engine
    from ccdaemon.runtime.launcher import Launcher
    from ccdaemon.runtime.swarmlauncher import SwarmLauncher
    from ccdaemon.supervise.registry import Registry

log = logging.getLogger(__name__)

#: Container states in which a chaincode counts as running.
_LIVE = frozenset({"running", "paused", "restarting"})
#: Container states of a launch that never finished.
_UNFINISHED = frozenset({"created", "configured", "initialized", "dead", "removing"})


@dataclass(frozen=True, slots=True)
class Recovered:
    """What the daemon found of itself at start."""

    adopted: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the log and systemd's STATUS."""
        return (
            f"re-adopted {len(self.adopted)} running chaincodes, {len(self.exited)} exited, "
            f"removed {len(self.removed)} unfinished containers"
        )


async def recover(
    engine: Engine, registry: Registry, launcher: Launcher, labels: Mapping[str, str]
) -> Recovered:
    """Rebuild the table from the engine's containers that carry ``labels``."""
    result = Recovered()
    for item in await containers.list_(engine, labels=labels):
        item_labels = item.get("Labels") or {}
        name = str((item.get("Names") or ["/"])[0]).lstrip("/")
        state = str(item.get("State", ""))
        ccid = item_labels.get(CCID_LABEL)
        if ccid is None or item_labels.get(ROLE_LABEL) == "builder" or state in _UNFINISHED:
            await remove_quietly(engine, str(item["Id"]))
            result.removed.append(name)
            log.warning("removed unfinished container %s (%s) left by an earlier run", name, state)
            continue
        cc = Chaincode(ccid=ccid, container=name, image=str(item.get("Image", "")))
        cc.container_id = str(item["Id"])
        try:
            details = (await containers.inspect(engine, cc.container_id))["State"]
        except NoSuchContainer:
            continue  # gone between list and inspect
        cc.started_at = parse_time(details.get("StartedAt"))
        if state not in _LIVE:
            cc.exit_code = int(details.get("ExitCode", -1))
            cc.finished_at = parse_time(details.get("FinishedAt"))
        _take_back(cc, registry, launcher, result, running=state in _LIVE)
    log.info("%s", result.summary())
    return result


def _take_back(
    cc: Chaincode, registry: Registry, launcher: Launcher, result: Recovered, *, running: bool
) -> None:
    """Put a chaincode found at start in the table: running (followed again) or exited."""
    cc.state = State.RUNNING if running else State.EXITED
    registry.adopt(cc)
    if running:
        launcher.follow(cc.container)
        result.adopted.append(cc.ccid)
        return
    result.exited.append(cc.ccid)
    log.warning("chaincode %s exited with code %s while the daemon was away", cc.ccid, cc.exit_code)


async def recover_services(
    engine: Engine, registry: Registry, launcher: SwarmLauncher, labels: Mapping[str, str]
) -> Recovered:
    """The swarm backend's recovery: rebuild the table from the services with ``labels``.

    A service whose task runs is re-adopted; one whose task ran and ended is reported
    exited; one whose task never ran (a launch cut short) is removed with its secrets,
    and so are secrets no service uses.
    """
    result = Recovered()
    for service in await swarm.service_list(engine, labels=labels):
        name = str(service["Spec"]["Name"])
        ccid = (service["Spec"].get("Labels") or {}).get(CCID_LABEL)
        tasks = [swarm.TaskStatus.of(t) for t in await swarm.task_list(engine, service=name)]
        task = tasks[-1] if tasks else None
        image = str(service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Image", ""))
        if ccid is None or task is None or not task.container_id or task.state == "rejected":
            await launcher.remove_service(name, ccid or "")
            result.removed.append(name)
            log.warning("removed unfinished service %s left by an earlier run", name)
            continue
        cc = Chaincode(ccid=ccid, container=name, image=image)
        cc.container_id = task.container_id
        if task.finished:
            cc.exit_code = -1 if task.exit_code is None else task.exit_code
        _take_back(cc, registry, launcher, result, running=not task.finished)
    for secret in await launcher.remove_orphan_secrets():
        log.warning("removed secret %s that no service uses", secret)
    log.info("%s", result.summary())
    return result
