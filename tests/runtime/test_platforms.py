"""Fabric 2.5's platforms: images, build scripts, env, Dockerfile and launch args per type."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ccdaemon.engine import archive, images
from ccdaemon.runtime.errors import InvalidRequest, UnknownChaincodeType
from ccdaemon.runtime.platforms import (
    STATIC_LDFLAGS,
    GolangBuild,
    PlatformImages,
    check_go_path,
    platform_for,
    quote_label_value,
)

if TYPE_CHECKING:
    import aiodocker

    from ccdaemon.engine import Engine
    from tests.conftest import Made

# The Go script as /work/shared/reference/fabric-launcher.md section 2.5 gives it
# (golang/platform.go@release-2.5), without its explanatory comment after %[3]s.
REFERENCE_GO_SCRIPT = """
set -e
%[3]s
if [ -f "/chaincode/input/src/go.mod" ] && [ -d "/chaincode/input/src/vendor" ]; then
    cd /chaincode/input/src
    GO111MODULE=on go build -v -mod=vendor %[1]s -o /chaincode/output/chaincode %[2]s
elif [ -f "/chaincode/input/src/go.mod" ]; then
    cd /chaincode/input/src
    GO111MODULE=on go build -v -mod=readonly %[1]s -o /chaincode/output/chaincode %[2]s
elif [ -f "/chaincode/input/src/%[2]s/go.mod" ] && [ -d "/chaincode/input/src/%[2]s/vendor" ]; then
    cd /chaincode/input/src/%[2]s
    GO111MODULE=on go build -v -mod=vendor %[1]s -o /chaincode/output/chaincode .
elif [ -f "/chaincode/input/src/%[2]s/go.mod" ]; then
    cd /chaincode/input/src/%[2]s
    GO111MODULE=on go build -v -mod=readonly %[1]s -o /chaincode/output/chaincode .
else
    GO111MODULE=off GOPATH=/chaincode/input:$GOPATH go build -v %[1]s -o /chaincode/output/chaincode %[2]s
fi
echo Done!
"""  # noqa: E501 -- Fabric's text as it is

# node/platform.go@release-2.5 buildScript, tabs as in the source (the reference's
# table condenses it to one line).
REFERENCE_NODE_SCRIPT = (
    "\nset -e\nif [ -x /chaincode/build.sh ]; then\n\t/chaincode/build.sh\nelse\n"
    "\tcp -R /chaincode/input/src/. /chaincode/output && cd /chaincode/output"
    " && npm install --production\nfi\n"
)

# dockercontroller.go@release-2.5 nodeStartScript with %[1]s = peer0:7052.
REFERENCE_NODE_START = (
    "\nset -e\nif [ -x /chaincode/start.sh ]; then\n"
    "\t/chaincode/start.sh --peer.address peer0:7052\nelse\n"
    "\tcd /usr/local/src\n\tnpm start -- --peer.address peer0:7052\nfi\n"
)

# platforms.go@release-2.5 Registry.GenerateDockerfile, joined with "\n".
REFERENCE_DOCKERFILE = (
    "FROM <runtime>\n"
    "ADD binpackage.tar <dir>\n"
    'LABEL org.hyperledger.fabric.chaincode.type="<TYPE>" \\\n'
    '      org.hyperledger.fabric.version="<Version>"\n'
    "ENV CORE_CHAINCODE_BUILDLEVEL=<Version>"
)

CCID = "mycc_1.0:6a3b0d1c5ad8b0ff7a1a6d1b2d4e0c9f3e5a7b1c2d3e4f5a6b7c8d9e0f1a2b3c"

INJECTIONS = [
    "x; rm -rf /",
    "x && id",
    "x || id",
    "x | id",
    "$(id)",
    "`id`",
    "${HOME}",
    "x y",
    "x\ty",
    "x\nid",
    'x"; id; "',
    "x'; id; '",
    "../../etc",
    "a/../b",
    "..",
    "-toolexec=/bin/sh",
    "/etc/passwd",
    "a//b",
    "a/",
    "x*",
    "x?",
    "x[a]",
    "x>y",
    "x<y",
    "x&",
    "x\\y",
    "~root",
    "x#y",
    "x!y",
    "x\x00y",
    "café/cc",
]


def reference_go(ldflags: str, path: str) -> str:
    """The reference Go script with its three placeholders filled in."""
    return REFERENCE_GO_SCRIPT.replace("%[1]s", ldflags).replace("%[2]s", path).replace("%[3]s", "")


def test_golang_defaults_are_the_local_stand_ins_built_as_fabric_builds() -> None:
    """Go builds in goenv and runs on baseos, ADDs to /usr/local/bin; Fabric's flags and proxy."""
    golang = platform_for("golang")
    assert golang.type == "GOLANG"
    assert golang.builder_image == "localhost/ccdaemon/goenv:1.24"
    assert golang.runtime_image == "localhost/ccdaemon/baseos:1"
    assert golang.binpackage_dir == "/usr/local/bin"
    assert golang.build_env == ("GOPROXY=https://proxy.golang.org",)
    assert golang.ldflags == STATIC_LDFLAGS


