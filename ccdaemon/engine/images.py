"""Image calls: inspect, list, remove, tag; build and push, their streams checked for errors."""

from __future__ import annotations

import base64
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
    PushFailed,
)
from ccdaemon.engine.transport import segment

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Callable, Mapping

    from ccdaemon.engine.transport import Engine

#: How much of a build's output a BuildFailed keeps.
BUILD_LOG_LINES = 200
#: How much of a push's output a PushFailed keeps.
PUSH_LOG_LINES = 200

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
    params = label_filter(labels)
    result: list[dict[str, Any]] = await engine.call("GET", "/images/json", params=params)
    return [image for image in result if labelled(image, labels)]


def label_filter(labels: Mapping[str, str | None] | None) -> dict[str, str]:
    """A list call's ``filters`` parameter for ``labels``: the first label only.

    Podman 4.3's image list answers nothing to two label filters at once, so the engine
    filters by the first and ``labelled`` checks the rest.
    """
    wanted = [key if value is None else f"{key}={value}" for key, value in (labels or {}).items()]
    return {"filters": orjson.dumps({"label": wanted[:1]}).decode()} if wanted else {}


def labelled(item: Mapping[str, Any], labels: Mapping[str, str | None] | None) -> bool:
    """Whether a listed object's ``Labels`` hold each of ``labels`` (any value for None)."""
    have = item.get("Labels") or {}
    return all(k in have and (v is None or have[k] == v) for k, v in (labels or {}).items())


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


# Docker (20.10 to 28.5) answers a push of a name it does not hold with 200 and this
# error inside the stream, never with 404.
_PUSH_MISSING_TEXT = "does not exist locally"
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")


def registry_of(repository: str) -> str:
    """The registry a repository name points at, as Docker reads it.

    The first path component is a registry host when it holds a ``.`` or a ``:`` or is
    ``localhost``; any other name lives on Docker Hub.
    """
    first, sep, _ = repository.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def registry_auth(auth: Mapping[str, str] | None) -> str:
    """Registry credentials as ``X-Registry-Auth`` carries them: base64url of the JSON.

    None gives ``{}`` encoded: 20.10 and 26.1 refuse a push that carries neither this
    header nor credentials in the body (400 "missing X-Registry-Auth").
    """
    return base64.urlsafe_b64encode(orjson.dumps(dict(auth or {}))).decode()


async def push(
    engine: Engine,
    repository: str,
    tag_: str = "latest",
    *,
    auth: Mapping[str, str] | None = None,
    on_progress: Callable[[str], object] | None = None,
) -> str:
    """Push ``repository:tag_`` to the registry its name starts with; return the digest.

    The digest (``sha256:...``) is the registry's name for the manifest pushed, as the
    stream's last ``aux`` message gives it: ``repository@digest`` names these bytes for
    ever, whatever the tag later points at. Name the image for the registry with ``tag``
    first. The push has no overall or read timeout; each line of its JSON progress stream
    goes to ``on_progress`` as it arrives.

    ``auth`` is the registry's credentials as Docker's AuthConfig (``username``,
    ``password`` or ``identitytoken``, ``serveraddress``), sent in ``X-Registry-Auth``;
    None sends ``{}``. (Docker 28.5 ignores credentials in the request body, the older
    form 20.10 and 26.1 still read.)

    Raises:
        NoSuchImage: the engine holds no image of that name and tag.
        PushFailed: the stream reported an error (registry unreachable, refused, out of
            space...), or ended without a digest; the message names the registry. Its
            ``log`` holds the last ``PUSH_LOG_LINES`` lines of output.
        InvalidParameter: the name breaks the reference grammar (checked before sending).
        StreamBroken: the connection broke during the push.
    """
    reference = f"{repository}:{tag_}"
    check_reference(reference)
    registry = registry_of(repository)
    log: collections.deque[str] = collections.deque(maxlen=PUSH_LOG_LINES)
    digest = ""
    async with engine.request(
        "POST",
        f"/images/{segment(repository)}/push",
        params={"tag": tag_},
        headers={"X-Registry-Auth": registry_auth(auth)},
        kind="stream",
        errors={404: NoSuchImage},
    ) as resp:
        async for message in streams.json_lines(resp):
            text = _progress_text(message)
            if text:
                layer = message.get("id")
                text = f"{layer}: {text}" if isinstance(layer, str) and layer else text
                log.append(text)
                if on_progress is not None:
                    on_progress(text)
            if message.get("error") or message.get("errorDetail"):
                error = str(message.get("error") or message["errorDetail"].get("message", ""))
                if _PUSH_MISSING_TEXT in error:
                    raise NoSuchImage(404, f"cannot push {reference}: {error}")
                raise PushFailed(
                    f"push of {reference} to registry {registry} failed: {error}", "\n".join(log)
                )
            aux = message.get("aux")
            if isinstance(aux, dict) and aux.get("Tag") == tag_:
                digest = str(aux.get("Digest") or "")
    if not _DIGEST.fullmatch(digest):
        raise PushFailed(
            f"push of {reference} to registry {registry} ended without a digest (got {digest!r})",
            "\n".join(log),
        )
    return digest
