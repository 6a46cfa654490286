"""``engine-check``: reach a container engine directly, not through the daemon.

It reports what an operator needs to know before pointing a peer at the engine: its
kind and version, the API version negotiated and both sides' ranges, and its state.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ccdaemon.cli.output import print_json
from ccdaemon.engine import CLIENT_MAX_API, CLIENT_MIN_API, Engine, system

if TYPE_CHECKING:
    import argparse


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


def engine_check_command(args: argparse.Namespace) -> int:
    """``ccdaemon engine-check``: print the report; exit status 0 when the engine answers."""
    report = asyncio.run(engine_check(args.endpoint, args.api_version))
    if args.json:
        print_json(report)
    else:
        _print_check(report)
    return 0
