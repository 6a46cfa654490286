"""Fabric's external builder (``detect``, ``build``, ``release``, ``run``) on ccdaemon's API.

A Fabric 2.x/3.x peer configured with this builder in core.yaml's
``chaincode.externalBuilders`` runs the four executables of ``<path>/bin`` (see
``install``) instead of building and running chaincode on a container engine itself:

- ``detect SOURCE METADATA``: exit 0 to claim a package whose ``metadata.json`` type is
  one of ``$CCDAEMON_BUILDER_TYPES`` (default ``golang,node,java``), 1 otherwise.
- ``build SOURCE METADATA OUTPUT``: have the daemon build the image now (2.x "build at
  install") and record it in OUTPUT, which the peer keeps, so a restart reuses it.
- ``release OUTPUT RELEASE``: hand the peer the package's CouchDB indexes (and, for a
  chaincode-as-a-service package, its ``connection.json``).
- ``run OUTPUT RUN_METADATA``: launch the recorded image with ``chaincode.json``'s
  address and TLS material, stay in the foreground while the chaincode runs, exit with
  its exit code; on SIGTERM (the peer's stop) stop the container, then exit.

The peer runs them with a pruned environment: only ``propagateEnvironment`` and
``LD_LIBRARY_PATH``, ``LIBPATH``, ``PATH``, ``TMPDIR``. The daemon is found at
``$CCDAEMON_SOCKET``, else ``/run/ccdaemon/ccdaemon.sock``. Messages go to stderr, which the
peer logs line by line. Exit status: 0 done; 1 failed (or, for detect, not claimed); 2 a
usage error; 3 the daemon cannot be reached (the message names the socket).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import os
import shutil
import signal
import stat
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from ccdaemon.apiclient import APIError, Client, ClientError, DaemonUnreachable, RequestFailed
from ccdaemon.errors import CcdaemonError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: The step each executable runs (its file name) and the arguments the peer passes it.
STEPS: dict[str, tuple[str, ...]] = {
    "detect": ("CHAINCODE_SOURCE_DIR", "CHAINCODE_METADATA_DIR"),
    "build": ("CHAINCODE_SOURCE_DIR", "CHAINCODE_METADATA_DIR", "BUILD_OUTPUT_DIR"),
    "release": ("BUILD_OUTPUT_DIR", "RELEASE_OUTPUT_DIR"),
    "run": ("BUILD_OUTPUT_DIR", "RUN_METADATA_DIR"),
}
TYPES_ENV = "CCDAEMON_BUILDER_TYPES"
DEFAULT_TYPES = frozenset({"golang", "node", "java"})
#: The type of a chaincode-as-a-service package: the peer dials it; nothing is built or run.
CCAAS = "ccaas"
#: What ``build`` leaves in BUILD_OUTPUT_DIR: its record, and the package it sent, kept so
#: that ``run`` can have the image built again if it was removed since (``ccdaemon gc``).
RECORD_FILE = "ccdaemon-build.json"
PACKAGE_FILE = "package.tar.gz"
CONNECTION_FILE = "connection.json"

#: Seconds a stopped chaincode gets before it is killed, and the most the whole stop may
#: take: the peer sends SIGKILL 5 s after SIGTERM, and the stop must be over by then.
STOP_GRACE = 2
STOP_DEADLINE = 4.0
#: Seconds between the lines ``run`` writes to the peer's log while the daemon is away.
AWAY_REPORT = 60.0
_RETRY = 1.0

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class BuilderError(CcdaemonError):
    """A step cannot do its work; the message says why, for the peer's log."""


@dataclass(frozen=True, slots=True)
class BuildRecord:
    """What ``build`` made, as recorded in BUILD_OUTPUT_DIR for ``release`` and ``run``.

    Attributes:
        build_id: ``<label>:<sha256 of the package rebuilt from the source>``: the id the
            image was built under (the package id is given only to ``run``).
        type: the package's type, lower-cased.
        image: the image the daemon built; empty for a chaincode-as-a-service package.
    """

    build_id: str
    type: str
    image: str


