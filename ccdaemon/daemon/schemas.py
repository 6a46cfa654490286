"""Request bodies into typed requests; every refusal names the field at fault.

The checks here are the API's own (JSON shape, types, unknown fields, base64, sizes);
Fabric's rules for ids, types and packages are the runtime's, which runs them before
the engine sees a call.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ccdaemon.daemon.errors import APIError
from ccdaemon.engine import InvalidParameter, images
from ccdaemon.runtime.errors import InvalidRequest, PackageTooLarge
from ccdaemon.runtime.launcher import LaunchRequest
from ccdaemon.runtime.package import (
    DEFAULT_MAX_ENTRIES,
    DEFAULT_MAX_EXPANDED,
    ChaincodePackage,
    read_code_package,
    read_package,
)
from ccdaemon.runtime.platforms import platform_for

if TYPE_CHECKING:
    from ccdaemon.runtime.certs import ClientCredentials

_LAUNCH_FIELDS = frozenset(
    {"ccid", "type", "peer_address", "mspid", "package", "format", "path", "tls", "image"}
)
_BUILD_FIELDS = frozenset({"ccid", "type", "package", "format", "path"})
_TLS_FIELDS = frozenset({"enabled", "client_cert", "client_key", "root_cert"})
#: Longest text field but the package and PEMs: ids, addresses, MSP ids, image names and
#: Go paths are all far shorter, and a longer one would only be echoed in some message.
MAX_TEXT = 1024
_FORMATS = ("2.x", "1.4")


@dataclass(frozen=True, slots=True)
class BuildBody:
    """POST /v1/images: build the image of ``ccid`` from ``package``.

    Without a package the request only asks whether the image is there.
    """

    ccid: str
    package: ChaincodePackage | None


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object.

    Raises:
        APIError: 400 ``invalid_json`` when it is not JSON or not an object.
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise APIError(400, "invalid_json", f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise APIError(400, "invalid_json", "the body must be a JSON object")
    return body


def launch_request(body: dict[str, Any], *, max_package_size: int) -> LaunchRequest:
    """POST /v1/chaincodes's body as a LaunchRequest.

    Raises:
        InvalidRequest: a missing, unknown or mistyped field (named).
        PackageTooLarge, PackageError: the package.
    """
    _known(body, _LAUNCH_FIELDS, "")
    ccid = _text(body, "ccid")
    cc_type = _text(body, "type")
    peer_address = _text(body, "peer_address")
    try:
        platform_for("golang").launch_args(peer_address)
    except InvalidRequest:
        # The runtime names it after core.yaml's peer.address; the request's field is this.
        raise InvalidRequest(
            "peer_address", "must be host:port or [ipv6]:port (ASCII, no spaces or shell text)"
        ) from None
    mspid = _text(body, "mspid", required=False)
    _format(body)
    tls, tls_enabled = _tls(body.get("tls"))
    image = _image(body)
    package = _package(body, ccid, cc_type, max_package_size) if "package" in body else None
    return LaunchRequest(
        ccid=ccid,
        cc_type=cc_type,
        peer_address=peer_address,
        mspid=mspid,
        tls=tls,
        tls_enabled=tls_enabled,
        package=package,
        image=image,
    )


def build_body(body: dict[str, Any], *, max_package_size: int) -> BuildBody:
    """POST /v1/images's body.

    Raises:
        InvalidRequest, PackageTooLarge, PackageError: as for a launch.
    """
    _known(body, _BUILD_FIELDS, "")
    ccid = _text(body, "ccid")
    cc_type = _text(body, "type", required=False)
    _format(body)
    if "package" not in body:
        return BuildBody(ccid=ccid, package=None)
    return BuildBody(ccid=ccid, package=_package(body, ccid, cc_type, max_package_size))


def _known(body: dict[str, Any], known: frozenset[str], prefix: str) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidRequest(
            prefix + unknown[0], f"is not a field here (known: {', '.join(sorted(known))})"
        )


def _text(
    body: dict[str, Any],
    name: str,
    *,
    required: bool = True,
    prefix: str = "",
    limit: int | None = MAX_TEXT,
) -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(prefix + name, "is required")
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(prefix + name, f"must be a string, not {_json_type(value)}")
    if required and not value:
        raise InvalidRequest(prefix + name, "must not be empty")
    if limit is not None and len(value) > limit:
        # Refused here, unquoted: later checks would echo it in their messages.
        raise InvalidRequest(prefix + name, f"is {len(value)} characters; at most {limit}")
    return value


def _json_type(value: object) -> str:
    kinds = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "an array",
        dict: "an object",
    }
    return kinds.get(type(value), type(value).__name__)


def _image(body: dict[str, Any]) -> str | None:
    """The image to run instead of the chaincode's own (built at install), or None.

    Only its form is checked here; whether the daemon built it is the launcher's check.
    """
    if "image" not in body:
        return None
    image = _text(body, "image")
    if "package" in body:
        raise InvalidRequest("image", "excludes package: the image is already built")
    try:
        images.check_reference(image)
    except InvalidParameter as exc:
        raise InvalidRequest("image", exc.message) from None
    return image


def _tls(value: object) -> tuple[ClientCredentials | None, bool]:
    """The caller's TLS material: (credentials or None to issue them, TLS on or off)."""
    if value is None:
        return None, True
    if not isinstance(value, dict):
        raise InvalidRequest("tls", f"must be an object, not {_json_type(value)}")
    _known(value, _TLS_FIELDS, "tls.")
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidRequest("tls.enabled", f"must be true or false, not {_json_type(enabled)}")
    pems = {
        key: _text(value, key, required=False, prefix="tls.", limit=None)
        for key in ("client_cert", "client_key", "root_cert")
    }
    given = [key for key, pem in pems.items() if pem]
    if not given:
        return None, enabled
    if not enabled:
        raise InvalidRequest("tls", "certificates given with enabled false")
    if len(given) != len(pems):
        missing = sorted(set(pems) - set(given))
        raise InvalidRequest(f"tls.{missing[0]}", "is required when any certificate is given")
    # Imported here: the cryptography library costs ~8 MiB of memory, which a daemon that
    # has not yet handled TLS material (or never does: TLS off) need not carry.
    from ccdaemon.runtime.certs import validate_supplied  # noqa: PLC0415

    return validate_supplied(pems["client_cert"], pems["client_key"], pems["root_cert"]), True