def test_go_link_flags_and_proxy_are_settings() -> None:
    """``ldflags`` replaces Fabric's choice ("" passes none); GOPROXY and GOSUMDB as set."""
    golang = GolangBuild(ldflags="-s -w", goproxy="off", gosumdb="sum.example")
    built = platform_for("golang", golang=golang)
    assert built.ldflags == '-ldflags "-s -w"'
    assert built.build_env == ("GOPROXY=off", "GOSUMDB=sum.example")
    assert '-mod=vendor -ldflags "-s -w" -o' in built.build_script("")
    assert platform_for("golang", golang=GolangBuild(ldflags="")).ldflags == ""


@pytest.mark.parametrize("flags", ['-X "a=b"', "-X a=$HOME", "-X a=`id`", "-s\\n", "-s\n-w"])
def test_go_link_flags_that_the_shell_would_expand_are_refused(flags: str) -> None:
    """The flags go inside double quotes in a shell script: nothing there may expand."""
    with pytest.raises(InvalidRequest) as refused:
        GolangBuild(ldflags=flags)
    assert refused.value.field == "golang.ldflags"


def test_node_and_java_keep_fabrics_images_and_directories() -> None:
    """Node and Java build and run in Fabric's nodeenv and javaenv, with no build env."""
    node, java = platform_for("node"), platform_for("java")
    assert (node.type, node.builder_image, node.runtime_image, node.binpackage_dir) == (
        "NODE",
        "hyperledger/fabric-nodeenv:2.5",
        "hyperledger/fabric-nodeenv:2.5",
        "/usr/local/src",
    )
    assert (java.type, java.builder_image, java.runtime_image, java.binpackage_dir) == (
        "JAVA",
        "hyperledger/fabric-javaenv:2.5",
        "hyperledger/fabric-javaenv:2.5",
        "/root/chaincode-java/chaincode",
    )
    assert node.build_env == java.build_env == ()


def test_configured_images_are_used() -> None:
    """Every builder and runtime image comes from PlatformImages."""
    config = PlatformImages(
        golang_builder="hyperledger/fabric-ccenv:2.5",
        golang_runtime="hyperledger/fabric-baseos:2.5",
        node_builder="reg:5000/nb:1",
        node_runtime="reg:5000/nr:1",
        java_builder="jb@sha256:" + "0" * 64,
        java_runtime="jr",
    )
    got = {
        t: (platform_for(t, config).builder_image, platform_for(t, config).runtime_image)
        for t in ("golang", "node", "java")
    }
    assert got == {
        "golang": ("hyperledger/fabric-ccenv:2.5", "hyperledger/fabric-baseos:2.5"),
        "node": ("reg:5000/nb:1", "reg:5000/nr:1"),
        "java": ("jb@sha256:" + "0" * 64, "jr"),
    }


@pytest.mark.parametrize("bad", ["", "img\nRUN id", "img name", 'img"', "-img"])
def test_image_names_that_could_break_the_dockerfile_are_refused(bad: str) -> None:
    """A configured image that is not a plain reference is refused, naming the field."""
    with pytest.raises(InvalidRequest) as caught:
        PlatformImages(golang_runtime=bad)
    assert caught.value.field == "images.golang_runtime"


def test_type_is_case_insensitive() -> None:
    """Lifecycle writes ``golang``; Fabric upper-cases it, so every case finds the platform."""
    assert platform_for("GOLANG") == platform_for("golang") == platform_for("GoLang")


@pytest.mark.parametrize("bad", ["car", "CAR", "python", "", "golang "])
def test_unknown_type_is_refused_listing_the_supported_ones(bad: str) -> None:
    """CAR (gone in 2.x) and anything else raise UnknownChaincodeType on field ``type``."""
    with pytest.raises(UnknownChaincodeType) as caught:
        platform_for(bad)
    assert caught.value.field == "type"
    assert "golang, java, node" in str(caught.value)


