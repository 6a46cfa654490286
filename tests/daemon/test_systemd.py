"""The sd_notify client against real datagram sockets, and the unit file against systemd."""

from __future__ import annotations

import configparser
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from ccdaemon.daemon.systemd import Notifier

if TYPE_CHECKING:
    from collections.abc import Iterator

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "ccdaemon.service"


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound in tmp_path, as systemd binds its notify socket."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        yield sock, str(path)


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on ``sock``, without blocking."""
    messages = []
    sock.settimeout(0)
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_ready_status_stopping_send_exact_datagrams(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    with Notifier.from_env({"NOTIFY_SOCKET": path}) as notifier:
        notifier.ready("listening on /run/ccdaemon/ccdaemon.sock")
        notifier.status("3 chaincodes running")
        notifier.stopping("stopping")
        notifier.watchdog()
    assert [sock.recv(4096) for _ in range(4)] == [
        b"READY=1\nSTATUS=listening on /run/ccdaemon/ccdaemon.sock\n",
        b"STATUS=3 chaincodes running\n",
        b"STOPPING=1\nSTATUS=stopping\n",
        b"WATCHDOG=1\n",
    ]


def test_status_is_kept_on_one_line(listener: tuple[socket.socket, str]) -> None:
    """A newline in a status must not start a new assignment (here a forged READY=1)."""
    sock, path = listener
    with Notifier.from_env({"NOTIFY_SOCKET": path}) as notifier:
        notifier.status("engine down\nREADY=1")
    assert sock.recv(4096) == b"STATUS=engine down READY=1\n"


def test_reloading_carries_the_monotonic_clock(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    with Notifier.from_env({"NOTIFY_SOCKET": path}) as notifier:
        notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    match = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)\n", sock.recv(4096).decode())
    assert match is not None
    assert before <= int(match[1]) <= after


def test_abstract_socket_address() -> None:
    """``@name`` is Linux's abstract namespace: the bound name starts with a NUL byte."""
    name = f"ccdaemon-test-{secrets.token_hex(8)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        with Notifier.from_env({"NOTIFY_SOCKET": "@" + name}) as notifier:
            notifier.ready("up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up\n"


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not run by systemd: no socket is even opened, and the watchdog is off."""

    def no_socket(*_: object) -> socket.socket:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", no_socket)
    with Notifier.from_env({"WATCHDOG_USEC": "100000"}) as notifier:
        notifier.ready("up")
        notifier.status("s")
        notifier.stopping("s")
        notifier.reloading()
        notifier.watchdog()
        assert notifier.watchdog_interval is None


def test_unsupported_address_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"}) as notifier:
        notifier.ready("up")
    assert "neither a path nor an abstract address" in caplog.text


def test_failed_send_warns_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With systemd gone: the socket path is dead, yet the daemon carries on."""
    with Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone")}) as notifier:
        notifier.ready("up")
        notifier.status("still up")
        notifier.watchdog()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot notify systemd" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
    ids=["no-pid", "own-pid", "foreign-pid", "zero", "malformed", "absent"],
)
def test_watchdog_interval_is_half_the_timeout_for_this_process(
    listener: tuple[socket.socket, str], env: dict[str, str], interval: float | None
) -> None:
    _, path = listener
    with Notifier.from_env({"NOTIFY_SOCKET": path, **env}) as notifier:
        assert notifier.watchdog_interval == interval


async def test_run_watchdog_pings_periodically(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    with Notifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"}) as notifier:
        with anyio.move_on_after(0.3):
            await notifier.run_watchdog()
    pings = received(sock)
    assert len(pings) >= 2
    assert set(pings) == {"WATCHDOG=1\n"}


async def test_run_watchdog_returns_at_once_without_watchdog(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    with Notifier.from_env({"NOTIFY_SOCKET": path}) as notifier, anyio.fail_after(1):
        await notifier.run_watchdog()
    assert received(sock) == []


class UnitParser(configparser.ConfigParser):
    """Reads a unit file: keys keep their case, repeats are allowed, "$MAINPID" stays literal."""

    def __init__(self) -> None:
        super().__init__(strict=False, interpolation=None)

    def optionxform(self, optionstr: str) -> str:
        """Keep the key as written: systemd's keys are case-sensitive."""
        return optionstr


def unit() -> UnitParser:
    parser = UnitParser()
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_declares_notify_watchdog_and_hardening() -> None:
    service = unit()["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["ExecStart"].split() == [
        "/usr/local/bin/ccdaemon",
        "serve",
        "--config",
        "/etc/ccdaemon/ccdaemon.toml",
    ]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["WatchdogSec"] == "30s"
    assert service["KillMode"] == "mixed"
    assert service["RuntimeDirectory"] == "ccdaemon"
    assert service["RuntimeDirectoryMode"] == "0750"
    assert (service["User"], service["Group"]) == ("ccdaemon", "ccdaemon")
    assert service["SupplementaryGroups"] == "docker"
    assert service["CapabilityBoundingSet"] == ""
    assert service["ProtectSystem"] == "strict"
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian/Ubuntu package: systemd)",
)
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """This machine's systemd accepts every line; ExecStart points at a real program for it.

    verify exits 0 even for unknown keys or bad values ("... ignoring"), so any message
    naming the unit counts as a failure too; messages about the host's other units do not.
    """
    copy = tmp_path / UNIT.name
    copy.write_text(
        UNIT.read_text().replace("/usr/local/bin/ccdaemon", f"{sys.executable} -m ccdaemon")
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    problems = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert not problems
    assert result.returncode == 0, result.stderr
