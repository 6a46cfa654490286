"""The load cycle: many API clients sending launches and stops for many ids at once.

Shared by the load test (tests/faults/test_load.py) and the soak benchmark
(scripts/bench/soak.py), so both drive the daemon the same way.

A plan is a seeded random interleaving of ``requests`` requests over ``ids`` chaincode
ids: each id gets a sequence of launches and stops, and the global order mixes the ids.
``clients`` API clients, each with its own aiohttp session and connection on the
daemon's socket, take the next request of the plan as they become free. Requests for
different ids overlap freely; the requests of one id are sent in their sequence order,
each after the answer to the one before (as a Fabric peer holds its per-chaincode lock
around Start and Stop), so "the last request for an id" is well defined and the final
state it implies can be checked.

Requests are numbered in the order they were sent; the per-id order is then checked
against the engine's own events stream (``EventLog``): for each container name the
engine's create and destroy events must alternate, each create carrying the container
id the matching launch answered, in submission order.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
import orjson

from ccdaemon.engine import NoSuchContainer, containers, system
from ccdaemon.runtime.hostconfig import CCID_LABEL, INSTANCE_LABEL, MANAGED_LABEL
from tests.daemon.conftest import chaincode_path, launch_body

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from ccdaemon.engine import Engine

Op = Literal["launch", "stop"]
#: Answers the contract documents for these requests under load: a launch's 201, a
#: stop's 200, and a stop's 404 unknown_chaincode for an id never launched.
DOCUMENTED = frozenset({("launch", 201), ("stop", 200), ("stop", 404)})
#: The stand-in chaincode is stopped at once: its image's STOPSIGNAL is SIGKILL.
STOP_QUERY = "?timeout=0"
#: Base image of the sentinel container that marks the end of an events recording.
SENTINEL_IMAGE = "localhost/ccdaemon/busybox:latest"


@dataclass(frozen=True, slots=True)
class Request:
    """One planned request: its place in the plan, its id, its place in that id's sequence."""

    index: int
    ccid: str
    seq: int
    op: Op


@dataclass(slots=True)
class Answer:
    """What one request got, and when it was sent (``sent``: order of submission)."""

    request: Request
    sent: int
    status: int
    body: Any
    seconds: float

    @property
    def container_id(self) -> str | None:
        """The container id a launch answered."""
        if self.request.op != "launch" or not isinstance(self.body, dict):
            return None
        chaincode = self.body.get("chaincode") or {}
        return chaincode.get("container_id")

    @property
    def documented(self) -> bool:
        """Whether the status is one the contract gives this request here."""
        if (self.request.op, self.status) not in DOCUMENTED:
            return False
        if self.status == 404:  # only for an id the daemon never knew
            return bool(
                isinstance(self.body, dict)
                and self.body.get("error", {}).get("code") == "unknown_chaincode"
            )
        return True


def make_ids(count: int, tag: str) -> list[str]:
    """``count`` Fabric 2.x style package ids, unique to ``tag``."""
    return [f"load{i}_{tag}:{i:064x}" for i in range(count)]


def plan(ccids: list[str], requests: int, seed: int, *, launch_share: float = 0.6) -> list[Request]:
    """A seeded random interleaving: ``requests`` launches and stops spread over ``ccids``.

    Every id gets ``requests // len(ccids)`` requests (the rest go to the first ids); each
    request is a launch with probability ``launch_share``, else a stop.
    """
    rng = random.Random(seed)  # noqa: S311 -- a replayable interleaving, not a secret
    per_id = {ccid: requests // len(ccids) for ccid in ccids}
    for ccid in ccids[: requests % len(ccids)]:
        per_id[ccid] += 1
    order = [ccid for ccid, count in per_id.items() for _ in range(count)]
    rng.shuffle(order)
    seen: dict[str, int] = {}
    result: list[Request] = []
    for index, ccid in enumerate(order):
        seq = seen.get(ccid, 0)
        seen[ccid] = seq + 1
        op: Op = "launch" if rng.random() < launch_share else "stop"
        result.append(Request(index, ccid, seq, op))
    return result


def final_states(requests: Iterable[Request]) -> dict[str, bool]:
    """Per id: whether its last request was a launch (a running container is implied)."""
    last: dict[str, Request] = {}
    for request in requests:
        if request.ccid not in last or request.seq > last[request.ccid].seq:
            last[request.ccid] = request
    return {ccid: request.op == "launch" for ccid, request in last.items()}


@dataclass
class Cycle:
    """One run of a plan: the answers, in submission order, and the wall time."""

    answers: list[Answer] = field(default_factory=list)
    seconds: float = 0.0

    def unexplained(self) -> list[Answer]:
        """Answers the contract does not document for their request."""
        return [answer for answer in self.answers if not answer.documented]

    def statuses(self) -> dict[str, int]:
        """How many answers of each (op, status)."""
        counts: dict[str, int] = {}
        for answer in self.answers:
            key = f"{answer.request.op} {answer.status}"
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))


