"""Request bodies into typed requests; every refusal names the field at fault.

A body is a msgspec Struct: msgspec checks the JSON types, lengths and field names (an
unknown field is refused), and its refusal is told again in the API's words under the
field's name (``tls.enabled: must be true or false, not a string``). What no type says
(an address's form, base64, the package, TLS material, an image reference) is checked
after. Fabric's rules for ids, types and packages are the runtime's, which runs them
before the engine sees a call.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import msgspec
import orjson
from msgspec import UNSET, Meta, Struct, UnsetType

from ccdaemon.daemon.errors import APIError
from ccdaemon.runtime.errors import InvalidRequest, PackageTooLarge
from ccdaemon.runtime.launcher import LaunchRequest
from ccdaemon.runtime.naming import check_image
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

#: Longest text field but the package and PEMs: ids, addresses, MSP ids, image names and
#: Go paths are all far shorter, and a longer one would only be echoed in some message.
MAX_TEXT = 1024
_Text = Annotated[str, Meta(max_length=MAX_TEXT)]
_Given = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT)]


class _TLS(Struct, forbid_unknown_fields=True, kw_only=True):
    """A launch's ``tls``: on or off, and the caller's PEMs (none given: issued)."""

    enabled: bool = True
    client_cert: str | None = None
    client_key: str | None = None
    root_cert: str | None = None


class _Build(Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/images's body; a launch's has these fields too."""

    ccid: _Given
    type: _Text | None = None
    package: str | UnsetType = UNSET
    format: Literal["2.x", "1.4", ""] | None = None  # none or "": 2.x
    path: _Text | None = None


class _Launch(_Build, kw_only=True):
    """POST /v1/chaincodes's body."""

    type: _Given
    peer_address: _Given
    mspid: _Text | None = None
    tls: _TLS | None = None
    image: _Given | UnsetType = UNSET


