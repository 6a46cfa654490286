"""Give the C heap's free pages back to the system once a burst of work is over.

A burst (200 launches at once) leaves glibc's heap with free chunks between live ones;
the allocator keeps those pages, so a long-running daemon would carry its worst burst's
size for ever. ``malloc_trim`` releases them. It walks the heap (well under a
millisecond for a daemon's heap here), so it runs only when the daemon has gone idle
after a fair amount of work, never on each request. Elsewhere than glibc it does
nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

#: Pieces of work (launches, stops, builds) between two trims at the most.
TRIM_EVERY = 32


def _malloc_trim() -> Callable[[], object] | None:
    """Glibc's ``malloc_trim(0)``, or None where the C library has none."""
    # Imported at the first trim: a daemon that has not trimmed need not carry ctypes.
    import ctypes  # noqa: PLC0415

    try:
        # The process's own symbols, the C library's among them: no search for its file.
        function = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return lambda: function(0)


class Trimmer:
    """Counts finished work; ``idle()`` trims once ``every`` pieces have finished.

    ``trim`` replaces glibc's ``malloc_trim(0)`` (for tests).
    """

    def __init__(self, every: int = TRIM_EVERY, trim: Callable[[], object] | None = None) -> None:
        self._every = every
        self._done = 0
        self._trim = trim

    def finished(self) -> None:
        """One piece of work is over."""
        self._done += 1

    def idle(self) -> None:
        """No work is in flight: trim if enough work finished since the last trim."""
        if self._done < self._every:
            return
        self._done = 0
        if self._trim is None:
            self._trim = _malloc_trim() or (lambda: None)
        self._trim()
        log.debug("returned the C heap's free pages to the system")
