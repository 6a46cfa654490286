"""Swarm names for Fabric's: services are DNS labels, secrets 64 of [a-zA-Z0-9-_.]."""

from __future__ import annotations

import hashlib
import re

from hypothesis import given
from hypothesis import strategies as st

from ccdaemon.runtime.naming import names, secret_name, service_name

# Swarm's own rules (swarmkit's validation of annotations, of secret names).
DNS_LABEL = re.compile(r"[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*")
SECRET = re.compile(r"[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?")

FABRIC_NAMES = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.",
    min_size=1,
    max_size=250,
)


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def test_a_name_that_is_a_dns_label_is_kept() -> None:
    assert service_name("dev-peer0-mycc-1") == "dev-peer0-mycc-1"


def test_dots_become_dashes_and_the_name_gets_a_hash_of_fabrics() -> None:
    container = names("mycc:1.0", network_id="dev", peer_id="peer0.org1.example.com").container
    assert container == "dev-peer0.org1.example.com-mycc-1.0"
    assert service_name(container) == f"dev-peer0-org1-example-com-mycc-1-0-{short_hash(container)}"


def test_a_2x_package_id_is_cut_to_63_with_the_hash() -> None:
    ccid = "basic_1.0:" + "a" * 64
    container = names(ccid, network_id="dev", peer_id="peer0.org1.example.com").container
    got = service_name(container)
    assert len(got) == 63
    assert got.endswith("-" + short_hash(container))
    assert got.startswith("dev-peer0-org1-example-com-basic-1-0-aaaa")


def test_names_that_differ_only_in_punctuation_get_different_services() -> None:
    assert service_name("a.b") != service_name("a-b")
    assert service_name("a_b") != service_name("a-b")


@given(FABRIC_NAMES)
def test_every_fabric_name_gives_a_valid_service_name(container: str) -> None:
    got = service_name(container)
    assert DNS_LABEL.fullmatch(got), got
    assert len(got) <= 63
    assert service_name(container) == got


def test_secret_names_keep_the_file_and_change_with_the_content() -> None:
    service = service_name("dev-peer0.org1.example.com-mycc-1.0")
    path = "/etc/hyperledger/fabric/client_pem.key"
    first = secret_name(service, path, b"one")
    assert first.startswith(service[:30])
    assert "-client-pem-key-" in first
    assert first != secret_name(service, path, b"two")
    assert first != secret_name(service, "/etc/hyperledger/fabric/client_pem.crt", b"one")
    assert first == secret_name(service, path, b"one")


@given(FABRIC_NAMES, st.sampled_from(["client.key", "client_pem.crt", "peer.crt", "x"]))
def test_every_secret_name_is_valid(container: str, file: str) -> None:
    got = secret_name(service_name(container), f"/etc/hyperledger/fabric/{file}", b"pem")
    assert SECRET.fullmatch(got), got
    assert len(got) <= 64
