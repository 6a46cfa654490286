"""The client's errors, and what each failure of a request means to its caller.

``APIError`` carries the daemon's JSON error form; ``DaemonUnreachable`` says the
request never reached the daemon, and why in an operator's terms (no socket, the
socket's group, a stale socket); ``RequestFailed`` that its outcome is unknown.
"""

from __future__ import annotations

import builtins
import errno
import json
import os

from ccdaemon.errors import CcdaemonError

#: ``typing.TYPE_CHECKING`` without importing typing (see ``connection``).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

#: The status each error code of the contract is sent with. A streamed error arrives
#: after the 200 is sent, so its APIError takes the status it would have had from here.
ERROR_STATUS: dict[str, int] = {
    "invalid_json": 400,
    "invalid_request": 400,
    "unknown_chaincode_type": 400,
    "invalid_package": 400,
    "unknown_chaincode": 404,
    "no_such_image": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "package_too_large": 413,
    "body_too_large": 413,
    "build_failed": 422,
    "engine_error": 502,
    "engine_unavailable": 503,
    "shutting_down": 503,
    "startup_timeout": 504,
}


class ClientError(CcdaemonError):
    """Base of the client's errors; raised itself for bad input or off-contract answers.

    Attributes:
        code: a short machine-readable name (the daemon's error code for ``APIError``).
        message: the human-readable explanation.
    """

    def __init__(self, message: str, *, code: str = "client_error") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class APIError(ClientError):
    """The daemon refused or failed the request and said why in its JSON error form.

    Attributes:
        status: the HTTP status; for an error that ends an ndjson stream (sent after the
            200), the status the contract gives its code.
        extra: every field of the error object besides ``code`` and ``message``.
    """

    def __init__(self, status: int, code: str, message: str, extra: Mapping[str, Any]) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.extra = dict(extra)

    @property
    def field(self) -> str | None:
        """The request field at fault (``invalid_request``, ``unknown_chaincode_type``)."""
        value = self.extra.get("field")
        return value if isinstance(value, str) else None

    @property
    def log_tail(self) -> builtins.list[str]:
        """The last lines of the build's output (``build_failed``); empty otherwise."""
        value = self.extra.get("log_tail")
        return [str(line) for line in value] if isinstance(value, builtins.list) else []


class DaemonUnreachable(ClientError):
    """No connection to the daemon could be opened: the request never reached it.

    Attributes:
        address: the socket path or URL that was tried.
        errno: the operating system's error number, when there was one.
    """

    def __init__(self, address: str, message: str, *, errno: int | None = None) -> None:
        super().__init__(message, code="daemon_unreachable")
        self.address = address
        self.errno = errno


class RequestFailed(ClientError):
    """The connection broke or timed out mid-request: the outcome on the daemon is unknown."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="request_failed")


def error_code(message: Mapping[str, Any]) -> str:
    """The ``error.code`` of an error message in a stream; empty when it has none."""
    error = message.get("error")
    return str(error.get("code", "")) if isinstance(error, dict) else ""


def api_error(status: int, body: bytes | Mapping[str, Any]) -> APIError:
    """The APIError for an error answer, also when it is not in the contract's form."""
    parsed: object
    if isinstance(body, bytes):
        try:
            parsed = json.loads(body)
        except ValueError:  # not JSON, or not UTF-8
            parsed = None
    else:
        parsed = body
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        extra = {k: v for k, v in error.items() if k not in {"code", "message"}}
        return APIError(status, error["code"], str(error.get("message", "")), extra)
    # Not ccdaemon's form: something else answers on the socket, or a proxy does.
    text = body.decode(errors="replace").strip() if isinstance(body, bytes) else ""
    return APIError(status, f"http_{status}", text[:200] or "no error message", {})


def unreachable(address: str, error: OSError, *, unix: bool) -> DaemonUnreachable:
    """Why no connection to the daemon at ``address`` could be opened, for an operator.

    Args:
        address: the socket path or URL that was tried.
        error: the operating system's error.
        unix: whether ``address`` is a Unix socket (a refusal then means a stale one).
    """
    if error.errno == errno.ENOENT:
        message = (
            f"no daemon socket at {address} — is ccdaemon running? (CCDAEMON_SOCKET / --socket)"
        )
    elif error.errno in {errno.EACCES, errno.EPERM}:
        message = (
            f"permission denied on {address}: run as a member of the socket's group"
            f"{_group_hint(address)} or as its owner"
        )
    elif error.errno == errno.ECONNREFUSED and unix:
        message = (
            f"nothing listens on {address}: a stale socket left by a daemon that stopped? "
            "— is ccdaemon running?"
        )
    else:
        reason = error.strerror or str(error)
        message = f"cannot connect to the daemon at {address}: {reason}"
    return DaemonUnreachable(address, message, errno=error.errno)


def _group_hint(path: str) -> str:
    """`` (NAME)`` for the group owning ``path``, or nothing when it cannot be read."""
    import grp  # noqa: PLC0415 -- only this message needs it; the client loads lean

    try:
        return f" ({grp.getgrgid(os.stat(path).st_gid).gr_name})"
    except (OSError, KeyError):
        return ""
