"""The ``run`` step: launch the recorded image, wait for its exit, stop it on SIGTERM.

The step stays in the foreground while the chaincode runs, as the peer expects of
``run``: the peer's stop is a SIGTERM to this process, and the chaincode's exit is this
process's exit. The peer starts it for every launch and waits for it inside the first
invoke, so it loads no more than it needs: the synchronous client, and the package code
only to rebuild an image collected since install.
"""

from __future__ import annotations

import os
import signal
import time

from ccdaemon.apiclient import APIError, DaemonUnreachable, RequestFailed
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

#: ``typing.TYPE_CHECKING`` without importing typing (see ccdaemon.fabricbuilder.peer).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import FrameType
    from typing import Any

    from ccdaemon.apiclient import Client

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


class _Stop(BaseException):
    """The peer's SIGTERM (or a SIGINT) ended the launch or the wait.

    A BaseException, as KeyboardInterrupt is: nothing on the way out may take it for a
    failure of the request it interrupted.
    """


class _Signals:
    """SIGTERM and SIGINT, handled for the whole step: the first ends the work at hand.

    The first signal raises ``_Stop`` where the step is (a blocking socket read, a
    sleep); any later one is only noted, so that a second SIGTERM cannot end the process
    while it stops the chaincode. ``settle`` turns the raising off once the chaincode's
    exit is known.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self._raising = True

    def install(self) -> None:
        """Handle SIGTERM and SIGINT from now on."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def settle(self) -> None:
        """Note signals from now on without raising."""
        self._raising = False

    @property
    def name(self) -> str:
        """The first signal's name."""
        return signal.Signals(self.received[0]).name

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        if self._raising:
            self._raising = False
            raise _Stop


def run(build_dir: str, run_metadata_dir: str, *, client: Client) -> int:
    """Launch the chaincode, wait for it to exit, and answer its exit code.

    SIGTERM or SIGINT (the peer stopping it) ends the wait: the chaincode is stopped with
    ``STOP_GRACE`` seconds' grace, killed and removed, within ``STOP_DEADLINE`` seconds,
    and the answer is its exit code (128 + the signal when there is none).

    Raises:
        BuilderError: the build record or chaincode.json is broken (nothing is launched),
            or the stop did not end within ``STOP_DEADLINE``.
        ClientError: the daemon refused or failed the launch, or cannot be reached.
    """
    signals = _Signals()
    signals.install()
    ccid = ""
    try:
        record = read_record(build_dir)
        if record.type == CCAAS:
            raise BuilderError("a chaincode-as-a-service package is not run: the peer dials it")
        config = read_run_config(run_metadata_dir)
        ccid = config.chaincode_id
        answer = _launch(client, launch_body(record, config), build_dir, record)
        say(f"launched {ccid} from {record.image}{_timings(answer)}; waiting for it to exit")
        code = _wait(client, ccid)
        signals.settle()
    except _Stop:
        if not ccid:  # stopped before anything was asked of the daemon
            return 128 + signals.received[0]
        return _stop(client, ccid, signals)
    say(f"chaincode {ccid} exited with {code}")
    return code


def _stop(client: Client, ccid: str, signals: _Signals) -> int:
    """Stop the chaincode within ``STOP_DEADLINE``; its exit code (128 + the signal if none)."""
    say(f"{signals.name}: stopping chaincode {ccid}")
    signalled = 128 + signals.received[0]
    try:
        stopped = client.stop(ccid, timeout=STOP_GRACE, within=STOP_DEADLINE)
    except APIError as exc:
        if exc.status != 404:  # noqa: PLR2004 -- unknown: it never got launched
            raise
        return signalled
    except RequestFailed as exc:
        raise BuilderError(
            f"{signals.name}: chaincode {ccid} did not stop within {STOP_DEADLINE:g} s "
            f"({exc.message})"
        ) from exc
    exit_code = stopped.get("exit_code")
    say(f"stopped {ccid} (exit code {exit_code})")
    return exit_code if isinstance(exit_code, int) else signalled


def _launch(
    client: Client, body: Mapping[str, Any], build_dir: str, record: BuildRecord
) -> dict[str, Any]:
    """Launch; if the image built at install is gone (``ccdaemon gc``), build it again first."""
    try:
        return client.launch(body)
    except APIError as exc:
        package = os.path.join(build_dir, PACKAGE_FILE)
        if exc.field != "image" or not os.path.isfile(package):
            raise
        say(f"{exc.message}; building it again from the package kept at install")
    # Imported here: only a rebuild needs the package code.
    from ccdaemon.fabricbuilder.buildstep import build_image  # noqa: PLC0415

    with open(package, "rb") as file:
        build_image(client, record.build_id, file.read())
    return client.launch(body)


def _timings(answer: Mapping[str, Any]) -> str:
    """`` in 0.12 s (queue 0.00, create 0.05, ...)``: the daemon's phases of the launch."""
    timings = answer.get("timings")
    if not isinstance(timings, dict) or not isinstance(timings.get("total"), int | float):
        return ""
    phases = ", ".join(
        f"{name} {seconds:.3f}"
        for name, seconds in timings.items()
        if name != "total" and isinstance(seconds, int | float)
    )
    return f" in {timings['total']:.3f} s ({phases})"


def _wait(client: Client, ccid: str) -> int:
    """The chaincode's exit code, asking again for as long as the daemon is away.

    ``run`` never gives up on a daemon that is away (restarting, or down for longer):
    the chaincode it launched keeps serving the peer meanwhile, and this process is the
    peer's only handle on it. Were it to exit, the peer would take the chaincode for
    ended, and its next stop (an upgrade, a peer shutdown) could no longer reach it.
    """
    lost_since: float | None = None
    told = 0.0
    while True:
        asked = time.monotonic()
        try:
            return client.wait(ccid)
        except (DaemonUnreachable, RequestFailed, APIError) as exc:
            if isinstance(exc, APIError) and exc.status != 503:  # noqa: PLR2004 -- stopping
                raise
            now = time.monotonic()
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
        time.sleep(_RETRY)
