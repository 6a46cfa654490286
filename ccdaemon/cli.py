"""The ``ccdaemon`` command line.

``serve`` runs the daemon; ``launch``, ``build``, ``stop``, ``ps``, ``logs``, ``wait``,
``gc`` and ``health`` talk to a running daemon through its control API
(docs/api-contract.md) with ``ccdaemon.apiclient``; ``engine-check`` reaches a container
engine directly and reports what an operator needs to know before pointing a peer at it.

``--socket`` (default ``$CCDAEMON_SOCKET``, else /run/ccdaemon/ccdaemon.sock) picks the
daemon, and may also be ``https://host:port`` with ``--api-cacert/--api-cert/--api-key``.
Every command that prints data takes ``--json``. Errors go to stderr as one line,
``ccdaemon: <code>: <message>``.

Exit status:
    0  success
    1  the daemon refused the request or the operation failed
    2  usage error
    3  the daemon cannot be reached (the request never got to it)
    130  interrupted
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ccdaemon import __version__
from ccdaemon.apiclient import APIError, Client, ClientError, DaemonUnreachable, default_socket
from ccdaemon.engine import CLIENT_MAX_API, CLIENT_MIN_API, Engine, system
from ccdaemon.errors import CcdaemonError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

DEFAULT_ENDPOINT = "unix:///var/run/docker.sock"
DEFAULT_CONFIG = Path("/etc/ccdaemon/ccdaemon.toml")

EXIT_FAILED = 1
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

EXIT_STATUS_HELP = """\
exit status:
  0    success
  1    the daemon refused the request or the operation failed
  2    usage error
  3    the daemon cannot be reached (the request never got to it)
  130  interrupted
