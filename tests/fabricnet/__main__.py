"""``python -m tests.fabricnet up|down|status|demo``: the network kit from a shell.

    .venv/bin/python -m tests.fabricnet up [--dir DIR] [--socket PATH] [--version 2.5.10]
    .venv/bin/python -m tests.fabricnet demo [--dir DIR]   # package, install, commit, invoke
    .venv/bin/python -m tests.fabricnet status [--dir DIR]
    .venv/bin/python -m tests.fabricnet down [--dir DIR] [--keep]

``up`` lays out a network in DIR (default /tmp/ccdaemon-fabricnet), starts its orderer
and peer in the background and prints the environment that makes the peer CLI act as
the org's admin; the peer's builder talks to the daemon at ``--socket`` (default
``$CCDAEMON_SOCKET``, else /run/ccdaemon/ccdaemon.sock: the daemon ``scripts/run``
starts). ``demo`` deploys the test chaincode through that daemon and invokes it.
``down`` stops both programs by the PIDs ``up`` recorded (a PID that no longer runs the
program is left alone) and removes DIR unless ``--keep``. Exit status: 0 done, 1 failed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TextIO

from tests.fabricnet.dist import KitError
from tests.fabricnet.network import DEFAULT_VERSION, Network

DEFAULT_DIR = Path("/tmp/ccdaemon-fabricnet")  # noqa: S108 -- a demo's, named by the user
DEFAULT_SOCKET = "/run/ccdaemon/ccdaemon.sock"


def show(line: str = "", *, file: TextIO | None = None, flush: bool = False) -> None:
    """Write one line to stdout (or ``file``)."""
    out = file or sys.stdout
    out.write(f"{line}\n")
    if flush:
        out.flush()


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tests.fabricnet", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "demo"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the network's directory")
    parser.add_argument(
        "--socket",
        type=Path,
        default=Path(os.environ.get("CCDAEMON_SOCKET", DEFAULT_SOCKET)),
        help="the daemon's socket, for the peer's builder (up only)",
    )
    parser.add_argument("--version", default=DEFAULT_VERSION, help="Fabric release (up only)")
    parser.add_argument("--keep", action="store_true", help="down: keep the directory")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return up(args.dir, args.socket, args.version)
        network = Network.load(args.dir)
        if args.command == "down":
            network.down()
            if not args.keep:
                network.remove()
            show(f"network in {args.dir} stopped")
            return 0
        if args.command == "demo":
            return demo(network)
        return status(network)
    except KitError as exc:
        show(f"fabricnet: {exc}", file=sys.stderr)
        return 1


def up(directory: Path, socket: Path, version: str) -> int:
    """Lay out and start a network in ``directory``; print how to use it."""
    if (directory / "network.json").exists():
        old = Network.load(directory)
        if old.peer.pid is not None or old.orderer.pid is not None:
            show(f"fabricnet: a network runs in {directory}; `down` it first", file=sys.stderr)
            return 1
        old.remove()
    began = time.monotonic()
    network = Network.create(socket, version=version, scratch=directory).up()
    show(f"Fabric {version} network up in {time.monotonic() - began:.1f} s, in {directory}")
    show(f"  orderer {network.orderer_address} (pid {network.orderer.pid})")
    show(f"  peer    {network.peer_address} (pid {network.peer.pid}), channel {network.channel}")
    show(f"  the peer's builder uses the daemon at {socket}")
    show(f"  logs: {network.logs}/{{orderer,peer}}.log")
    show("The peer CLI as Org1's admin:")
    for name, value in network.admin.cli_env().items():
        show(f"  export {name}={shlex.quote(value)}")
    show(f"  {network.dist.program('peer')} channel list")
    return 0


def status(network: Network) -> int:
    """Print whether each program runs; 0 if both do."""
    running = 0
    for program in (network.orderer, network.peer):
        pid = program.pid
        running += pid is not None
        show(f"{program.name}: {'running, pid ' + str(pid) if pid else 'not running'}")
    return 0 if running == 2 else 1


def demo(network: Network) -> int:
    """Package, install (the daemon builds), commit and invoke the test chaincode."""
    began = time.monotonic()

    def say(step: str) -> None:
        show(f"[{time.monotonic() - began:6.1f} s] {step}", flush=True)

    name = f"demo{int(time.time()) % 100000}"
    say(f"packaging the test chaincode as {name}_1 with `peer lifecycle chaincode package`")
    package = network.admin.package(f"{name}_1", variant=name)
    say("installing: the peer runs ccdaemon's builder, and the daemon builds the image")
    package_id = network.admin.install(package)
    say(f"installed {package_id}; approving and committing {name} (--init-required)")
    network.admin.deploy(name, package_id)
    say("invoking init (--isInit): the peer launches the chaincode through the daemon")
    network.admin.invoke(name, "init", "greeting", "hello from ccdaemon", is_init=True)
    say(f"query get greeting -> {network.admin.query(name, 'get', 'greeting')}")
    network.admin.invoke(name, "put", "answer", "42")
    say(f"query get answer   -> {network.admin.query(name, 'get', 'answer')}")
    say("see it with: ccdaemon ps; ccdaemon logs " + package_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
