"""Volume create, inspect, list by label and remove, with their errors, on every engine."""

from __future__ import annotations

import pytest

from ccdaemon.engine import (
    Engine,
    NoSuchVolume,
    VolumeInUse,
    containers,
    volumes,
)
from tests.conftest import BASE_IMAGE, TEST_LABEL, Made

pytestmark = pytest.mark.all_engines


async def test_volume_is_made_found_by_its_labels_and_removed(engine: Engine, made: Made) -> None:
    """A labelled volume is listed by all its labels (not by a wrong value) and then goes."""
    name = made.volume()
    labels = {TEST_LABEL: "1", "ccdt.volume": name, "ccdt.kind": "cache"}
    created = await volumes.create(engine, name, labels=labels)
    assert created["Name"] == name
    assert (await volumes.inspect(engine, name))["Labels"] == labels
    assert [v["Name"] for v in await volumes.list_(engine, labels=labels)] == [name]
    wrong = {**labels, "ccdt.kind": "other"}
    assert name not in [v["Name"] for v in await volumes.list_(engine, labels=wrong)]
    await volumes.remove(engine, name)
    with pytest.raises(NoSuchVolume, match=name):
        await volumes.inspect(engine, name)
    with pytest.raises(NoSuchVolume, match=name):
        await volumes.remove(engine, name)


async def test_a_volume_a_stopped_container_mounts_is_in_use(engine: Engine, made: Made) -> None:
    """Remove refuses (VolumeInUse) while any container mounts it; after that it goes."""
    name = made.volume()
    await volumes.create(engine, name, labels={TEST_LABEL: "1"})
    container = made.container()
    mount = {"Type": "volume", "Source": name, "Target": "/cache"}
    body = {"Image": BASE_IMAGE, "Cmd": ["true"], "HostConfig": {"Mounts": [mount]}}
    await containers.create(engine, container, body)
    with pytest.raises(VolumeInUse, match=name):
        await volumes.remove(engine, name)
    await containers.remove(engine, container, force=True)
    await volumes.remove(engine, name)
    assert name not in [v["Name"] for v in await volumes.list_(engine, labels={TEST_LABEL: "1"})]


async def test_a_tmpfs_volume_is_made(engine: Engine, made: Made) -> None:
    """The local driver's options reach the engine: a tmpfs.

    (Podman 4.3 refuses ``o=size=...`` on its compatible API, taking it for a quota.)
    """
    name = made.volume()
    opts = {"type": "tmpfs", "device": "tmpfs", "o": "nodev,noexec"}
    await volumes.create(engine, name, labels={TEST_LABEL: "1"}, driver_opts=opts)
    assert (await volumes.inspect(engine, name))["Options"] == opts
