"""Chaincode packages: Fabric 2.x and 1.4 forms read safely, in memory.

Packages are built here with tarfile, gzip and zlib alone, byte for byte as Fabric's
``peer lifecycle chaincode package`` and 1.4's ``WriteStreamToPackage`` lay them out; the
package id is checked against ``sha256sum``.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
import tracemalloc
import zlib
from typing import Any

import pytest

from ccdaemon.runtime.errors import InvalidRequest, PackageError, PackageTooLarge
from ccdaemon.runtime.package import (
    DEFAULT_MAX_ENTRIES,
    DEFAULT_MAX_EXPANDED,
    DEFAULT_MAX_SIZE,
    ChaincodePackage,
    read_code_package,
    read_package,
)
from tests.tarballs import Entry, entry, tar_gz

MiB = 1024 * 1024
LIMITS = {
    "max_size": DEFAULT_MAX_SIZE,
    "max_entries": DEFAULT_MAX_ENTRIES,
    "max_expanded": DEFAULT_MAX_EXPANDED,
}
GO_PATH = "github.com/example/asset"
MAIN_GO = b"package main\n\nfunc main() {}\n"
INDEX_JSON = b'{"index":{"fields":["owner"]},"name":"byOwner","type":"json"}'


def _code(*extra: Entry) -> bytes:
    """A Go code package in the 1.4 layout: src/<import path>/... and META-INF/...."""
    return tar_gz(
        [
            entry("src/", None, type=tarfile.DIRTYPE, mode=0o40755),
            entry(f"src/{GO_PATH}/main.go", MAIN_GO),
            entry("META-INF/statedb/couchdb/indexes/byOwner.json", INDEX_JSON),
            *extra,
        ]
    )


def _metadata(**fields: object) -> bytes:
    body: dict[str, object] = {"type": "golang", "label": "asset_1.0", "path": GO_PATH}
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not _DROP}).encode()


_DROP = object()


def _package(metadata: bytes | None = None, code: bytes | None = None, *extra: Entry) -> bytes:
    """A 2.x package; ``None`` keeps the default member, ``b""`` members come from extra."""
    entries = [
        entry("metadata.json", _metadata() if metadata is None else metadata),
        entry("code.tar.gz", _code() if code is None else code),
        *extra,
    ]
    return tar_gz(entries)


# --- valid packages ---------------------------------------------------------------------


def test_valid_2x_package_round_trips_type_label_path_and_code() -> None:
    """A well-formed 2.x package yields its metadata and the exact code.tar.gz bytes."""
    code = _code()
    metadata = _metadata(type="GOLANG", extra={"note": "kept"})
    data = _package(metadata, code)

    package = read_package(data, **LIMITS)

    assert isinstance(package, ChaincodePackage)
    assert (package.type, package.label, package.path) == ("golang", "asset_1.0", GO_PATH)
    assert package.code == code
    assert package.metadata_json == metadata
    assert package.metadata["extra"] == {"note": "kept"}
    assert package.package_bytes == data
    with tarfile.open(fileobj=io.BytesIO(package.code), mode="r:gz") as tar:
        assert tar.extractfile(f"src/{GO_PATH}/main.go").read() == MAIN_GO  # type: ignore[union-attr]


def test_2x_package_without_path_reads_path_as_empty() -> None:
    """A package with no path (external builders need none) reads path as ""."""
    package = read_package(_package(_metadata(type="ccaas", path=_DROP)), **LIMITS)

    assert (package.type, package.path) == ("ccaas", "")


def test_valid_14_code_package_round_trips_in_the_same_shape() -> None:
    """A 1.4 code package with caller-given type and path yields the same value shape."""
    code = _code()

    package = read_code_package(code, cc_type="GOLANG", path=GO_PATH, label="asset", **LIMITS)

    assert (package.type, package.label, package.path) == ("golang", "asset", GO_PATH)
    assert package.code == code
    assert package.package_bytes == code
    assert json.loads(package.metadata_json) == {
        "type": "GOLANG",
        "path": GO_PATH,
        "label": "asset",
    }


def test_package_id_is_label_and_sha256sum_of_the_whole_package_file() -> None:
    """The package id is the label, a colon, and sha256sum's digest of the package bytes."""
    data = _package()
    digest = subprocess.run(
        ["sha256sum", "-"], input=data, capture_output=True, check=True
    ).stdout.split()[0]

    package = read_package(data, **LIMITS)

    assert package.package_id == f"asset_1.0:{digest.decode()}"


