"""Deadlines for control calls: one timer for all calls in flight, not one per call.

A per-call ``asyncio.timeout`` costs a heap push and pop on every request, and the loop's
heap fills with cancelled handles; for the engine client that was a fifth of a launch's
CPU (scripts/bench/client.py). Here a single tick expires whatever is overdue.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from ccdaemon.engine.errors import EngineUnavailable


class Deadlines:
    """Cancels control calls that outlive their deadline, with one timer for all of them.

    A call registers its task with ``watch`` and, whatever happens, ``forget``s it. A
    single tick, every ``_TICK`` seconds while calls are in flight, cancels the tasks
    whose deadline passed; the call's ``Limit`` asks ``timed_out`` whether
    that cancellation was this deadline's (then it raises its timeout error) or someone
    else's (then it lets the cancellation through), as ``asyncio.timeout`` decides.
    Deadlines fire up to ``_TICK`` late, which is nothing beside a control timeout.
    """

    _TICK = 0.25

    def __init__(self) -> None:
        self._pending: dict[asyncio.Task[Any], tuple[float, int]] = {}
        self._expired: dict[asyncio.Task[Any], int] = {}
        self._tick: asyncio.TimerHandle | None = None

    def watch(self, seconds: float) -> asyncio.Task[Any] | None:
        """Give the current task ``seconds`` to finish, and return it.

        None when the task is already being watched (a call made inside another call's
        block): the outer deadline covers it.
        """
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("engine calls must run in an asyncio task")
        if task in self._pending:
            return None
        loop = task.get_loop()
        self._pending[task] = (loop.time() + seconds, task.cancelling())
        if self._tick is None:
            self._tick = loop.call_later(self._TICK, self._expire, loop)
        return task

    def forget(self, task: asyncio.Task[Any]) -> None:
        """The call is over: its deadline no longer applies."""
        self._pending.pop(task, None)

    def timed_out(self, task: asyncio.Task[Any]) -> bool:
        """Whether the cancellation being handled is this deadline's own, and only that."""
        cancelling = self._expired.pop(task, None)
        return cancelling is not None and task.uncancel() <= cancelling

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, (deadline, cancelling) in list(self._pending.items()):
            if deadline <= now:
                del self._pending[task]
                self._expired[task] = cancelling
                task.cancel()
        self._tick = loop.call_later(self._TICK, self._expire, loop) if self._pending else None


class Limit:
    """One call's deadline, as a context manager.

    On exit it forgets the deadline, and turns a cancellation that was the deadline's own
    into the call's timeout error. A class, not a generator: it runs on every request.
    """

    __slots__ = ("_deadlines", "_error", "_task")

    def __init__(
        self, deadlines: Deadlines, seconds: float, error: Callable[[], EngineUnavailable]
    ) -> None:
        self._deadlines = deadlines
        self._error = error
        self._task = deadlines.watch(seconds)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        task = self._task
        if task is None:
            return
        self._deadlines.forget(task)
        if kind is asyncio.CancelledError and self._deadlines.timed_out(task):
            raise self._error() from None