@dataclass(frozen=True, slots=True)
class RunConfig:
    """``chaincode.json``, the peer's instructions to ``run``; the TLS fields are PEM or empty."""

    chaincode_id: str
    peer_address: str
    client_cert: str = field(repr=False)
    client_key: str = field(repr=False)
    root_cert: str = field(repr=False)
    mspid: str


def claimed_types(environ: Mapping[str, str]) -> frozenset[str]:
    """The package types this builder claims: ``$CCDAEMON_BUILDER_TYPES`` (comma-separated)."""
    given = environ.get(TYPES_ENV, "")
    types = frozenset(item.strip().lower() for item in given.split(",") if item.strip())
    return types or DEFAULT_TYPES


def read_metadata(metadata_dir: Path) -> dict[str, Any]:
    """CHAINCODE_METADATA_DIR/metadata.json, with the non-empty ``type`` and ``label`` it needs.

    Raises:
        BuilderError: the file is missing, not a JSON object, or lacks type or label.
    """
    path = metadata_dir / "metadata.json"
    metadata = _json_object(path)
    for key in ("type", "label"):
        if not isinstance(metadata.get(key), str) or not metadata[key]:
            raise BuilderError(f"{path}: {key!r} is missing or not a non-empty string")
    return metadata


def detect(metadata_dir: Path, *, types: frozenset[str]) -> str | None:
    """Why the package is not claimed, or None when its type is one of ``types``."""
    try:
        cc_type = str(read_metadata(metadata_dir)["type"]).lower()
    except BuilderError as exc:
        return str(exc)
    if cc_type not in types:
        return f"type {cc_type!r} is not one this builder claims ({', '.join(sorted(types))})"
    return None


async def build(
    source_dir: Path, metadata_dir: Path, output_dir: Path, *, client: Client
) -> BuildRecord:
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
        code = _tar(_source_files(source_dir))
        build_id = f"{metadata['label']}:{_digest(raw_metadata, code)}"
        package = _targz(
            [("metadata.json", raw_metadata, 0o644), ("code.tar.gz", _gzip(code), 0o644)]
        )
        (output_dir / PACKAGE_FILE).write_bytes(package)
        image = await _built_image(client, build_id) or await _build_image(
            client, build_id, package
        )
        record = BuildRecord(build_id=build_id, type=cc_type, image=image)
    (output_dir / RECORD_FILE).write_bytes(orjson.dumps(asdict(record)))
    return record


def release(build_dir: Path, release_dir: Path) -> None:
    """Give the peer the CouchDB indexes and, for chaincode-as-a-service, connection.json.

    Raises:
        BuilderError: ``build_dir`` holds no record of this builder's build.
    """
    record = read_record(build_dir)
    statedb = build_dir / "META-INF" / "statedb"
    if statedb.is_dir():
        shutil.copytree(statedb, release_dir / "statedb", dirs_exist_ok=True)
    if record.type == CCAAS:
        server = release_dir / "chaincode" / "server"
        server.mkdir(mode=0o750, parents=True, exist_ok=True)
        shutil.copyfile(build_dir / CONNECTION_FILE, server / CONNECTION_FILE)


def read_record(build_dir: Path) -> BuildRecord:
    """The record ``build`` left in BUILD_OUTPUT_DIR.

    Raises:
        BuilderError: it is missing or malformed (the directory is not this builder's).
    """
    path = build_dir / RECORD_FILE
    raw = _json_object(path)
    try:
        return BuildRecord(**{key: str(raw[key]) for key in ("build_id", "type", "image")})
    except KeyError as exc:
        raise BuilderError(f"{path}: no {exc.args[0]!r}; was it built by ccdaemon?") from None