def test_package_value_is_immutable() -> None:
    """The package value cannot be changed after reading."""
    package = read_package(_package(), **LIMITS)

    with pytest.raises(AttributeError):
        package.label = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        package.metadata["label"] = "other"  # type: ignore[index]


# --- size, format and bombs -------------------------------------------------------------


def test_package_over_max_size_raises_too_large() -> None:
    """Input bigger than max_size is refused before any decompression."""
    data = _package()

    with pytest.raises(PackageTooLarge, match="over the limit"):
        read_package(data, **{**LIMITS, "max_size": len(data) - 1})


@pytest.mark.parametrize(
    "data",
    [b"PK\x03\x04 a zip file", b"", gzip.compress(b"not a tar archive" * 100)],
    ids=["not-gzip", "empty", "gzip-not-tar"],
)
def test_outer_not_a_gzip_tar_raises_package_error(data: bytes) -> None:
    """Input that is not a gzip-compressed tar is a PackageError."""
    with pytest.raises(PackageError, match="not a gzip-compressed tar") as caught:
        read_package(data, **LIMITS)

    assert not isinstance(caught.value, PackageTooLarge)


@pytest.mark.parametrize(
    "code",
    [b"plain bytes", gzip.compress(b"\x01" * 1024), _code()[:-12]],
    ids=["not-gzip", "gzip-not-tar", "truncated"],
)
def test_code_not_a_gzip_tar_raises_package_error_naming_it(code: bytes) -> None:
    """A code.tar.gz that is not a whole gzip-compressed tar is a PackageError naming it."""
    with pytest.raises(PackageError, match=r"code\.tar\.gz"):
        read_package(_package(code=code), **LIMITS)


def test_gzip_with_a_corrupt_trailer_raises_package_error() -> None:
    """A gzip stream whose CRC does not match is refused, even past the tar's end."""
    data = bytearray(_package())
    data[-8] ^= 0xFF  # the CRC32 field of the gzip trailer

    with pytest.raises(PackageError, match="package"):
        read_package(bytes(data), **LIMITS)


@pytest.mark.parametrize("where", ["outer", "code"])
def test_too_many_entries_raises_too_large(where: str) -> None:
    """A tar with more than max_entries entries, outer or code, is PackageTooLarge."""
    many = [entry(f"src/f{i}.txt", b"x") for i in range(20)]
    data = _package(None, None, *many) if where == "outer" else _package(code=_code(*many))

    with pytest.raises(PackageTooLarge, match="more than 10 entries"):
        read_package(data, **{**LIMITS, "max_entries": 10})


@pytest.mark.parametrize("where", ["outer", "code"])
def test_expansion_over_max_expanded_raises_too_large(where: str) -> None:
    """A gzip stream that decompresses past max_expanded, outer or code, is PackageTooLarge."""
    files = [entry(f"src/pad{i}", bytes(4096)) for i in range(8)]
    data = _package(None, None, *files) if where == "outer" else _package(code=_code(*files))

    with pytest.raises(PackageTooLarge, match="decompresses to more than 16384 bytes"):
        read_package(data, **{**LIMITS, "max_expanded": 16384})


