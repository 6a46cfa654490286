"""Swarm tasks: what each says of its container (state, exit code, error), and the list.

There is no event for a task, so its state is polled (``task_list``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ccdaemon.engine.swarm.cluster import SWARM_ERRORS, filters

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ccdaemon.engine.transport import Engine

#: Task states after which a task never runs again (the Engine API's TaskState).
TERMINAL_TASK_STATES = frozenset(
    {"complete", "shutdown", "failed", "rejected", "orphaned", "remove"}
)


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """What one task says of its container.

    Attributes:
        task_id: the task's id.
        service_id: its service's id.
        state: the observed state (``new`` ... ``running``, then ``complete``, ``failed``,
            ``rejected``, ``shutdown``...).
        desired_state: what the orchestrator wants (``running``, ``shutdown``...).
        container_id: the container's id, once the node made one.
        exit_code: the container's exit code, once it exited (0 before).
        error: the engine's reason for a failed or rejected task ("task: non-zero exit
            (3)", "No such image: ...").
    """

    task_id: str
    service_id: str
    state: str
    desired_state: str
    container_id: str | None
    exit_code: int | None
    error: str

    @property
    def finished(self) -> bool:
        """Whether the task reached a state it never leaves."""
        return self.state in TERMINAL_TASK_STATES

    @classmethod
    def of(cls, task: Mapping[str, Any]) -> TaskStatus:
        """Read a task document from ``task_list``."""
        status = task.get("Status") or {}
        container = status.get("ContainerStatus") or {}
        exit_code = container.get("ExitCode")
        return cls(
            task_id=str(task.get("ID", "")),
            service_id=str(task.get("ServiceID", "")),
            state=str(status.get("State", "")),
            desired_state=str(task.get("DesiredState", "")),
            container_id=container.get("ContainerID") or None,
            exit_code=int(exit_code) if exit_code is not None else None,
            error=str(status.get("Err", "")),
        )


async def task_list(
    engine: Engine,
    *,
    service: str | None = None,
    desired_state: str | None = None,
    labels: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """List tasks, optionally of one service (id or name) and in one desired state.

    Each task's ``Status`` holds ``State``, ``Err``, and ``ContainerStatus`` with
    ``ContainerID`` and ``ExitCode`` once the node made a container; ``TaskStatus.of``
    reads them. Old tasks of a service stay listed (the swarm's task history).

    Raises:
        NodeNotInSwarm: the engine is not a swarm manager (503).
    """
    params = filters(
        labels,
        service=[service] if service else None,
        desired_state=[desired_state] if desired_state else None,
    )
    result: list[dict[str, Any]] = await engine.call(
        "GET", "/tasks", params=params, errors=SWARM_ERRORS
    )
    return result
