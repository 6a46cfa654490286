"""On daemon start: take back the running chaincodes, clear what a crash left half-made.

A daemon that was killed (SIGKILL, power loss) may leave, among its own objects (found
by its labels): running chaincodes, which it re-adopts with their true state and
follows again; exited ones, which it reports with their exit codes and keeps for their
logs until ``gc``; and launches or builds it never finished, which the backend removes
as it looks (``Backend.recover``), since no one can use them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ccdaemon.supervise.registry import Chaincode, State

if TYPE_CHECKING:
    from ccdaemon.runtime.backend import Backend
    from ccdaemon.supervise.registry import Registry

log = logging.getLogger(__name__)


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


async def recover(backend: Backend, registry: Registry) -> Recovered:
    """Rebuild the table from what the backend finds of an earlier run."""
    recovery = await backend.recover()
    result = Recovered(removed=list(recovery.removed))
    for found in recovery.found:
        cc = Chaincode(ccid=found.ccid, container=found.container, image=found.image)
        cc.container_id = found.container_id
        cc.started_at = found.started_at
        cc.state = State.RUNNING if found.running else State.EXITED
        if not found.running:
            cc.exit_code, cc.finished_at = found.exit_code, found.finished_at
        registry.adopt(cc)
        if found.running:
            backend.follow(cc.container)
            result.adopted.append(cc.ccid)
        else:
            result.exited.append(cc.ccid)
            log.warning(
                "chaincode %s exited with code %s while the daemon was away", cc.ccid, cc.exit_code
            )
    log.info("%s", result.summary())
    return result
