"""Importing the peer's core.yaml: what Fabric's docker controller reads, and nothing else."""

from __future__ import annotations

import tarfile
import textwrap
from pathlib import Path

import pytest

from ccdaemon.config import load
from ccdaemon.coreyaml import ConfigError, import_core_yaml, parse_duration
from ccdaemon.errors import CcdaemonError
from ccdaemon.runtime.hostconfig import HostConfig, LogConfig
from ccdaemon.runtime.launchconfig import DEFAULT_LOG_FORMAT
from tests.fabricnet.dist import SHARED

# The peer:, vm: and chaincode: sections as Fabric 2.5's sampleconfig/core.yaml ships
# them (comments trimmed), with a little of what the import must leave alone.
CORE_YAML = """\
peer:
    id: jdoe
    networkId: dev
    listenAddress: 0.0.0.0:7051
    address: 0.0.0.0:7051
    gossip:
        bootstrap: 127.0.0.1:7051
    tls:
        enabled: false

vm:
    endpoint: unix:///var/run/docker.sock
    docker:
        tls:
            enabled: false
            ca:
                file: docker/ca.crt
            cert:
                file: docker/tls.crt
            key:
                file: docker/tls.key
        attachStdout: false
        hostConfig:
            NetworkMode: host
            Dns:
               # - 192.168.0.1
            LogConfig:
                Type: json-file
                Config:
                    max-size: "50m"
                    max-file: "5"
            Memory: 2147483648

chaincode:
    id:
        path:
        name:
    builder: $(DOCKER_NS)/fabric-ccenv:$(TWO_DIGIT_VERSION)
    pull: false
    golang:
        runtime: $(DOCKER_NS)/fabric-baseos:$(TWO_DIGIT_VERSION)
        dynamicLink: false
    java:
        runtime: $(DOCKER_NS)/fabric-javaenv:$(TWO_DIGIT_VERSION)
    node:
        runtime: $(DOCKER_NS)/fabric-nodeenv:$(TWO_DIGIT_VERSION)
    externalBuilders:
        - name: ccaas_builder
          path: /opt/hyperledger/ccaas_builder
          propagateEnvironment:
            - CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG
    installTimeout: 300s
    startuptimeout: 300s
    executetimeout: 30s
    mode: net
    keepalive: 0
    system:
        _lifecycle: enable
        cscc: enable
        lscc: enable
        qscc: enable
    logging:
        level:  info
        shim:   warning
        format: '%{color}%{time:2006-01-02 15:04:05.000 MST} [%{module}] %{shortfunc} -> %{level:.4s} %{id:03x}%{color:reset} %{message}'

ledger:
    state:
        stateDatabase: goleveldb

operations:
    listenAddress: 127.0.0.1:9443
"""  # noqa: E501 -- Fabric's logging format line as it is

#: What the sample gives, under ccdaemon's keys.
SAMPLE_VALUES = {
    "runtime.peer_id": "jdoe",
    "runtime.network_id": "dev",
    "engine.endpoint": "unix:///var/run/docker.sock",
    "runtime.attach_stdout": False,
    "runtime.host_config": HostConfig(
        network_mode="host",
        log_config=LogConfig("json-file", (("max-size", "50m"), ("max-file", "5"))),
        memory=2147483648,
    ),
    "runtime.startup_timeout": 300.0,
    "runtime.logging.level": "info",
    "runtime.logging.shim": "warning",
    "runtime.logging.format": DEFAULT_LOG_FORMAT,
    "images.golang_builder": "hyperledger/fabric-ccenv:2.5",
    "images.golang_runtime": "hyperledger/fabric-baseos:2.5",
    "images.java_builder": "hyperledger/fabric-javaenv:2.5",
    "images.java_runtime": "hyperledger/fabric-javaenv:2.5",
    "images.node_builder": "hyperledger/fabric-nodeenv:2.5",
    "images.node_runtime": "hyperledger/fabric-nodeenv:2.5",
    "golang.dynamic_link": False,
}


