"""Image calls: inspect, list, remove, and build with its progress stream checked for errors."""

from __future__ import annotations

import collections
import re
from typing import TYPE_CHECKING, Any

import orjson

from ccdaemon.engine import streams
from ccdaemon.engine.errors import (
    BuildFailed,
    EngineError,
    ImageInUse,
    InvalidParameter,
    NoSuchImage,
)
from ccdaemon.engine.transport import segment

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Callable, Mapping

    from ccdaemon.engine.transport import Engine

#: How much of a build's output a BuildFailed keeps.
BUILD_LOG_LINES = 200

# Docker's reference grammar (distribution/reference): [domain[:port]/]path[:tag].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REFERENCE = re.compile(
    rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?/)?"
    rf"{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
)
_NAME_MAX = 255


def check_reference(reference: str) -> None:
    """Check an image reference against Docker's grammar, as every engine applies it.

    Checked here because engines answer a bad tag inconsistently (Docker 20.10 with 500,
    Podman with 500 and no message) and only after the whole build context was sent.

    Raises:
        InvalidParameter: ``reference`` breaks the grammar; the message says how.
    """
    name = reference.rsplit(":", 1)[0] if "/" not in reference.rsplit(":", 1)[-1] else reference
    if not _REFERENCE.fullmatch(reference) or len(name) > _NAME_MAX:
        raise InvalidParameter(
            400,
            f"invalid reference format: {reference!r} must be [host[:port]/]path[:tag] with a "
            f"lowercase path of letters, digits and single separators, at most {_NAME_MAX} "
            "characters",
        )


def _build_refused(status: int, message: str) -> EngineError:
    # Docker 20.10 answers a malformed tag with 500 "invalid reference format", not 400.
    if "invalid reference format" in message:
        return InvalidParameter(status, message)
    return EngineError(status, message)


async def inspect(engine: Engine, name: str) -> dict[str, Any]:
    """Return the image's inspect document.

    Raises:
        NoSuchImage: no such image.
    """
    result: dict[str, Any] = await engine.call(
        "GET", f"/images/{segment(name)}/json", errors={404: NoSuchImage}
    )
    return result


async def list_(
    engine: Engine, *, labels: Mapping[str, str | None] | None = None
) -> list[dict[str, Any]]:
    """List images, optionally only those carrying each label (with that value unless None)."""
    params: dict[str, str] = {}
    if labels:
        wanted = [key if value is None else f"{key}={value}" for key, value in labels.items()]
        params["filters"] = orjson.dumps({"label": wanted}).decode()
    result: list[dict[str, Any]] = await engine.call("GET", "/images/json", params=params)
    return result


async def remove(engine: Engine, name: str, *, force: bool = False) -> None:
    """Remove an image (untag it, and delete its layers when no other tag holds them).

    Raises:
        NoSuchImage: no such image.
        ImageInUse: a container uses the image and ``force`` is false.
    """
    await engine.call(
        "DELETE",
        f"/images/{segment(name)}",
        params={"force": "1" if force else "0"},
        errors={404: NoSuchImage, 409: ImageInUse},
    )


async def build(  # noqa: PLR0913 -- the engine's own build options
    engine: Engine,
    context: bytes | AsyncIterable[bytes],
    tag: str,
    *,
    labels: Mapping[str, str] | None = None,
    network_mode: str | None = None,
    pull: bool = False,
    on_progress: Callable[[str], object] | None = None,
) -> str:
    """Build an image from a tar (or tar.gz) context holding a Dockerfile; return its id.

    The build has no overall or read timeout. Its JSON progress stream is read to the end;
    each line of output goes to ``on_progress`` as it arrives.

    Raises:
        BuildFailed: the stream reported an error (the engine answers 200 and says so
            inside the stream), or the build ended without the tag existing. Its ``log``
            holds the last ``BUILD_LOG_LINES`` lines of output.
        InvalidParameter: the tag breaks the reference grammar (checked before sending),
            or the engine refused an option.
        StreamBroken: the connection broke during the build.
    """
    check_reference(tag)
    params = {"t": tag, "rm": "1", "forcerm": "1"}
    if labels:
        params["labels"] = orjson.dumps(labels).decode()
    if network_mode:
        params["networkmode"] = network_mode
    if pull:
        params["pull"] = "1"
    log: collections.deque[str] = collections.deque(maxlen=BUILD_LOG_LINES)
    async with engine.request(
        "POST",
        "/build",
        params=params,
        body=context,
        content_type="application/x-tar",
        kind="stream",
        errors={500: _build_refused},
    ) as resp:
        async for message in streams.json_lines(resp):
            text = _progress_text(message)
            if text:
                log.append(text)
                if on_progress is not None:
                    on_progress(text)
            if message.get("error") or message.get("errorDetail"):
                error = message.get("error") or message["errorDetail"].get("message", "")
                raise BuildFailed(f"build of {tag} failed: {error}", "\n".join(log))
    try:
        image = await inspect(engine, tag)
    except NoSuchImage as exc:
        raise BuildFailed(f"build of {tag} ended without producing it", "\n".join(log)) from exc
    return str(image["Id"])


def _progress_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    for key in ("stream", "status", "error"):
        value = message.get(key)
        if isinstance(value, str) and value.strip():
            return value.rstrip("\n")
    return ""


async def tag(engine: Engine, image: str, repository: str, tag_: str = "latest") -> None:
    """Give ``image`` the name ``repository:tag_``.

    Raises:
        NoSuchImage: ``image`` does not exist.
        InvalidParameter: the new name breaks the reference grammar.
    """
    check_reference(f"{repository}:{tag_}")
    await engine.call(
        "POST",
        f"/images/{segment(image)}/tag",
        params={"repo": repository, "tag": tag_},
        errors={404: NoSuchImage},
    )
