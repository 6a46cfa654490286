"""The daemon's Unix sockets (control API, Docker-API front): where, who, and leftovers."""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import socket
import stat
from typing import TYPE_CHECKING

from ccdaemon.errors import CcdaemonError

if TYPE_CHECKING:
    from pathlib import Path


class StartError(CcdaemonError):
    """The daemon cannot start (socket in use or unsafe, engine too old...)."""


def check_directory(directory: Path) -> None:
    """Refuse a socket directory anyone may write to (anyone could swap the socket)."""
    try:
        info = directory.stat()
    except FileNotFoundError:
        directory.mkdir(mode=0o750, parents=True)
        return
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        raise StartError(
            f"socket directory {directory} is world-writable: anyone could replace the socket; "
            "use a private directory such as /run/ccdaemon"
        )


def clear_stale(path: Path) -> None:
    """Remove a socket left by a killed daemon; refuse one a live daemon listens on."""
    if not path.exists():
        return
    if not path.is_socket():
        raise StartError(f"{path} exists and is not a socket; remove it or choose another path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in {errno.ECONNREFUSED, errno.ENOENT}:
            raise StartError(f"cannot check {path}: {exc}") from exc
        path.unlink(missing_ok=True)
    else:
        raise StartError(f"another daemon is listening on {path}")
    finally:
        probe.close()


def unlink(path: Path) -> None:
    """Remove a socket this daemon bound, if it is still there."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def give(path: Path, mode: int, group: str | None) -> None:
    """Set a bound socket's group (if any) and mode.

    Raises:
        StartError: the group does not exist or may not be given.
    """
    if group:
        try:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        except (KeyError, PermissionError) as exc:
            raise StartError(f"cannot give {path} to group {group}: {exc}") from exc
    path.chmod(mode)
