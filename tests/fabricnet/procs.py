"""Processes the kit starts: one log file each, stopped by PID (SIGTERM, then SIGKILL).

Each program runs in a session of its own, so a terminal's Ctrl-C reaches only the
kit, and what the program starts (a peer's external builder steps) shares its process
group: after the program is stopped, anything of that group still alive is stopped by
PID too, so nothing the kit started outlives it. ``healthz`` and ``metric`` probe a
program's operations endpoint (``/healthz``, ``/metrics``) on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tests.fabricnet.dist import KitError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

#: A PATH of the system's own programs: no Go, no virtualenv.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Seconds between SIGTERM and SIGKILL.
STOP_GRACE = 10.0
#: How often the state of another process is looked at while waiting.
POLL = 0.05


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that are free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def healthz(port: int) -> bool:
    """Whether the operations endpoint on 127.0.0.1:``port`` answers ``/healthz`` with 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def metric(port: int, series: str) -> float | None:
    """The value of ``series`` on 127.0.0.1:``port``'s ``/metrics``; None if not there."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def wait_for(check: Callable[[], bool], *, within: float, what: str, poll: float = 0.1) -> None:
    """Poll ``check`` until it is true.

    Raises:
        KitError: ``within`` seconds passed first; the message names ``what``.
    """
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise KitError(f"timed out after {within:g} s waiting for {what}")
        time.sleep(poll)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in {"Z", "X"}


def is_program(pid: int, program: str) -> bool:
    """Whether ``pid`` still runs ``program`` (so a reused PID is never signalled)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return False
    return argv0 == program


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in {"Z", "X"}:
            members.append(int(entry.name))
    return members


def children(pid: int) -> list[tuple[int, list[str]]]:
    """The live children of ``pid``, each with its command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] not in {"Z", "X"}:
            found.append((int(entry.name), [arg.decode(errors="replace") for arg in argv if arg]))
    return found


def stop_pid(
    pid: int, *, grace: float = STOP_GRACE, reap: Callable[[], object] | None = None
) -> None:
    """SIGTERM ``pid``, and SIGKILL it if it still lives ``grace`` seconds later.

    ``reap`` (a child's ``wait``) is called to collect a child's status; for other
    processes their parent does it, and a zombie counts as gone.
    """

    def gone() -> bool:
        if reap is not None:
            with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
                reap()
        return not alive(pid)

    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not gone():
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_for(gone, within=10, what=f"process {pid} to die after SIGKILL", poll=POLL)
            return
        time.sleep(POLL)


@dataclass
class Program:
    """One long-running program of the network, with its log file.

    Attributes:
        name: a short name (``orderer``, ``peer``) for messages and the log's file name.
        argv: the command.
        env: its whole environment.
        log: the file its stdout and stderr go to; each start appends to it.
        cwd: its working directory.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log: Path
    cwd: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    #: PID of a program started by another process (``python -m tests.fabricnet up``).
    adopted: int | None = None
    #: How many times it was started; each start's log begins with a marker line.
    starts: int = 0

    @property
    def pid(self) -> int | None:
        """The running process's id, or None when it is not running."""
        if self.popen is not None:
            return self.popen.pid if self.popen.poll() is None else None
        if self.adopted is not None and alive(self.adopted):
            return self.adopted
        return None

    def start(self) -> None:
        """Start the program (in a new session), appending its output to ``log``."""
        if self.pid is not None:
            raise KitError(f"{self.name} is running already (pid {self.pid})")
        self.starts += 1
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as output:
            output.write(f"--- ccdaemon fabricnet: start {self.starts} of {self.name}\n".encode())
            output.flush()
            self.popen = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=dict(self.env),
                cwd=self.cwd,
                start_new_session=True,
            )
        self.adopted = None

    def check_running(self) -> None:
        """Raise, with the log's tail, if the program is not running.

        Raises:
            KitError: it has exited (or was never started).
        """
        if self.pid is None:
            code = self.popen.poll() if self.popen is not None else None
            raise KitError(f"{self.name} is not running (exit status {code}):\n{self.tail()}")

    def stop(self, *, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM, SIGKILL after ``grace`` s; then stop what it left in its group; exit status."""
        pid = self.pid
        if pid is not None:
            stop_pid(pid, grace=grace, reap=self._reap)
            for member in group_members(pid):
                stop_pid(member, grace=grace)
        code = None
        if self.popen is not None:
            # A zombie counts as gone; collect its status (it is dead, so this is quick).
            code = self.popen.wait(timeout=10)
        self.popen = None
        self.adopted = None
        return code

    def kill(self) -> None:
        """SIGKILL the program at once (its group's other members are left alone)."""
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: self._reap() is not None or not alive(pid), within=10, what="kill")

    def text(self, since: int = 0) -> str:
        """The log from byte offset ``since`` (a ``mark()``) on; all of it by default."""
        try:
            with self.log.open("rb") as file:
                file.seek(since)
                return file.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def mark(self) -> int:
        """The log's length now: give it to ``text`` or ``wait_log`` to see only what follows."""
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def wait_log(self, text: str, *, since: int = 0, within: float = 30) -> str:
        """Wait until ``text`` is in the log after ``since``; the log after ``since``.

        Raises:
            KitError: it did not appear within ``within`` seconds (the log's tail is given).
        """
        try:
            wait_for(lambda: text in self.text(since), within=within, what=f"{text!r}")
        except KitError as exc:
            raise KitError(f"{self.name}: {exc}; its log ends:\n{self.tail()}") from None
        return self.text(since)

    def tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.text().splitlines()[-lines:])

    def _reap(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None
