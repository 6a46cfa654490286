"""Fabric's container and image names, from the reference's worked examples and by hand."""

from __future__ import annotations

import subprocess

import pytest

from ccdaemon.runtime.errors import InvalidRequest
from ccdaemon.runtime.naming import names

PEER = {"network_id": "dev", "peer_id": "peer0.org1.example.com"}
PKG_HASH = "4ec191e793b27e953ff2ede5a8bcc63152cecb1e4c3f301a26e22692c61967ad"


@pytest.mark.parametrize(
    ("ccid", "peer", "container", "image"),
    [
        # reference/fabric-launcher.md 1.2 (1.4) and 2.2 (2.x), worked examples.
        (
            "mycc:1.0",
            PEER,
            "dev-peer0.org1.example.com-mycc-1.0",
            (
                "dev-peer0.org1.example.com-mycc-1.0-"
                "384f11f484b9302df90b453200cfb25174305fce8f53f4e94d45ee3b6cab0ce9"
            ),
        ),
        (
            f"basic_1.0:{PKG_HASH}",
            PEER,
            f"dev-peer0.org1.example.com-basic_1.0-{PKG_HASH}",
            (
                f"dev-peer0.org1.example.com-basic_1.0-{PKG_HASH}-"
                "42f57faac8360472e47cbbbf3940e81bba83439702d085878d148089a1b213ca"
            ),
        ),
    ],
)
def test_reference_examples(ccid: str, peer: dict[str, str], container: str, image: str) -> None:
    """The names match the reference's worked examples, digit for digit."""
    got = names(ccid, **peer)
    assert (got.container, got.image) == (container, image)


def sha256sum(text: str) -> str:
    """The digest by coreutils, independent of the code under test."""
    out = subprocess.run(["sha256sum"], input=text.encode(), capture_output=True, check=True)
    return out.stdout.split()[0].decode()


@pytest.mark.parametrize(
    ("ccid", "network_id", "peer_id", "pre"),
    [
        ("MyCC:V1", "net", "Peer0", "net-Peer0-MyCC-V1"),  # case kept in the container
        ("cc+x:1", "", "peer0", "peer0-cc+x-1"),  # no network id; '+' sanitised
        ("cc:1", "net", "", "net-cc-1"),  # no peer id
        ("cc", "", "", "cc"),  # 1.4 id without a version: GetName() is the bare name
    ],
)
def test_names_follow_fabrics_rule(ccid: str, network_id: str, peer_id: str, pre: str) -> None:
    """Prefixes, sanitising and the hash of the unsanitised name follow Fabric's code."""
    got = names(ccid, network_id=network_id, peer_id=peer_id)
    sanitised = pre.replace("+", "-")
    assert got.container == sanitised
    assert got.image == f"{sanitised}-{sha256sum(pre)}".lower()


@pytest.mark.parametrize(
    "ccid",
    [
        "",
        "../etc/passwd:1",
        "cc;rm -rf /:1",
        "cc:1 2",
        "\u0441c:1",  # a Cyrillic look-alike of "cc:1"
        "-cc:1",
        "cc:1:2",
        "cc:",
        "x" * 300,
    ],
)
def test_ids_fabric_never_makes_are_refused(ccid: str) -> None:
    """Ids with paths, shell words, look-alikes or bad shapes are refused, naming ccid."""
    with pytest.raises(InvalidRequest) as caught:
        names(ccid, network_id="dev", peer_id="peer0")
    assert caught.value.field == "ccid"


@pytest.mark.parametrize("ccid", ["cc__x:1", "cc_:1", "cc.:1"])
def test_names_breaking_dockers_repository_rule_fail_as_fabric_does(ccid: str) -> None:
    """A run of separators, or a trailing one, breaks the image rule with Fabric's message."""
    with pytest.raises(InvalidRequest, match="breaks Docker's repository naming rules"):
        names(ccid)


def test_colons_in_the_peer_id_become_dashes_before_hashing_as_in_2x() -> None:
    """Fabric 2.x turns every ':' of the whole name into '-' before hashing it."""
    got = names("mycc:1.0", network_id="dev", peer_id="peer0:7051")
    assert got.container == "dev-peer0-7051-mycc-1.0"
    assert got.image == f"dev-peer0-7051-mycc-1.0-{sha256sum('dev-peer0-7051-mycc-1.0')}"


@pytest.mark.parametrize(
    ("network_id", "peer_id", "field"),
    [
        ("dev.", "peer0", "peer.networkId"),
        ("dev", "peer0_", "peer.id"),
        ("dev", "a/b", "peer.id"),
        ("d ev", "peer0", "peer.networkId"),
        ("dev", "peer\n", "peer.id"),
    ],
)
def test_bad_network_and_peer_ids_are_blamed_by_their_own_field(
    network_id: str, peer_id: str, field: str
) -> None:
    """A network or peer id that breaks the rules is named as the culprit, not the ccid."""
    with pytest.raises(InvalidRequest) as caught:
        names("mycc:1.0", network_id=network_id, peer_id=peer_id)
    assert caught.value.field == field


def test_image_names_longer_than_every_engine_takes_are_refused() -> None:
    """Image names over 237 characters, which Docker 20.10 and Podman refuse, fail early."""
    label = "a" * 160
    assert len(names(f"{label}:1").image) == 160 + 2 + 65
    with pytest.raises(InvalidRequest, match="237"):
        names(f"{label}:1", network_id="dev", peer_id="peer0.org1.example.com")
