"""Loading ccdaemon's configuration: TOML, core.yaml, environment, and their order."""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from ccdaemon.config import (
    Config,
    ConfigError,
    DockerAPIConfig,
    EngineConfig,
    ListenConfig,
    LogConfig,
    PolicyConfig,
    ShutdownConfig,
    env_name,
    keys,
    load,
)
from ccdaemon.daemon import configview
from ccdaemon.engine.transport import TLSFiles
from ccdaemon.runtime.hostconfig import HostConfig
from ccdaemon.runtime.hostconfig import LogConfig as DockerLogConfig
from ccdaemon.runtime.launchconfig import ChaincodeLogging
from ccdaemon.runtime.launcher import RuntimeConfig
from ccdaemon.runtime.package import DEFAULT_MAX_SIZE
from ccdaemon.runtime.platforms import GolangBuild, PlatformImages
from ccdaemon.runtime.swarmlauncher import SwarmConfig
from tests.test_coreyaml import CORE_YAML, SAMPLE_VALUES, write_core_yaml

EXAMPLE = Path(__file__).parent.parent / "deploy" / "config" / "ccdaemon.toml"

# A commented-out setting or table in the example: "#" directly before it.
COMMENTED_OUT = re.compile(r"^#(?=[\[A-Za-z])", re.MULTILINE)


def write_toml(directory: Path, text: str) -> Path:
    path = directory / "ccdaemon.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_text(directory: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    return load(write_toml(directory, text), environ or {})


# --- defaults and the example -------------------------------------------------------


def test_no_file_no_environment_gives_the_defaults() -> None:
    config = load(None, {})
    assert config == Config()
    assert config.engine.endpoint == "unix:///var/run/docker.sock"
    assert config.listen.socket_mode == 0o660
    assert config.policy.max_package_size == DEFAULT_MAX_SIZE
    assert config.runtime.instance == config.instance == "default"


def test_the_example_loads_as_the_defaults() -> None:
    # Every key it sets is set to its default; the rest are commented out.
    assert load(EXAMPLE, {}) == Config(source=EXAMPLE)


