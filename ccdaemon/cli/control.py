"""The commands that talk to a running daemon through its control API, and their output.

``launch``, ``build``, ``stop``, ``ps``, ``logs``, ``wait``, ``gc`` and ``health`` each
take an open ``ccdaemon.apiclient.Client`` and the parsed arguments, and print the
daemon's answer: a summary for a person, or with ``--json`` the answer itself.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ccdaemon.apiclient import Client
from ccdaemon.cli.output import print_json, print_progress, timing_summary, when

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable


def _launch(client: Client, args: argparse.Namespace) -> int:
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
    progress = print_progress if args.package is not None else None
    result = client.launch(body, progress=progress)
    if args.json:
        print_json(result)
        return 0
    chaincode = result["chaincode"]
    container_id = chaincode.get("container_id")
    print(f"launched   {chaincode['ccid']}")
    print(
        f"container  {chaincode['container']}" + (f" ({container_id[:12]})" if container_id else "")
    )
    print(f"image      {chaincode['image']}" + (" (built)" if result.get("built") else ""))
    print(f"state      {chaincode['state']}")
    print(f"timings    {timing_summary(result.get('timings', {}))}")
    return 0


def _build(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"ccid": args.ccid, "package": args.package}
    if args.type is not None:
        body["type"] = args.type
    result = client.build(body, progress=print_progress)
    if args.json:
        print_json(result)
    else:
        done = "built" if result["built"] else "already present"
        print(f"image {result['image']}: {done} ({result['duration']:.2f} s)")
    return 0


def _stop(client: Client, args: argparse.Namespace) -> int:
    chaincode = client.stop(args.ccid, timeout=args.timeout, dontremove=args.dontremove)
    if args.json:
        print_json(chaincode)
    else:
        kept = " (container kept)" if args.dontremove else ""
        print(f"stopped {chaincode['ccid']}: {chaincode['container']} {chaincode['state']}{kept}")
    return 0


def _ps(client: Client, args: argparse.Namespace) -> int:
    chaincodes = client.list(state=args.state)
    if args.json:
        print_json(chaincodes)
        return 0
    rows = [["CCID", "CONTAINER", "STATE", "EXIT", "STARTED"]]
    rows.extend(
        [
            str(cc["ccid"]),
            str(cc["container"]),
            str(cc["state"]),
            "-" if cc.get("exit_code") is None else str(cc["exit_code"]),
            when(cc.get("started_at")),
        ]
        for cc in chaincodes
    )
    # The last column is not padded, so that no line ends in blanks.
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("   ".join([*padded, row[-1]]))
    return 0


def _logs(client: Client, args: argparse.Namespace) -> int:
    for line in client.logs(
        args.ccid, follow=args.follow, tail=args.tail, timestamps=args.timestamps
    ):
        sys.stdout.write(line + "\n")
        # A followed stream is read by a person or a pipe waiting for each line.
        if args.follow:
            sys.stdout.flush()
    return 0


def _wait(client: Client, args: argparse.Namespace) -> int:
    exit_code = client.wait(args.ccid)
    if args.json:
        print_json({"ccid": args.ccid, "exit_code": exit_code})
    else:
        print(exit_code)
    return 0


def _gc(client: Client, args: argparse.Namespace) -> int:
    result = client.gc(dry_run=args.dry_run, caches=args.caches)
    if args.json:
        print_json(result)
        return 0
    verb = "would remove" if result["dry_run"] else "removed"
    found = [("container", name) for name in result["containers"]]
    found += [("image", name) for name in result["images"]]
    found += [("build cache", name) for name in result["caches"]]
    for kind, name in found:
        print(f"{verb} {kind} {name}")
    if not found:
        print("nothing to remove")
    why = "in use by a build" if args.caches else "remove with --caches"
    for name in result["caches_kept"]:
        print(f"kept build cache {name} ({why})")
    return 0


def _health(client: Client, args: argparse.Namespace) -> int:
    health = client.health()
    if args.json:
        print_json(health)
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
    command: Callable[[Client, argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """Run a client command with a client for ``--socket``."""

    def run(args: argparse.Namespace) -> int:
        tls = None
        if args.api_cert is not None:
            tls = (args.api_cacert, args.api_cert, args.api_key)
        with Client(args.socket, tls=tls) as client:
            return command(client, args)

    return run


#: Each client command, with a client for ``--socket``.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "launch": _with_client(_launch),
    "build": _with_client(_build),
    "stop": _with_client(_stop),
    "ps": _with_client(_ps),
    "logs": _with_client(_logs),
    "wait": _with_client(_wait),
    "gc": _with_client(_gc),
    "health": _with_client(_health),
}
