"""Tar archives made entry by entry for package tests (tarfile checks nothing on write)."""

from __future__ import annotations

import io
import tarfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

Entry = tuple[tarfile.TarInfo, bytes | None]


def entry(name: str, data: bytes | None = b"", **attrs: Any) -> Entry:
    """A tar entry as Fabric 1.4 writes one: mode 0100644, uid/gid 500, zero times.

    A regular file unless ``attrs`` say otherwise (type, linkname, mode...).
    """
    info = tarfile.TarInfo(name)
    info.mode = 0o100644
    info.uid = info.gid = 500
    info.mtime = 0
    if data is not None:
        info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def tar_gz(entries: Iterable[Entry]) -> bytes:
    """The entries as a gzip'd tar, written as given."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()