def _documented_keys(table: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and key not in {"runtime.host_config", "engine.tls"}:
            keys |= _documented_keys(value, f"{key}.")
        else:
            keys.add(key)
    return keys


def _expected_keys() -> set[str]:
    sections: dict[str, Any] = {
        "listen": ListenConfig,
        "docker_api": DockerAPIConfig,
        "engine": EngineConfig,
        "runtime": RuntimeConfig,
        "runtime.logging": ChaincodeLogging,
        "images": PlatformImages,
        "golang": GolangBuild,
        "policy": PolicyConfig,
        "shutdown": ShutdownConfig,
        "log": LogConfig,
        "swarm": SwarmConfig,
    }
    keys = {f"{name}.{f.name}" for name, cls in sections.items() for f in fields(cls)}
    # logging is a table of its own; instance, images and golang are top-level keys.
    keys -= {"runtime.logging", "runtime.instance", "runtime.images", "runtime.golang"}
    return keys | {"instance", "ca.cert", "ca.key", "fabric.core_yaml"}


def test_the_example_documents_every_key_and_uncommented_is_valid(tmp_path: Path) -> None:
    core_yaml = write_core_yaml(tmp_path)
    text = COMMENTED_OUT.sub("", EXAMPLE.read_text(encoding="utf-8"))
    text = text.replace('"/etc/hyperledger/fabric/core.yaml"', f'"{core_yaml}"')
    assert _documented_keys(tomllib.loads(text)) == _expected_keys()
    config = load_text(tmp_path, text)
    assert config.listen.tcp == "0.0.0.0:7060"
    assert config.engine.tls is not None
    assert config.engine.api_version == "1.41"
    assert config.core_yaml == core_yaml
    # Uncommented, the example's values win over core.yaml's.
    assert config.images.golang_builder == "localhost/ccdaemon/goenv:1.24"
    assert config.runtime.host_config.dns == ("192.168.0.1",)


# --- every key, from TOML -----------------------------------------------------------

EVERY_KEY = """\
instance = "peer0-org1"

[fabric]

[listen]
socket = "/run/peer0/ccdaemon.sock"
socket_mode = "0600"
socket_group = "fabric"
tcp = "[::1]:7060"
tcp_ca = "/tls/ca.pem"
tcp_cert = "/tls/cert.pem"
tcp_key = "/tls/key.pem"

[docker_api]
socket = "/run/peer0/docker.sock"
socket_mode = "0660"
socket_group = "fabric"
tcp = "127.0.0.1:2376"
tcp_ca = "/tls/peers-ca.pem"
tcp_cert = "/tls/front.pem"
tcp_key = "/tls/front.key"

[engine]
endpoint = "tcp://engine.example.com:2376"
api_version = "1.43"
engine_limit = 4
build_limit = 1
build_cache_size = 0
backend = "swarm"
tls = { ca = "/docker/ca.pem", cert = "/docker/cert.pem", key = "/docker/key.pem" }

[runtime]
network_id = "prod"
peer_id = "peer0.org1"
startup_timeout = 120
layout = "1.4"
attach_stdout = true
output_lines = 50
fabric_version = "1.4.12"

[runtime.logging]
level = "debug"
shim = "info"
format = "%{message}"

[runtime.host_config]
NetworkMode = "fabric_test"
CapDrop = ["ALL"]
Memory = 536870912

[images]
golang_builder = "hyperledger/fabric-ccenv:1.4"
golang_runtime = "hyperledger/fabric-baseos:0.4.22"
node_builder = "n/b:1"
node_runtime = "n/r:1"
java_builder = "j/b:1"
java_runtime = "j/r:1"

[ca]
cert = "/ca/ca.pem"
key = "/ca/ca.key"

[policy]
memory = 1073741824
cpus = 1.5
pids_limit = 0
no_new_privileges = false
max_package_size = 1048576

[shutdown]
stop_chaincodes = true
grace = 5
stop_timeout = 0

[log]
format = "json"
level = "warning"

[swarm]
network = "fabric_overlay"
constraints = ["node.labels.fabric==true", "node.role==worker"]
stop_grace = 3
poll_interval = 0.25
registry = "registry.example.com:5000/fabric"
"""


IMAGES = PlatformImages(
    golang_builder="hyperledger/fabric-ccenv:1.4",
    golang_runtime="hyperledger/fabric-baseos:0.4.22",
    node_builder="n/b:1",
    node_runtime="n/r:1",
    java_builder="j/b:1",
    java_runtime="j/r:1",
)


def test_every_key_lands_in_its_field(tmp_path: Path) -> None:
    config = load_text(tmp_path, EVERY_KEY)
    assert config == Config(
        listen=ListenConfig(
            socket=Path("/run/peer0/ccdaemon.sock"),
            socket_mode=0o600,
            socket_group="fabric",
            tcp="[::1]:7060",
            tcp_ca=Path("/tls/ca.pem"),
            tcp_cert=Path("/tls/cert.pem"),
            tcp_key=Path("/tls/key.pem"),
        ),
        docker_api=DockerAPIConfig(
            socket=Path("/run/peer0/docker.sock"),
            socket_mode=0o660,
            socket_group="fabric",
            tcp="127.0.0.1:2376",
            tcp_ca=Path("/tls/peers-ca.pem"),
            tcp_cert=Path("/tls/front.pem"),
            tcp_key=Path("/tls/front.key"),
        ),
        engine=EngineConfig(
            endpoint="tcp://engine.example.com:2376",
            tls=TLSFiles(Path("/docker/ca.pem"), Path("/docker/cert.pem"), Path("/docker/key.pem")),
            api_version="1.43",
            engine_limit=4,
            build_limit=1,
            build_cache_size=0,
            backend="swarm",
        ),
        runtime=RuntimeConfig(
            network_id="prod",
            peer_id="peer0.org1",
            host_config=HostConfig(network_mode="fabric_test", cap_drop=("ALL",), memory=536870912),
            startup_timeout=120.0,
            layout="1.4",
            logging=ChaincodeLogging(level="debug", shim="info", format="%{message}"),
            fabric_version="1.4.12",
            attach_stdout=True,
            output_lines=50,
            instance="peer0-org1",
            images=IMAGES,
        ),
        images=IMAGES,
        ca_cert=Path("/ca/ca.pem"),
        ca_key=Path("/ca/ca.key"),
        policy=PolicyConfig(
            memory=1073741824,
            cpus=1.5,
            pids_limit=0,
            no_new_privileges=False,
            max_package_size=1048576,
        ),
        shutdown=ShutdownConfig(stop_chaincodes=True, grace=5.0, stop_timeout=0),
        log=LogConfig(format="json", level="WARNING"),
        swarm=SwarmConfig(
            network="fabric_overlay",
            constraints=("node.labels.fabric==true", "node.role==worker"),
            stop_grace=3.0,
            poll_interval=0.25,
            registry="registry.example.com:5000/fabric",
        ),
        instance="peer0-org1",
        source=tmp_path / "ccdaemon.toml",
    )


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ('socket_mode = "0660"', 0o660),
        ('socket_mode = "660"', 0o660),
        ('socket_mode = "0o640"', 0o640),
        ("socket_mode = 0o600", 0o600),
        ("socket_mode = 0", 0),
    ],
)
def test_socket_mode_forms(tmp_path: Path, text: str, mode: int) -> None:
    assert load_text(tmp_path, f"[listen]\n{text}\n").listen.socket_mode == mode


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    text = '[ca]\ncert = "ca/ca.pem"\nkey = "/abs/ca.key"\n[engine.tls]\nca = "docker/ca.pem"\n'
    config = load_text(tmp_path, text)
    assert config.ca_cert == tmp_path / "ca/ca.pem"
    assert config.ca_key == Path("/abs/ca.key")
    assert config.engine.tls == TLSFiles(ca=tmp_path / "docker/ca.pem")


def test_optional_keys_are_unset_by_an_empty_string(tmp_path: Path) -> None:
    text = '[listen]\nsocket_group = ""\n[engine]\napi_version = ""\n[engine.tls]\nca = ""\n'
    config = load_text(tmp_path, text)
    assert config.listen.socket_group is None
    assert config.engine.api_version is None
    assert config.engine.tls is None


# --- the Docker-API front on TCP, with mutual TLS ----------------------------------

FRONT_TCP = """\
[docker_api]
tcp = "127.0.0.1:2376"
tcp_ca = "tls/peers-ca.pem"
tcp_cert = "/tls/front.pem"
tcp_key = "/tls/front.key"
"""


def test_the_front_may_serve_on_tcp_alone(tmp_path: Path) -> None:
    config = load_text(tmp_path, FRONT_TCP)
    assert config.docker_api == DockerAPIConfig(
        tcp="127.0.0.1:2376",
        tcp_ca=tmp_path / "tls/peers-ca.pem",  # relative to the file, as every path
        tcp_cert=Path("/tls/front.pem"),
        tcp_key=Path("/tls/front.key"),
    )
    assert config.docker_api.socket is None
    assert config.listen.tcp is None  # the control API's own TCP listener stays off


