"""Responses: a body read with transport errors mapped, and the error a status means.

Every error status becomes the ``EngineError`` subclass the calling function names for
it (its ``ErrorMap``), else the generic one for the status, carrying the engine's message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import orjson

from ccdaemon.engine import http
from ccdaemon.engine.errors import (
    Conflict,
    EngineError,
    InvalidParameter,
    NotFound,
    NotModified,
    StreamBroken,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


#: The error each status means for one call: an EngineError class, or a function that
#: chooses by the engine's message where the status alone does not tell.
ErrorMap: TypeAlias = Mapping[int, Callable[[int, str], EngineError]]
_STATUS_ERRORS: dict[int, type[EngineError]] = {
    304: NotModified,
    400: InvalidParameter,
    404: NotFound,
    409: Conflict,
}


class Response:
    """An engine response whose body is read through methods that map transport errors."""

    __slots__ = ("_body", "_what")

    def __init__(self, body: http.Body, what: str) -> None:
        self._body = body
        self._what = what

    @property
    def status(self) -> int:
        """The HTTP status."""
        return self._body.status

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers, keys in lower case."""
        return self._body.headers

    async def read(self) -> bytes:
        """Read the whole body.

        Raises:
            StreamBroken: the body was cut or the connection broke.
        """
        try:
            return await self._body.read()
        except http.BodyCut as exc:
            raise StreamBroken(f"{self._what}: {exc}") from exc

    async def json(self) -> Any:
        """Read the whole body as JSON; an empty body gives None."""
        body = await self.read()
        return orjson.loads(body) if body else None

    async def read_exactly(self, n: int) -> bytes | None:
        """Read exactly ``n`` bytes; None when the body ended cleanly before the first one.

        Raises:
            StreamBroken: the body ended after some but not all of the ``n`` bytes, or the
                connection broke.
        """
        try:
            return await self._body.read_exactly(n)
        except http.BodyCut as exc:
            raise StreamBroken(f"{self._what}: {exc}") from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives.

        Raises:
            StreamBroken: the body was cut or the connection broke.
        """
        try:
            async for chunk in self._body.chunks():
                yield chunk
        except http.BodyCut as exc:
            raise StreamBroken(f"{self._what}: {exc}") from exc


def error_for(
    resp: http.Body, body: bytes, what: str, errors: ErrorMap | None, subject: str
) -> EngineError:
    """The error for a status, carrying the engine's message (JSON ``message``, or the text)."""
    status = resp.status
    factory = (errors or {}).get(status) or _STATUS_ERRORS.get(status, EngineError)
    message = ""
    if body:
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            message = body.decode(errors="replace").strip()
        else:
            message = str(decoded.get("message", "")) if isinstance(decoded, dict) else ""
    if not message:
        described = getattr(factory, "describes", "")
        message = described or f"{what} answered {status} {resp.reason}".rstrip()
    if subject and subject not in message:
        message = f"{message}: {subject}"
    error = factory(status, message)
    if type(error) is EngineError and message.endswith(": invalid argument"):
        return InvalidParameter(status, message)  # Podman's 500 for a refused value
    return error
