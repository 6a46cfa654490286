"""Rung 4: the launch queue. Per-name order, bounded engine work, one build per image.

- Work for one container name (launches, stops) runs one piece at a time, in arrival
  order, as Fabric's per-chaincode lock serialises Start and Stop.
- Work for different names runs concurrently, but never more than ``engine_limit``
  pieces at once: the engine is the bottleneck, past its throughput more concurrency only
  adds latency, and Debian's Docker 20.10 deadlocks under heavy concurrent removal
  (ENGINES.md). A piece waiting for an image build gives its slot back meanwhile.
- Concurrent requests for one missing image share one build; builds have their own
  bound, ``build_limit``. A build runs in the queue's task group, so it finishes for
  the others even when the request that started it is cancelled.

The bookkeeping (who waits, who builds) is plain synchronous dict work; every await is
on an anyio primitive, so there is no await between a check and the change it guards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskGroup

T = TypeVar("T")


@dataclass(slots=True)
class _Line:
    """The FIFO of work for one container name; dropped when nobody holds or awaits it."""

    lock: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0


@dataclass(slots=True)
class _Build:
    """One image build in flight, shared by everyone who needs that image."""

    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What the queue holds now, for metrics."""

    names: int
    waiting: int
    engine_busy: int
    builds: int


class LaunchQueue:
    """Orders and bounds the work sent to one engine.

    Args:
        task_group: owns the shared builds; the daemon's group, which outlives requests.
        engine_limit: pieces of work in flight on the engine at once.
        build_limit: image builds at once.
    """

    def __init__(
        self, task_group: TaskGroup, *, engine_limit: int = 8, build_limit: int = 2
    ) -> None:
        if engine_limit < 1 or build_limit < 1:
            raise ValueError("engine_limit and build_limit must be at least 1")
        self._group = task_group
        self._engine = anyio.CapacityLimiter(engine_limit)
        self._build_slots = anyio.CapacityLimiter(build_limit)
        self._lines: dict[str, _Line] = {}
        self._builds: dict[str, _Build] = {}

    async def run(self, name: str, work: Callable[[Slot], Awaitable[T]]) -> T:
        """Run ``work`` for container ``name`` after all earlier work for that name.

        ``work`` receives a ``Slot``; it passes its builds through ``slot.build`` so that
        the engine slot is lent out while it waits for the image.
        """
        line = self._lines.setdefault(name, _Line())
        line.users += 1
        try:
            async with line.lock:
                slot = Slot(self)
                await self._engine.acquire_on_behalf_of(slot)
                try:
                    return await work(slot)
                finally:
                    self._engine.release_on_behalf_of(slot)
        finally:
            line.users -= 1
            if not line.users:
                del self._lines[name]

    async def build_once(self, image: str, build: Callable[[], Awaitable[object]]) -> None:
        """Make ``image`` with ``build``, unless a build of it is already in flight: wait for that.

        Raises:
            Exception: whatever the shared build raised (BuildFailed, most likely).
        """
        shared = self._builds.get(image)
        if shared is None:
            shared = self._builds[image] = _Build()
            self._group.start_soon(self._build, image, shared, build)
        await shared.done.wait()
        if shared.error is not None:
            raise shared.error

    async def _build(
        self, image: str, shared: _Build, build: Callable[[], Awaitable[object]]
    ) -> None:
        try:
            async with self._build_slots:
                await build()
        except Exception as exc:  # noqa: BLE001 -- handed to every waiter, not lost
            shared.error = exc
        finally:
            del self._builds[image]
            shared.done.set()

    def stats(self) -> QueueStats:
        """Names with work, pieces waiting, engine slots in use, builds in flight."""
        return QueueStats(
            names=len(self._lines),
            waiting=sum(line.users for line in self._lines.values()) - self._engine.borrowed_tokens,
            engine_busy=int(self._engine.borrowed_tokens),
            builds=len(self._builds),
        )


class Slot:
    """One piece of work's place on the engine; lent out while it waits for a build."""

    __slots__ = ("_queue",)

    def __init__(self, queue: LaunchQueue) -> None:
        self._queue = queue

    async def build(self, image: str, build: Callable[[], Awaitable[object]]) -> None:
        """Wait for ``image`` (one shared build), giving the engine slot back meanwhile."""
        engine = self._queue._engine  # noqa: SLF001 -- the slot is the queue's own helper
        engine.release_on_behalf_of(self)
        try:
            await self._queue.build_once(image, build)
        finally:
            with anyio.CancelScope(shield=True):
                await engine.acquire_on_behalf_of(self)