def test_the_front_on_tcp_from_the_environment(tmp_path: Path) -> None:
    environ = {
        "CCDAEMON_DOCKER_API_TCP": "0.0.0.0:2376",
        "CCDAEMON_DOCKER_API_TCP_CA": "/e/ca.pem",
        "CCDAEMON_DOCKER_API_TCP_CERT": "/e/cert.pem",
        "CCDAEMON_DOCKER_API_TCP_KEY": "/e/key.pem",
    }
    front = load(None, environ).docker_api
    assert (front.tcp, front.tcp_ca, front.tcp_cert, front.tcp_key) == (
        "0.0.0.0:2376",
        Path("/e/ca.pem"),
        Path("/e/cert.pem"),
        Path("/e/key.pem"),
    )
    over = load_text(tmp_path, FRONT_TCP, {"CCDAEMON_DOCKER_API_TCP": "[::1]:2377"})
    assert over.docker_api.tcp == "[::1]:2377"
    assert over.origins["docker_api.tcp"] == "environment CCDAEMON_DOCKER_API_TCP"
    assert over.origins["docker_api.tcp_key"] == f"{tmp_path / 'ccdaemon.toml'}: docker_api.tcp_key"
    # An empty value unsets it: the front is off, its files left unused.
    assert load_text(tmp_path, FRONT_TCP, {"CCDAEMON_DOCKER_API_TCP": ""}).docker_api.tcp is None


@pytest.mark.parametrize(
    ("environ", "where", "key", "missing"),
    [
        (
            {"CCDAEMON_DOCKER_API_TCP": "h:2376", "CCDAEMON_DOCKER_API_TCP_CA": "/ca.pem"},
            "environment",
            "CCDAEMON_DOCKER_API_TCP",
            "set docker_api.tcp_cert, docker_api.tcp_key",
        ),
        # The file sets all three; the environment unsets one of them.
        ({"CCDAEMON_DOCKER_API_TCP_KEY": ""}, "file", "docker_api.tcp", "set docker_api.tcp_key"),
    ],
)
def test_the_front_on_tcp_without_its_files_names_them(
    tmp_path: Path, environ: dict[str, str], where: str, key: str, missing: str
) -> None:
    path = write_toml(tmp_path, FRONT_TCP if where == "file" else "")
    with pytest.raises(ConfigError) as caught:
        load(path, environ)
    assert (caught.value.where, caught.value.key) == (
        str(path) if where == "file" else where,
        key,
    )
    assert f"serving the Docker-API front on TCP needs mutual TLS: {missing}" in str(caught.value)


def test_check_config_shows_the_front_on_tcp(tmp_path: Path) -> None:
    toml = tmp_path / "ccdaemon.toml"
    both = FRONT_TCP + 'socket = "/run/ccdaemon/docker.sock"\n'
    shown = configview.describe(load_text(tmp_path, both))
    summary = next(line for line in shown.splitlines() if line.startswith("  docker api "))
    assert summary.split(maxsplit=2)[2] == (
        "/run/ccdaemon/docker.sock (mode 0660) and https://127.0.0.1:2376 (client certificates "
        f"from {tmp_path / 'tls/peers-ca.pem'}), for a peer's vm.endpoint"
    )
    lines = {line.split(" = ")[0].strip(): line for line in shown.splitlines() if " = " in line}
    assert lines["docker_api.tcp"].endswith(f'= "127.0.0.1:2376"  ({toml}: docker_api.tcp)')
    assert lines["docker_api.tcp_cert"].endswith(
        f'= "/tls/front.pem"  ({toml}: docker_api.tcp_cert)'
    )
    assert lines["listen.tcp"].endswith("= (unset)  (default)")


# --- errors: every one names the file or variable, and the key -----------------------