def write_core_yaml(directory: Path, text: str = CORE_YAML) -> Path:
    """Write ``text`` as ``directory/core.yaml`` and return its path."""
    path = directory / "core.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def edited(old: str, new: str) -> str:
    """The sample core.yaml with one exact piece of text replaced."""
    assert CORE_YAML.count(old) == 1, old
    return CORE_YAML.replace(old, new)


def test_fabric_sample_maps_every_setting(tmp_path: Path) -> None:
    path = write_core_yaml(tmp_path)
    got = import_core_yaml(path)
    assert got.path == path
    assert dict(got.values) == SAMPLE_VALUES
    assert got.origins["images.node_builder"] == "chaincode.node.runtime"
    assert got.origins["runtime.host_config"] == "vm.docker.hostConfig"
    assert got.origins["runtime.network_id"] == "peer.networkId"


def test_sample_host_config_gives_fabrics_request(tmp_path: Path) -> None:
    host_config = import_core_yaml(write_core_yaml(tmp_path)).values["runtime.host_config"]
    assert host_config.to_engine() == {
        "NetworkMode": "host",
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "50m", "max-file": "5"}},
        "Memory": 2147483648,
    }


def test_tls_files_resolve_against_the_core_yaml_directory(tmp_path: Path) -> None:
    text = edited(
        "            enabled: false\n            ca:", "            enabled: true\n            ca:"
    )
    text = text.replace("file: docker/tls.key", "file: /etc/docker/tls.key")
    got = import_core_yaml(write_core_yaml(tmp_path, text))
    assert got.values["engine.tls.ca"] == tmp_path / "docker/ca.crt"
    assert got.values["engine.tls.cert"] == tmp_path / "docker/tls.crt"
    assert got.values["engine.tls.key"] == Path("/etc/docker/tls.key")
    assert got.origins["engine.tls.ca"] == "vm.docker.tls.ca.file"


def test_tls_files_are_ignored_while_tls_is_disabled(tmp_path: Path) -> None:
    got = import_core_yaml(write_core_yaml(tmp_path))
    assert not [k for k in got.values if k.startswith("engine.tls")]


def test_keys_are_found_in_any_case_as_viper_does(tmp_path: Path) -> None:
    text = edited("        attachStdout: false", "        ATTACHSTDOUT: true")
    text = text.replace("    networkId: dev", "    networkid: prod")
    got = import_core_yaml(write_core_yaml(tmp_path, text))
    assert got.values["runtime.attach_stdout"] is True
    assert got.values["runtime.network_id"] == "prod"


def test_empty_values_and_empty_file_set_nothing(tmp_path: Path) -> None:
    assert import_core_yaml(write_core_yaml(tmp_path, "")).values == {}
    text = "peer:\n  id:\nvm:\n  endpoint:\n"
    assert import_core_yaml(write_core_yaml(tmp_path, text)).values == {}


def test_numbers_are_read_as_strings_as_viper_does(tmp_path: Path) -> None:
    got = import_core_yaml(write_core_yaml(tmp_path, "peer:\n  networkId: 1\n"))
    assert got.values["runtime.network_id"] == "1"


@pytest.mark.parametrize(
    ("version", "builder"),
    [
        ("2.5.0", "hyperledger/fabric-ccenv:2.5"),
        ("2.4.9", "hyperledger/fabric-ccenv:2.4"),
        ("v3.1.0", "hyperledger/fabric-ccenv:3.1"),
        ("latest", "hyperledger/fabric-ccenv:latest"),
    ],
)
def test_two_digit_version_comes_from_the_fabric_version(
    tmp_path: Path, version: str, builder: str
) -> None:
    got = import_core_yaml(write_core_yaml(tmp_path), fabric_version=version)
    assert got.values["images.golang_builder"] == builder