def read_run_config(run_metadata_dir: Path) -> RunConfig:
    """RUN_METADATA_DIR/chaincode.json, checked: ids and address set, TLS all or nothing.

    Raises:
        BuilderError: the file is missing, not JSON, or a field is missing or mistyped
            (named, with the file).
    """
    path = run_metadata_dir / "chaincode.json"
    raw = _json_object(path)
    values: dict[str, str] = {}
    for key in ("chaincode_id", "peer_address", "client_cert", "client_key", "root_cert", "mspid"):
        value = raw.get(key, "")
        if not isinstance(value, str):
            raise BuilderError(f"{path}: {key!r} must be a string, not {type(value).__name__}")
        values[key] = value
    for key in ("chaincode_id", "peer_address"):
        if not values[key]:
            raise BuilderError(f"{path}: {key!r} is missing or empty")
    tls = [key for key in ("client_cert", "client_key", "root_cert") if values[key]]
    if tls and len(tls) != 3:  # noqa: PLR2004 -- the three TLS fields
        raise BuilderError(f"{path}: client_cert, client_key and root_cert go together")
    return RunConfig(**values)


def launch_body(record: BuildRecord, config: RunConfig) -> dict[str, Any]:
    """The launch request for the recorded image with chaincode.json's address and TLS."""
    # As Fabric's own sample builders read chaincode.json: no client_cert, no TLS.
    tls: dict[str, Any] = (
        {
            "enabled": True,
            "client_cert": config.client_cert,
            "client_key": config.client_key,
            "root_cert": config.root_cert,
        }
        if config.client_cert
        else {"enabled": False}
    )
    return {
        "ccid": config.chaincode_id,
        "type": record.type,
        "peer_address": config.peer_address,
        "mspid": config.mspid,
        "image": record.image,
        "tls": tls,
    }


async def run(build_dir: Path, run_metadata_dir: Path, *, client: Client) -> int:
    """Launch the chaincode, wait for it to exit, and answer its exit code.

    SIGTERM or SIGINT (the peer stopping it) ends the wait: the chaincode is stopped with
    ``STOP_GRACE`` seconds' grace, killed and removed, within ``STOP_DEADLINE`` seconds,
    and the answer is its exit code (128 + the signal when there is none).

    Raises:
        BuilderError: the build record or chaincode.json is broken (nothing is launched).
        ClientError: the daemon refused or failed the launch, or cannot be reached.
    """
    record = read_record(build_dir)
    if record.type == CCAAS:
        raise BuilderError("a chaincode-as-a-service package is not run: the peer dials it")
    config = read_run_config(run_metadata_dir)
    body = launch_body(record, config)
    ccid = config.chaincode_id
    received: list[int] = []
    loop = asyncio.get_running_loop()
    with anyio.CancelScope() as scope:

        def on_signal(signum: int) -> None:
            received.append(signum)
            scope.cancel()

        # Kept for the whole step: a second SIGTERM must not kill the process mid-stop.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        await _launch(client, body, build_dir, record)
        _say(f"launched {ccid} from {record.image}; waiting for it to exit")
        code = await _wait(client, ccid)
        _say(f"chaincode {ccid} exited with {code}")
        return code
    name = signal.Signals(received[0]).name
    _say(f"{name}: stopping chaincode {ccid}")
    with anyio.move_on_after(STOP_DEADLINE, shield=True):
        try:
            stopped = await client.stop(ccid, timeout=STOP_GRACE)
        except APIError as exc:
            if exc.status != 404:  # noqa: PLR2004 -- unknown: it never got launched
                raise
            return 128 + received[0]
        exit_code = stopped.get("exit_code")
        _say(f"stopped {ccid} (exit code {exit_code})")
        return exit_code if isinstance(exit_code, int) else 128 + received[0]
    raise BuilderError(f"{name}: chaincode {ccid} did not stop within {STOP_DEADLINE:g} s")


def wrapper(interpreter: str) -> str:
    """The text of each executable: ``interpreter`` runs the step its file is named after."""
    return (
        f"#!{interpreter}\n"
        '"""ccdaemon\'s Fabric external builder; the step is this file\'s name."""\n'
        "import sys\n"
        "\n"
        "from ccdaemon.fabricbuilder import main\n"
        "\n"
        "sys.exit(main(sys.argv))\n"
    )


