"""What the benchmarks here share, from the test bed to the floor client.

An engine's socket; a daemon process, its configuration and its memory; the floor
client (hand-written HTTP) and the TLS packer a plain client would use.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import subprocess
import sys
import tarfile
import traceback
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import aiohttp

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping

ROOT = Path(__file__).resolve().parents[2]


def exit_with(main: Callable[[], int]) -> NoReturn:
    """Exit with ``main``'s status: 0 targets met, 1 one missed; 130 on Ctrl-C; 2 on an error."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:  # noqa: BLE001 -- the traceback, then the documented status
        traceback.print_exc()
        sys.exit(2)


def engine_arguments(parser: argparse.ArgumentParser, default: str = "docker-20.10") -> None:
    """Add the engine options every benchmark takes: ``--engine NAME`` or ``--socket PATH``."""
    parser.add_argument("--engine", default=default, help="engine of scripts/engines")
    parser.add_argument("--socket", help="use the engine already answering on this socket")


def chosen_socket(args: argparse.Namespace) -> str:
    """The socket ``--socket`` names, else that of ``--engine`` (started when down)."""
    return args.socket or engine_socket(args.engine)


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


async def spawn_daemon(
    config: Path, log: IO[Any], env: Mapping[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Start ``ccdaemon serve --config`` with this interpreter (then ``wait_healthy``).

    The daemon gets a session of its own: a Ctrl-C at the terminal reaches only the
    benchmark, whose cleanup then stops the daemon with SIGTERM and checks how it exits.
    Its output goes to ``log`` (a file: an unread pipe would block it). ``env``, when
    given, is its whole environment.
    """
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ccdaemon",
        "serve",
        "--config",
        str(config),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        env=env,
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


def write_config(  # noqa: PLR0913 -- the settings that differ between benchmarks
    directory: Path,
    *,
    instance: str,
    api_socket: Path,
    engine_socket: str,
    network_id: str,
    peer_id: str,
    mspid: str | None = None,
) -> Path:
    """A daemon's TOML configuration for a benchmark: ``directory``/ccdaemon.toml.

    Chaincode output attached, the default engine_limit, no network for chaincodes,
    and 10 s for in-flight work at SIGTERM.
    """
    msp = f'mspid = "{mspid}"\n' if mspid else ""
    text = f"""\
instance = "{instance}"

[listen]
socket = "{api_socket}"

[engine]
endpoint = "unix://{engine_socket}"

[runtime]
network_id = "{network_id}"
peer_id = "{peer_id}"
{msp}attach_stdout = true
startup_timeout = 120

[runtime.host_config]
NetworkMode = "none"

[shutdown]
grace = 10
"""
    path = directory / "ccdaemon.toml"
    path.write_text(text)
    return path


def memory_mib(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of ``pid`` in MiB, from /proc (the kernel's own accounting)."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


class RawHTTP:
    """The floor client: hand-written HTTP/1.1 on one kept-alive Unix connection."""

    def __init__(self, socket: str) -> None:
        self.socket = socket
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.head = b""

    async def send(self, method: str, target: str, body: bytes = b"", ctype: str = "") -> int:
        """Write one request; read its status line and headers; return the status."""
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_unix_connection(self.socket)
        lines = [f"{method} {target} HTTP/1.1", "Host: docker", f"Content-Length: {len(body)}"]
        if ctype:
            lines.append(f"Content-Type: {ctype}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        self.head = head.lower()
        return int(head[9:12])

    async def request(self, method: str, target: str, body: bytes = b"", ctype: str = "") -> int:
        """One request and its whole response body (read and dropped); return the status."""
        status = await self.send(method, target, body, ctype)
        assert self.reader is not None  # noqa: S101 -- send connected it
        if status in {204, 304} or status < 200:
            return status
        if b"transfer-encoding: chunked" in self.head:
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readline()
        else:
            start = self.head.find(b"content-length:")
            if start >= 0:
                end = self.head.index(b"\r\n", start)
                await self.reader.readexactly(int(self.head[start + 15 : end]))
        return status

    def close(self) -> None:
        """Close the connection (for an attach: end the stream)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None


def stdlib_targz(files: dict[str, bytes]) -> bytes:
    """The TLS files as a client without ccdaemon's packer makes them: tarfile and gzip."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)
