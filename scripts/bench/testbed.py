"""What every benchmark here needs from the test bed: an engine's socket, a daemon process."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import IO, Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
CCDAEMON = ROOT / ".venv" / "bin" / "ccdaemon"


def engine_socket(name: str) -> str:
    """Start (or find) the named engine with scripts/engines and return its socket."""
    up = subprocess.run(
        [str(ROOT / "scripts" / "engines"), "up", name],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    sockets = dict(line.split(maxsplit=1) for line in up.stdout.splitlines() if line.strip())
    return sockets[name]


async def spawn_daemon(config: Path, log: IO[Any]) -> asyncio.subprocess.Process:
    """Start ``ccdaemon serve --config`` (then ``wait_healthy``).

    The daemon gets a session of its own: a Ctrl-C at the terminal reaches only the
    benchmark, whose cleanup then stops the daemon with SIGTERM and checks how it exits.
    Its output goes to ``log`` (a file: an unread pipe would block it).
    """
    return await asyncio.create_subprocess_exec(
        str(CCDAEMON),
        "serve",
        "--config",
        str(config),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


async def wait_healthy(daemon: asyncio.subprocess.Process, api_socket: Path) -> dict[str, Any]:
    """Poll GET /v1/health until it says "ok" and return that answer (no timeout of its own).

    Raises:
        RuntimeError: the daemon exited.
    """
    connector = aiohttp.UnixConnector(path=str(api_socket))
    async with aiohttp.ClientSession(connector=connector) as session:
        while True:
            if daemon.returncode is not None:
                raise RuntimeError(f"the daemon exited with {daemon.returncode} at start")
            try:
                async with session.get("http://ccdaemon/v1/health") as answer:
                    body = await answer.json()
                    if answer.status == 200 and body.get("status") == "ok":
                        return dict(body)
            except (aiohttp.ClientError, json.JSONDecodeError):
                pass
            await asyncio.sleep(0.05)
