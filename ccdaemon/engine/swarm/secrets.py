"""Swarm secrets: create, remove, list. A secret never changes once made."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from ccdaemon.engine.errors import NodeNotInSwarm, NoSuchSecret, SecretAlreadyExists
from ccdaemon.engine.swarm.cluster import SWARM_ERRORS, filters
from ccdaemon.engine.transport import segment

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ccdaemon.engine.transport import Engine, ErrorMap

_SECRET_CREATE_ERRORS: ErrorMap = {409: SecretAlreadyExists, 503: NodeNotInSwarm}
_SECRET_ERRORS: ErrorMap = {404: NoSuchSecret, 503: NodeNotInSwarm}


async def secret_create(
    engine: Engine, name: str, data: bytes, *, labels: Mapping[str, str] | None = None
) -> str:
    """Store ``data`` as a swarm secret and return its id.

    A secret cannot change once made (only its labels can): a new content is a new secret.
    Names are at most 64 characters of ``[a-zA-Z0-9-_.]``, starting and ending with a
    letter or digit; the content at most 500 KiB.

    Raises:
        SecretAlreadyExists: a secret of that name exists (409).
        InvalidParameter: the engine refused the name or the content (400).
        NodeNotInSwarm: the engine is not a swarm manager (503).
    """
    body = {"Name": name, "Labels": dict(labels or {}), "Data": base64.b64encode(data).decode()}
    result = await engine.call(
        "POST", "/secrets/create", json=body, errors=_SECRET_CREATE_ERRORS, subject=name
    )
    return str(result["ID"])


async def secret_remove(engine: Engine, name: str) -> None:
    """Remove a secret, by id or name.

    The engine refuses while a service still names it; a service being removed no longer
    does, even while its container still runs.

    Raises:
        NoSuchSecret: no such secret (404).
        NodeNotInSwarm: the engine is not a swarm manager (503).
    """
    await engine.call("DELETE", f"/secrets/{segment(name)}", errors=_SECRET_ERRORS, subject=name)


async def secret_list(
    engine: Engine,
    *,
    labels: Mapping[str, str | None] | None = None,
    names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """List secrets (never their content), optionally by label and by name.

    Raises:
        NodeNotInSwarm: the engine is not a swarm manager (503).
    """
    result: list[dict[str, Any]] = await engine.call(
        "GET", "/secrets", params=filters(labels, name=names), errors=SWARM_ERRORS
    )
    return result
