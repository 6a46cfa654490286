"""One table from exception type to HTTP status and error code, and the JSON error form.

Every error the API answers is ``{"error": {"code", "message", ...}}`` (docs/api-contract.md).
The most specific type in the table wins; anything that is not a CcdaemonError is a bug:
it answers 500 ``internal`` and its traceback goes to the log.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ccdaemon.engine import (
    BuildFailed,
    Conflict,
    EngineError,
    EngineUnavailable,
    InvalidParameter,
    NoSuchImage,
)
from ccdaemon.errors import CcdaemonError
from ccdaemon.runtime.errors import (
    GoTooOld,
    InvalidRequest,
    PackageError,
    PackageTooLarge,
    StartupTimeout,
    TaskFailed,
    UnknownChaincode,
    UnknownChaincodeType,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: The largest request body the application takes, in bytes (aiohttp's 413 omits it).
BODY_LIMIT = web.AppKey("body_limit", int)

#: The status of a body that did not arrive in time (a slow client).
REQUEST_TIMEOUT = 408
#: Lines of a failed build's log an error answer carries.
BUILD_LOG_TAIL = 50


class APIError(CcdaemonError):
    """An error the API layer itself finds (bad JSON, a body too large, shutting down)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


# Most specific first: the first type an error is an instance of decides.
_TABLE: list[tuple[type[Exception], int, str]] = [
    (UnknownChaincodeType, 400, "unknown_chaincode_type"),
    (InvalidRequest, 400, "invalid_request"),
    (PackageTooLarge, 413, "package_too_large"),
    (PackageError, 400, "invalid_package"),
    (UnknownChaincode, 404, "unknown_chaincode"),
    (StartupTimeout, 504, "startup_timeout"),
    (TaskFailed, 502, "task_failed"),
    (BuildFailed, 422, "build_failed"),
    (GoTooOld, 422, "go_too_old"),
    (NoSuchImage, 404, "no_such_image"),
    (InvalidParameter, 400, "invalid_request"),
    (Conflict, 409, "conflict"),
    (EngineError, 502, "engine_error"),
    (EngineUnavailable, 503, "engine_unavailable"),
]


def error_body(exc: Exception) -> tuple[int, dict[str, Any]]:
    """The status and JSON body that answer ``exc``."""
    if isinstance(exc, APIError):
        return exc.status, {"error": {"code": exc.code, "message": exc.message, **exc.extra}}
    for kind, status, code in _TABLE:
        if isinstance(exc, kind):
            return status, {"error": {"code": code, "message": str(exc), **_extra(exc)}}
    return 500, {"error": {"code": "internal", "message": "internal error; see the daemon's log"}}


def _extra(exc: Exception) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidRequest):
        extra["field"] = exc.field
    elif isinstance(exc, UnknownChaincode):
        extra["ccid"] = exc.ccid
    elif isinstance(exc, PackageTooLarge):
        extra["limit"] = exc.limit
    elif isinstance(exc, GoTooOld):
        extra.update(field="images.golang_builder", wanted=exc.wanted, builder=exc.builder)
    elif isinstance(exc, BuildFailed):
        extra["log_tail"] = exc.log.splitlines()[-BUILD_LOG_TAIL:]
    elif isinstance(exc, EngineError):
        extra["status"] = exc.status
    return extra


def json_response(body: object, status: int = 200) -> web.Response:
    """A JSON answer, serialised by orjson."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer every error in the JSON error form, aiohttp's own 404/405/413 included."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:  # noqa: PLR2004 -- redirects and the like pass through
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status, "bad_request"
        )
        extra = {"limit": request.app[BODY_LIMIT]} if code == "body_too_large" else {}
        return json_response({"error": {"code": code, "message": exc.reason, **extra}}, exc.status)
    except CcdaemonError as exc:
        status, body = error_body(exc)
        if status >= 500:  # noqa: PLR2004
            log.warning("%s %s: %s", request.method, request.path, exc)
        response = json_response(body, status)
        if status == REQUEST_TIMEOUT:
            # The rest of a trickled body is not waited for: the connection goes.
            response.force_close()
        return response
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        status, body = error_body(exc)
        return json_response(body, status)
