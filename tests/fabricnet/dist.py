"""Fabric's own programs, unpacked from the shared release archives into a cache.

The archives (``bin.tar.xz``, ``sampleconfig.tar.gz``, the Go shim's vendor closure) stay
where they are, read-only; each is unpacked once into ``$CCDAEMON_FABRIC_CACHE/<version>``
(default ``/var/cache/ccdaemon/fabric``), in a directory named by the archive's path,
size and modification time, so a second bring-up unpacks nothing. Concurrent sessions
take a lock file around the unpacking and move a complete tree into place, so none ever
sees a half-unpacked one, and a tree in place is never changed: a running network uses
its files directly.

The Go toolchain that ``peer lifecycle chaincode package --lang golang`` needs on the host
(the 2.5 peer CLI runs ``go list``) comes from ``go_root()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: The repository's root (tests/fabricnet/dist.py is two levels below it).
ROOT = Path(__file__).resolve().parents[2]
#: Where the shared Fabric releases are: ``$CCDAEMON_FABRIC_SHARED``, else ../shared/fabric.
SHARED = Path(os.environ.get("CCDAEMON_FABRIC_SHARED", str(ROOT.parent / "shared" / "fabric")))
#: Where unpacked programs and generated crypto are kept between sessions.
CACHE = Path(os.environ.get("CCDAEMON_FABRIC_CACHE", "/var/cache/ccdaemon/fabric"))
#: The only release that carries the Go module shim closure; it serves 3.x peers too.
SHIM_RELEASE = "2.5.10"
#: The oldest Go that reads the shim closure's go.mod (grpc 1.65 needs 1.22).
MIN_GO = (1, 22)
#: Seconds any one lock or unpacking may take.
LOCK_TIMEOUT = 300.0


class KitError(RuntimeError):
    """The network kit cannot do what was asked; the message says why."""


@dataclass(frozen=True)
class Release:
    """One Fabric release: what differs between the 2.x and 3.x lines for a network.

    Attributes:
        version: the release, e.g. ``"2.5.10"``.
    """

    version: str

    @property
    def major(self) -> int:
        """2 or 3."""
        return int(self.version.split(".", 1)[0])

    @property
    def channel_capability(self) -> str:
        """The channel capability the release's newest channels use."""
        return "V3_0" if self.major >= 3 else "V2_0"


@dataclass(frozen=True)
class Distribution:
    """A release's programs and sample configuration, unpacked.

    Attributes:
        release: the release.
        bin: ``peer``, ``orderer``, ``configtxgen``, ``cryptogen``, ``osnadmin``.
        sampleconfig: the tag's ``sampleconfig`` (core.yaml, orderer.yaml, ...).
        shim: ``vendor/`` and ``go.mod.require`` of the Go shim closure.
        cache: the release's cache directory (for generated material).
    """

    release: Release
    bin: Path
    sampleconfig: Path
    shim: Path
    cache: Path

    def program(self, name: str) -> str:
        """The absolute path of one of the release's programs."""
        return str(self.bin / name)


def distribution(version: str) -> Distribution:
    """Unpack (once) and describe Fabric ``version`` from the shared archives.

    Raises:
        KitError: the release or one of its archives is not in the shared directory.
    """
    source = SHARED / f"v{version}"
    if not source.is_dir():
        raise KitError(f"no Fabric {version} at {source} (set CCDAEMON_FABRIC_SHARED)")
    cache = CACHE / version
    binaries = unpacked(source / "bin.tar.xz", cache / "bin")
    sampleconfig = unpacked(source / "sampleconfig.tar.gz", cache / "sampleconfig")
    shim = unpacked(SHARED / f"v{SHIM_RELEASE}" / "go-shim-vendor.tar.xz", cache / "shim")
    return Distribution(
        Release(version), binaries / "bin", sampleconfig / "sampleconfig", shim, cache
    )


def unpacked(archive: Path, target: Path) -> Path:
    """A directory beside ``target`` holding ``archive`` unpacked, once per version of it."""
    if not archive.is_file():
        raise KitError(f"missing {archive}")
    stamp = file_stamp(archive)

    def make(tmp: Path) -> None:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="tar")

    return cached(target, stamp, make)


def cached(base: Path, key: str, make: Callable[[Path], None]) -> Path:
    """A directory made by ``make(tmp)`` once per ``key``: ``<base>-<hash of key>``.

    It is made under a lock and moved into place whole, and never changed afterwards: a
    session whose key differs (another archive, another kit) gets a directory of its
    own, so no running network ever has its files replaced under it.
    """
    target = base.parent / f"{base.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f".{target.name}.lock"):
        if target.is_dir():  # another session made it meanwhile
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            make(tmp)
            (tmp / ".ccdaemon-key").write_text(key)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def file_stamp(path: Path) -> str:
    """What identifies a version of a file cheaply: its path, size and modification time."""
    info = path.stat()
    return f"{path.resolve()} {info.st_size} {info.st_mtime_ns}"


def go_root() -> Path:
    """GOROOT of a Go toolchain new enough for the shim closure (1.22 or later).

    ``$CCDAEMON_TEST_GOROOT`` if set, else what ``scripts/images go-root`` prints (the
    test bed's own Go, unpacked beside the system). The kit puts its ``bin`` first on the
    peer CLI's PATH, since ``peer lifecycle chaincode package`` runs ``go list``.

    Raises:
        KitError: no such toolchain, or it is older than 1.22.
    """
    given = os.environ.get("CCDAEMON_TEST_GOROOT")
    if given:
        root = Path(given)
    else:
        try:
            done = subprocess.run(
                [str(ROOT / "scripts" / "images"), "go-root"],
                check=False,
                capture_output=True,
                text=True,
                timeout=LOCK_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise KitError("scripts/images go-root did not answer in time") from None
        lines = done.stdout.strip().splitlines()
        if done.returncode or not lines:
            raise KitError(
                "no Go >= 1.22 for `peer lifecycle chaincode package`: set "
                "CCDAEMON_TEST_GOROOT, or make `scripts/images go-root` print one "
                f"(it said: {done.stderr.strip()[-300:]!r})"
            )
        root = Path(lines[-1])
    version = go_version(root)
    if version < MIN_GO:
        raise KitError(f"{root} holds Go {version[0]}.{version[1]}; the shim needs 1.22 or newer")
    return root


def go_version(root: Path) -> tuple[int, int]:
    """The (major, minor) of the Go toolchain at GOROOT ``root``.

    Raises:
        KitError: there is no runnable ``bin/go`` under ``root``.
    """
    try:
        done = subprocess.run(
            [str(root / "bin" / "go"), "version"],
            check=True,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "GOROOT": str(root), "GOTOOLCHAIN": "local"},
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise KitError(f"no runnable Go under {root}: {exc}") from None
    found = re.search(r"go(\d+)\.(\d+)", done.stdout)
    if found is None:
        raise KitError(f"{root}/bin/go version said {done.stdout.strip()!r}")
    return int(found[1]), int(found[2])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path`` (polled, ``LOCK_TIMEOUT`` at most)."""
    with path.open("a") as file:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise KitError(f"timed out waiting for the lock {path}") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)
