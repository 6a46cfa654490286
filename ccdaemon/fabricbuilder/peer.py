"""What passes between the peer and the builder's steps: arguments, files, log lines.

The peer gives each step directories (``STEPS``); ``metadata.json`` and
``chaincode.json`` are the peer's, the build record is what ``build`` leaves in
BUILD_OUTPUT_DIR for ``release`` and ``run``. Each is read and checked here, and a
broken one is a ``BuilderError`` naming the file. A step's messages go to stderr, which
the peer logs line by line (``say``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from ccdaemon.errors import CcdaemonError

if TYPE_CHECKING:
    from pathlib import Path

#: The step each executable runs (its file name) and the arguments the peer passes it.
STEPS: dict[str, tuple[str, ...]] = {
    "detect": ("CHAINCODE_SOURCE_DIR", "CHAINCODE_METADATA_DIR"),
    "build": ("CHAINCODE_SOURCE_DIR", "CHAINCODE_METADATA_DIR", "BUILD_OUTPUT_DIR"),
    "release": ("BUILD_OUTPUT_DIR", "RELEASE_OUTPUT_DIR"),
    "run": ("BUILD_OUTPUT_DIR", "RUN_METADATA_DIR"),
}

#: The type of a chaincode-as-a-service package: the peer dials it; nothing is built or run.
CCAAS = "ccaas"

#: What ``build`` leaves in BUILD_OUTPUT_DIR: its record, and the package it sent, kept so
#: that ``run`` can have the image built again if it was removed since (``ccdaemon gc``).
RECORD_FILE = "ccdaemon-build.json"
PACKAGE_FILE = "package.tar.gz"
CONNECTION_FILE = "connection.json"


class BuilderError(CcdaemonError):
    """A step cannot do its work; the message says why, for the peer's log."""


@dataclass(frozen=True, slots=True)
class BuildRecord:
    """What ``build`` made, as recorded in BUILD_OUTPUT_DIR for ``release`` and ``run``.

    Attributes:
        build_id: ``<label>:<sha256 of the package rebuilt from the source>``: the id the
            image was built under (the package id is given only to ``run``).
        type: the package's type, lower-cased.
        image: the image the daemon built; empty for a chaincode-as-a-service package.
    """

    build_id: str
    type: str
    image: str


@dataclass(frozen=True, slots=True)
class RunConfig:
    """``chaincode.json``, the peer's instructions to ``run``; the TLS fields are PEM or empty."""

    chaincode_id: str
    peer_address: str
    client_cert: str = field(repr=False)
    client_key: str = field(repr=False)
    root_cert: str = field(repr=False)
    mspid: str


def read_metadata(metadata_dir: Path) -> dict[str, Any]:
    """CHAINCODE_METADATA_DIR/metadata.json, with the non-empty ``type`` and ``label`` it needs.

    Raises:
        BuilderError: the file is missing, not a JSON object, or lacks type or label.
    """
    path = metadata_dir / "metadata.json"
    metadata = json_object(path)
    for key in ("type", "label"):
        if not isinstance(metadata.get(key), str) or not metadata[key]:
            raise BuilderError(f"{path}: {key!r} is missing or not a non-empty string")
    return metadata


def read_record(build_dir: Path) -> BuildRecord:
    """The record ``build`` left in BUILD_OUTPUT_DIR.

    Raises:
        BuilderError: it is missing or malformed (the directory is not this builder's).
    """
    path = build_dir / RECORD_FILE
    raw = json_object(path)
    try:
        return BuildRecord(**{key: str(raw[key]) for key in ("build_id", "type", "image")})
    except KeyError as exc:
        raise BuilderError(f"{path}: no {exc.args[0]!r}; was it built by ccdaemon?") from None


def read_run_config(run_metadata_dir: Path) -> RunConfig:
    """RUN_METADATA_DIR/chaincode.json, checked: ids and address set, TLS all or nothing.

    Raises:
        BuilderError: the file is missing, not JSON, or a field is missing or mistyped
            (named, with the file).
    """
    path = run_metadata_dir / "chaincode.json"
    raw = json_object(path)
    values: dict[str, str] = {}
    for key in ("chaincode_id", "peer_address", "client_cert", "client_key", "root_cert", "mspid"):
        value = raw.get(key, "")
        if not isinstance(value, str):
            raise BuilderError(f"{path}: {key!r} must be a string, not {type(value).__name__}")
        values[key] = value
    for key in ("chaincode_id", "peer_address"):
        if not values[key]:
            raise BuilderError(f"{path}: {key!r} is missing or empty")
    tls = [key for key in ("client_cert", "client_key", "root_cert") if values[key]]
    if tls and len(tls) != 3:  # noqa: PLR2004 -- the three TLS fields
        raise BuilderError(f"{path}: client_cert, client_key and root_cert go together")
    return RunConfig(**values)


def json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; a ``BuilderError`` naming the file otherwise."""
    try:
        value = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise BuilderError(f"cannot read {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise BuilderError(f"{path} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BuilderError(f"{path} is not a JSON object")
    return value


def say(line: str) -> None:
    """Write one line to stderr, for the peer's log."""
    sys.stderr.write(f"ccdaemon-builder: {line.rstrip()}\n")
    sys.stderr.flush()
