"""A chaincode image's build context, checked as it streams to the engine.

Fabric sends a gzip tar whose first member is the Dockerfile. The engine's classic
builder unpacks the whole context before it runs a step, reads gzip members one after
another, and takes the last member named Dockerfile, after following links and
directories; so the whole stream is walked here, each piece before it is forwarded:

- the first member is a plain file named Dockerfile, of at most ``DOCKERFILE_MAX``
  bytes, and the policy allows its text;
- no later member is named Dockerfile (by any of the names the engine's tar reader may
  give it: the name field, or prefix and name);
- every member is a plain file or a directory: no links (which could make another path
  write the Dockerfile), no extended or sparse headers (which rename a member or change
  what its data is).

A refusal cuts the upload before the engine has the whole context, so nothing is built.
Nothing is read past the tar's first end block: the engine reads no member after it.
What the engine gets is the walked tar, plain, its Dockerfile labelled (``BuildContext``).
"""

from __future__ import annotations

import posixpath
import tarfile
import zlib
from typing import TYPE_CHECKING

from ccdaemon.dockerfront.policy import Refused
from ccdaemon.runtime.platforms import quote_label_value

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

#: The largest Dockerfile taken (Fabric's are a few hundred bytes).
DOCKERFILE_MAX = 64 * 1024
#: Bytes of context read, at most, before its Dockerfile has been read whole.
DOCKERFILE_AHEAD = 1024 * 1024
_BLOCK = 512
#: Bytes inflated at a time, so a gzip bomb is walked through, never held.
_STEP = 64 * 1024
_ZERO = bytes(_BLOCK)
_FILES = frozenset({b"0", b"\0"})
_MEMBERS = _FILES | {b"5"}


def _gunzip() -> zlib._Decompress:
    return zlib.decompressobj(zlib.MAX_WBITS | 16)


def _field(block: bytes, start: int, end: int) -> str:
    return block[start:end].split(b"\0", 1)[0].decode("latin-1")


def _names(block: bytes) -> set[str]:
    """Every name a tar reader may give this header's member, as the engine unpacks it.

    The name field alone (V7, GNU), or the prefix (155 bytes in USTAR, 131 in star) and
    the name; each cleaned as the engine cleans it.
    """
    name = _field(block, 0, 100)
    found = {name}
    for end in (500, 476):
        prefix = _field(block, 345, end)
        if prefix:
            found.add(f"{prefix}/{name}")
    return {posixpath.normpath("/" + n).lstrip("/").lower() for n in found}