def install(directory: Path, interpreter: str) -> list[Path]:
    """Write ``directory/bin/{detect,build,release,run}`` to run with ``interpreter``.

    The peer prunes its builders' environment, so the interpreter is named by absolute
    path rather than found on PATH. Each file is replaced whole, so a peer never runs a
    half-written one.

    Returns:
        The paths written.
    """
    bin_dir = directory / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for step in STEPS:
        target = bin_dir / step
        handle, temporary = tempfile.mkstemp(dir=bin_dir, prefix=f".{step}.")
        with os.fdopen(handle, "w") as file:
            file.write(wrapper(interpreter))
        Path(temporary).chmod(0o755)
        Path(temporary).replace(target)
        written.append(target)
    return written


def main(argv: Sequence[str]) -> int:
    """Run the step named by ``argv[0]``'s file name with the peer's arguments; exit status."""
    step, args = Path(argv[0]).name, [Path(arg) for arg in argv[1:]]
    expected = STEPS.get(step)
    if expected is None or len(args) != len(expected):
        _say(
            f"usage: {step} {' '.join(expected)}"
            if expected is not None
            else f"unknown step {step!r}: the executable must be named one of {', '.join(STEPS)}"
        )
        return EXIT_USAGE
    try:
        return _step(step, args)
    except DaemonUnreachable as exc:
        _say(exc.message)
        return EXIT_UNREACHABLE
    # OSError: a directory the peer gave cannot be read or written.
    except (BuilderError, ClientError, OSError) as exc:
        for line in _explain(exc):
            _say(line)
        return EXIT_FAILED


def _explain(exc: Exception) -> list[str]:
    """The lines that tell the peer's log why a step failed."""
    if isinstance(exc, APIError):
        field = f" (field {exc.field})" if exc.field else ""
        return [f"{exc}{field}", *(f"  {line}" for line in exc.log_tail)]
    if isinstance(exc, OSError) and exc.filename:
        return [f"{exc.filename}: {exc.strerror}"]
    return [str(exc)]


def _step(step: str, args: list[Path]) -> int:
    if step == "detect":
        refused = detect(args[1], types=claimed_types(os.environ))
        if refused is not None:
            _say(f"not claimed: {refused}")
            return EXIT_FAILED
        return 0
    if step == "release":
        release(args[0], args[1])
        return 0
    return asyncio.run(_with_client(step, args))


async def _with_client(step: str, args: list[Path]) -> int:
    async with Client() as client:
        if step == "build":
            record = await build(args[0], args[1], args[2], client=client)
            _say(f"built {record.build_id}: {record.image or 'chaincode-as-a-service'}")
            return 0
        return await run(args[0], args[1], client=client)


async def _built_image(client: Client, build_id: str) -> str | None:
    """The image the daemon already has for ``build_id``, or None (it needs the package)."""
    try:
        answer = await client.build({"ccid": build_id})
    except APIError as exc:
        if exc.status == 404:  # noqa: PLR2004 -- not built (or collected since)
            return None
        raise
    image = answer.get("image")
    if not isinstance(image, str) or not image:
        raise ClientError("the build answer has no 'image'", code="bad_answer")
    _say(f"the daemon has the image of {build_id} already: {image}")
    return image


async def _build_image(client: Client, build_id: str, package: bytes) -> str:
    answer = await client.build(
        {"ccid": build_id, "package": base64.b64encode(package).decode("ascii")}, progress=_say
    )
    image = answer.get("image")
    if not isinstance(image, str) or not image:
        raise ClientError("the build answer has no 'image'", code="bad_answer")
    return image


def _build_ccaas(source_dir: Path, output_dir: Path, metadata: Mapping[str, Any]) -> BuildRecord:
    """Chaincode-as-a-service: keep connection.json (with an address) for ``release``."""
    source = source_dir / CONNECTION_FILE
    connection = _json_object(source)
    if not isinstance(connection.get("address"), str) or not connection["address"]:
        raise BuilderError(f"{source}: 'address' is missing or not a non-empty string")
    shutil.copyfile(source, output_dir / CONNECTION_FILE)
    return BuildRecord(build_id=str(metadata["label"]), type=CCAAS, image="")


