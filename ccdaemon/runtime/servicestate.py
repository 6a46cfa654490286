"""What the manager holds of this daemon's services, tasks and secrets, read by its labels.

The swarm backend's side of recovery and collection, as runtime/containerstate.py is the
container backend's: a service's one task, the services an earlier run left (running or
ended), the unfinished ones no one can use and secrets no service uses (removed here),
and the services whose task ended.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from ccdaemon.engine import NoSuchSecret, NoSuchService, swarm
from ccdaemon.engine.swarm import TaskStatus
from ccdaemon.runtime.backend import Found, Recovery
from ccdaemon.runtime.hostconfig import CCID_LABEL

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from ccdaemon.engine import Engine

log = logging.getLogger("ccdaemon.runtime.swarmlauncher")


async def task_of(engine: Engine, service: str) -> TaskStatus | None:
    """The service's one task (restart none: there is never a second), if any yet."""
    tasks = [TaskStatus.of(t) for t in await swarm.task_list(engine, service=service)]
    return tasks[-1] if tasks else None


async def remove_service(
    engine: Engine,
    service: str,
    labels: Mapping[str, str],
    *,
    keep: frozenset[str] | set[str] = frozenset(),
) -> None:
    """Remove the service, then the secrets with ``labels`` but ``keep``.

    The secrets go second: the engine refuses to remove a secret a service uses.
    """
    with contextlib.suppress(NoSuchService):
        await swarm.service_remove(engine, service)
    for secret in await swarm.secret_list(engine, labels=labels):
        if secret["Spec"]["Name"] in keep:
            continue
        with contextlib.suppress(NoSuchSecret):
            await swarm.secret_remove(engine, str(secret["ID"]))


async def ended_services(engine: Engine, owner: Mapping[str, str]) -> list[tuple[str, str]]:
    """The chaincodes with ``owner`` labels whose task has ended: (ccid, service)."""
    found = []
    for service in await swarm.service_list(engine, labels=owner):
        name = str(service["Spec"]["Name"])
        ccid = (service["Spec"].get("Labels") or {}).get(CCID_LABEL)
        task = await task_of(engine, name)
        if ccid is not None and (task is None or task.finished):
            found.append((ccid, name))
    return found


async def recover_services(
    engine: Engine,
    owner: Mapping[str, str],
    remove: Callable[[str, str], Awaitable[None]],
) -> Recovery:
    """The services with ``owner`` labels an earlier run left; ``remove`` the unfinished.

    A service whose task runs is found running; one whose task ran and ended, ended;
    one whose task never ran (a launch cut short) is removed (``remove(service, ccid)``)
    with its secrets, and so are secrets no service uses.
    """
    found, removed = [], []
    for service in await swarm.service_list(engine, labels=owner):
        name = str(service["Spec"]["Name"])
        ccid = (service["Spec"].get("Labels") or {}).get(CCID_LABEL)
        task = await task_of(engine, name)
        image = str(service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Image", ""))
        if ccid is None or task is None or not task.container_id or task.state == "rejected":
            await remove(name, ccid or "")
            removed.append(name)
            log.warning("removed unfinished service %s left by an earlier run", name)
            continue
        code = None if not task.finished else -1 if task.exit_code is None else task.exit_code
        found.append(Found(ccid, name, task.container_id, image, not task.finished, None, code))
    for secret in await _remove_orphan_secrets(engine, owner):
        log.warning("removed secret %s that no service uses", secret)
    return Recovery(found, removed)


async def _remove_orphan_secrets(engine: Engine, owner: Mapping[str, str]) -> list[str]:
    """Remove the secrets with ``owner`` labels no service uses (a launch cut short)."""
    used = {
        str(ref.get("SecretID"))
        for service in await swarm.service_list(engine, labels=owner)
        for ref in service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Secrets") or []
    }
    removed = []
    for secret in await swarm.secret_list(engine, labels=owner):
        if str(secret["ID"]) in used:
            continue
        with contextlib.suppress(NoSuchSecret):
            await swarm.secret_remove(engine, str(secret["ID"]))
            removed.append(str(secret["Spec"]["Name"]))
    return removed