def _package(body: dict[str, Any], ccid: str, cc_type: str, max_size: int) -> ChaincodePackage:
    encoded = _text(body, "package", limit=None)
    # Refused before decoding: base64 is 4/3 of the bytes it carries.
    if len(encoded) // 4 * 3 > max_size + 3:
        raise PackageTooLarge(f"package: over the limit of {max_size} bytes", max_size)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("package", "is not base64") from None
    fmt = _format(body)
    limits = {
        "max_size": max_size,
        "max_entries": DEFAULT_MAX_ENTRIES,
        "max_expanded": DEFAULT_MAX_EXPANDED,
    }
    if fmt == "2.x":
        package = read_package(data, **limits)
        if cc_type and cc_type.lower() != package.type.lower():
            raise InvalidRequest("type", f"is {cc_type!r} but the package says {package.type!r}")
        return package
    if not cc_type:  # "1.4": a bare code package, which does not say its type
        raise InvalidRequest("type", "is required for a Fabric 1.4 code package")
    label = ccid.partition(":")[0]
    path = _text(body, "path", required=False)
    return read_code_package(data, cc_type=cc_type, path=path, label=label, **limits)


def _format(body: dict[str, Any]) -> str:
    """The package's format, "2.x" unless given; checked with or without a package."""
    fmt = _text(body, "format", required=False) or "2.x"
    if fmt not in _FORMATS:
        raise InvalidRequest("format", f"must be '2.x' or '1.4', not {fmt!r}")
    return fmt
