"""HostConfig from core.yaml's vm.docker.hostConfig, and what the engine makes of it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ccdaemon.engine import Engine, containers
from ccdaemon.runtime.errors import InvalidRequest
from ccdaemon.runtime.hostconfig import HostConfig, LogConfig
from tests.conftest import Made, sleeper

if TYPE_CHECKING:
    import aiodocker

# Fabric's sample core.yaml (1.4 and 2.5 alike), as YAML loads it.
SAMPLE = {
    "NetworkMode": "host",
    "Dns": None,
    "LogConfig": {"Type": "json-file", "Config": {"max-size": "50m", "max-file": "5"}},
    "Memory": 2147483648,
}


def test_sample_core_yaml_gives_fabrics_request() -> None:
    """The sample's keys become the create request's HostConfig; the empty Dns is left out."""
    assert HostConfig.from_core_yaml(SAMPLE).to_engine() == {
        "NetworkMode": "host",
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "50m", "max-file": "5"}},
        "Memory": 2147483648,
    }


def test_empty_network_mode_means_host() -> None:
    """As in Fabric, an empty NetworkMode is sent as host, and zero values are left out."""
    assert HostConfig(network_mode="").to_engine() == {"NetworkMode": "host"}


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"Privileged": True}, "hostConfig.Privileged"),
        ({"Binds": ["/:/host"]}, "hostConfig.Binds"),
        ({"Memory": "2g"}, "hostConfig.Memory"),
        ({"Memory": -1}, "hostConfig.Memory"),
        ({"Dns": "8.8.8.8"}, "hostConfig.Dns"),
        ({"ReadonlyRootfs": "yes"}, "hostConfig.ReadonlyRootfs"),
        ({"LogConfig": {"Type": "json-file", "Config": ["x"]}}, "hostConfig.LogConfig"),
    ],
)
def test_unsupported_keys_and_wrong_types_name_the_key(
    section: dict[str, object], field: str
) -> None:
    """Keys Fabric ignores (Privileged, Binds...) and wrongly typed values are refused by name."""
    with pytest.raises(InvalidRequest) as caught:
        HostConfig.from_core_yaml(section)
    assert caught.value.field == field


def test_keys_are_matched_without_case() -> None:
    """Viper lower-cases core.yaml keys, so networkmode and NetworkMode are the same key."""
    assert HostConfig.from_core_yaml({"networkmode": "none"}).network_mode == "none"


async def test_engine_applies_the_host_config(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """A container created with the HostConfig carries each setting, as the engine reports it."""
    config = HostConfig(
        network_mode="none",
        dns=("192.0.2.53",),
        log_config=LogConfig("json-file", (("max-size", "50m"),)),
        memory=256 * 1024 * 1024,
        cpu_shares=512,
        readonly_rootfs=True,
        cap_drop=("NET_RAW",),
    )
    name = made.container()
    await containers.create(engine, name, sleeper(HostConfig=config.to_engine()))
    seen = (await docker.containers.get(name))["HostConfig"]
    assert seen["NetworkMode"] == "none"
    assert seen["Dns"] == ["192.0.2.53"]
    assert seen["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "50m"}}
    assert (seen["Memory"], seen["CpuShares"], seen["ReadonlyRootfs"]) == (268435456, 512, True)
    assert seen["CapDrop"] == ["NET_RAW"]
