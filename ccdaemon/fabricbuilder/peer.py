"""What passes between the peer and the builder's steps: arguments, files, log lines.

The peer gives each step directories (``STEPS``); ``metadata.json`` and
``chaincode.json`` are the peer's, the build record is what ``build`` leaves in
BUILD_OUTPUT_DIR for ``release`` and ``run``. Each is read and checked here, and a
broken one is a ``BuilderError`` naming the file. A step's messages go to stderr, which
the peer logs line by line (``say``).
"""

from __future__ import annotations

import json
import os
import sys

from ccdaemon.errors import CcdaemonError

#: ``typing.TYPE_CHECKING`` without importing typing: ``run``'s start-up is part of the
#: peer's first invoke (see ccdaemon.apiclient.connection).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class BuilderError(CcdaemonError):
    """A step cannot do its work; the message says why, for the peer's log."""


# Plain classes, not dataclasses: importing dataclasses costs ``run`` about 15 ms.
class BuildRecord:
    """What ``build`` made, as recorded in BUILD_OUTPUT_DIR for ``release`` and ``run``.

    Attributes:
        build_id: ``<label>:<sha256 of the package rebuilt from the source>``: the id the
            image was built under (the package id is given only to ``run``).
        type: the package's type, lower-cased.
        image: the image the daemon built; empty for a chaincode-as-a-service package.
    """

    __slots__ = ("build_id", "image", "type")

    def __init__(self, *, build_id: str, type: str, image: str) -> None:  # noqa: A002
        self.build_id, self.type, self.image = build_id, type, image

    def __repr__(self) -> str:
        return f"BuildRecord({self.as_dict()!r})"

    def as_dict(self) -> dict[str, str]:
        """The record as written to RECORD_FILE."""
        return {"build_id": self.build_id, "type": self.type, "image": self.image}


class RunConfig:
    """``chaincode.json``, the peer's instructions to ``run``; the TLS fields are PEM or empty.

    Its repr leaves out the TLS fields: the client key must never reach a log.
    """

    __slots__ = ("chaincode_id", "client_cert", "client_key", "mspid", "peer_address", "root_cert")

    def __init__(  # noqa: PLR0913 -- chaincode.json's fields
        self,
        *,
        chaincode_id: str,
        peer_address: str,
        client_cert: str,
        client_key: str,
        root_cert: str,
        mspid: str,
    ) -> None:
        self.chaincode_id, self.peer_address, self.mspid = chaincode_id, peer_address, mspid
        self.client_cert, self.client_key, self.root_cert = client_cert, client_key, root_cert

    def __repr__(self) -> str:
        return (
            f"RunConfig(chaincode_id={self.chaincode_id!r}, "
            f"peer_address={self.peer_address!r}, mspid={self.mspid!r})"
        )


def read_metadata(metadata_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """CHAINCODE_METADATA_DIR/metadata.json, with the non-empty ``type`` and ``label`` it needs.

    Raises:
        BuilderError: the file is missing, not a JSON object, or lacks type or label.
    """
    path = os.path.join(metadata_dir, "metadata.json")
    metadata = json_object(path)
    for key in ("type", "label"):
        if not isinstance(metadata.get(key), str) or not metadata[key]:
            raise BuilderError(f"{path}: {key!r} is missing or not a non-empty string")
    return metadata


def read_record(build_dir: str | os.PathLike[str]) -> BuildRecord:
    """The record ``build`` left in BUILD_OUTPUT_DIR.

    Raises:
        BuilderError: it is missing or malformed (the directory is not this builder's).
    """
    path = os.path.join(build_dir, RECORD_FILE)
    raw = json_object(path)
    try:
        return BuildRecord(**{key: str(raw[key]) for key in ("build_id", "type", "image")})
    except KeyError as exc:
        raise BuilderError(f"{path}: no {exc.args[0]!r}; was it built by ccdaemon?") from None


def read_run_config(run_metadata_dir: str | os.PathLike[str]) -> RunConfig:
    """RUN_METADATA_DIR/chaincode.json, checked: ids and address set, TLS all or nothing.

    Raises:
        BuilderError: the file is missing, not JSON, or a field is missing or mistyped
            (named, with the file).
    """
    path = os.path.join(run_metadata_dir, "chaincode.json")
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


def json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object in ``path``; a ``BuilderError`` naming the file otherwise."""
    try:
        with open(path, "rb") as file:
            value = json.loads(file.read())
    except OSError as exc:
        raise BuilderError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise BuilderError(f"{path} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BuilderError(f"{path} is not a JSON object")
    return value


def say(line: str) -> None:
    """Write one line to stderr, for the peer's log."""
    sys.stderr.write(f"ccdaemon-builder: {line.rstrip()}\n")
    sys.stderr.flush()


def explain(exc: Exception) -> list[str]:
    """The lines that tell the peer's log why a step failed (``BuilderError``, ``OSError``)."""
    if isinstance(exc, OSError) and exc.filename:
        return [f"{exc.filename}: {exc.strerror}"]
    return [str(exc)]