"""


async def engine_check(endpoint: str, api_version: str | None) -> dict[str, Any]:
    """Ping the engine, negotiate the API version and read its info."""
    async with Engine(endpoint, api_version=api_version) as engine:
        advertised = await system.ping(engine)
        version = await engine.version()
        info = await system.info(engine)
    return {
        "endpoint": endpoint,
        "kind": version.kind,
        "version": version.version,
        "api_version": str(version.negotiated),
        "engine_api_range": [str(version.min_api_version), str(version.api_version)],
        "client_api_range": [str(CLIENT_MIN_API), str(CLIENT_MAX_API)],
        "ping_api_version": advertised,
        "storage_driver": info.get("Driver"),
        "cgroup_version": info.get("CgroupVersion"),
        "containers": info.get("Containers"),
        "containers_running": info.get("ContainersRunning"),
        "images": info.get("Images"),
    }


def _print_check(report: dict[str, Any]) -> None:
    low, high = report["engine_api_range"]
    print(f"engine     {report['endpoint']}")
    print(f"kind       {report['kind']} {report['version']}")
    print(
        f"api        {report['api_version']} negotiated "
        f"(engine speaks {low} to {high}, ccdaemon {' to '.join(report['client_api_range'])})"
    )
    print(
        f"state      {report['containers']} containers ({report['containers_running']} running), "
        f"{report['images']} images, storage {report['storage_driver']}, "
        f"cgroup v{report['cgroup_version']}"
    )


def _engine_check_command(args: argparse.Namespace) -> int:
    report = asyncio.run(engine_check(args.endpoint, args.api_version))
    if args.json:
        _print_json(report)
    else:
        _print_check(report)
    return 0


def _serve_command(args: argparse.Namespace) -> int:
    # Imported here so that the client commands never load the server and its dependencies.
    from ccdaemon.daemon.serve import main as serve  # noqa: PLC0415

    config: Path | None = args.config
    if config is None:
        from_env = os.environ.get("CCDAEMON_CONFIG")
        if from_env:
            config = Path(from_env)
        elif DEFAULT_CONFIG.exists():
            config = DEFAULT_CONFIG
    return serve(config, check_config=args.check_config)


def _install_builder_command(args: argparse.Namespace) -> int:
    from ccdaemon.fabricbuilder import install  # noqa: PLC0415 -- only this command needs it

    # sys.executable unresolved: a venv's interpreter finds its packages by that path.
    for path in install(args.directory, sys.executable):
        print(path)
    return 0


# The client commands: each takes an open Client and the parsed arguments.


async def _launch(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "ccid": args.ccid,
        "type": args.type,
        "peer_address": args.peer_address,
    }
    if args.mspid is not None:
        body["mspid"] = args.mspid
    if args.package is not None:
        body["package"] = args.package
    if args.no_tls:
        body["tls"] = {"enabled": False}
    elif args.tls_cert is not None:
        body["tls"] = {
            "enabled": True,
            "client_cert": args.tls_cert,
            "client_key": args.tls_key,
            "root_cert": args.tls_root,
        }
    # Only a launch with a package can build, so only then is there progress to show.
    progress = _print_progress if args.package is not None else None
    result = await client.launch(body, progress=progress)
    if args.json:
        _print_json(result)
        return 0
    chaincode = result["chaincode"]
    container_id = chaincode.get("container_id")
    print(f"launched   {chaincode['ccid']}")
    print(
        f"container  {chaincode['container']}" + (f" ({container_id[:12]})" if container_id else "")
    )
    print(f"image      {chaincode['image']}" + (" (built)" if result.get("built") else ""))
    print(f"state      {chaincode['state']}")
    print(f"timings    {_timings(result.get('timings', {}))}")
    return 0


async def _build(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"ccid": args.ccid, "package": args.package}
    if args.type is not None:
        body["type"] = args.type
    result = await client.build(body, progress=_print_progress)
    if args.json:
        _print_json(result)
    else:
        done = "built" if result["built"] else "already present"
        print(f"image {result['image']}: {done} ({result['duration']:.2f} s)")
    return 0


async def _stop(client: Client, args: argparse.Namespace) -> int:
    chaincode = await client.stop(args.ccid, timeout=args.timeout, dontremove=args.dontremove)
    if args.json:
        _print_json(chaincode)
    else:
        kept = " (container kept)" if args.dontremove else ""
        print(f"stopped {chaincode['ccid']}: {chaincode['container']} {chaincode['state']}{kept}")
    return 0


async def _ps(client: Client, args: argparse.Namespace) -> int:
    chaincodes = await client.list(state=args.state)
    if args.json:
        _print_json(chaincodes)
        return 0
    rows = [["CCID", "CONTAINER", "STATE", "EXIT", "STARTED"]]
    rows.extend(
        [
            str(cc["ccid"]),
            str(cc["container"]),
            str(cc["state"]),
            "-" if cc.get("exit_code") is None else str(cc["exit_code"]),
            _when(cc.get("started_at")),
        ]
        for cc in chaincodes
    )
    # The last column is not padded, so that no line ends in blanks.
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("   ".join([*padded, row[-1]]))
    return 0


async def _logs(client: Client, args: argparse.Namespace) -> int:
    async for line in client.logs(
        args.ccid, follow=args.follow, tail=args.tail, timestamps=args.timestamps
    ):
        sys.stdout.write(line + "\n")
        # A followed stream is read by a person or a pipe waiting for each line.
        if args.follow:
            sys.stdout.flush()
    return 0


async def _wait(client: Client, args: argparse.Namespace) -> int:
    exit_code = await client.wait(args.ccid)
    if args.json:
        _print_json({"ccid": args.ccid, "exit_code": exit_code})
    else:
        print(exit_code)
    return 0


async def _gc(client: Client, args: argparse.Namespace) -> int:
    result = await client.gc(dry_run=args.dry_run)
    if args.json:
        _print_json(result)
        return 0
    verb = "would remove" if result["dry_run"] else "removed"
    found = [("container", name) for name in result["containers"]]
    found += [("image", name) for name in result["images"]]
    for kind, name in found:
        print(f"{verb} {kind} {name}")
    if not found:
        print("nothing to remove")
    return 0


async def _health(client: Client, args: argparse.Namespace) -> int:
    health = await client.health()
    if args.json:
        _print_json(health)
        return 0
    engine, chaincodes, queue = health["engine"], health["chaincodes"], health["queue"]
    print(f"status      {health['status']} (ccdaemon {health['version']})")
    print(f"engine      {engine['kind']} {engine['version']}, API {engine['api_version']}")
    print(f"endpoint    {engine['endpoint']}")
    print(f"chaincodes  {chaincodes['running']} running, {chaincodes['total']} managed")
    print(
        f"queue       {queue['waiting']} waiting, {queue['engine_busy']} at the engine, "
        f"{queue['builds']} building"
    )
    return 0


def _with_client(
    command: Callable[[Client, argparse.Namespace], Awaitable[int]],
) -> Callable[[argparse.Namespace], int]:
    """Run a client command in its own event loop with a client for ``--socket``."""

    async def run(args: argparse.Namespace) -> int:
        tls = None
        if args.api_cert is not None:
            tls = (args.api_cacert, args.api_cert, args.api_key)
        async with Client(args.socket, tls=tls) as client:
            return await command(client, args)

    return lambda args: asyncio.run(run(args))


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": _serve_command,
    "engine-check": _engine_check_command,
    "install-builder": _install_builder_command,
    "launch": _with_client(_launch),
    "build": _with_client(_build),
    "stop": _with_client(_stop),
    "ps": _with_client(_ps),
    "logs": _with_client(_logs),
    "wait": _with_client(_wait),
    "gc": _with_client(_gc),
    "health": _with_client(_health),
}


def _print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _print_progress(line: str) -> None:
    sys.stderr.write(line.rstrip("\n") + "\n")
    sys.stderr.flush()


def _timings(timings: dict[str, float]) -> str:
    if "total" not in timings:
        return "-"
    phases = ", ".join(
        f"{name} {seconds:.2f}" for name, seconds in timings.items() if name != "total"
    )
    return f"{timings['total']:.2f} s" + (f" ({phases})" if phases else "")


def _when(timestamp: object) -> str:
    """An ISO time to the second in UTC, for a table; ``-`` when absent."""
    if not isinstance(timestamp, str):
        return "-"
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.tzinfo else "")


# Argument types: files are read while parsing, so an unreadable one is a usage error.


def _package_file(value: str) -> str:
    """A code package file, read and base64-encoded for the request body."""
    return base64.b64encode(_read(value)).decode("ascii")


def _pem_file(value: str) -> str:
    return _read(value).decode("ascii", errors="replace")


def _read(value: str) -> bytes:
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {value}: {exc.strerror}") from exc


def _tail(value: str) -> int | str:
    if value == "all":
        return value
    try:
        lines = int(value)
    except ValueError:
        lines = -1
    if lines < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a line count nor 'all'")
    return lines


def parser() -> argparse.ArgumentParser:
    """The argument parser, with every command's help."""
    top = argparse.ArgumentParser(
        prog="ccdaemon",
        description=_paragraphs(
            "Launch Hyperledger Fabric chaincode containers for a peer, holding the "
            "container engine's socket so the peer does not."
        ),
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"ccdaemon {__version__}")
    _connection_options(top, top_level=True)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_line: str, description: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_line,
            description=_paragraphs(description),
            epilog=EXIT_STATUS_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name not in {"serve", "engine-check", "install-builder"}:
            _connection_options(sub, top_level=False)
        return sub

    serve = command(
        "serve",
        "run the daemon",
        "Run the daemon in the foreground: listen on the control socket, supervise the "
        "chaincode containers, stop on SIGTERM. Meant for a systemd service.\n\n"
        "example:\n  ccdaemon serve --config /etc/ccdaemon/ccdaemon.toml",
    )
    serve.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="configuration file (default: $CCDAEMON_CONFIG, else "
        f"{DEFAULT_CONFIG} if it exists, else built-in defaults)",
    )
    serve.add_argument(
        "--check-config",
        action="store_true",
        help="load the configuration, print the effective settings and exit (0 valid, 1 invalid)",
    )

    _add_work_commands(command)
    _add_view_commands(command)

    check = command(
        "engine-check",
        "check that a container engine answers and speaks an API version ccdaemon speaks",
        "Ping the engine directly (not through the daemon), negotiate the API version and "
        "summarise its state. Exit status 0 when the engine answers, 1 when it does not or "
        "refuses the version.\n\n"
        "example:\n  ccdaemon engine-check unix:///run/docker.sock",
    )
    check.add_argument(
        "endpoint",
        nargs="?",
        default=os.environ.get("CCDAEMON_ENGINE", DEFAULT_ENDPOINT),
        help="unix:///path, tcp://host:port or https://host:port "
        f"(default: $CCDAEMON_ENGINE, else {DEFAULT_ENDPOINT})",
    )
    check.add_argument("--api-version", help="pin this API version instead of negotiating")
    check.add_argument("--json", action="store_true", help="print the report as JSON")

    builder = command(
        "install-builder",
        "install the Fabric external builder for a peer",
        "Write DIRECTORY/bin/{detect,build,release,run}, the Fabric external builder that "
        "builds and runs chaincode through this daemon, each run by this command's own "
        "Python interpreter (the peer prunes PATH). Name DIRECTORY as the builder's path "
        "in the peer's core.yaml chaincode.externalBuilders, with propagateEnvironment: "
        "[CCDAEMON_SOCKET]. Prints the paths written.\n\n"
        "example:\n  ccdaemon install-builder /opt/ccdaemon/fabric-builder",
    )
    builder.add_argument("directory", type=Path, help="the builder's directory")
    return top


