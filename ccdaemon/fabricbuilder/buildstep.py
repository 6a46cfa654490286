"""The ``build`` step: have the daemon build the image at install (Fabric 2.x), record it."""

from __future__ import annotations

import base64
import shutil
from typing import TYPE_CHECKING, Any

import orjson

from ccdaemon.apiclient import APIError, Client, ClientError
from ccdaemon.fabricbuilder.package import (
    gzip_bytes,
    package_digest,
    source_files,
    tar_bytes,
    targz,
)
from ccdaemon.fabricbuilder.peer import (
    CCAAS,
    CONNECTION_FILE,
    PACKAGE_FILE,
    RECORD_FILE,
    BuilderError,
    BuildRecord,
    json_object,
    read_metadata,
    say,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


def build(source_dir: Path, metadata_dir: Path, output_dir: Path, *, client: Client) -> BuildRecord:
    """Have the daemon build the package's image, and record it in ``output_dir``.

    The package is put together again from the directories the peer gave (metadata.json
    as it was, code.tar.gz made deterministically from the source), so the same source
    gives the same build id and image. The id is the SHA-256 of the uncompressed source,
    so that the daemon is first asked, with no package, whether it has the image: a
    package already built costs a hash and one small request, not a compression and an
    upload.
    The source's META-INF (CouchDB indexes) is copied for ``release``. Build output
    goes to stderr as it comes.

    Raises:
        BuilderError: the metadata or source cannot be read.
        ClientError: the daemon refused or failed the build, or cannot be reached.
    """
    metadata = read_metadata(metadata_dir)
    cc_type = str(metadata["type"]).lower()
    meta_inf = source_dir / "META-INF"
    if meta_inf.is_dir():
        shutil.copytree(meta_inf, output_dir / "META-INF", dirs_exist_ok=True)
    if cc_type == CCAAS:
        record = _build_ccaas(source_dir, output_dir, metadata)
    else:
        raw_metadata = (metadata_dir / "metadata.json").read_bytes()
        code = tar_bytes(source_files(source_dir))
        build_id = f"{metadata['label']}:{package_digest(raw_metadata, code)}"
        package = targz(
            [("metadata.json", raw_metadata, 0o644), ("code.tar.gz", gzip_bytes(code), 0o644)]
        )
        (output_dir / PACKAGE_FILE).write_bytes(package)
        image = _built_image(client, build_id) or build_image(client, build_id, package)
        record = BuildRecord(build_id=build_id, type=cc_type, image=image)
    (output_dir / RECORD_FILE).write_bytes(orjson.dumps(record.as_dict()))
    return record


def _built_image(client: Client, build_id: str) -> str | None:
    """The image the daemon already has for ``build_id``, or None (it needs the package)."""
    try:
        answer = client.build({"ccid": build_id})
    except APIError as exc:
        if exc.status == 404:  # noqa: PLR2004 -- not built (or collected since)
            return None
        raise
    image = answer.get("image")
    if not isinstance(image, str) or not image:
        raise ClientError("the build answer has no 'image'", code="bad_answer")
    say(f"the daemon has the image of {build_id} already: {image}")
    return image


def build_image(client: Client, build_id: str, package: bytes) -> str:
    """Have the daemon build ``package`` under ``build_id``, its output to stderr; the image."""
    answer = client.build(
        {"ccid": build_id, "package": base64.b64encode(package).decode("ascii")}, progress=say
    )
    image = answer.get("image")
    if not isinstance(image, str) or not image:
        raise ClientError("the build answer has no 'image'", code="bad_answer")
    return image


def _build_ccaas(source_dir: Path, output_dir: Path, metadata: Mapping[str, Any]) -> BuildRecord:
    """Chaincode-as-a-service: keep connection.json (with an address) for ``release``."""
    source = source_dir / CONNECTION_FILE
    connection = json_object(source)
    if not isinstance(connection.get("address"), str) or not connection["address"]:
        raise BuilderError(f"{source}: 'address' is missing or not a non-empty string")
    shutil.copyfile(source, output_dir / CONNECTION_FILE)
    return BuildRecord(build_id=str(metadata["label"]), type=CCAAS, image="")
