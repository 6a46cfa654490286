"""Fabric's external builder (``detect``, ``build``, ``release``, ``run``) on ccdaemon's API.

A Fabric 2.x/3.x peer configured with this builder in core.yaml's
``chaincode.externalBuilders`` runs the four executables of ``<path>/bin`` (see
``executables.install``) instead of building and running chaincode on a container
engine itself:

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

Each step is a process of its own, and ``run``'s start-up is part of the peer's first
invoke, so each loads only what it uses: ``detect`` and ``release`` (``localsteps``) no
client at all, ``build`` and ``run`` (``daemonsteps``) the synchronous client, and
``run`` the package code only to rebuild a collected image.
"""

from __future__ import annotations

from ccdaemon.fabricbuilder.peer import EXIT_USAGE, RECORD_FILE, STEPS, say

#: ``typing.TYPE_CHECKING`` without importing typing (see ccdaemon.fabricbuilder.peer).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["RECORD_FILE", "STEPS", "main"]

#: The steps that need no daemon.
LOCAL_STEPS = frozenset({"detect", "release"})


def main(argv: Sequence[str]) -> int:
    """Run the step named by ``argv[0]``'s file name with the peer's arguments; exit status."""
    step, args = argv[0].rpartition("/")[2], list(argv[1:])
    expected = STEPS.get(step)
    if expected is None or len(args) != len(expected):
        say(
            f"usage: {step} {' '.join(expected)}"
            if expected is not None
            else f"unknown step {step!r}: the executable must be named one of {', '.join(STEPS)}"
        )
        return EXIT_USAGE
    # Imported here, so that each step loads only its own.
    if step in LOCAL_STEPS:
        from ccdaemon.fabricbuilder import localsteps  # noqa: PLC0415

        return localsteps.main(step, args)
    from ccdaemon.fabricbuilder import daemonsteps  # noqa: PLC0415

    return daemonsteps.main(step, args)
