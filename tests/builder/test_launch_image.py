"""POST /v1/chaincodes with ``image``: only an image this daemon built may run."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import pytest

from ccdaemon.apiclient import APIError
from ccdaemon.apiclient.aio import AsyncClient as Client
from ccdaemon.engine import containers
from ccdaemon.runtime.hostconfig import CCID_LABEL
from tests.builder.conftest import go_package
from tests.conftest import BASE_IMAGE
from tests.daemon.conftest import launch_body

if TYPE_CHECKING:
    import aiodocker

    from ccdaemon.engine import Engine
    from tests.builder.conftest import Installed
    from tests.fabric.conftest import Daemon


def body(ccid: str, **extra: object) -> dict[str, object]:
    """A launch request without TLS, to a peer address nobody needs to answer."""
    return launch_body(ccid, peer_address="127.0.0.1:1", tls={"enabled": False}, **extra)


@pytest.mark.parametrize(
    ("image", "extra", "message"),
    [
        (BASE_IMAGE, {}, "was not built by this daemon"),
        ("localhost/ccdaemon/no-such-image:1", {}, "no image"),
        ("Not A Reference", {}, "invalid reference format"),
        (BASE_IMAGE, {"package": base64.b64encode(go_package()).decode()}, "excludes package"),
    ],
)
async def test_launch_with_an_image_the_daemon_did_not_build_is_refused_creating_nothing(
    shared_daemon: Daemon,
    docker: aiodocker.Docker,
    image: str,
    extra: dict[str, object],
    message: str,
) -> None:
    """An unlabelled, missing or malformed image (or one with a package): 400 on ``image``."""
    ccid = "refused_1.0:" + "cd" * 32
    async with Client(shared_daemon.socket) as client:
        with pytest.raises(APIError) as refused:
            await client.launch(body(ccid, image=image, **extra))
    assert (refused.value.status, refused.value.field) == (400, "image")
    assert message in refused.value.message
    found = await docker.containers.list(all=True, filters={"label": [f"{CCID_LABEL}={ccid}"]})
    assert found == []


async def test_launch_with_the_image_the_daemon_built_runs_it_under_the_chaincodes_name(
    shared_daemon: Daemon, installed: Installed, engine: Engine
) -> None:
    """The image built at install runs as the launch's chaincode, in its own container."""
    image = installed.record()["image"]
    ccid = "accepted_1.0:" + "ef" * 32
    async with Client(shared_daemon.socket) as client:
        launched = await client.launch(body(ccid, image=image))
        chaincode = launched["chaincode"]
        assert chaincode["ccid"] == ccid
        assert launched["built"] is False
        found = await containers.inspect(engine, chaincode["container"])
        assert found["Config"]["Image"] == image
        assert found["Config"]["Labels"][CCID_LABEL] == ccid
        await client.stop(ccid, timeout=0)
