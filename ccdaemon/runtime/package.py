"""Chaincode packages read safely, in memory, into one shape for every builder.

Two forms reach ccdaemon:

* Fabric 2.x: an outer ``.tar.gz`` holding ``metadata.json`` (``{"type", "label",
  "path"}``) and ``code.tar.gz``, as ``peer lifecycle chaincode package`` writes it.
* Fabric 1.4: the bare code ``.tar.gz`` (``src/<import path>/...``, ``META-INF/...``),
  with type and path supplied by the caller.

Both become a :class:`ChaincodePackage` whose ``code`` is the ``code.tar.gz`` the build
container receives in ``/chaincode/input``. Every gzip stream is decompressed through a
counting reader, so a bomb stops at ``max_expanded`` bytes; every tar is walked member by
member, so nothing is extracted and nothing touches the disk.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import re
import tarfile
import zlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from ccdaemon.runtime.errors import InvalidRequest, PackageError, PackageTooLarge

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from _typeshed import WriteableBuffer

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_MAX_EXPANDED",
    "DEFAULT_MAX_SIZE",
    "ChaincodePackage",
    "read_code_package",
    "read_package",
]

# The peer's default gRPC message limit is 100 MiB, so no installable package is larger.
DEFAULT_MAX_SIZE = 100 * 1024 * 1024
# Per gzip stream; source trees compress 3-10x, so this leaves room over DEFAULT_MAX_SIZE.
DEFAULT_MAX_EXPANDED = 512 * 1024 * 1024
# Per tar; vendored Go modules reach a few thousand files, node_modules is not packaged.
DEFAULT_MAX_ENTRIES = 10_000

METADATA_FILE = "metadata.json"
CODE_PACKAGE_FILE = "code.tar.gz"

# Fabric 2.5's persistence.LabelRegexp; POSIX [[:alnum:]] is ASCII-only in Go's RE2.
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class ChaincodePackage:
    """A chaincode package checked for safety, ready for any builder.

    Attributes:
        type: The chaincode type, lower-cased (``golang``, ``node``, ``java``, ``car``,
            or whatever an external builder claims).
        label: The package label (2.x) or the caller's label (1.4).
        path: The Go import path or main package path; ``""`` when not given.
        code: The raw ``code.tar.gz`` bytes the build container gets in ``/chaincode/input``.
        metadata: The parsed ``metadata.json``, read-only, unknown keys kept.
        metadata_json: The raw ``metadata.json`` bytes, as external builders receive them.
        package_bytes: The whole package file as received; its hash is the package id.
    """

    type: str
    label: str
    path: str
    code: bytes = field(repr=False)
    metadata: Mapping[str, object] = field(hash=False, compare=False)
    metadata_json: bytes = field(repr=False)
    package_bytes: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the whole package file, as Fabric hashes the install bytes."""
        return hashlib.sha256(self.package_bytes).hexdigest()

    @property
    def package_id(self) -> str:
        """The package id, ``<label>:<sha256 of the package file>`` as Fabric 2.x forms it."""
        return f"{self.label}:{self.sha256}"