async def run_cycle(socket: Path, requests: list[Request], clients: int) -> Cycle:
    """Send the plan through ``clients`` concurrent clients; every answer, in sending order.

    A request that breaks (no answer) is recorded with status 0 and the error's text.
    """
    pending = deque(requests)
    done: dict[tuple[str, int], asyncio.Event] = {
        (request.ccid, request.seq): asyncio.Event() for request in requests
    }
    cycle = Cycle()
    numbers = itertools.count()
    began = time.perf_counter()

    async def client() -> None:
        # Each client its own session and connection, as separate peers would have.
        connector = aiohttp.UnixConnector(path=str(socket), limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            while pending:
                request = pending.popleft()
                if request.seq:
                    await done[request.ccid, request.seq - 1].wait()
                answer = await _send(session, request, sent=next(numbers))
                cycle.answers.append(answer)
                done[request.ccid, request.seq].set()

    async with asyncio.TaskGroup() as group:
        for _ in range(clients):
            group.create_task(client())
    cycle.seconds = time.perf_counter() - began
    cycle.answers.sort(key=lambda answer: answer.sent)
    return cycle


async def _send(session: aiohttp.ClientSession, request: Request, *, sent: int) -> Answer:
    began = time.perf_counter()
    if request.op == "launch":
        method, path = "POST", "/v1/chaincodes"
        data: io.BytesIO | None = io.BytesIO(orjson.dumps(launch_body(request.ccid)))
    else:
        method, path, data = "DELETE", chaincode_path(request.ccid) + STOP_QUERY, None
    try:
        async with session.request(method, f"http://ccdaemon{path}", data=data) as response:
            raw = await response.read()
            body = orjson.loads(raw) if response.content_type == "application/json" else raw
            status = response.status
    except aiohttp.ClientError as exc:
        status, body = 0, f"{type(exc).__name__}: {exc}"
    return Answer(request, sent, status, body, time.perf_counter() - began)


class EventLog:
    """The engine's create and destroy events for one instance's containers, as they come.

    ``stop`` marks the end by creating and removing a sentinel container of the instance
    and reading until its destroy arrives: the engine sends events in order, so nothing
    of the cycle is still on its way. (The engine only replays its last 256 events, so
    the stream is read live, from before the first request.)
    """

    def __init__(self, engine: Engine, instance: str) -> None:
        self._engine = engine
        self._instance = instance
        self._sentinel = f"sentinel-{instance}"
        self.events: list[tuple[str, str, str]] = []  # (container name, action, id)
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def start(self) -> None:
        """Begin reading (returns once the stream is open)."""
        self._task = asyncio.create_task(self._read())
        await self._listening.wait()

    async def _read(self) -> None:
        filters = {
            "type": ["container"],
            "event": ["create", "destroy"],
            "label": [f"{INSTANCE_LABEL}={self._instance}"],
        }
        async with system.events(
            self._engine, filters=filters, since=f"{time.time():.3f}"
        ) as stream:
            self._listening.set()
            async for event in stream:
                actor = event.get("Actor") or {}
                name = str((actor.get("Attributes") or {}).get("name", ""))
                action = str(event.get("Action", ""))
                if name == self._sentinel:
                    if action == "destroy":
                        return
                    continue
                self.events.append((name, action, str(actor.get("ID", ""))))

    async def stop(self) -> None:
        """Mark the end and wait (up to 60 s) until every earlier event has been read."""
        body = {
            "Image": SENTINEL_IMAGE,
            "Cmd": ["true"],
            "Labels": {MANAGED_LABEL: "true", INSTANCE_LABEL: self._instance},
            "HostConfig": {"NetworkMode": "none"},
        }
        await containers.create(self._engine, self._sentinel, body)
        with contextlib.suppress(NoSuchContainer):
            await containers.remove(self._engine, self._sentinel, force=True)
        assert self._task is not None, "start() first"
        async with asyncio.timeout(60):
            await self._task

    def by_container(self) -> dict[str, list[tuple[str, str]]]:
        """Per container name: its (action, id) events in the engine's order."""
        result: dict[str, list[tuple[str, str]]] = {}
        for name, action, container_id in self.events:
            result.setdefault(name, []).append((action, container_id))
        return result


def expected_events(answers: list[Answer]) -> dict[str, list[tuple[str, str]]]:
    """Per ccid: the create and destroy events its requests imply, in submission order.

    A launch replaces a running container (destroy, then create with the answered id); a
    stop destroys a running one; a stop of nothing does nothing. Only documented answers
    are modelled (anything else fails the test on its own).
    """
    result: dict[str, list[tuple[str, str]]] = {}
    current: dict[str, str | None] = {}
    for answer in sorted(answers, key=lambda a: (a.request.ccid, a.request.seq)):
        ccid = answer.request.ccid
        events = result.setdefault(ccid, [])
        running = current.get(ccid)
        if answer.request.op == "launch":
            if running is not None:
                events.append(("destroy", running))
            current[ccid] = answer.container_id
            events.append(("create", str(answer.container_id)))
        elif running is not None:
            events.append(("destroy", running))
            current[ccid] = None
    return result


def order_problems(
    answers: list[Answer],
    seen: Mapping[str, list[tuple[str, str]]],
    container_of: Mapping[str, str],
) -> list[str]:
    """Where the engine's events for a container differ from what submission order implies.

    ``container_of`` maps each ccid to its container name. Empty when order was kept.
    """
    problems = []
    expected = expected_events(answers)
    for ccid, events in expected.items():
        got = list(seen.get(container_of[ccid], []))
        if got != events:
            problems.append(f"{ccid}: engine events {got} != submission order {events}")
    return problems


async def engine_containers(engine: Engine, instance: str) -> dict[str, tuple[str, str]]:
    """Every container of ``instance`` the engine holds: ccid -> (state, id)."""
    found = await containers.list_(engine, labels={INSTANCE_LABEL: instance})
    return {
        str(item["Labels"][CCID_LABEL]): (str(item["State"]), str(item["Id"]))
        for item in found
        if CCID_LABEL in (item.get("Labels") or {})
    }


def final_problems(
    answers: list[Answer], found: Mapping[str, tuple[str, str]]
) -> tuple[list[str], int, int]:
    """Compare the engine's containers with what each id's last request implies.

    Returns the problems, how many implied containers are missing or wrong (lost) and how
    many containers the engine holds that no last request implies (orphaned).
    """
    last: dict[str, Answer] = {}
    for answer in answers:
        held = last.get(answer.request.ccid)
        if held is None or answer.request.seq > held.request.seq:
            last[answer.request.ccid] = answer
    problems: list[str] = []
    lost = orphaned = 0
    for ccid, answer in last.items():
        state = found.get(ccid)
        if answer.request.op == "launch":
            if state != ("running", answer.container_id):
                lost += 1
                problems.append(
                    f"{ccid}: last request launch answered {answer.container_id}; engine {state}"
                )
        elif state is not None:
            orphaned += 1
            problems.append(f"{ccid}: last request stop; engine still holds {state}")
    for ccid in found.keys() - last.keys():
        orphaned += 1
        problems.append(f"{ccid}: in the engine, never requested")
    return problems, lost, orphaned
