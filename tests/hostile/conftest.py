"""Hostile input: one daemon per module, proof that nothing was made, a record of answers.

Each refusal is checked two ways on the engine: no event names the daemon's peer (the
engine saw no call that made, started or removed anything of it), and no container or
image carries the daemon's instance label. With ``CCDAEMON_RESILIENCE_OUT`` set, every
case appends one JSON line (input, answer, what was created) for scripts/resilience.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
import pytest_asyncio

from ccdaemon.engine import Engine, containers, images, system
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL
from tests.conftest import DEFAULT_ENGINE
from tests.daemon.conftest import make_config, remove_instance, running_daemon

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from tests.daemon.conftest import RunningDaemon

#: The package limit of the hostile daemons: small, so oversized bodies cost little, and
#: still large enough for a gzip bomb (1 MiB of zeros compressed expands past 512 MiB).
PACKAGE_LIMIT = 2 * 1024 * 1024
#: Where each case's answer goes as a JSON line (unset: nowhere).
OUT_ENV = "CCDAEMON_RESILIENCE_OUT"


@pytest.fixture(autouse=True)
def _default_engine(engine_name: str) -> str:
    # Asking for engine_name makes the root conftest start the default engine for this
    # directory's tests, whose module-scoped fixtures cannot take a function's parameter.
    return engine_name


@dataclass
class Hostile:
    """The module's daemon and an engine client, on the module's event loop."""

    daemon: RunningDaemon
    engine: Engine

    async def made(self, since: float) -> list[str]:
        """What the engine shows of this daemon since ``since``: events, containers, images.

        Events are asked up to now only (``until`` in the past answers at once): any call
        the daemon made while answering was logged before its answer left.
        """
        peer = self.daemon.config.runtime.peer_id
        instance = self.daemon.config.instance
        found: list[str] = []
        async with system.events(
            self.engine, since=f"{since:.3f}", until=f"{time.time():.3f}"
        ) as events:
            async for event in events:
                attributes = (event.get("Actor") or {}).get("Attributes") or {}
                text = f"{attributes.get('name', '')} {event.get('from', '')}"
                if peer in text or attributes.get(INSTANCE_LABEL) == instance:
                    found.append(f"event {event.get('Type')} {event.get('Action')} {text}")
        labels = {INSTANCE_LABEL: instance}
        found += [
            f"container {c['Id']}" for c in await containers.list_(self.engine, labels=labels)
        ]
        found += [f"image {i['Id']}" for i in await images.list_(self.engine, labels=labels)]
        return found


@contextlib.contextmanager
def private_dir() -> Iterator[Path]:
    """A short private directory for a daemon's socket, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="ccdh-", dir="/tmp"))
    directory.chmod(0o700)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.asynccontextmanager
async def hostile_daemon(engine: Engine, engine_socket: str) -> AsyncIterator[Hostile]:
    """A daemon with a 2 MiB package limit; its containers and images go afterwards."""
    with private_dir() as directory:
        config = make_config(engine_socket, directory)
        config = replace(config, policy=replace(config.policy, max_package_size=PACKAGE_LIMIT))
        try:
            async with running_daemon(config) as daemon:
                yield Hostile(daemon, engine)
        finally:
            await remove_instance(engine, config.instance)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hostile(engine_sockets: dict[str, str]) -> AsyncIterator[Hostile]:
    """One hostile daemon for a whole module, and an engine client, on the module's loop."""
    engine_socket = engine_sockets[DEFAULT_ENGINE]
    async with (
        Engine(f"unix://{engine_socket}") as engine,
        hostile_daemon(engine, engine_socket) as handle,
    ):
        yield handle


def record(group: str, case: str, route: str, answer: tuple[int, Any] | str, created: int) -> None:
    """Append one case's answer to ``$CCDAEMON_RESILIENCE_OUT`` (nothing when unset).

    ``answer`` is the status and decoded body, or a few words when there was none (a
    connection the daemon closed).
    """
    out = os.environ.get(OUT_ENV)
    if not out:
        return
    status: int | str
    if isinstance(answer, str):
        status, code, field = answer, None, None
    else:
        error = answer[1].get("error", {}) if isinstance(answer[1], dict) else {}
        status, code, field = answer[0], error.get("code"), error.get("field")
    line = {
        "group": group,
        "case": case,
        "route": route,
        "status": status,
        "code": code,
        "field": field,
        "created": created,
    }
    with Path(out).open("ab") as file:
        file.write(orjson.dumps(line) + b"\n")
