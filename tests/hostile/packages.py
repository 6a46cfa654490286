"""Hostile chaincode packages, made byte by byte with tarfile and gzip.

A well-formed Fabric 2.x package is ``metadata.json`` plus ``code.tar.gz`` in a gzip'd
tar; each function here breaks one thing about it (an escaping name or link, a bomb).
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import tarfile

from ccdaemon.runtime.package import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_EXPANDED
from tests.tarballs import Entry, entry, tar_gz

MiB = 1024 * 1024
#: What the daemon lets one gzip stream expand to, and one tar hold.
MAX_EXPANDED = DEFAULT_MAX_EXPANDED
MAX_ENTRIES = DEFAULT_MAX_ENTRIES
GO_PATH = "example.com/asset"


def code(*extra: Entry) -> bytes:
    """A small Go code.tar.gz, plus ``extra`` entries."""
    return tar_gz(
        [
            entry(f"src/{GO_PATH}/main.go", b"package main\n\nfunc main() {}\n"),
            *extra,
        ]
    )


def metadata(**fields: object) -> bytes:
    """metadata.json, with ``fields`` over the defaults."""
    body: dict[str, object] = {"type": "golang", "label": "hostile_1.0", "path": GO_PATH}
    body.update(fields)
    return json.dumps(body).encode()


def package(*extra: Entry, meta: bytes | None = None, code_tar: bytes | None = None) -> bytes:
    """A 2.x package: metadata.json and code.tar.gz (defaults unless given), then ``extra``."""
    return tar_gz(
        [
            entry("metadata.json", metadata() if meta is None else meta),
            entry("code.tar.gz", code() if code_tar is None else code_tar),
            *extra,
        ]
    )


def b64(data: bytes) -> str:
    """``data`` as the API carries a package."""
    return base64.b64encode(data).decode()


@functools.cache
def zeros_gzip(expanded: int = MAX_EXPANDED + 64 * MiB) -> bytes:
    """A gzip bomb: ``expanded`` zero bytes in ~1/1000 of that.

    Made of repeated 8 MiB members (a gzip stream may hold many), so it costs nothing to
    build; readers expand it all the same.
    """
    member = gzip.compress(bytes(8 * MiB), compresslevel=9, mtime=0)
    return member * -(-expanded // (8 * MiB))


def forged_size() -> bytes:
    """A tar bomb by size: one member whose header claims more than the limit allows."""
    info, _ = entry("big", None)
    info.size = MAX_EXPANDED + MiB
    # Only the header is written: the reader must refuse it without reading the "body".
    return gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT) + bytes(1024), mtime=0)


def many_entries(count: int = MAX_ENTRIES + 1) -> bytes:
    """A tar bomb by count: ``count`` empty files."""
    return tar_gz(entry(f"f{i}") for i in range(count))