def test_project_version_is_the_whole_version(tmp_path: Path) -> None:
    text = edited(
        "builder: $(DOCKER_NS)/fabric-ccenv:$(TWO_DIGIT_VERSION)",
        "builder: registry.example.com/ccenv:$(PROJECT_VERSION)",
    )
    got = import_core_yaml(write_core_yaml(tmp_path, text), fabric_version="2.5.12")
    assert got.values["images.golang_builder"] == "registry.example.com/ccenv:2.5.12"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("300s", 300.0),
        ("5m", 300.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("1h2m3.5s", 3723.5),
        (".5s", 0.5),
        ("0", 0.0),
        ("+2s", 2.0),
        ("-1s", -1.0),
        ("10us", 1e-5),
        ("10\u00b5s", 1e-5),
    ],
)
def test_parse_duration(value: str, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "5", "s", "1x", "1m 30s", "--1s", "1.2.3s", "5S"])
def test_parse_duration_refuses(value: str) -> None:
    with pytest.raises(ValueError, match="not a Go duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("300s", 300.0),
        ("'5m'", 300.0),
        # viper reads a bare number as nanoseconds; the peer then floors it to 5 s.
        ("300", 300e-9),
        ("'300'", 300e-9),
    ],
)
def test_startup_timeout_reads_as_the_peer_reads_it(
    tmp_path: Path, value: str, seconds: float
) -> None:
    text = edited("    startuptimeout: 300s", f"    startuptimeout: {value}")
    got = import_core_yaml(write_core_yaml(tmp_path, text))
    assert got.values["runtime.startup_timeout"] == pytest.approx(seconds)


# (replace this, with this, the key named, words of the message)
ERRORS = [
    ("    id: jdoe", "    id: [jdoe]", "peer.id", "must be a string, got ['jdoe']"),
    ("    id: jdoe", "    id: true", "peer.id", "must be a string, got True"),
    ("        attachStdout: false", "        attachStdout: yes please", "vm.docker.attachStdout",
     "must be true or false, got 'yes please'"),
    ("    startuptimeout: 300s", "    startuptimeout: 5 minutes", "chaincode.startuptimeout",
     "not a Go duration"),
    ("    startuptimeout: 300s", "    startuptimeout: -5s", "chaincode.startuptimeout",
     "zero or more"),
    ("    startuptimeout: 300s", "    startuptimeout: [1]", "chaincode.startuptimeout",
     "must be a Go duration"),
    ("            Memory: 2147483648", "            Memory: -1", "vm.docker.hostConfig.Memory",
     "must not be negative"),
    ("            Memory: 2147483648", "            Privileged: true",
     "vm.docker.hostConfig.Privileged", "not a key Fabric supports"),
    ("            NetworkMode: host", "            NetworkMode: [host]",
     "vm.docker.hostConfig.NetworkMode", "must be a string"),
    ("builder: $(DOCKER_NS)/fabric-ccenv:$(TWO_DIGIT_VERSION)",
     "builder: $(BASE_DOCKER_NS)/fabric-ccenv:$(TWO_DIGIT_VERSION)", "chaincode.builder",
     "unknown variable $(BASE_DOCKER_NS)"),
    ("        runtime: $(DOCKER_NS)/fabric-nodeenv:$(TWO_DIGIT_VERSION)", "        runtime: {}",
     "chaincode.node.runtime", "must be a string"),
    ("    docker:\n        tls:\n            enabled: false",
     "    docker:\n        tls:\n            enabled: 1", "vm.docker.tls.enabled",
     "must be true or false"),
    ("    golang:\n        runtime", "    golang: fast\n    unused:\n        runtime",
     "chaincode.golang", "must be a mapping"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "key", "message"), ERRORS)
