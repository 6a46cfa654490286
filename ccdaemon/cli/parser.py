"""The command line's arguments: every command's options, help text and argument types.

Files named on the command line are read while parsing, so an unreadable one is a usage
error (exit status 2) before anything is sent.
"""

from __future__ import annotations

import argparse
import base64
import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from ccdaemon import __version__
from ccdaemon.apiclient import default_socket

if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_ENDPOINT = "unix:///var/run/docker.sock"
DEFAULT_CONFIG = Path("/etc/ccdaemon/ccdaemon.toml")

EXIT_STATUS_HELP = """\
exit status:
  0    success
  1    the daemon refused the request or the operation failed
  2    usage error
  3    the daemon cannot be reached (the request never got to it)
  130  interrupted
"""


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
        "is touched. The daemon's Go build caches are listed, and removed only with "
        "--caches (no build may be using one).\n\n"
        "example:\n  ccdaemon gc --dry-run\n  ccdaemon gc --caches",
    )
    gc.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    gc.add_argument("--caches", action="store_true", help="remove the build cache volumes too")
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
