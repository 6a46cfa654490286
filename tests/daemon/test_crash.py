"""The daemon SIGKILLed in the middle of launches, then started again."""

from __future__ import annotations

import contextlib
import signal
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio

from tests.daemon.conftest import chaincode_path, launch_body, stub_images
from tests.daemon.process import daemons, instance_containers

if TYPE_CHECKING:
    from pathlib import Path

    import aiodocker

    from ccdaemon.engine import Engine


async def test_sigkill_mid_launch_leaves_only_adopted_or_nothing(
    engine_socket: str, sockdir: Path, engine: Engine, docker: aiodocker.Docker
) -> None:
    """SIGKILL with 20 launches in flight; the next daemon reports the truth and relaunches.

    Afterwards every container of the instance is running and re-adopted (those whose
    start reached the engine) or gone (those the kill interrupted: created, never
    started, removed by recovery); the API lists exactly the running ones; each of the
    20 ids launches again.
    """
    ccids = [f"crash{i}_1.0:{i:064x}" for i in range(20)]
    async with daemons(engine_socket, sockdir, engine) as spawner:
        # engine_limit 2 keeps most launches queued or mid-way when the kill comes.
        config = spawner.write_config(engine_limit=2)
        first = await spawner.start_healthy(config)
        await stub_images(engine, first.api, ccids)

        async def launch(ccid: str) -> None:
            # The daemon dies under most of these requests, as intended.
            with contextlib.suppress(aiohttp.ClientError):
                await first.call("POST", "/v1/chaincodes", launch_body(ccid))

        async with anyio.create_task_group() as group:
            for ccid in ccids:
                group.start_soon(launch, ccid)
            with anyio.fail_after(60):
                while len(await instance_containers(docker, spawner.instance)) < 3:  # noqa: ASYNC110 -- engine state, no event
                    await anyio.sleep(0.02)
            first.process.send_signal(signal.SIGKILL)
        assert await first.wait_exit() == -signal.SIGKILL
        before = await instance_containers(docker, spawner.instance)
        assert before, "the kill came before any launch reached the engine"

        second = await spawner.start_healthy(config)
        after = await instance_containers(docker, spawner.instance)
        assert set(after.values()) <= {"running"}, after
        status, listing = await second.call("GET", "/v1/chaincodes")
        assert status == 200
        listed: dict[str, Any] = {cc["ccid"]: cc for cc in listing["chaincodes"]}
        assert set(listed) == set(after)
        assert all(cc["state"] == "running" and cc["adopted"] for cc in listed.values())
        # (A container still "created" in ``before`` may be running now: the engine
        # finishes a start the daemon sent just before it died; it is then adopted.)

        results: dict[str, int] = {}

        async def relaunch(ccid: str) -> None:
            results[ccid] = (await second.call("POST", "/v1/chaincodes", launch_body(ccid)))[0]

        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                for ccid in ccids:
                    group.start_soon(relaunch, ccid)
        assert results == dict.fromkeys(ccids, 201)
        assert set((await instance_containers(docker, spawner.instance)).values()) == {"running"}
        assert len(await instance_containers(docker, spawner.instance)) == len(ccids)
        status, one = await second.call("GET", chaincode_path(ccids[0]))
        assert (status, one["state"], one["adopted"]) == (200, "running", False)