# (TOML text, the key named, words of the message)
TOML_ERRORS = [
    (
        "[enigne]\n",
        "enigne",
        (
            "unknown key (known here: ca, docker_api, engine, fabric, golang, images, instance, "
            "listen, log, policy, runtime, shutdown, swarm)"
        ),
    ),
    ("instanse = 'x'\n", "instanse", "unknown key"),
    (
        "[engine]\nendpiont = 'unix:///x'\n",
        "engine.endpiont",
        "api_version, backend, build_cache_size, build_limit, endpoint, engine_limit, tls",
    ),
    (
        "[runtime.logging]\nlevels = 'debug'\n",
        "runtime.logging.levels",
        "known here: format, level, shim",
    ),
    ("[engine.tls]\ncacert = '/ca'\n", "engine.tls.cacert", "known here: ca, cert, key"),
    (
        "[engine]\nengine_limit = 'x'\n",
        "engine.engine_limit",
        "must be a whole number >= 1, got 'x'",
    ),
    ("[engine]\nengine_limit = 0\n", "engine.engine_limit", "must be a whole number >= 1, got 0"),
    ("[engine]\nbuild_limit = 1.5\n", "engine.build_limit", "must be a whole number >= 1, got 1.5"),
    (
        "[engine]\nbuild_limit = true\n",
        "engine.build_limit",
        "must be a whole number >= 1, got True",
    ),
    (
        "[engine]\nendpoint = 'docker.sock'\n",
        "engine.endpoint",
        "must be unix:///path, tcp://host:port or https://host:port",
    ),
    ("[engine]\nendpoint = 'ftp://host:21'\n", "engine.endpoint", "got 'ftp://host:21'"),
    ("[engine]\nendpoint = 'tcp://'\n", "engine.endpoint", "got 'tcp://'"),
    (
        "[engine]\napi_version = '2'\n",
        "engine.api_version",
        "must be an API version from 1.12 to 1.51, got '2'",
    ),
    ("[engine]\napi_version = '1.99'\n", "engine.api_version", "got '1.99'"),
    ("[engine]\ntls = '/ca.pem'\n", "engine.tls", "must be a table, got '/ca.pem'"),
    ("[engine.tls]\nca = 3\n", "engine.tls.ca", "must be a file path, got 3"),
    ("engine = 3\n", "engine", "must be a table, got 3"),
    ("[listen]\nsocket = ''\n", "listen.socket", "must be a file path, got ''"),
    ("[listen]\nsocket_mode = '0999'\n", "listen.socket_mode", "permission bits"),
    ("[listen]\nsocket_mode = 0o1777\n", "listen.socket_mode", "got 1023"),
    ("[listen]\nsocket_mode = true\n", "listen.socket_mode", "got True"),
    ("[listen]\ntcp = '7060'\n", "listen.tcp", "must be host:port, got '7060'"),
    ("[listen]\ntcp = 'host:70000'\n", "listen.tcp", "got 'host:70000'"),
    (
        "[listen]\ntcp = 'host:7060'\n",
        "listen.tcp",
        "needs mutual TLS: set listen.tcp_ca, listen.tcp_cert, listen.tcp_key",
    ),
    ("[listen]\ntcp = 'h:1'\ntcp_ca = '/a'\ntcp_cert = '/b'\n", "listen.tcp", "set listen.tcp_key"),
    (
        "[docker_api]\ntcp = '127.0.0.1:2376'\n",
        "docker_api.tcp",
        (
            "serving the Docker-API front on TCP needs mutual TLS: "
            "set docker_api.tcp_ca, docker_api.tcp_cert, docker_api.tcp_key"
        ),
    ),
    (
        "[docker_api]\ntcp = 'h:2376'\ntcp_cert = '/b'\n",
        "docker_api.tcp",
        "needs mutual TLS: set docker_api.tcp_ca, docker_api.tcp_key",
    ),
    (
        "[docker_api]\ntcp = 'h:2376'\ntcp_ca = '/a'\ntcp_key = '/c'\n",
        "docker_api.tcp",
        "needs mutual TLS: set docker_api.tcp_cert",
    ),
    ("[docker_api]\ntcp = 'h:2376'\ntcp_ca = 3\n", "docker_api.tcp_ca", "must be a file path"),
    ("[docker_api]\ntcp = '2376'\n", "docker_api.tcp", "must be host:port, got '2376'"),
    ("[docker_api]\ntcp = 'h:0'\n", "docker_api.tcp", "must be host:port, got 'h:0'"),
    (
        "[docker_api]\ntls = {}\n",
        "docker_api.tls",
        "known here: socket, socket_group, socket_mode, tcp, tcp_ca, tcp_cert, tcp_key",
    ),
    (
        (
            "[listen]\ntcp = 'h:7060'\ntcp_ca = '/a'\ntcp_cert = '/b'\ntcp_key = '/c'\n"
            "[docker_api]\ntcp = 'h:7060'\ntcp_ca = '/a'\ntcp_cert = '/b'\ntcp_key = '/c'\n"
        ),
        "docker_api.tcp",
        "must not be the control API's listen.tcp",
    ),
    (
        "[runtime]\nstartup_timeout = -1\n",
        "runtime.startup_timeout",
        "must be a number >= 0, got -1",
    ),
    ("[runtime]\nstartup_timeout = '300s'\n", "runtime.startup_timeout", "got '300s'"),
    ("[runtime]\nstartup_timeout = nan\n", "runtime.startup_timeout", "got nan"),
    ("[runtime]\nlayout = '2.5'\n", "runtime.layout", "must be one of 2.x, 1.4, got '2.5'"),
    (
        "[runtime]\nattach_stdout = 'yes'\n",
        "runtime.attach_stdout",
        "must be true or false, got 'yes'",
    ),
    ("[runtime]\noutput_lines = -1\n", "runtime.output_lines", "must be a whole number >= 0"),
    ("[runtime]\nfabric_version = '2.5 LTS'\n", "runtime.fabric_version", "must be a version"),
    ("[runtime]\npeer_id = 7\n", "runtime.peer_id", "must be a string, got 7"),
    ("[runtime]\nlogging = 'debug'\n", "runtime.logging", "must be a table"),
    ("[runtime]\ninstance = 'x'\n", "runtime.instance", "unknown key"),
    (
        "[runtime.host_config]\nPrivileged = true\n",
        "runtime.host_config.Privileged",
        "not a key Fabric supports",
    ),
    ("[runtime.host_config]\nMemory = -1\n", "runtime.host_config.Memory", "must not be negative"),
    (
        "[runtime.host_config]\nDns = '8.8.8.8'\n",
        "runtime.host_config.Dns",
        "must be a list of strings",
    ),
    ("[runtime]\nhost_config = 1\n", "runtime.host_config", "must be a table, got 1"),
    (
        "[images]\ngolang_builder = 'has space'\n",
        "images.golang_builder",
        "not an image reference: 'has space'",
    ),
    ("[images]\nnode_runtime = 1\n", "images.node_runtime", "must be a string, got 1"),
    ("[ca]\ncert = '/ca.pem'\n", "ca.cert", "needs both [ca] cert and key"),
    ("[ca]\nkey = '/ca.key'\n", "ca.key", "needs both [ca] cert and key"),
    ("[policy]\nmemory = -1\n", "policy.memory", "must be a whole number >= 0"),
    ("[policy]\ncpus = 'two'\n", "policy.cpus", "must be a number >= 0, got 'two'"),
    (
        "[policy]\nno_new_privileges = 1\n",
        "policy.no_new_privileges",
        "must be true or false, got 1",
    ),
    ("[policy]\nmax_package_size = 0\n", "policy.max_package_size", "must be a whole number >= 1"),
    ("[shutdown]\ngrace = -0.5\n", "shutdown.grace", "got -0.5"),
    ("[shutdown]\nstop_timeout = 1.5\n", "shutdown.stop_timeout", "got 1.5"),
    ("[log]\nformat = 'text'\n", "log.format", "must be one of console, json, got 'text'"),
    ("[log]\nlevel = 'verbose'\n", "log.level", "must be a log level"),
    ("instance = 'two words'\n", "instance", "must be a label value"),
    ("[fabric]\ncore_yaml = 1\n", "fabric.core_yaml", "must be a file path, got 1"),
]