def read_package(
    data: bytes, *, max_size: int, max_entries: int, max_expanded: int
) -> ChaincodePackage:
    """Reads a Fabric 2.x chaincode package (``metadata.json`` plus ``code.tar.gz``).

    Args:
        data: The whole package file.
        max_size: Largest accepted ``data``, in bytes.
        max_entries: Most entries accepted in the outer tar and in ``code.tar.gz``, each.
        max_expanded: Most decompressed bytes accepted from each gzip stream.

    Returns:
        The package, with ``code`` checked as the builder will extract it.

    Raises:
        PackageTooLarge: ``data`` is over ``max_size``, a gzip stream expands past
            ``max_expanded``, or a tar has more than ``max_entries`` entries.
        PackageError: Not gzip or not tar; a missing or duplicate ``metadata.json`` or
            ``code.tar.gz``; a member that is not a plain file or directory, or whose
            name is absolute or climbs out with ``..``.
        InvalidRequest: ``metadata.json`` breaks Fabric's rules; ``field`` is
            ``package.metadata`` or ``package.metadata.<key>``.
    """
    _check_size(data, max_size)
    members: dict[str, bytes] = {}

    def take(member: tarfile.TarInfo, read: Callable[[], bytes]) -> None:
        # Fabric reads the outer tar with every entry a regular file, directories included.
        if not member.isreg():
            raise PackageError(
                f"package member {member.name!r}: {_kind(member)}, not a regular file"
            )
        if member.name not in (METADATA_FILE, CODE_PACKAGE_FILE):
            # Fabric logs and ignores other top-level files; reading past them is enough.
            return
        if member.name in members:
            raise PackageError(f"package member {member.name!r}: appears more than once")
        members[member.name] = read()

    _walk(data, "package", take, max_entries=max_entries, max_expanded=max_expanded)
    for name in (METADATA_FILE, CODE_PACKAGE_FILE):
        if name not in members:
            raise PackageError(f"package: no {name} in the package")
    metadata_json = members[METADATA_FILE]
    metadata = _parse_metadata(metadata_json)
    code = members[CODE_PACKAGE_FILE]
    _check_code(code, CODE_PACKAGE_FILE, max_entries=max_entries, max_expanded=max_expanded)
    return ChaincodePackage(
        type=_str_field(metadata, "type").lower(),
        label=_str_field(metadata, "label"),
        path=_str_field(metadata, "path"),
        code=code,
        metadata=MappingProxyType(metadata),
        metadata_json=metadata_json,
        package_bytes=data,
    )


def read_code_package(  # noqa: PLR0913 - three limits plus the three facts 1.4 kept outside the file
    code: bytes,
    *,
    cc_type: str,
    path: str,
    label: str,
    max_size: int,
    max_entries: int,
    max_expanded: int,
) -> ChaincodePackage:
    """Reads a Fabric 1.4 code package: the bare code ``.tar.gz`` of a deployment spec.

    ``metadata_json`` is made up the way Fabric 2.x presents a legacy package to its
    builders (type upper-case, then path, then label); ``package_id`` hashes ``code``.

    Args:
        code: The code ``.tar.gz`` (``src/<import path>/...`` and ``META-INF/...``).
        cc_type: The chaincode type, any case (``GOLANG``, ``node``...).
        path: The Go import path, or ``""``.
        label: The label to identify the package by; same rule as a 2.x label.
        max_size: Largest accepted ``code``, in bytes.
        max_entries: Most entries accepted in the tar.
        max_expanded: Most decompressed bytes accepted from the gzip stream.

    Returns:
        The package, in the same shape :func:`read_package` returns.

    Raises:
        PackageTooLarge: ``code`` is over ``max_size``, expands past ``max_expanded``,
            or has more than ``max_entries`` entries.
        PackageError: Not gzip or not tar, or a member that is unsafe to extract.
        InvalidRequest: An empty type or a label that breaks Fabric's rule.
    """
    _check_size(code, max_size)
    metadata: dict[str, object] = {"type": cc_type.upper(), "path": path, "label": label}
    _validate_metadata(metadata)
    _check_code(code, "code package", max_entries=max_entries, max_expanded=max_expanded)
    metadata_json = json.dumps(metadata, separators=(",", ":")).encode()
    return ChaincodePackage(
        type=cc_type.lower(),
        label=label,
        path=path,
        code=code,
        metadata=MappingProxyType(metadata),
        metadata_json=metadata_json,
        package_bytes=code,
    )


def _check_size(data: bytes, max_size: int) -> None:
    if len(data) > max_size:
        raise PackageTooLarge(f"package: {len(data)} bytes, over the limit of {max_size}", max_size)


def _check_code(data: bytes, what: str, *, max_entries: int, max_expanded: int) -> None:
    """Walks the code tar as the builder's extraction will, keeping nothing."""

    def check(member: tarfile.TarInfo, _read: Callable[[], bytes]) -> None:
        # The same rule Fabric's external-builder untar applies: files and directories only.
        if not (member.isreg() or member.isdir()):
            raise PackageError(
                f"{what} member {member.name!r}: {_kind(member)}, not a file or directory"
            )

    _walk(data, what, check, max_entries=max_entries, max_expanded=max_expanded)


