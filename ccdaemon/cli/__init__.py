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

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ccdaemon.apiclient import APIError, ClientError, DaemonUnreachable
from ccdaemon.cli import control
from ccdaemon.cli.enginecheck import engine_check_command
from ccdaemon.cli.parser import DEFAULT_CONFIG, parser
from ccdaemon.errors import CcdaemonError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_UNREACHABLE", "main"]

EXIT_FAILED = 1
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130


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
    # Only this command needs it.
    from ccdaemon.fabricbuilder.executables import import_paths, install  # noqa: PLC0415

    # sys.executable unresolved: a venv's interpreter finds its packages by that path.
    for path in install(args.directory, sys.executable, import_paths()):
        print(path)
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": _serve_command,
    "engine-check": engine_check_command,
    "install-builder": _install_builder_command,
    **control.COMMANDS,
}


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