def test_member_claiming_a_huge_size_raises_too_large_naming_it() -> None:
    """A header claiming more bytes than max_expanded is refused before skipping them."""
    info, _ = entry("src/huge.bin")
    info.size = 1 << 40
    raw = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    forged = gzip.compress(bytes(raw) + bytes(1024))

    with pytest.raises(PackageTooLarge, match=r"'src/huge\.bin'"):
        read_code_package(forged, cc_type="golang", path="", label="a", **LIMITS)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """A ~5 MiB gzip'd tar of 16 zero-filled 64 MiB files: 1 GiB once decompressed."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    chunk = bytes(MiB)
    parts = []
    for i in range(16):
        info, _ = entry(f"src/zeros{i}", None)
        info.size = 64 * MiB
        parts.append(compressor.compress(info.tobuf()))
        parts.extend(compressor.compress(chunk) for _ in range(64))
    parts.append(compressor.compress(bytes(1024)))  # tar end-of-archive blocks
    parts.append(compressor.flush())
    return b"".join(parts)


BOMB_LIMITS = {**LIMITS, "max_expanded": 100 * MiB}


def _peak_while(call: Any) -> int:
    tracemalloc.start()
    try:
        call()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def test_gzip_bomb_as_code_package_stops_at_the_limit(gzip_bomb: bytes) -> None:
    """A 1 GiB bomb inside code.tar.gz raises while memory stays far below the limit."""
    data = _package(code=gzip_bomb)

    def read() -> None:
        with pytest.raises(PackageTooLarge, match=r"code\.tar\.gz: decompresses to more"):
            read_package(data, **BOMB_LIMITS)

    # Streaming holds a few buffers; eager decompression would hold 1 GiB.
    assert _peak_while(read) < 32 * MiB


def test_gzip_bomb_as_outer_package_stops_at_the_limit(gzip_bomb: bytes) -> None:
    """A 1 GiB bomb as the package itself raises while memory stays far below the limit."""

    def read() -> None:
        with pytest.raises(PackageTooLarge, match="decompresses to more than"):
            read_code_package(gzip_bomb, cc_type="golang", path="", label="a", **BOMB_LIMITS)

    assert _peak_while(read) < 32 * MiB


# --- unsafe members ----------------------------------------------------------------------

UNSAFE = {
    "absolute": (entry("/etc/cron.d/evil", b"x"), "absolute name"),
    "dotdot": (entry("src/../../evil", b"x"), "'..'"),
    "symlink": (entry("src/link", None, type=tarfile.SYMTYPE, linkname="/etc"), "symlink"),
    "hardlink": (
        entry("src/hard", None, type=tarfile.LNKTYPE, linkname="/etc/passwd"),
        "hardlink",
    ),
    "chardev": (entry("src/null", None, type=tarfile.CHRTYPE, devmajor=1, devminor=3), "device"),
    "blockdev": (entry("src/sda", None, type=tarfile.BLKTYPE, devmajor=8), "device"),
    "fifo": (entry("src/pipe", None, type=tarfile.FIFOTYPE), "fifo"),
}


@pytest.mark.parametrize("where", ["outer", "code"])
@pytest.mark.parametrize("kind", UNSAFE)
def test_unsafe_member_raises_package_error_naming_it(kind: str, where: str) -> None:
    """Absolute, escaping, link and special entries are refused with the member's name."""
    entry, reason = UNSAFE[kind]
    data = _package(None, None, entry) if where == "outer" else _package(code=_code(entry))

    with pytest.raises(PackageError) as caught:
        read_package(data, **LIMITS)

    assert repr(entry[0].name) in str(caught.value)
    assert reason in str(caught.value)
    assert ("code.tar.gz" in str(caught.value)) == (where == "code")


def test_unsafe_member_in_14_code_package_raises_package_error() -> None:
    """The 1.4 form applies the same member rules as code.tar.gz."""
    code = _code(UNSAFE["symlink"][0])

    with pytest.raises(PackageError, match=r"'src/link': symlink"):
        read_code_package(code, cc_type="golang", path=GO_PATH, label="a", **LIMITS)


def test_directory_at_the_package_top_level_raises_package_error() -> None:
    """The outer tar holds regular files only, as Fabric's parser requires."""
    directory = entry("META-INF/", None, type=tarfile.DIRTYPE)

    with pytest.raises(PackageError, match=r"'META-INF': directory"):
        read_package(_package(None, None, directory), **LIMITS)


@pytest.mark.parametrize("missing", ["metadata.json", "code.tar.gz"])
def test_missing_member_raises_package_error_naming_it(missing: str) -> None:
    """A package without metadata.json or code.tar.gz is a PackageError naming it."""
    entries = [entry("metadata.json", _metadata()), entry("code.tar.gz", _code())]
    data = tar_gz(e for e in entries if e[0].name != missing)

    with pytest.raises(PackageError, match=f"no {missing}"):
        read_package(data, **LIMITS)