def test_errors_name_the_file_and_the_dotted_key(
    tmp_path: Path, old: str, new: str, key: str, message: str
) -> None:
    path = write_core_yaml(tmp_path, edited(old, new))
    with pytest.raises(ConfigError) as caught:
        import_core_yaml(path)
    assert caught.value.where == str(path)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{path}: {key}: ")
    assert message in str(caught.value)


def test_host_config_that_is_not_a_mapping(tmp_path: Path) -> None:
    text = "vm:\n  docker:\n    hostConfig: [NetworkMode]\n"
    with pytest.raises(ConfigError, match=r"vm\.docker\.hostConfig: must be a mapping"):
        import_core_yaml(write_core_yaml(tmp_path, text))


def test_tls_enabled_with_an_empty_file_name(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        vm:
          docker:
            tls:
              enabled: true
              ca: {file: ""}
    """)
    with pytest.raises(ConfigError, match=r"vm\.docker\.tls\.ca\.file: must name a file"):
        import_core_yaml(write_core_yaml(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("vm: [unbalanced\n", "not valid YAML"),
        ("- a list\n", "must be a YAML mapping at the top level"),
        ("\xff\xfe", None),
    ],
)
def test_file_errors_name_the_file(tmp_path: Path, text: str, message: str | None) -> None:
    path = tmp_path / "core.yaml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        import_core_yaml(path)
    assert caught.value.key is None
    assert str(caught.value).startswith(f"{path}: ")
    assert message is None or message in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "core.yaml"
    with pytest.raises(ConfigError, match=r"cannot read the peer's core\.yaml") as caught:
        import_core_yaml(path)
    assert caught.value.where == str(path)


def test_config_error_is_a_ccdaemon_error() -> None:
    assert issubclass(ConfigError, CcdaemonError)
    error = ConfigError("/etc/ccdaemon.toml", "engine.engine_limit", "must be 1 or more")
    assert str(error) == "/etc/ccdaemon.toml: engine.engine_limit: must be 1 or more"
    assert str(ConfigError(Path("/x.toml"), None, "not valid TOML")) == "/x.toml: not valid TOML"


def test_dynamic_link_from_core_yaml_reaches_the_go_build(tmp_path: Path) -> None:
    """``chaincode.golang.dynamicLink: true`` in core.yaml: the Go build passes no ldflags."""
    text = edited("dynamicLink: false", "dynamicLink: true")
    config = load(None, {"CCDAEMON_CORE_YAML": str(write_core_yaml(tmp_path, text))})
    assert config.runtime.golang.dynamic_link
    assert config.runtime.golang.ldflags_option == ""


def _stock_core_yaml(version: str, directory: Path) -> Path:
    """The release's own sampleconfig/core.yaml, from the shared Fabric archives."""
    archive = SHARED / f"v{version}" / "sampleconfig.tar.gz"
    with tarfile.open(archive) as tar:
        member = tar.extractfile("sampleconfig/core.yaml")
        assert member is not None
        path = directory / "core.yaml"
        path.write_bytes(member.read())
    return path


def test_fabric_1_4_12s_stock_core_yaml_names_the_images_the_1_4_peer_uses(tmp_path: Path) -> None:
    # The names the real 1.4.12 peer asked the engine for (../shared/fabric/README.md).
    got = import_core_yaml(_stock_core_yaml("1.4.12", tmp_path), fabric_version="1.4.12")
    assert got.values["images.golang_builder"] == "hyperledger/fabric-ccenv:1.4"
    assert got.values["images.golang_runtime"] == "hyperledger/fabric-baseos:amd64-0.4.22"
    assert got.values["images.node_runtime"] == "hyperledger/fabric-baseimage:amd64-0.4.22"


def test_a_1_4_core_yaml_read_as_2_x_says_which_setting_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        import_core_yaml(_stock_core_yaml("1.4.12", tmp_path))
    message = str(refused.value)
    assert "chaincode.golang.runtime" in message
    assert "$(BASE_DOCKER_NS)" in message
    assert "set runtime.fabric_version" in message
