"""Attach, logs and events on every engine: demultiplexed, line by line, with filters."""

from __future__ import annotations

import time

import anyio
import pytest

from ccdaemon.engine import Engine, containers, streams, system
from ccdaemon.engine.streams import Line, StdStream
from tests.conftest import TEST_LABEL, Made, shell

pytestmark = pytest.mark.all_engines

# Hang guard only: a stream that never ends would otherwise hang the suite forever.
HANG_GUARD = 120

SCRIPT = "echo out-1; echo err-1 >&2; echo out-2; printf 'no-newline'"


async def test_attach_before_start_demultiplexes_stdout_and_stderr(
    engine: Engine, made: Made
) -> None:
    """Attached before start, every line arrives with its stream; a last partial line too."""
    name = made.container()
    await containers.create(engine, name, shell(SCRIPT))
    with anyio.fail_after(HANG_GUARD):
        async with containers.attach(engine, name) as frames:
            await containers.start(engine, name)
            got = [line async for line in streams.lines(frames)]
    assert [line for line in got if line.stream == StdStream.STDOUT] == [
        Line(StdStream.STDOUT, "out-1"),
        Line(StdStream.STDOUT, "out-2"),
        Line(StdStream.STDOUT, "no-newline"),
    ]
    assert [line for line in got if line.stream == StdStream.STDERR] == [
        Line(StdStream.STDERR, "err-1")
    ]


async def test_output_attached_before_start_comes_once_under_load(
    engine: Engine, made: Made
) -> None:
    """Many attach-then-start at once: no line lost, none repeated.

    With ``logs=1`` Docker replays output it reads after the response head, so a start
    landing in between repeated the first lines (about 1 container in 30 here).
    """
    count = 40
    outputs: list[list[str]] = []

    async def one(name: str) -> None:
        await containers.create(engine, name, shell(SCRIPT))
        async with containers.attach(engine, name) as frames:
            await containers.start(engine, name)
            outputs.append([line.text async for line in streams.lines(frames)])

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as group:
            for _ in range(count):
                group.start_soon(one, made.container())
    wrong = [got for got in outputs if sorted(got) != ["err-1", "no-newline", "out-1", "out-2"]]
    assert len(outputs) == count
    assert wrong == []


async def test_tty_container_output_is_read_raw(engine: Engine, made: Made) -> None:
    """A TTY container's output has no frames; it is read raw, as stdout."""
    name = made.container()
    await containers.create(engine, name, shell("echo tty-out; echo tty-err >&2", Tty=True))
    await containers.start(engine, name)
    await containers.wait(engine, name)
    async with containers.logs(engine, name) as frames:
        got = [line async for line in streams.lines(frames)]
    assert got == [Line(StdStream.STDOUT, "tty-out"), Line(StdStream.STDOUT, "tty-err")]


async def test_logs_tail_and_follow(engine: Engine, made: Made) -> None:
    """``tail`` keeps the last lines; ``follow`` streams until the container exits."""
    name = made.container()
    await containers.create(
        engine, name, shell("for i in 1 2 3 4; do echo line-$i; sleep 0.2; done")
    )
    await containers.start(engine, name)
    with anyio.fail_after(HANG_GUARD):
        async with containers.logs(engine, name, follow=True) as frames:
            followed = [line.text async for line in streams.lines(frames)]
    assert followed == ["line-1", "line-2", "line-3", "line-4"]
    async with containers.logs(engine, name, tail=2) as frames:
        tailed = [line.text async for line in streams.lines(frames)]
    assert tailed == ["line-3", "line-4"]


async def test_events_replay_with_filters_since_and_until(engine: Engine, made: Made) -> None:
    """Events between since and until, filtered by label, replay a container's life in order."""
    name = made.container()
    group = {"ccdt.group": made.prefix}
    since = f"{time.time() - 1:.3f}"
    await containers.create(engine, name, shell("exit 3", Labels={TEST_LABEL: "1", **group}))
    await containers.start(engine, name)
    assert await containers.wait(engine, name) == 3
    await anyio.sleep(1.1)  # until is inclusive at second granularity on some engines
    until = f"{time.time():.3f}"
    filters = {"type": ["container"], "label": [f"ccdt.group={made.prefix}"]}
    with anyio.fail_after(HANG_GUARD):
        async with system.events(engine, filters=filters, since=since, until=until) as events:
            seen = [(e["Action"], e["Actor"]["Attributes"]["name"]) async for e in events]
    actions = [action for action, who in seen if who == name]
    assert actions[:1] == ["create"]
    assert "start" in actions
    assert "die" in actions
    assert actions.index("start") < actions.index("die")


async def test_followed_events_deliver_new_events(engine: Engine, made: Made) -> None:
    """An open events stream (no until) delivers an event that happens after it opened."""
    name = made.container()
    filters = {"type": ["container"], "label": [f"ccdt.group={made.prefix}"]}
    labels = {TEST_LABEL: "1", "ccdt.group": made.prefix}
    with anyio.fail_after(HANG_GUARD):
        async with system.events(engine, filters=filters) as events:
            await containers.create(engine, name, shell("true", Labels=labels))
            async for event in events:
                if event["Actor"]["Attributes"].get("name") == name:
                    assert event["Action"] == "create"
                    break