@pytest.mark.parametrize("twice", ["metadata.json", "code.tar.gz"])
def test_duplicate_member_raises_package_error_naming_it(twice: str) -> None:
    """A package holding metadata.json or code.tar.gz twice is a PackageError naming it."""
    again = entry(twice, _metadata() if twice == "metadata.json" else _code())

    with pytest.raises(PackageError, match=f"'{twice}': appears more than once"):
        read_package(_package(None, None, again), **LIMITS)


# --- metadata.json -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"{not json", b"\xff\xfe\x00", b""], ids=["syntax", "not-utf8", "empty"]
)
def test_metadata_not_json_raises_invalid_request(raw: bytes) -> None:
    """A metadata.json that is not JSON names the field package.metadata."""
    with pytest.raises(InvalidRequest) as caught:
        read_package(_package(raw), **LIMITS)

    assert caught.value.field == "package.metadata"


@pytest.mark.parametrize("raw", [b"[]", b'"golang"', b"null", b"42"])
def test_metadata_not_an_object_raises_invalid_request(raw: bytes) -> None:
    """A metadata.json that is JSON but not an object names package.metadata."""
    with pytest.raises(InvalidRequest, match="not a JSON object") as caught:
        read_package(_package(raw), **LIMITS)

    assert caught.value.field == "package.metadata"


@pytest.mark.parametrize("value", [_DROP, "", None], ids=["missing", "empty", "null"])
def test_metadata_without_type_raises_invalid_request(value: object) -> None:
    """A missing, empty or null type names package.metadata.type."""
    with pytest.raises(InvalidRequest) as caught:
        read_package(_package(_metadata(type=value)), **LIMITS)

    assert caught.value.field == "package.metadata.type"


@pytest.mark.parametrize("key", ["type", "label", "path"])
@pytest.mark.parametrize("value", [1, True, ["golang"], {"a": "b"}])
def test_metadata_field_of_wrong_type_raises_invalid_request(key: str, value: object) -> None:
    """A known field that is not a string names package.metadata.<key>."""
    with pytest.raises(InvalidRequest, match="must be a string") as caught:
        read_package(_package(_metadata(**{key: value})), **LIMITS)

    assert caught.value.field == f"package.metadata.{key}"


def test_metadata_with_a_key_twice_raises_invalid_request() -> None:
    """A metadata.json giving a key twice names that key."""
    raw = b'{"type":"golang","label":"a","label":"b","path":""}'

    with pytest.raises(InvalidRequest) as caught:
        read_package(_package(raw), **LIMITS)

    assert caught.value.field == "package.metadata.label"


@pytest.mark.parametrize(
    "label", ["", "_lead", ".lead", "has space", "a:b", "a/b", "caf\u00e9", "a\n"]
)
def test_label_breaking_fabric_rule_raises_invalid_request(label: str) -> None:
    """A label not matching ^[[:alnum:]][[:alnum:]_.+-]*$ names package.metadata.label."""
    with pytest.raises(InvalidRequest) as caught:
        read_package(_package(_metadata(label=label)), **LIMITS)

    assert caught.value.field == "package.metadata.label"


@pytest.mark.parametrize("label", ["a", "9", "asset_1.0+build-2", "A..--__++", "mycc"])
def test_label_matching_fabric_rule_is_accepted(label: str) -> None:
    """Labels Fabric accepts are read unchanged."""
    assert read_package(_package(_metadata(label=label)), **LIMITS).label == label


def test_label_breaking_fabric_rule_in_14_form_raises_invalid_request() -> None:
    """The 1.4 form checks the caller's label by the same rule."""
    with pytest.raises(InvalidRequest) as caught:
        read_code_package(_code(), cc_type="golang", path="", label="my cc", **LIMITS)

    assert caught.value.field == "package.metadata.label"


def test_empty_type_in_14_form_raises_invalid_request() -> None:
    """The 1.4 form refuses an empty chaincode type."""
    with pytest.raises(InvalidRequest) as caught:
        read_code_package(_code(), cc_type="", path="", label="a", **LIMITS)

    assert caught.value.field == "package.metadata.type"