def test_go_script_is_fabrics_with_dynamic_link_ldflags() -> None:
    """dynamic_link gives Fabric 2.5's script with empty ldflags and the package path."""
    path = "github.com/hyperledger/fabric-samples/chaincode/abstore/go"
    golang = platform_for("golang", golang=GolangBuild(dynamic_link=True))
    assert golang.build_script(path) == reference_go("", path)


def test_go_script_with_static_link_uses_fabrics_default_ldflags() -> None:
    """By default, Fabric's static-link flags in all five branches."""
    golang = platform_for("golang")
    script = golang.build_script("example.com/cc")
    assert script == reference_go(
        "-ldflags \"-linkmode external -extldflags '-static'\"", "example.com/cc"
    )
    assert script.count(STATIC_LDFLAGS) == 5


def test_go_script_with_empty_path_builds_the_src_root() -> None:
    """An empty path (module at src root) is allowed and substituted as nothing."""
    assert platform_for("golang").build_script("") == reference_go(STATIC_LDFLAGS, "")


def test_build_command_runs_the_script_under_sh() -> None:
    """The builder Cmd is ``/bin/sh -c <script>`` for every type."""
    assert platform_for("golang").build_command("example.com/cc") == [
        "/bin/sh",
        "-c",
        reference_go(STATIC_LDFLAGS, "example.com/cc"),
    ]
    assert platform_for("node").build_command() == ["/bin/sh", "-c", REFERENCE_NODE_SCRIPT]
    assert platform_for("java").build_command() == ["/bin/sh", "-c", "./build.sh"]


def test_node_and_java_ignore_the_metadata_path() -> None:
    """Fabric's node and java scripts take no path, so whatever the metadata says is unused."""
    assert platform_for("node").build_script("$(id)") == REFERENCE_NODE_SCRIPT
    assert platform_for("java").build_script("$(id)") == "./build.sh"


def test_go_env_passes_proxy_settings_through() -> None:
    """GOPROXY and GOSUMDB come from configuration, in Fabric's order; unset GOSUMDB is left out."""
    config = GolangBuild(goproxy="https://proxy.golang.org", gosumdb="off")
    assert platform_for("golang", golang=config).build_env == (
        "GOPROXY=https://proxy.golang.org",
        "GOSUMDB=off",
    )


@pytest.mark.parametrize(
    "path",
    [
        "github.com/hyperledger/fabric-samples/chaincode/abstore/go",
        "example.com/cc",
        "cc",
        ".",
        "./cmd",
        "gopkg.in/yaml.v2",
        "example.com/a_b/c~d/e+f",
    ],
)
def test_plausible_go_paths_are_accepted(path: str) -> None:
    """Import paths of letters, digits, ``-._~+`` and slashes pass unchanged."""
    assert check_go_path(path) == path


@pytest.mark.parametrize("path", INJECTIONS)
def test_go_path_injection_attempts_are_refused(path: str) -> None:
    """Shell metacharacters, ``..``, leading ``-`` or ``/`` never reach the Go script."""
    with pytest.raises(InvalidRequest) as caught:
        platform_for("golang").build_command(path)
    assert caught.value.field == "package.metadata.path"


def test_overlong_go_path_is_refused() -> None:
    """A path longer than 4096 characters is refused."""
    with pytest.raises(InvalidRequest):
        check_go_path("a" * 4097)


@pytest.mark.parametrize(
    ("type_", "runtime", "directory"),
    [
        ("golang", "localhost/ccdaemon/baseos:1", "/usr/local/bin"),
        ("node", "hyperledger/fabric-nodeenv:2.5", "/usr/local/src"),
        ("java", "hyperledger/fabric-javaenv:2.5", "/root/chaincode-java/chaincode"),
    ],
)
def test_dockerfile_is_fabrics_with_ccdaemons_labels_in_its_label(
    type_: str, runtime: str, directory: str
) -> None:
    """Fabric 2.5's Dockerfile text, its one LABEL continued with ccdaemon's labels.

    No LABEL of ccdaemon's own: each instruction is one more build step.
    """
    fabric = (
        REFERENCE_DOCKERFILE.replace("<runtime>", runtime)
        .replace("<dir>", directory)
        .replace("<TYPE>", type_.upper())
        .replace("<Version>", "2.5.14")
    )
    ours = (
        f' \\\n      ccdaemon.managed="true" \\\n      ccdaemon.ccid="{CCID}"'
        ' \\\n      ccdaemon.instance="peer0-\\$x"\n'
    )
    expected = fabric.replace('version="2.5.14"\n', f'version="2.5.14"{ours}') + "\n"
    text = platform_for(type_).dockerfile(
        CCID, fabric_version="2.5.14", labels={"ccdaemon.instance": "peer0-$x"}
    )
    assert text == expected
    assert sum(line.startswith("LABEL") for line in text.splitlines()) == 1


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", '"plain"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("end\\", '"end\\\\"'),
        ("$HOME", '"\\$HOME"'),
        ("it's", '"it\'s"'),
    ],
)
def test_label_values_are_escaped(value: str, quoted: str) -> None:
    """Quotes, backslashes and ``$`` are escaped so the value reads back as given."""
    assert quote_label_value("ccid", value) == quoted