_S = TypeVar("_S", bound=Struct)
#: msgspec's refusal: a reason, then where (`` - at `$.tls.enabled` ``) unless at the top.
_AT = re.compile(r"(.*) - at `\$\.([\w.]+)`", re.DOTALL)
_UNKNOWN = re.compile(r"Object contains unknown field `(.*)`", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `(\w+)`")
_EXPECTED = re.compile(r"Expected `(\w+)[^`]*`(?:, got `(\w+)`| of length ([<>])= (\d+))")
_WORDS = {
    "str": "a string",
    "int": "a number",
    "float": "a number",
    "bool": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


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
    fields = _decode(body, _Launch)
    try:
        platform_for("golang").launch_args(fields.peer_address)
    except InvalidRequest:
        # The runtime names it after core.yaml's peer.address; the request's field is this.
        raise InvalidRequest(
            "peer_address", "must be host:port or [ipv6]:port (ASCII, no spaces or shell text)"
        ) from None
    tls, tls_enabled = _tls(fields.tls)
    image = None
    # Only its form is checked here; whether the daemon built it is the launcher's check.
    if isinstance(fields.image, str):
        if isinstance(fields.package, str):
            raise InvalidRequest("image", "excludes package: the image is already built")
        image = check_image(fields.image)
    return LaunchRequest(
        ccid=fields.ccid,
        cc_type=fields.type,
        peer_address=fields.peer_address,
        mspid=fields.mspid or "",
        tls=tls,
        tls_enabled=tls_enabled,
        package=_package(fields, fields.type, max_package_size),
        image=image,
    )


def build_body(body: dict[str, Any], *, max_package_size: int) -> BuildBody:
    """POST /v1/images's body.

    Raises:
        InvalidRequest, PackageTooLarge, PackageError: as for a launch.
    """
    fields = _decode(body, _Build)
    return BuildBody(fields.ccid, _package(fields, fields.type or "", max_package_size))


def _decode(body: dict[str, Any], kind: type[_S]) -> _S:
    try:
        return msgspec.convert(body, kind, strict=True)
    except msgspec.ValidationError as err:
        raise _refusal(str(err), body, kind) from None


def _refusal(message: str, body: dict[str, Any], kind: type[Struct]) -> InvalidRequest:
    """The refusal msgspec gave ``body``, under the field's name."""
    if message.startswith("Object contains unknown field"):
        return _unknown(body, kind)
    at = _AT.fullmatch(message)
    reason, field = (at[1], at[2]) if at else (message, "")
    if missing := _MISSING.fullmatch(reason):  # only top-level fields are required
        return InvalidRequest(missing[1], "is required")
    return InvalidRequest(field, _words(reason))


def _words(reason: str) -> str:
    """The reason msgspec refused a value for, in the API's words."""
    expected = _EXPECTED.match(reason)
    if expected is None:  # format, the one field of a few values
        return reason.replace("Invalid enum value", "must be '2.x' or '1.4', not")
    wanted, got, bound, limit = expected.groups()
    if bound:
        return "must not be empty" if bound == ">" else f"must be at most {limit} characters"
    words = "true or false" if wanted == "bool" else _WORDS.get(wanted, wanted)
    return f"must be {words}, not {_WORDS.get(got, got)}"


def _unknown(body: dict[str, Any], kind: type[Struct]) -> InvalidRequest:
    """The first unknown field: at the top, else in ``tls`` (the one object inside)."""
    prefix, given, known = "", body, kind.__struct_fields__
    if set(body) <= set(known):
        prefix, given, known = "tls.", body["tls"], _TLS.__struct_fields__
    listed = ", ".join(sorted(known))
    return InvalidRequest(
        prefix + min(set(given) - set(known)), f"is not a field here (known: {listed})"
    )


def _tls(tls: _TLS | None) -> tuple[ClientCredentials | None, bool]:
    """The caller's TLS material: (credentials or None to issue them, TLS on or off)."""
    if tls is None:
        return None, True
    pems = {key: getattr(tls, key) or "" for key in ("client_cert", "client_key", "root_cert")}
    given = [key for key, pem in pems.items() if pem]
    if not given:
        return None, tls.enabled
    if not tls.enabled:
        raise InvalidRequest("tls", "certificates given with enabled false")
    if len(given) != len(pems):
        missing = sorted(set(pems) - set(given))
        raise InvalidRequest(f"tls.{missing[0]}", "is required when any certificate is given")
    # Imported here: the cryptography library costs ~8 MiB of memory, which a daemon that
    # has not yet handled TLS material (or never does: TLS off) need not carry.
    from ccdaemon.runtime.certs import validate_supplied  # noqa: PLC0415

    return validate_supplied(pems["client_cert"], pems["client_key"], pems["root_cert"]), True


def _package(fields: _Build, cc_type: str, max_size: int) -> ChaincodePackage | None:
    """The body's code package, checked; None when it carries none."""
    if not isinstance(fields.package, str):
        return None
    encoded = fields.package
    # Refused before decoding: base64 is 4/3 of the bytes it carries.
    if len(encoded) // 4 * 3 > max_size + 3:
        raise PackageTooLarge(f"package: over the limit of {max_size} bytes", max_size)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("package", "is not base64") from None
    limits = {
        "max_size": max_size,
        "max_entries": DEFAULT_MAX_ENTRIES,
        "max_expanded": DEFAULT_MAX_EXPANDED,
    }
    if fields.format != "1.4":
        package = read_package(data, **limits)
        if cc_type and cc_type.lower() != package.type.lower():
            raise InvalidRequest("type", f"is {cc_type!r} but the package says {package.type!r}")
        return package
    if not cc_type:  # "1.4": a bare code package, which does not say its type
        raise InvalidRequest("type", "is required for a Fabric 1.4 code package")
    label = fields.ccid.partition(":")[0]
    return read_code_package(data, cc_type=cc_type, path=fields.path or "", label=label, **limits)
