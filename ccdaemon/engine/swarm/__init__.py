"""Swarm-mode calls: the swarm itself, secrets, services, their logs, and tasks.

``cluster`` holds the swarm's own calls, ``secrets``, ``services`` and ``tasks`` theirs;
every name is imported from here.

One function per engine call, each mapping the statuses the Engine API documents for it,
as go-dockerclient does: a 503 means the engine is in no swarm (or is not a manager), so
``NodeNotInSwarm``, except on init, where it means the opposite (``NodeAlreadyInSwarm``);
a 404 on a service call is ``NoSuchService``, on a secret call ``NoSuchSecret``; a 409
on create is the name already taken (``ServiceAlreadyExists``, ``SecretAlreadyExists``).

Like the rest of ``ccdaemon.engine`` it knows nothing of Fabric: ``service_spec`` takes the
paths where secrets are mounted from its caller. Podman has no swarm mode.

Quirks seen on Docker 20.10 and 28.5 (docs/swarm.md has the whole list):

- Service create never checks the image: a missing one makes the *task* ``rejected``
  with ``Err`` "No such image". Each task first tries to pull the image (and falls back
  to the local one when the pull fails) unless the engine runs with
  ``DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1`` in its environment.
- Removing a service returns at once; its container is stopped (``StopGracePeriod``)
  and removed afterwards, asynchronously.
- ``GET /containers/{id}/archive`` of a secret's path shows the empty mount point in the
  container's root filesystem, not the secret: only the container itself reads it.
"""

from ccdaemon.engine.swarm.cluster import swarm_init, swarm_inspect, swarm_leave
from ccdaemon.engine.swarm.secrets import secret_create, secret_list, secret_remove
from ccdaemon.engine.swarm.services import (
    SecretMount,
    service_create,
    service_inspect,
    service_list,
    service_logs,
    service_remove,
    service_spec,
    service_update,
)
from ccdaemon.engine.swarm.tasks import TaskStatus, task_list

__all__ = [
    "SecretMount",
    "TaskStatus",
    "secret_create",
    "secret_list",
    "secret_remove",
    "service_create",
    "service_inspect",
    "service_list",
    "service_logs",
    "service_remove",
    "service_spec",
    "service_update",
    "swarm_init",
    "swarm_inspect",
    "swarm_leave",
    "task_list",
]