def _walk(
    data: bytes,
    what: str,
    visit: Callable[[tarfile.TarInfo, Callable[[], bytes]], None],
    *,
    max_entries: int,
    max_expanded: int,
) -> None:
    """Streams one gzip'd tar, checking names and limits, calling ``visit`` per member."""
    stream = _BoundedGzip(data, what, max_expanded)
    with stream:
        try:
            # "r|" reads strictly forward, so decompression never runs ahead of the members.
            with tarfile.open(fileobj=io.BufferedReader(stream), mode="r|") as tar:
                for count, member in enumerate(tar, start=1):
                    if count > max_entries:
                        raise PackageTooLarge(
                            f"{what}: more than {max_entries} entries", max_entries
                        )
                    # A forged size would make tarfile skip forward block by block for ages.
                    if member.size > max_expanded:
                        raise PackageTooLarge(
                            f"{what} member {member.name!r}: {member.size} bytes, over the "
                            f"limit of {max_expanded}",
                            max_expanded,
                        )
                    _check_name(member, what)
                    visit(member, functools.partial(_read_member, tar, member))
            # Read to the end so a corrupt trailer (bad CRC) or a bomb behind the tar shows.
            while stream.read(_CHUNK):
                pass
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            # BadGzipFile is an OSError; EOFError is a truncated gzip stream.
            raise PackageError(f"{what}: not a gzip-compressed tar ({exc})") from exc


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    reader = tar.extractfile(member)
    if reader is None:  # pragma: no cover - callers only read regular files
        raise PackageError(f"member {member.name!r}: has no data")
    return reader.read()


def _check_name(member: tarfile.TarInfo, what: str) -> None:
    name = member.name
    if not name:
        raise PackageError(f"{what} member with an empty name")
    if name.startswith("/"):
        raise PackageError(f"{what} member {name!r}: absolute name")
    if ".." in name.split("/"):
        raise PackageError(f"{what} member {name!r}: '..' climbs out of the directory")


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"symlink to {member.linkname!r}"
    if member.islnk():
        return f"hardlink to {member.linkname!r}"
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "fifo"
    if member.isdir():
        return "directory"
    return f"entry of type {member.type!r}"


class _BoundedGzip(io.RawIOBase):
    """Decompresses incrementally and fails once more than ``limit`` bytes came out."""

    def __init__(self, data: bytes, what: str, limit: int) -> None:
        self._gzip = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
        self._what = what
        self._limit = limit
        self._total = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._gzip.close()
        super().close()

    def readinto(self, buffer: WriteableBuffer) -> int:
        # Asking for at most one byte past the limit keeps the output bounded by the limit.
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._limit - self._total + 1)
        chunk = self._gzip.read(want)
        self._total += len(chunk)
        if self._total > self._limit:
            raise PackageTooLarge(
                f"{self._what}: decompresses to more than {self._limit} bytes", self._limit
            )
        view[: len(chunk)] = chunk
        return len(chunk)


def _parse_metadata(raw: bytes) -> dict[str, object]:
    try:
        parsed = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest("package.metadata", f"{METADATA_FILE} is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidRequest("package.metadata", f"{METADATA_FILE} is not a JSON object")
    _validate_metadata(parsed)
    return parsed


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # Go keeps the last of two equal keys; a package saying two things is refused instead.
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidRequest(f"package.metadata.{key}", "appears more than once")
        result[key] = value
    return result


def _validate_metadata(metadata: dict[str, object]) -> None:
    # Unknown keys are kept: Fabric ignores them and external builders get the raw file.
    for key in ("type", "label", "path"):
        value = metadata.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(
                f"package.metadata.{key}", f"must be a string, not {type(value).__name__}"
            )
    if not _str_field(metadata, "type"):
        raise InvalidRequest("package.metadata.type", "missing or empty")
    label = _str_field(metadata, "label")
    if not _LABEL.fullmatch(label):
        raise InvalidRequest(
            "package.metadata.label",
            f"{label!r} must start with a letter or digit and hold only letters, digits and '_.+-'",
        )


def _str_field(metadata: Mapping[str, object], key: str) -> str:
    # Go leaves a string field empty for a missing key or a JSON null; so does this.
    value = metadata.get(key)
    return value if isinstance(value, str) else ""
