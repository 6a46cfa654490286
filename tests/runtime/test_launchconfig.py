"""Fabric's LaunchConfig: args per type, env in Fabric's order, TLS files in both layouts."""

from __future__ import annotations

import base64

import pytest

from ccdaemon.runtime.certs import ChaincodeCA, ClientCredentials
from ccdaemon.runtime.errors import InvalidRequest, UnknownChaincodeType
from ccdaemon.runtime.launchconfig import DEFAULT_LOG_FORMAT, launch_config

ADDR = "peer0.org1.example.com:7052"
LOGGING = [
    "CORE_CHAINCODE_LOGGING_LEVEL=info",
    "CORE_CHAINCODE_LOGGING_SHIM=warning",
    f"CORE_CHAINCODE_LOGGING_FORMAT={DEFAULT_LOG_FORMAT}",
]


@pytest.fixture(scope="module")
def tls() -> ClientCredentials:
    return ChaincodeCA.generate().issue()


@pytest.mark.parametrize(
    ("cc_type", "args"),
    [
        ("golang", ["chaincode", f"-peer.address={ADDR}"]),
        ("GOLANG", ["chaincode", f"-peer.address={ADDR}"]),
        ("car", ["chaincode", f"-peer.address={ADDR}"]),
        ("java", ["/root/chaincode-java/start", "--peerAddress", ADDR]),
    ],
)
def test_args_per_type(cc_type: str, args: list[str]) -> None:
    """Go and CAR, and Java, get Fabric's GetArgs command lines."""
    assert (
        list(
            launch_config(
                ccid="a:1", cc_type=cc_type, peer_address=ADDR, tls=None, mspid="Org1MSP"
            ).args
        )
        == args
    )


def test_node_uses_start_sh_when_present_in_2x_and_npm_in_14() -> None:
    """2.x node runs /chaincode/start.sh if executable; 1.4 always runs npm start."""
    new = launch_config(ccid="a:1", cc_type="node", peer_address=ADDR, tls=None, mspid="M")
    assert new.args[:2] == ("/bin/sh", "-c")
    assert "/chaincode/start.sh --peer.address " + ADDR in new.args[2]
    old = launch_config(ccid="a:1", cc_type="node", peer_address=ADDR, tls=None, layout="1.4")
    assert old.args == ("/bin/sh", "-c", f"cd /usr/local/src; npm start -- --peer.address {ADDR}")


def test_unknown_type_is_refused_naming_the_field() -> None:
    """A type no platform runs raises UnknownChaincodeType for the field type."""
    with pytest.raises(UnknownChaincodeType) as caught:
        launch_config(ccid="a:1", cc_type="cobol", peer_address=ADDR, tls=None, mspid="M")
    assert caught.value.field == "type"


def test_2x_env_and_files_in_fabrics_order(tls: ClientCredentials) -> None:
    """2.x: id first, logging, TLS paths and files, MSP id last; five files as Fabric."""
    config = launch_config(
        ccid="cc:abc", cc_type="golang", peer_address=ADDR, tls=tls, mspid="Org1MSP"
    )
    assert list(config.env) == [
        "CORE_CHAINCODE_ID_NAME=cc:abc",
        *LOGGING,
        "CORE_PEER_TLS_ENABLED=true",
        "CORE_TLS_CLIENT_KEY_PATH=/etc/hyperledger/fabric/client.key",
        "CORE_TLS_CLIENT_CERT_PATH=/etc/hyperledger/fabric/client.crt",
        "CORE_TLS_CLIENT_KEY_FILE=/etc/hyperledger/fabric/client_pem.key",
        "CORE_TLS_CLIENT_CERT_FILE=/etc/hyperledger/fabric/client_pem.crt",
        "CORE_PEER_TLS_ROOTCERT_FILE=/etc/hyperledger/fabric/peer.crt",
        "CORE_PEER_LOCALMSPID=Org1MSP",
    ]
    assert config.files == {
        "/etc/hyperledger/fabric/client.key": base64.b64encode(tls.key_pem),
        "/etc/hyperledger/fabric/client.crt": base64.b64encode(tls.cert_pem),
        "/etc/hyperledger/fabric/client_pem.key": tls.key_pem,
        "/etc/hyperledger/fabric/client_pem.crt": tls.cert_pem,
        "/etc/hyperledger/fabric/peer.crt": tls.root_pem,
    }


def test_14_env_and_files_in_fabrics_order(tls: ClientCredentials) -> None:
    """1.4: logging first, then name:version, TLS paths; three files; no MSP id."""
    config = launch_config(
        ccid="mycc:1.0", cc_type="golang", peer_address=ADDR, tls=tls, layout="1.4"
    )
    assert list(config.env) == [
        *LOGGING,
        "CORE_CHAINCODE_ID_NAME=mycc:1.0",
        "CORE_PEER_TLS_ENABLED=true",
        "CORE_TLS_CLIENT_KEY_PATH=/etc/hyperledger/fabric/client.key",
        "CORE_TLS_CLIENT_CERT_PATH=/etc/hyperledger/fabric/client.crt",
        "CORE_PEER_TLS_ROOTCERT_FILE=/etc/hyperledger/fabric/peer.crt",
    ]
    assert sorted(config.files) == [
        "/etc/hyperledger/fabric/client.crt",
        "/etc/hyperledger/fabric/client.key",
        "/etc/hyperledger/fabric/peer.crt",
    ]


def test_without_tls_no_files_and_tls_disabled() -> None:
    """Without TLS the container gets CORE_PEER_TLS_ENABLED=false and no files."""
    config = launch_config(ccid="a:1", cc_type="golang", peer_address=ADDR, tls=None, mspid="M")
    assert "CORE_PEER_TLS_ENABLED=false" in config.env
    assert config.files == {}


@pytest.mark.parametrize("mspid", ["", "Org1 MSP", "Org1MSP\n", "$(id)"])
def test_bad_msp_id_is_refused(mspid: str) -> None:
    """2.x needs an MSP id of letters, digits and ._-; others are refused by field."""
    with pytest.raises(InvalidRequest) as caught:
        launch_config(ccid="a:1", cc_type="golang", peer_address=ADDR, tls=None, mspid=mspid)
    assert caught.value.field == "mspid"


def test_repr_never_shows_the_key(tls: ClientCredentials) -> None:
    """The LaunchConfig's repr leaves the files, and so the client key, out."""
    config = launch_config(ccid="a:1", cc_type="golang", peer_address=ADDR, tls=tls, mspid="M")
    text = repr(config)
    assert "PRIVATE KEY" not in text
    assert base64.b64encode(tls.key_pem).decode()[:40] not in text