@pytest.mark.parametrize(("text", "key", "message"), TOML_ERRORS)
def test_toml_errors_name_the_file_and_the_key(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    path = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path, {})
    assert (caught.value.where, caught.value.key) == (str(path), key)
    assert str(caught.value).startswith(f"{path}: {key}: ")
    assert message in str(caught.value)


def test_error_message_reads_as_documented(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[engine]\nengine_limit = 'x'\n")
    with pytest.raises(ConfigError) as caught:
        load(path, {})
    assert str(caught.value) == f"{path}: engine.engine_limit: must be a whole number >= 1, got 'x'"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[engine\n", "not valid TOML"),
        (b"[engine]\nendpoint = 'a'\n[engine]\n", "not valid TOML"),
        (b"\xff\xfe = 1\n", "not valid TOML"),
    ],
)
def test_unreadable_toml_names_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "ccdaemon.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load(path, {})
    assert caught.value.key is None
    assert str(caught.value).startswith(f"{path}: {message}")


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match="cannot read the configuration") as caught:
        load(path, {})
    assert caught.value.where == str(path)


def test_missing_file_named_by_ccdaemon_config_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match="cannot read") as caught:
        load(None, {"CCDAEMON_CONFIG": str(path)})
    assert caught.value.where == str(path)


def test_ccdaemon_config_names_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[engine]\nbuild_limit = 3\n")
    config = load(None, {"CCDAEMON_CONFIG": str(path)})
    assert config.engine.build_limit == 3
    assert config.source == path


def test_an_explicit_path_wins_over_ccdaemon_config(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "")
    assert load(path, {"CCDAEMON_CONFIG": "/nowhere.toml"}).source == path


# --- the environment ----------------------------------------------------------------


def test_env_name() -> None:
    assert env_name("engine.engine_limit") == "CCDAEMON_ENGINE_ENGINE_LIMIT"
    assert env_name("runtime.logging.level") == "CCDAEMON_RUNTIME_LOGGING_LEVEL"
    assert env_name("instance") == "CCDAEMON_INSTANCE"


def _get(config: Config, attribute: str) -> object:
    value: object = config
    for name in attribute.split("."):
        value = getattr(value, name)
    return value


# (variable, its text, the Config attribute, the value it gets)
ENV = [
    ("CCDAEMON_ENGINE_ENDPOINT", "tcp://h:2375", "engine.endpoint", "tcp://h:2375"),
    ("CCDAEMON_ENGINE_ENDPOINT", "https://[::1]", "engine.endpoint", "https://[::1]"),
    ("CCDAEMON_ENGINE_ENGINE_LIMIT", "16", "engine.engine_limit", 16),
    ("CCDAEMON_ENGINE_API_VERSION", "1.41", "engine.api_version", "1.41"),
    ("CCDAEMON_ENGINE_TLS_CA", "/ca.pem", "engine.tls", TLSFiles(ca=Path("/ca.pem"))),
    ("CCDAEMON_RUNTIME_PEER_ID", "peer1", "runtime.peer_id", "peer1"),
    ("CCDAEMON_RUNTIME_STARTUP_TIMEOUT", "60.5", "runtime.startup_timeout", 60.5),
    ("CCDAEMON_RUNTIME_LAYOUT", "1.4", "runtime.layout", "1.4"),
    ("CCDAEMON_RUNTIME_LOGGING_LEVEL", "debug", "runtime.logging.level", "debug"),
    ("CCDAEMON_LISTEN_SOCKET", "/run/c.sock", "listen.socket", Path("/run/c.sock")),
    ("CCDAEMON_SOCKET", "/run/c.sock", "listen.socket", Path("/run/c.sock")),
    ("CCDAEMON_LISTEN_SOCKET_MODE", "0600", "listen.socket_mode", 0o600),
    ("CCDAEMON_LISTEN_SOCKET_GROUP", "fabric", "listen.socket_group", "fabric"),
    ("CCDAEMON_POLICY_CPUS", "2", "policy.cpus", 2.0),
    ("CCDAEMON_SHUTDOWN_STOP_CHAINCODES", "1", "shutdown.stop_chaincodes", True),
    ("CCDAEMON_SHUTDOWN_STOP_CHAINCODES", "TRUE", "shutdown.stop_chaincodes", True),
    ("CCDAEMON_SHUTDOWN_STOP_CHAINCODES", "yes", "shutdown.stop_chaincodes", True),
    ("CCDAEMON_POLICY_NO_NEW_PRIVILEGES", "0", "policy.no_new_privileges", False),
    ("CCDAEMON_POLICY_NO_NEW_PRIVILEGES", "false", "policy.no_new_privileges", False),
    ("CCDAEMON_POLICY_NO_NEW_PRIVILEGES", "No", "policy.no_new_privileges", False),
    ("CCDAEMON_LOG_FORMAT", "json", "log.format", "json"),
    ("CCDAEMON_LOG_LEVEL", "debug", "log.level", "DEBUG"),
    ("CCDAEMON_INSTANCE", "peer9", "instance", "peer9"),
    ("CCDAEMON_ENGINE_BACKEND", "swarm", "engine.backend", "swarm"),
    ("CCDAEMON_SWARM_CONSTRAINTS", "a==1, b!=2", "swarm.constraints", ("a==1", "b!=2")),
    ("CCDAEMON_SWARM_REGISTRY", "127.0.0.1:5000", "swarm.registry", "127.0.0.1:5000"),
    ("CCDAEMON_INSTANCE", "peer9", "runtime.instance", "peer9"),
    (
        "DOCKER_HOST",
        "unix:///run/podman/podman.sock",
        "engine.endpoint",
        "unix:///run/podman/podman.sock",
    ),
]


