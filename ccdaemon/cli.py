"""The ``ccdaemon`` command line.

Only ``engine-check`` exists yet: it reaches a container engine through ccdaemon's own
client and reports what an operator needs to know before pointing a peer at it. The
daemon's commands (serve, launch, build, stop, ps, logs, wait, gc, health) come with it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import orjson

from ccdaemon import __version__
from ccdaemon.engine import CLIENT_MAX_API, CLIENT_MIN_API, Engine, system
from ccdaemon.errors import CcdaemonError

DEFAULT_ENDPOINT = "unix:///var/run/docker.sock"


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


def parser() -> argparse.ArgumentParser:
    """The argument parser, with every command's help."""
    top = argparse.ArgumentParser(
        prog="ccdaemon",
        description="Launch Hyperledger Fabric chaincode containers for a peer, "
        "holding the container engine's socket so the peer does not.",
    )
    top.add_argument("--version", action="version", version=f"ccdaemon {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "engine-check",
        help="check that a container engine answers and speaks an API version ccdaemon speaks",
        description="Ping the engine, negotiate the API version and summarise its state. "
        "Exit status 0 when the engine answers, 1 when it does not or refuses the version.",
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
    return top


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = parser().parse_args(argv)
    try:
        report = asyncio.run(engine_check(args.endpoint, args.api_version))
    except CcdaemonError as exc:
        print(f"ccdaemon: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_check(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
