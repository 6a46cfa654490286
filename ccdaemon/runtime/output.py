"""Chaincode output in the daemon's log (Fabric's ``vm.docker.attachStdout``), with a kept tail.

Each chaincode's lines go to the logger ``peer.chaincode.<container>``, as Fabric logs
them, and its last lines stay in memory for ``ccdaemon logs`` after the container is
gone. A chaincode found running at daemon start is followed again from its logs: the
lines it wrote before this process started were the earlier run's to log, so they only
refill the kept tail, and the log goes on from there instead of repeating them.
"""

from __future__ import annotations

import collections
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ccdaemon.engine import streams

if TYPE_CHECKING:
    from collections.abc import Callable


class Output:
    """The output relays of one daemon's chaincodes and the lines each keeps."""

    def __init__(self, lines: int) -> None:
        self._lines = lines
        self._kept: dict[str, collections.deque[str]] = {}
        #: Output stamped before this moment was logged by an earlier run of the daemon.
        self.began = datetime.now(UTC)

    def kept(self, container: str) -> list[str]:
        """The last lines the container wrote, oldest first."""
        return list(self._kept.get(container, ()))

    def relay(self, container: str) -> Callable[[streams.Line], None]:
        """Where a container's lines go as they come: its logger, and its kept tail."""
        logger = logging.getLogger(f"peer.chaincode.{container}")
        tail = self._kept[container] = collections.deque(maxlen=self._lines)

        def relay(line: streams.Line) -> None:
            tail.append(line.text)
            logger.info("%s", line.text)

        return relay

    def resume(self, container: str) -> Callable[[streams.Line], None]:
        """Where the lines of a re-adopted container's logs go, read with ``timestamps=1``.

        Each line starts with the engine's RFC 3339 time and a space. Lines from before
        this process began refill the kept tail only; later ones are relayed.
        """
        relay = self.relay(container)
        tail = self._kept[container]
        began = self.began

        def resume(line: streams.Line) -> None:
            stamp, _, text = line.text.partition(" ")
            unstamped = streams.Line(line.stream, text)
            try:
                written = datetime.fromisoformat(stamp)
            except ValueError:  # no stamp: a line of the engine's own, relay it whole
                relay(line)
                return
            if written < began:
                tail.append(text)
            else:
                relay(unstamped)

        return resume