@pytest.mark.parametrize("value", ["a\nRUN id", "a\rb", "a\\\nRUN id", "a\x00b", "a\tb"])
def test_label_values_with_control_characters_are_refused(value: str) -> None:
    """A newline (which would start a new instruction) or other control character is refused."""
    with pytest.raises(InvalidRequest) as caught:
        platform_for("golang").dockerfile(value, fabric_version="2.5.14")
    assert caught.value.field == "ccid"


def test_hostile_ccid_stays_inside_its_label() -> None:
    """A ccid trying to close the quote and add an instruction stays one escaped value."""
    hostile = 'x" \\RUN id #'  # no newline: that case is refused
    text = platform_for("golang").dockerfile(hostile, fabric_version="2.5.14")
    assert '      ccdaemon.ccid="x\\" \\\\RUN id #"\n' in text
    assert len(text.splitlines()) == 7


@pytest.mark.parametrize("bad", ["", "2.5 RUN id", "2.5\nRUN id", '2.5"', "$(id)", "-2"])
def test_fabric_version_must_be_version_text(bad: str) -> None:
    """The version goes unquoted into ENV as in Fabric, so only version characters pass."""
    with pytest.raises(InvalidRequest) as caught:
        platform_for("node").dockerfile(CCID, fabric_version=bad)
    assert caught.value.field == "fabric_version"


def test_launch_args_are_fabrics_per_type() -> None:
    """Go, Java and Node get Fabric 2.5's GetArgs, Node through its start.sh-or-npm script."""
    assert platform_for("golang").launch_args("peer0:7052") == [
        "chaincode",
        "-peer.address=peer0:7052",
    ]
    assert platform_for("java").launch_args("peer0:7052") == [
        "/root/chaincode-java/start",
        "--peerAddress",
        "peer0:7052",
    ]
    assert platform_for("node").launch_args("peer0:7052") == [
        "/bin/sh",
        "-c",
        REFERENCE_NODE_START,
    ]
    assert platform_for("golang").launch_args("[::1]:7052")[1] == "-peer.address=[::1]:7052"


@pytest.mark.parametrize(
    "bad", ["peer0", "peer0:7052; id", "$(id):7052", "p q:1", ":7052", "peer0:0", "peer0:65536"]
)
def test_peer_address_must_be_host_and_port(bad: str) -> None:
    """An address that is not host:port is refused before it can reach Node's shell script."""
    with pytest.raises(InvalidRequest) as caught:
        platform_for("node").launch_args(bad)
    assert caught.value.field == "peer.address"


# Every engine: Docker's classic builder, BuildKit-era daemons and Podman's buildah each
# parse the Dockerfile themselves.
@pytest.mark.all_engines
async def test_engine_reads_hostile_labels_back_unchanged(
    engine: Engine, made: Made, docker: aiodocker.Docker
) -> None:
    """An engine builds the rendered Dockerfile; hostile label values come back verbatim."""
    hostile = "cc:\"q\" \\back\\ $HOME ${PATH} 's' \\"
    golang = platform_for("golang", PlatformImages(golang_runtime="scratch"))
    dockerfile = golang.dockerfile(hostile, fabric_version="2.5.14")
    context = archive.tar(
        {"Dockerfile": dockerfile.encode(), "binpackage.tar": archive.tar({"chaincode": b"x"})}
    )
    tag = made.image("labels")
    await images.build(engine, context, tag, network_mode="none")
    config = (await docker.images.inspect(tag))["Config"]
    labels = dict(config["Labels"])
    labels.pop("io.buildah.version", None)  # Podman stamps its builder's version
    assert labels == {
        "org.hyperledger.fabric.chaincode.type": "GOLANG",
        "org.hyperledger.fabric.version": "2.5.14",
        "ccdaemon.managed": "true",
        "ccdaemon.ccid": hostile,
    }
    assert "CORE_CHAINCODE_BUILDLEVEL=2.5.14" in config["Env"]