@pytest.mark.parametrize(("name", "text", "attribute", "value"), ENV)
def test_environment_sets_each_key(name: str, text: str, attribute: str, value: object) -> None:
    assert _get(load(None, {name: text}), attribute) == value


# (variable, its text, words of the message)
ENV_ERRORS = [
    ("CCDAEMON_ENGINE_ENGINE_LIMIT", "x", "must be a whole number >= 1, got 'x'"),
    ("CCDAEMON_ENGINE_ENGINE_LIMIT", "0", "must be a whole number >= 1, got '0'"),
    ("CCDAEMON_ENGINE_ENGINE_LIMIT", "", "got ''"),
    ("CCDAEMON_RUNTIME_STARTUP_TIMEOUT", "5m", "must be a number >= 0, got '5m'"),
    ("CCDAEMON_RUNTIME_STARTUP_TIMEOUT", "-1", "got '-1'"),
    ("CCDAEMON_RUNTIME_STARTUP_TIMEOUT", "inf", "got 'inf'"),
    ("CCDAEMON_SHUTDOWN_STOP_CHAINCODES", "on", "must be one of 1, true, yes, 0, false, no"),
    ("CCDAEMON_LISTEN_SOCKET_MODE", "rw-rw----", "permission bits"),
    ("CCDAEMON_LISTEN_SOCKET", "", "must be a file path"),
    ("CCDAEMON_LOG_FORMAT", "JSON", "must be one of console, json"),
    ("CCDAEMON_ENGINE_ENDPOINT", "localhost", "must be unix:///path"),
    ("DOCKER_HOST", "ssh://me@host", "got 'ssh://me@host'"),
    ("CCDAEMON_ENGINE_BACKEND", "kubernetes", "must be one of docker, swarm"),
    ("CCDAEMON_SWARM_REGISTRY", "https://r.example.com", "must be host:port[/prefix]"),
    ("CCDAEMON_SWARM_POLL_INTERVAL", "0", "must be a number >= 0.05"),
]


