"""In-memory tar and tar.gz of ``{path: bytes}``, with Fabric's header rules.

Fabric writes each file with ``cutil.WriteBytesToPackage``: the name exactly as given
(absolute paths such as ``/etc/hyperledger/fabric/client.key`` included), mode ``0100644``
and zero times, no owner. The standard library's ``tarfile`` masks the mode to permission
bits, so the few USTAR header fields needed are written here directly; the output is
byte-for-byte deterministic, which keeps build contexts cacheable.
"""

from __future__ import annotations

import gzip
from typing import TYPE_CHECKING

from ccdaemon.engine.errors import ArchiveError

if TYPE_CHECKING:
    from collections.abc import Mapping

BLOCK = 512
_REGULAR_FILE_MODE = 0o100644
_NAME_MAX = 100
_PREFIX_MAX = 155
_SIZE_MAX = 8**11 - 1  # eleven octal digits


def tar(files: Mapping[str, bytes]) -> bytes:
    """Return an uncompressed USTAR archive holding ``files`` in the mapping's order.

    Raises:
        ArchiveError: a path is empty, holds a NUL or a ``..`` component, or is too long.
    """
    parts: list[bytes] = []
    for path, data in files.items():
        parts.append(_header(path, len(data)))
        parts.append(data)
        padding = -len(data) % BLOCK
        if padding:
            parts.append(bytes(padding))
    parts.append(bytes(2 * BLOCK))  # two zero blocks end the archive
    return b"".join(parts)


def targz(files: Mapping[str, bytes]) -> bytes:
    """Return ``tar(files)`` gzip-compressed with a zero mtime, as Fabric uploads TLS files.

    Go's default compression level (6), as Fabric's ``gzip.NewWriter``: Python's default,
    9, takes twice the CPU on these few kilobytes for no smaller output worth having.
    """
    return gzip.compress(tar(files), compresslevel=6, mtime=0)


def _header(path: str, size: int) -> bytes:
    name, prefix = _split_name(path)
    if size > _SIZE_MAX:
        raise ArchiveError(f"tar member {path!r} is {size} bytes, more than a USTAR entry holds")
    header = bytearray(BLOCK)
    header[0 : len(name)] = name
    header[100:108] = b"%07o\0" % _REGULAR_FILE_MODE
    header[108:116] = b"0000000\0"  # uid
    header[116:124] = b"0000000\0"  # gid
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"00000000000\0"  # mtime
    header[148:156] = b" " * 8  # checksum counts as spaces while it is summed
    header[156] = ord("0")  # regular file
    header[257:265] = b"ustar\x0000"
    header[345 : 345 + len(prefix)] = prefix
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _split_name(path: str) -> tuple[bytes, bytes]:
    """Check ``path`` and split it into USTAR's name and prefix fields."""
    if not path or "\0" in path:
        raise ArchiveError(f"tar member path {path!r} is empty or contains NUL")
    if ".." in path.split("/"):
        raise ArchiveError(f"tar member path {path!r} escapes its directory with '..'")
    encoded = path.encode()
    if len(encoded) <= _NAME_MAX:
        return encoded, b""
    # Split at a slash so that the tail fits the name field and the head the prefix field.
    cut = encoded.find(b"/", max(0, len(encoded) - _NAME_MAX - 1))
    while cut != -1:
        if cut <= _PREFIX_MAX and len(encoded) - cut - 1 <= _NAME_MAX and cut > 0:
            return encoded[cut + 1 :], encoded[:cut]
        cut = encoded.find(b"/", cut + 1)
    raise ArchiveError(f"tar member path {path!r} is too long for a USTAR header")