class BuildContext:
    """Walks one build context and gives on the tar to forward: ``feed`` each piece, ``end`` after.

    The context leaves plain (the engine reads either), and its Dockerfile carries
    ``labels`` in its last LABEL instruction: the build's ``labels`` parameter would be
    one more build step, a container committed (0.19 s on Docker 20.10:
    scripts/bench/imagelabels.py), and last, ours win over any the client wrote.

    Args:
        check: the policy's check of the Dockerfile's text (raises Refused).
        labels: the image's labels (ccdaemon's; values quoted here).
    """

    def __init__(self, check: Callable[[str], None], labels: Mapping[str, str]) -> None:
        self._check = check
        self._labels = " ".join(f"{k}={quote_label_value(k, v)}" for k, v in labels.items())
        self._inflate = _gunzip()
        self._header = bytearray()
        self._data = 0  # bytes of the current member's data still to come
        self._pad = 0  # then bytes of padding to its block's end
        self._dockerfile: bytearray | None = None
        self._first_info: tarfile.TarInfo | None = None  # the Dockerfile's header
        self._members = 0
        self._fed = 0
        self._ended = False
        #: Whether the Dockerfile was read whole and allowed.
        self.checked = False

    def feed(self, piece: bytes) -> Iterator[bytes]:
        """Walk ``piece`` of the (gzip) context; yield the plain tar to forward.

        Nothing is yielded before the Dockerfile is read and allowed; then it comes
        first, as its own piece, labelled. Other pieces are at most ``_STEP`` bytes.

        Raises:
            Refused: what the piece holds is refused.
        """
        data = piece
        self._fed += len(piece)
        if not self.checked and self._fed > DOCKERFILE_AHEAD:
            raise Refused("the build context does not begin with a Dockerfile", status=400)
        while data and not self._ended:
            try:
                plain = self._inflate.decompress(data, _STEP)
            except zlib.error:
                raise Refused("the build context is not gzip data", status=400) from None
            yield from self._walk(plain)
            if self._inflate.eof:
                # Another gzip member may follow: the engine's reader reads it on.
                data = self._inflate.unused_data
                self._inflate = _gunzip()
            else:
                data = self._inflate.unconsumed_tail

    def end(self) -> None:
        """The context has ended: Refused unless its Dockerfile was read and allowed."""
        if not self.checked:
            raise Refused("the build context does not begin with a Dockerfile", status=400)

    def _walk(self, plain: bytes) -> Iterator[bytes]:
        view = memoryview(plain)
        while view and not self._ended:
            if self._data:
                taken, view = view[: self._data], view[self._data :]
                self._data -= len(taken)
                if self._dockerfile is None:
                    yield bytes(taken)
                else:
                    self._dockerfile += taken
                    if not self._data:
                        yield self._dockerfile_read(self._dockerfile)
            elif self._pad:
                skipped, view = view[: self._pad], view[self._pad :]
                self._pad -= len(skipped)
                if self._members > 1:  # the Dockerfile's padding is written anew
                    yield bytes(skipped)
            else:
                need = _BLOCK - len(self._header)
                self._header += view[:need]
                view = view[need:]
                if len(self._header) == _BLOCK:
                    block = bytes(self._header)
                    self._header.clear()
                    sent = self._member(block)
                    if sent:
                        yield sent

    def _member(self, block: bytes) -> bytes:
        """Take a member's header; what to forward for it (nothing yet for the Dockerfile)."""
        if block == _ZERO:
            self._ended = True  # the engine's tar reader stops here, or fails
            return _ZERO * 2  # the archive's end, whole: nothing past it is read
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.TarError:
            raise Refused("the build context is not a tar archive", status=400) from None
        if info.size < 0:
            raise Refused("the build context is not a tar archive", status=400)
        kind = block[156:157]
        self._members += 1
        if self._members == 1:
            self._first(info, kind)
            self._first_info = info
        elif kind not in _MEMBERS:
            raise Refused(
                f"build context member {info.name[:80]!r} is not a file or a directory "
                f"(type {kind!r}); refused"
            )
        elif "dockerfile" in _names(block):
            raise Refused(f"the build context holds a second Dockerfile ({info.name[:80]!r})")
        # A directory has no data, whatever its size field says (as the engine reads it).
        self._data = info.size if info.isreg() else 0
        self._pad = -self._data % _BLOCK
        if self._dockerfile is not None:
            return self._dockerfile_read(self._dockerfile) if not self._data else b""
        return block

    def _first(self, info: tarfile.TarInfo, kind: bytes) -> None:
        if info.name.removeprefix("./") != "Dockerfile":
            raise Refused(f"the build context begins with {info.name[:80]!r}, not the Dockerfile")
        if kind not in _FILES:
            raise Refused(f"the build context's Dockerfile is not a plain file (type {kind!r})")
        if info.size > DOCKERFILE_MAX:
            raise Refused(
                f"the Dockerfile is {info.size} bytes; at most {DOCKERFILE_MAX}", status=413
            )
        self._dockerfile = bytearray()

    def _dockerfile_read(self, data: bytearray) -> bytes:
        """Check the whole Dockerfile; its member (header, labelled text, padding) to send."""
        self._dockerfile = None
        raw = bytes(data)
        self._check(raw.decode("utf-8", "replace"))
        self.checked = True
        # surrogateescape: bytes that are not UTF-8 reach the engine as the client sent them.
        text = with_labels(raw.decode("utf-8", "surrogateescape"), self._labels)
        labelled = text.encode("utf-8", "surrogateescape")
        info = self._first_info
        assert info is not None  # noqa: S101 -- set by _member before any Dockerfile data
        info.size = len(labelled)
        header = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
        return header + labelled + bytes(-len(labelled) % _BLOCK)


def with_labels(dockerfile: str, labels: str) -> str:
    """``dockerfile`` with ``labels`` (``key="value" ...``) ending its last LABEL instruction.

    A Dockerfile with no LABEL gets one of its own, at its end.
    """
    lines = dockerfile.split("\n")
    last: int | None = None
    continued = False
    word = ""
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # inside an instruction too: the engine drops such lines there
        if not continued:
            word = stripped.split(None, 1)[0].upper()
        continued = stripped.endswith("\\")
        if word == "LABEL" and not continued:
            last = number
    if last is None:
        return dockerfile.rstrip("\n") + f"\nLABEL {labels}\n"
    lines[last] = f"{lines[last].rstrip()} {labels}"
    return "\n".join(lines)


__all__ = ["DOCKERFILE_AHEAD", "DOCKERFILE_MAX", "BuildContext", "with_labels"]