async def _launch(
    client: Client, body: Mapping[str, Any], build_dir: Path, record: BuildRecord
) -> None:
    """Launch; if the image built at install is gone (``ccdaemon gc``), build it again first."""
    try:
        await client.launch(body)
    except APIError as exc:
        if exc.field != "image" or not (build_dir / PACKAGE_FILE).is_file():
            raise
        _say(f"{exc.message}; building it again from the package kept at install")
        await _build_image(client, record.build_id, (build_dir / PACKAGE_FILE).read_bytes())
        await client.launch(body)


async def _wait(client: Client, ccid: str) -> int:
    """The chaincode's exit code, asking again for as long as the daemon is away.

    ``run`` never gives up on a daemon that is away (restarting, or down for longer):
    the chaincode it launched keeps serving the peer meanwhile, and this process is the
    peer's only handle on it. Were it to exit, the peer would take the chaincode for
    ended, and its next stop (an upgrade, a peer shutdown) could no longer reach it.
    """
    lost_since: float | None = None
    told = 0.0
    while True:
        asked = anyio.current_time()
        try:
            return await client.wait(ccid)
        except (DaemonUnreachable, RequestFailed, APIError) as exc:
            if isinstance(exc, APIError) and exc.status != 503:  # noqa: PLR2004 -- stopping
                raise
            now = anyio.current_time()
            # A wait that held for a while means the daemon was there until just now.
            if lost_since is None or now - asked > _RETRY:
                lost_since = told = now
                _say(f"lost the daemon while waiting ({exc.message}); asking again")
            elif now - told >= AWAY_REPORT:
                told = now
                _say(
                    f"the daemon has been away for {now - lost_since:.0f} s; still waiting "
                    f"for chaincode {ccid} ({exc.message})"
                )
        await anyio.sleep(_RETRY)


def _source_files(source_dir: Path) -> list[tuple[str, bytes, int]]:
    """Every file under the source directory, sorted, with its mode reduced to 0755/0644."""
    if not source_dir.is_dir():
        raise BuilderError(f"{source_dir}: not a directory")
    files = []
    for path in sorted(source_dir.rglob("*")):
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode):
            continue
        if not stat.S_ISREG(info.st_mode):
            # The peer extracts only files and directories; anything else is not its.
            raise BuilderError(f"{path}: not a regular file or directory")
        mode = 0o755 if info.st_mode & 0o111 else 0o644
        files.append((path.relative_to(source_dir).as_posix(), path.read_bytes(), mode))
    return files


def _tar(files: Sequence[tuple[str, bytes, int]]) -> bytes:
    """A tar of ``(name, data, mode)``; zero times and owners: same files, same bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _gzip(data: bytes) -> bytes:
    # Level 1: the package only travels to the daemon on this host. On the 15 MB tar of
    # the shim's vendor tree, level 9 took 2.4 s and level 1 0.16 s, for 25% more bytes.
    return gzip.compress(data, compresslevel=1, mtime=0)


def _targz(files: Sequence[tuple[str, bytes, int]]) -> bytes:
    """A gzip'd ``_tar`` of ``files``."""
    return _gzip(_tar(files))


def _digest(metadata: bytes, code: bytes) -> str:
    """The build id's hash: metadata.json and the uncompressed code tar, each length-prefixed."""
    digest = hashlib.sha256()
    for part in (metadata, code):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _json_object(path: Path) -> dict[str, Any]:
    try:
        value = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise BuilderError(f"cannot read {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise BuilderError(f"{path} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BuilderError(f"{path} is not a JSON object")
    return value


def _say(line: str) -> None:
    sys.stderr.write(f"ccdaemon-builder: {line.rstrip()}\n")
    sys.stderr.flush()