@pytest.mark.parametrize(("name", "text", "message"), ENV_ERRORS)
def test_environment_errors_name_the_variable(name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(None, {name: text})
    assert (caught.value.where, caught.value.key) == ("environment", name)
    assert str(caught.value).startswith(f"environment: {name}: ")
    assert message in str(caught.value)


def test_environment_empty_unsets_an_optional_key(tmp_path: Path) -> None:
    text = '[listen]\nsocket_group = "fabric"\n[engine]\napi_version = "1.41"\n'
    environ = {"CCDAEMON_LISTEN_SOCKET_GROUP": "", "CCDAEMON_ENGINE_API_VERSION": ""}
    config = load_text(tmp_path, text, environ)
    assert config.listen.socket_group is None
    assert config.engine.api_version is None


def test_socket_alias_must_agree_with_the_full_name() -> None:
    same = {"CCDAEMON_SOCKET": "/a.sock", "CCDAEMON_LISTEN_SOCKET": "/a.sock"}
    assert load(None, same).listen.socket == Path("/a.sock")
    with pytest.raises(ConfigError, match="CCDAEMON_SOCKET: disagrees with CCDAEMON_LISTEN_SOCKET"):
        load(None, {"CCDAEMON_SOCKET": "/a.sock", "CCDAEMON_LISTEN_SOCKET": "/b.sock"})


def test_environment_paths_stay_relative_to_the_working_directory() -> None:
    config = load(None, {"CCDAEMON_CA_CERT": "ca.pem", "CCDAEMON_CA_KEY": "ca.key"})
    assert (config.ca_cert, config.ca_key) == (Path("ca.pem"), Path("ca.key"))


# --- precedence ---------------------------------------------------------------------


def test_core_yaml_fills_what_the_toml_leaves(tmp_path: Path) -> None:
    core_yaml = write_core_yaml(tmp_path)
    config = load_text(tmp_path, f'[fabric]\ncore_yaml = "{core_yaml}"\n')
    assert config.core_yaml == core_yaml
    assert config.runtime.peer_id == "jdoe"
    assert config.runtime.network_id == "dev"
    assert config.runtime.host_config == SAMPLE_VALUES["runtime.host_config"]
    assert config.images.golang_builder == "hyperledger/fabric-ccenv:2.5"
    assert config.images.java_builder == "hyperledger/fabric-javaenv:2.5"
    assert config.runtime.startup_timeout == 300.0


def test_core_yaml_path_relative_to_the_toml(tmp_path: Path) -> None:
    (tmp_path / "fabric").mkdir()
    core_yaml = write_core_yaml(tmp_path / "fabric")
    assert load_text(tmp_path, '[fabric]\ncore_yaml = "fabric/core.yaml"\n').core_yaml == core_yaml


def test_ccdaemon_core_yaml_names_the_file_without_toml(tmp_path: Path) -> None:
    core_yaml = write_core_yaml(tmp_path)
    for name in ("CCDAEMON_CORE_YAML", "CCDAEMON_FABRIC_CORE_YAML"):
        config = load(None, {name: str(core_yaml)})
        assert (config.core_yaml, config.runtime.peer_id) == (core_yaml, "jdoe")


def test_environment_core_yaml_wins_over_the_toml(tmp_path: Path) -> None:
    core_yaml = write_core_yaml(tmp_path)
    config = load_text(
        tmp_path, '[fabric]\ncore_yaml = "/nowhere.yaml"\n', {"CCDAEMON_CORE_YAML": str(core_yaml)}
    )
    assert config.core_yaml == core_yaml


def test_toml_wins_over_core_yaml_and_environment_over_both(tmp_path: Path) -> None:
    core_yaml = write_core_yaml(tmp_path)
    text = (
        f'[fabric]\ncore_yaml = "{core_yaml}"\n'
        '[runtime]\npeer_id = "from-toml"\nnetwork_id = "toml-net"\n'
        '[runtime.logging]\nlevel = "debug"\n'
    )
    config = load_text(tmp_path, text, {"CCDAEMON_RUNTIME_PEER_ID": "from-env"})
    assert config.runtime.peer_id == "from-env"  # env > TOML > core.yaml
    assert config.runtime.network_id == "toml-net"  # TOML > core.yaml
    assert config.runtime.logging.level == "debug"  # TOML > core.yaml
    assert config.runtime.logging.shim == "warning"  # core.yaml, untouched
    assert config.runtime.startup_timeout == 300.0  # core.yaml > default


@pytest.mark.parametrize(
    ("toml", "environ", "endpoint"),
    [
        ("", {}, "unix:///var/run/docker.sock"),
        ("", {"DOCKER_HOST": "tcp://docker:2375"}, "unix:///core.sock"),
        (
            '[engine]\nendpoint = "unix:///toml.sock"',
            {"DOCKER_HOST": "tcp://d:1"},
            "unix:///toml.sock",
        ),
        (
            '[engine]\nendpoint = "unix:///toml.sock"',
            {"CCDAEMON_ENGINE_ENDPOINT": "/env.sock"},
            "/env.sock",
        ),
    ],
)
def test_endpoint_precedence(
    tmp_path: Path, toml: str, environ: dict[str, str], endpoint: str
) -> None:
    if environ:  # every case but the first imports a core.yaml naming /core.sock
        core = "vm:\n  endpoint: unix:///core.sock\n"
        environ = {**environ, "CCDAEMON_CORE_YAML": str(write_core_yaml(tmp_path, core))}
    assert load_text(tmp_path, toml, environ).engine.endpoint == endpoint


def test_docker_host_is_the_default_endpoint() -> None:
    assert load(None, {"DOCKER_HOST": "tcp://docker:2375"}).engine.endpoint == "tcp://docker:2375"


def test_toml_host_config_keys_replace_core_yamls_one_by_one(tmp_path: Path) -> None:
    core_yaml = write_core_yaml(tmp_path)
    text = (
        f'[fabric]\ncore_yaml = "{core_yaml}"\n'
        '[runtime.host_config]\nMemory = 1024\nCapDrop = ["ALL"]\n'
    )
    host_config = load_text(tmp_path, text).runtime.host_config
    assert host_config == HostConfig(
        network_mode="host",
        log_config=DockerLogConfig("json-file", (("max-size", "50m"), ("max-file", "5"))),
        memory=1024,
        cap_drop=("ALL",),
    )


def test_toml_host_config_without_core_yaml(tmp_path: Path) -> None:
    host_config = load_text(tmp_path, '[runtime.host_config]\nnetworkmode = "bridge"\n')
    assert host_config.runtime.host_config == HostConfig(network_mode="bridge")


def _core_yaml_with_tls(directory: Path) -> Path:
    text = (
        "vm:\n  endpoint: tcp://docker:2376\n  docker:\n    tls:\n      enabled: true\n"
        "      ca: {file: ca.pem}\n      cert: {file: cert.pem}\n      key: {file: key.pem}\n"
    )
    return write_core_yaml(directory, text)


def test_core_yaml_tls_is_imported(tmp_path: Path) -> None:
    config = load(None, {"CCDAEMON_CORE_YAML": str(_core_yaml_with_tls(tmp_path))})
    assert config.engine.tls == TLSFiles(
        tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    )


@pytest.mark.parametrize(
    ("toml", "environ", "tls"),
    [
        # The TOML's table replaces core.yaml's TLS as a whole...
        ('ca = "/own/ca.pem"', {}, TLSFiles(ca=Path("/own/ca.pem"))),
        # ...so an empty one turns it off,
        ("", {}, None),
        # and each variable replaces one file.
        ("", {"CCDAEMON_ENGINE_TLS_CA": "/env/ca.pem"}, TLSFiles(ca=Path("/env/ca.pem"))),
    ],
)
def test_toml_tls_table_replaces_core_yamls(
    tmp_path: Path, toml: str, environ: dict[str, str], tls: TLSFiles | None
) -> None:
    core_yaml = _core_yaml_with_tls(tmp_path)
    text = f'[fabric]\ncore_yaml = "{core_yaml}"\n[engine.tls]\n{toml}\n'
    assert load_text(tmp_path, text, environ).engine.tls == tls


def test_environment_tls_file_over_core_yamls(tmp_path: Path) -> None:
    environ = {
        "CCDAEMON_CORE_YAML": str(_core_yaml_with_tls(tmp_path)),
        "CCDAEMON_ENGINE_TLS_KEY": "/env/key.pem",
    }
    config = load(None, environ)
    assert config.engine.tls == TLSFiles(
        tmp_path / "ca.pem", tmp_path / "cert.pem", Path("/env/key.pem")
    )


def test_fabric_version_from_the_toml_names_core_yamls_images(tmp_path: Path) -> None:
    core_yaml = write_core_yaml(tmp_path)
    text = f'[fabric]\ncore_yaml = "{core_yaml}"\n[runtime]\nfabric_version = "2.4.9"\n'
    config = load_text(tmp_path, text)
    assert config.images.node_runtime == "hyperledger/fabric-nodeenv:2.4"
    assert config.runtime.fabric_version == "2.4.9"


def test_core_yaml_errors_name_the_core_yaml(tmp_path: Path) -> None:
    core_yaml = write_core_yaml(tmp_path, "peer:\n  id: [a, b]\n")
    with pytest.raises(ConfigError) as caught:
        load(None, {"CCDAEMON_CORE_YAML": str(core_yaml)})
    assert (caught.value.where, caught.value.key) == (str(core_yaml), "peer.id")


def test_missing_core_yaml_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the peer's core") as caught:
        load_text(tmp_path, '[fabric]\ncore_yaml = "absent.yaml"\n')
    assert caught.value.where == str(tmp_path / "absent.yaml")


def test_image_refused_later_is_reported_where_core_yaml_wrote_it(tmp_path: Path) -> None:
    core_yaml = write_core_yaml(tmp_path, "chaincode:\n  builder: 'not an image'\n")
    with pytest.raises(ConfigError) as caught:
        load(None, {"CCDAEMON_CORE_YAML": str(core_yaml)})
    assert str(caught.value) == (
        f"{core_yaml}: chaincode.builder: not an image reference: 'not an image'"
    )


def test_image_refused_from_the_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^environment: CCDAEMON_IMAGES_JAVA_RUNTIME: "):
        load(None, {"CCDAEMON_IMAGES_JAVA_RUNTIME": "-bad"})


# --- the container policy -----------------------------------------------------------

BASE = {"NetworkMode": "host", "Memory": 0}

# (policy, HostConfig JSON in, HostConfig JSON out)
POLICY = [
    (
        PolicyConfig(),
        {"NetworkMode": "host"},
        {
            "NetworkMode": "host",
            "Memory": 2147483648,
            "PidsLimit": 1024,
            "SecurityOpt": ["no-new-privileges"],
        },
    ),
    (
        PolicyConfig(),
        {"NetworkMode": "host", "Memory": 1024, "SecurityOpt": ["label=disable"]},
        {
            "NetworkMode": "host",
            "Memory": 1024,
            "PidsLimit": 1024,
            "SecurityOpt": ["label=disable", "no-new-privileges"],
        },
    ),
    (
        PolicyConfig(),
        {"SecurityOpt": ["no-new-privileges:true"]},
        {"SecurityOpt": ["no-new-privileges:true"], "Memory": 2147483648, "PidsLimit": 1024},
    ),
    (
        PolicyConfig(cpus=1.5),
        {"NetworkMode": "host"},
        {
            "NetworkMode": "host",
            "Memory": 2147483648,
            "NanoCpus": 1500000000,
            "PidsLimit": 1024,
            "SecurityOpt": ["no-new-privileges"],
        },
    ),
    (
        PolicyConfig(cpus=1.5, memory=0, pids_limit=0, no_new_privileges=False),
        {"CpuQuota": 50000, "CpuPeriod": 100000},
        {"CpuQuota": 50000, "CpuPeriod": 100000},
    ),
    (PolicyConfig(memory=0, pids_limit=0, no_new_privileges=False), BASE, BASE),
]


@pytest.mark.parametrize(("policy", "given", "expected"), POLICY)
def test_policy_adds_only_what_core_yaml_left_unset(
    policy: PolicyConfig, given: dict[str, Any], expected: dict[str, Any]
) -> None:
    before = {k: list(v) if isinstance(v, list) else v for k, v in given.items()}
    assert policy.apply(given) == expected
    assert given == before  # the caller's HostConfig is not touched


def test_policy_on_fabrics_sample_host_config() -> None:
    sample = SAMPLE_VALUES["runtime.host_config"]
    assert isinstance(sample, HostConfig)
    applied = PolicyConfig().apply(sample.to_engine())
    assert applied["Memory"] == 2147483648
    assert applied["LogConfig"]["Type"] == "json-file"
    assert applied["SecurityOpt"] == ["no-new-privileges"]


def test_check_config_says_which_endpoint_won_and_where_it_came_from(tmp_path: Path) -> None:
    """The peer's core.yaml keeps the peer off the engine; ccdaemon's own key gives its engine.

    ``--check-config`` names the endpoint in force and its source, and lists every key
    (images, hostConfig, MSP id, logging, policy among them) with where it was set.
    """
    core_yaml = write_core_yaml(
        tmp_path,
        CORE_YAML.replace(
            "endpoint: unix:///var/run/docker.sock", "endpoint: unix:///nonexistent/docker.sock"
        ),
    )
    only_core = configview.describe(load(None, {"CCDAEMON_CORE_YAML": str(core_yaml)}))
    assert f"unix:///nonexistent/docker.sock, from {core_yaml}: vm.endpoint" in only_core

    toml = write_toml(
        tmp_path,
        f'[fabric]\ncore_yaml = "{core_yaml}"\n[engine]\nendpoint = "unix:///run/engine.sock"\n',
    )
    shown = configview.describe(load(toml, {}))
    assert f"engine        unix:///run/engine.sock, from {toml}: engine.endpoint" in shown
    lines = {line.split(" = ")[0].strip(): line for line in shown.splitlines() if " = " in line}
    assert set(lines) == set(keys())
    assert lines["images.golang_builder"].endswith(f"({core_yaml}: chaincode.builder)")
    assert '"hyperledger/fabric-ccenv:2.5"' in lines["images.golang_builder"]
    assert "runtime.mspid" in lines
    assert lines["policy.memory"].endswith("(default)")
    assert "runtime.logging.level" in lines
    assert '"NetworkMode": "host"' in lines["runtime.host_config"]
    assert "PidsLimit" in shown  # the policy's HostConfig as chaincodes get it

    masked = configview.describe(
        load(None, {"CCDAEMON_GOLANG_GOPROXY": "https://user:secret@proxy.example"})
    )
    assert "secret" not in masked
    assert "https://***@proxy.example" in masked
