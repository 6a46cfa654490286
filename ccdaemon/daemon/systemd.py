"""The sd_notify protocol, by hand: readiness, status, reload, stop and watchdog to systemd.

systemd hands a ``Type=notify`` service the address of a datagram socket in
``NOTIFY_SOCKET``; each datagram is newline-separated ``KEY=VALUE`` assignments
(sd_notify(3)). With no ``NOTIFY_SOCKET`` the daemon was not started by systemd, and
every method here does nothing, so the daemon calls them unconditionally.

Notification is best effort: systemd may have gone away (a stopped manager, a container
without one), and the daemon's work must not fail for it. A failed send is logged once
and swallowed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Self

import anyio

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify datagrams to systemd, or nothing when not run by systemd.

    Args:
        address: ``NOTIFY_SOCKET``'s value: a filesystem path, or ``@name`` for Linux's
            abstract namespace; None for no notification at all.
        watchdog_usec: systemd's watchdog timeout in microseconds (``WATCHDOG_USEC``),
            None when the watchdog is off or meant for another process.
    """

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self._address = _socket_address(address) if address else None
        self._watchdog_usec = watchdog_usec if self._address is not None else None
        self._socket: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        """Build the notifier systemd asked for through the environment.

        The watchdog is on only when ``WATCHDOG_USEC`` is a positive integer and
        ``WATCHDOG_PID`` is absent or this process's id, as sd_watchdog_enabled(3) decides:
        a child that inherited the environment must not keep its parent's watchdog fed.
        """
        return cls(environ.get("NOTIFY_SOCKET"), watchdog_usec=_watchdog_usec(environ))

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings: half the timeout, as sd_watchdog_enabled(3) advises.

        None when there is no watchdog.
        """
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def ready(self, status: str) -> None:
        """Tell systemd that start-up (or a reload) is complete, with a status line."""
        self._send(f"READY=1\nSTATUS={_one_line(status)}\n")

    def status(self, text: str) -> None:
        """Set the free-form status line that ``systemctl status`` shows."""
        self._send(f"STATUS={_one_line(text)}\n")

    def stopping(self, status: str) -> None:
        """Tell systemd that shutdown has begun, with a status line."""
        self._send(f"STOPPING=1\nSTATUS={_one_line(status)}\n")

    def reloading(self) -> None:
        """Tell systemd that a configuration reload has begun; call ``ready`` when it is done.

        systemd 253 and later match the reload by the CLOCK_MONOTONIC time sent with it
        (``Type=notify-reload``); older versions ignore the extra assignment.
        """
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={now}\n")

    def watchdog(self) -> None:
        """Feed systemd's watchdog once."""
        self._send("WATCHDOG=1\n")

    async def run_watchdog(self) -> None:
        """Feed the watchdog every ``watchdog_interval`` seconds, until cancelled.

        Returns at once when there is no watchdog, so the daemon can start it regardless.
        Running on the event loop is the point: a blocked loop stops the pings, and
        systemd restarts the daemon.
        """
        interval = self.watchdog_interval
        if interval is None:
            return
        while True:
            self.watchdog()
            await anyio.sleep(interval)

    def close(self) -> None:
        """Close the socket; later notifications open a new one."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        try:
            if self._socket is None:
                # Non-blocking: a stalled systemd must never stall the event loop; a full
                # queue is then an error, dropped like any other.
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK
                )
            self._socket.sendto(message.encode(), self._address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "cannot notify systemd at %r (further failures not logged): %s",
                    self._address,
                    exc,
                )


def _socket_address(address: str) -> str | None:
    """``NOTIFY_SOCKET`` as an AF_UNIX address; None (with a warning) for a kind we do not speak."""
    if address.startswith("/"):
        return address
    if address.startswith("@") and len(address) > 1:
        # Linux's abstract namespace: the name starts with a NUL byte instead of "@".
        return "\0" + address[1:]
    # systemd 254 also offers vsock: addresses, for virtual machines; a host daemon never
    # gets one, so one warning beats silently dropping every notification.
    log.warning(
        "NOTIFY_SOCKET=%r is neither a path nor an abstract address; not notifying", address
    )
    return None


def _watchdog_usec(environ: Mapping[str, str]) -> int | None:
    """``WATCHDOG_USEC`` when it is meant for this process and valid, else None."""
    usec, pid = environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID")
    if usec is None:
        return None
    try:
        timeout = int(usec)
        owner = int(pid) if pid is not None else os.getpid()
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC=%r / WATCHDOG_PID=%r", usec, pid)
        return None
    if timeout <= 0 or owner != os.getpid():
        return None
    return timeout


def _one_line(text: str) -> str:
    # A newline would end the STATUS assignment and start a bogus one.
    return " ".join(text.splitlines())