def _add_work_commands(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    """The commands that change what runs: launch, build, stop."""
    launch = command(
        "launch",
        "launch a chaincode container",
        "Launch one chaincode as Fabric's peer would (POST /v1/chaincodes): stop any "
        "previous container, create it, build the image first when it is missing and a "
        "package is given, upload the TLS files, start it. Build output goes to stderr as "
        "it comes, then a summary (or --json, the daemon's answer) to stdout.\n\n"
        "example:\n  ccdaemon launch mycc:abc123 --type golang --peer-address peer0:7052 \\\n"
        "      --mspid Org1MSP --package mycc.tar.gz",
    )
    launch.add_argument("ccid", help="the chaincode's package id (2.x) or name:version (1.4)")
    launch.add_argument("--type", required=True, help="golang, car, java or node")
    launch.add_argument(
        "--peer-address", required=True, metavar="HOST:PORT", help="the peer's chaincode address"
    )
    launch.add_argument(
        "--mspid",
        help="the peer's MSP id (default: the daemon's runtime.mspid, core.yaml peer.localMspId)",
    )
    launch.add_argument(
        "--package",
        type=_package_file,
        metavar="FILE",
        help="code package to build from if the image is missing (2.x or 1.4 format)",
    )
    for option, what in (
        ("--tls-cert", "the chaincode's TLS client certificate"),
        ("--tls-key", "its private key"),
        ("--tls-root", "the root certificate(s) it trusts for the peer"),
    ):
        launch.add_argument(
            option, type=_pem_file, metavar="FILE", help=f"{what}, PEM (all three or none)"
        )
    launch.add_argument(
        "--no-tls",
        action="store_true",
        help="launch without TLS (default: TLS on, with the given files or credentials "
        "issued by the daemon's chaincode CA)",
    )
    launch.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")

    build = command(
        "build",
        "build a chaincode image from its package",
        "Build the image of a chaincode from its code package (POST /v1/images), as "
        "Fabric 2.x does at install; nothing is built when the image is already there. "
        "Build output goes to stderr as it comes.\n\n"
        "example:\n  ccdaemon build mycc:abc123 --package mycc.tar.gz",
    )
    build.add_argument("ccid", help="the chaincode's package id")
    build.add_argument("--package", type=_package_file, required=True, metavar="FILE")
    build.add_argument("--type", help="golang, car, java or node (default: from metadata.json)")
    build.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")

    stop = command(
        "stop",
        "stop and remove a chaincode container",
        "Stop a chaincode as Fabric's stopInternal does (DELETE /v1/chaincodes/{ccid}): "
        "stop with a grace period, kill, then remove the container.\n\n"
        "example:\n  ccdaemon stop mycc:abc123 --timeout 5",
    )
    stop.add_argument("ccid")
    stop.add_argument(
        "--timeout", type=int, default=10, metavar="S", help="grace period (default: 10)"
    )
    stop.add_argument("--dontremove", action="store_true", help="keep the stopped container")
    stop.add_argument("--json", action="store_true", help="print the chaincode as JSON")


def _add_view_commands(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    """The commands that show what runs or tidy up: ps, logs, wait, gc, health."""
    ps = command(
        "ps",
        "list the managed chaincodes",
        "List every chaincode the daemon manages, sorted by ccid (GET /v1/chaincodes): "
        "ccid, container, state, exit code and start time.\n\n"
        "example:\n  ccdaemon ps --state running",
    )
    ps.add_argument(
        "--state",
        choices=["launching", "running", "exited", "stopping", "stopped", "failed"],
        help="only chaincodes in this state",
    )
    ps.add_argument("--json", action="store_true", help="print the list as JSON")

    logs = command(
        "logs",
        "print a chaincode container's output",
        "Print the container's stdout and stderr, line by line "
        "(GET /v1/chaincodes/{ccid}/logs).\n\n"
        "example:\n  ccdaemon logs -f --tail 100 mycc:abc123",
    )
    logs.add_argument("ccid")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing until the container ends"
    )
    logs.add_argument(
        "--tail", type=_tail, default="all", metavar="N|all", help="start with the last N lines"
    )
    logs.add_argument(
        "-t", "--timestamps", action="store_true", help="prefix each line with its time"
    )

    wait = command(
        "wait",
        "wait for a chaincode container to exit",
        "Block until the container exits, however long that takes, then print its exit "
        "code (POST /v1/chaincodes/{ccid}/wait). Like docker wait, the status is 0 "
        "whatever the container's exit code.\n\n"
        "example:\n  ccdaemon wait mycc:abc123",
    )
    wait.add_argument("ccid")
    wait.add_argument("--json", action="store_true", help="print {ccid, exit_code} as JSON")

    gc = command(
        "gc",
        "remove leftover chaincode containers and images",
        "Remove exited containers and images carrying ccdaemon's labels whose chaincode "
        "the daemon does not run (POST /v1/gc), and list them. Nothing without the labels "
        "is touched.\n\n"
        "example:\n  ccdaemon gc --dry-run",
    )
    gc.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    gc.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")

    health = command(
        "health",
        "check that the daemon and its engine answer",
        "Show the engine's kind, version and API version, and the chaincode and queue "
        "counts (GET /v1/health). Exit status 0 when healthy, 1 when the engine is "
        "unavailable, 3 when the daemon itself cannot be reached.\n\n"
        "example:\n  ccdaemon health",
    )
    health.add_argument("--json", action="store_true", help="print the report as JSON")


def _paragraphs(text: str) -> str:
    """Wrap the prose of a description; keep the lines of its example as written."""
    return "\n\n".join(
        part if part.startswith("example:") else textwrap.fill(part, 79)
        for part in text.split("\n\n")
    )


def _connection_options(command: argparse.ArgumentParser, *, top_level: bool) -> None:
    """Add ``--socket`` and the https client files, before or after the command name.

    Only the top level holds the defaults: a command's SUPPRESS leaves the value given
    before the command name in place when the option is not repeated after it.
    """
    group = command.add_argument_group("daemon")
    group.add_argument(
        "--socket",
        default=default_socket() if top_level else argparse.SUPPRESS,
        metavar="PATH|URL",
        help="the daemon's Unix socket, or https://host:port "
        "(default: $CCDAEMON_SOCKET, else /run/ccdaemon/ccdaemon.sock)",
    )
    for option, what in (
        ("--api-cacert", "CA that signed the daemon's certificate"),
        ("--api-cert", "client certificate"),
        ("--api-key", "client key"),
    ):
        group.add_argument(
            option,
            metavar="FILE",
            default=None if top_level else argparse.SUPPRESS,
            help=f"for https: {what}",
        )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (argparse exits by itself with 2)."""
    top = parser()
    args = top.parse_args(argv)
    if args.command == "launch":
        _check_launch_tls(top, args)
    client_files = (args.api_cacert, args.api_cert, args.api_key)
    if any(client_files) and not all(client_files):
        top.error("--api-cacert, --api-cert and --api-key go together")
    try:
        return _COMMANDS[args.command](args)
    except APIError as exc:
        print(f"ccdaemon: {exc}", file=sys.stderr)
        for line in exc.log_tail:
            print(f"  {line}", file=sys.stderr)
        return EXIT_FAILED
    except DaemonUnreachable as exc:
        print(f"ccdaemon: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ClientError as exc:
        print(f"ccdaemon: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except CcdaemonError as exc:
        print(f"ccdaemon: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _check_launch_tls(top: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    files = (args.tls_cert, args.tls_key, args.tls_root)
    given = [item is not None for item in files]
    if args.no_tls and any(given):
        top.error("launch: --no-tls excludes --tls-cert, --tls-key and --tls-root")
    if any(given) and not all(given):
        top.error("launch: --tls-cert, --tls-key and --tls-root go together")


if __name__ == "__main__":
    sys.exit(main())
