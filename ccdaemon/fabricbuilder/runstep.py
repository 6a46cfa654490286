"""The ``run`` step: launch the recorded image, wait for its exit, stop it on SIGTERM.

The step stays in the foreground while the chaincode runs, as the peer expects of
``run``: the peer's stop is a SIGTERM to this process, and the chaincode's exit is this
process's exit.
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Any

import anyio

from ccdaemon.apiclient import APIError, Client, DaemonUnreachable, RequestFailed
from ccdaemon.fabricbuilder.buildstep import build_image
from ccdaemon.fabricbuilder.peer import (
    CCAAS,
    PACKAGE_FILE,
    BuilderError,
    BuildRecord,
    RunConfig,
    read_record,
    read_run_config,
    say,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

#: Seconds a stopped chaincode gets before it is killed, and the most the whole stop may
#: take: the peer sends SIGKILL 5 s after SIGTERM, and the stop must be over by then.
STOP_GRACE = 2
STOP_DEADLINE = 4.0
#: Seconds between the lines ``run`` writes to the peer's log while the daemon is away.
AWAY_REPORT = 60.0
_RETRY = 1.0


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
        say(f"launched {ccid} from {record.image}; waiting for it to exit")
        code = await _wait(client, ccid)
        say(f"chaincode {ccid} exited with {code}")
        return code
    name = signal.Signals(received[0]).name
    say(f"{name}: stopping chaincode {ccid}")
    with anyio.move_on_after(STOP_DEADLINE, shield=True):
        try:
            stopped = await client.stop(ccid, timeout=STOP_GRACE)
        except APIError as exc:
            if exc.status != 404:  # noqa: PLR2004 -- unknown: it never got launched
                raise
            return 128 + received[0]
        exit_code = stopped.get("exit_code")
        say(f"stopped {ccid} (exit code {exit_code})")
        return exit_code if isinstance(exit_code, int) else 128 + received[0]
    raise BuilderError(f"{name}: chaincode {ccid} did not stop within {STOP_DEADLINE:g} s")


async def _launch(
    client: Client, body: Mapping[str, Any], build_dir: Path, record: BuildRecord
) -> None:
    """Launch; if the image built at install is gone (``ccdaemon gc``), build it again first."""
    try:
        await client.launch(body)
    except APIError as exc:
        if exc.field != "image" or not (build_dir / PACKAGE_FILE).is_file():
            raise
        say(f"{exc.message}; building it again from the package kept at install")
        await build_image(client, record.build_id, (build_dir / PACKAGE_FILE).read_bytes())
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
                say(f"lost the daemon while waiting ({exc.message}); asking again")
            elif now - told >= AWAY_REPORT:
                told = now
                say(
                    f"the daemon has been away for {now - lost_since:.0f} s; still waiting "
                    f"for chaincode {ccid} ({exc.message})"
                )
        await anyio.sleep(_RETRY)
