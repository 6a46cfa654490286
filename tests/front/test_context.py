"""Where the front writes ccdaemon's labels into a peer's Dockerfile (``with_labels``)."""

from __future__ import annotations

import pytest

from ccdaemon.dockerfront.context import with_labels

OURS = 'ccdaemon.managed="true" ccdaemon.role="image"'

#: Fabric 1.4.12's Go chaincode Dockerfile, as its platform writes it.
FABRIC_14 = (
    "FROM hyperledger/fabric-baseos:amd64-0.4.22\n"
    "ADD binpackage.tar /usr/local/bin\n"
    'LABEL org.hyperledger.fabric.chaincode.id.name="kv" \\\n'
    '      org.hyperledger.fabric.chaincode.id.version="1" \\\n'
    '      org.hyperledger.fabric.chaincode.type="GOLANG" \\\n'
    '      org.hyperledger.fabric.version="1.4.12" \\\n'
    '      org.hyperledger.fabric.base.version="0.4.22"\n'
    "ENV CORE_CHAINCODE_BUILDLEVEL=1.4.12\n"
)


def test_fabrics_label_instruction_ends_with_ours_and_nothing_else_moves() -> None:
    labelled = with_labels(FABRIC_14, OURS)
    assert labelled == FABRIC_14.replace(
        'base.version="0.4.22"\n', f'base.version="0.4.22" {OURS}\n'
    )


@pytest.mark.parametrize(
    ("dockerfile", "expected"),
    [
        pytest.param("FROM x\nENV A=1\n", f"FROM x\nENV A=1\nLABEL {OURS}\n", id="no LABEL"),
        pytest.param("FROM x", f"FROM x\nLABEL {OURS}\n", id="no LABEL, no last newline"),
        pytest.param(
            "FROM x\nLABEL a=b\nLABEL c=d\nENV A=1\n",
            f"FROM x\nLABEL a=b\nLABEL c=d {OURS}\nENV A=1\n",
            id="the last of two",
        ),
        pytest.param("FROM x\nlabel a=b\n", f"FROM x\nlabel a=b {OURS}\n", id="in any case"),
        pytest.param(
            "FROM x\nENV A=1 \\\nLABEL=2\n",
            f"FROM x\nENV A=1 \\\nLABEL=2\nLABEL {OURS}\n",
            id="LABEL inside an ENV's continuation is no instruction",
        ),
        pytest.param(
            "FROM x\nLABEL a=b \\\n# a comment\n\n  c=d\nENV A=1\n",
            f"FROM x\nLABEL a=b \\\n# a comment\n\n  c=d {OURS}\nENV A=1\n",
            id="comment and blank lines inside a LABEL's continuation",
        ),
    ],
)
def test_ours_end_the_last_label_instruction(dockerfile: str, expected: str) -> None:
    assert with_labels(dockerfile, OURS) == expected
