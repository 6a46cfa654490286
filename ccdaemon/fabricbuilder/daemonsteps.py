"""The steps that need the daemon, ``build`` and ``run``: a client, and what a failure says.

The client is the synchronous one, on the standard library's sockets: ``run`` starts
once per chaincode launch, inside the peer's first invoke, and its start-up is
whatever it imports.
"""

from __future__ import annotations

from ccdaemon.apiclient import APIError, Client, ClientError, DaemonUnreachable
from ccdaemon.fabricbuilder.peer import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    BuilderError,
    explain,
    say,
)

#: ``typing.TYPE_CHECKING`` without importing typing (see ccdaemon.fabricbuilder.peer).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def main(step: str, args: Sequence[str]) -> int:
    """Run ``build`` or ``run`` with the peer's arguments; the exit status."""
    try:
        with Client() as client:
            if step == "build":
                # Imported here: only build reads and packs the source.
                from pathlib import Path  # noqa: PLC0415

                from ccdaemon.fabricbuilder.buildstep import build  # noqa: PLC0415

                record = build(Path(args[0]), Path(args[1]), Path(args[2]), client=client)
                say(f"built {record.build_id}: {record.image or 'chaincode-as-a-service'}")
                return 0
            from ccdaemon.fabricbuilder.runstep import run  # noqa: PLC0415

            return run(args[0], args[1], client=client)
    except DaemonUnreachable as exc:
        say(exc.message)
        return EXIT_UNREACHABLE
    # OSError: a directory the peer gave cannot be read or written.
    except (BuilderError, ClientError, OSError) as exc:
        for line in _explain(exc):
            say(line)
        return EXIT_FAILED


def _explain(exc: Exception) -> list[str]:
    """The lines that tell the peer's log why a step failed."""
    if isinstance(exc, APIError):
        field = f" (field {exc.field})" if exc.field else ""
        return [f"{exc}{field}", *(f"  {line}" for line in exc.log_tail)]
    return explain(exc)
