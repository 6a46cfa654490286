"""Properties of Fabric's names (ccdaemon.runtime.naming) over arbitrary strings.

A refusal names its field; an acceptance gives a container name and an image name that
Docker takes, the same every time; image names of distinct ids differ (the SHA-256 in
them) unless Fabric's ``:`` to ``-`` makes the ids one.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ccdaemon.runtime.errors import InvalidRequest
from ccdaemon.runtime.naming import Names, names

NAMING_SETTINGS = settings(max_examples=200, deadline=None, database=None)
ccids = st.from_regex(r"[a-z0-9]{1,8}(_[0-9.]{1,4})?:[0-9a-f]{1,64}", fullmatch=True)

#: Docker's container-name rule (daemon/names), and Fabric's image-name rule.
CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
IMAGE_NAME = re.compile(r"[a-z0-9]+(([._-][a-z0-9]+)+)?")
IMAGE_NAME_MAX = 237
NAMING_FIELDS = {"ccid", "peer.networkId", "peer.id"}

#: Mostly the characters ids are made of, plus look-alikes and separators that break them.
id_text = st.text(
    alphabet=st.sampled_from("aZ09_.+-:/ \n\u0430\uff1a\u00e9") | st.characters(),
    max_size=80,
)
peer_parts = st.sampled_from(["", "dev", "peer0.org1", "Peer_0", "t"]) | id_text


def outcome(ccid: str, network_id: str, peer_id: str) -> Names | InvalidRequest:
    """The names, or the refusal."""
    try:
        return names(ccid, network_id=network_id, peer_id=peer_id)
    except InvalidRequest as exc:
        return exc


@NAMING_SETTINGS
@given(ccid=id_text | ccids, network_id=peer_parts, peer_id=peer_parts)
def test_names_are_refused_with_a_field_or_are_names_docker_takes(
    ccid: str, network_id: str, peer_id: str
) -> None:
    """Any strings: InvalidRequest naming its field, or names that pass Docker's rules."""
    got = outcome(ccid, network_id, peer_id)
    if isinstance(got, InvalidRequest):
        assert got.field in NAMING_FIELDS
        return
    assert CONTAINER_NAME.fullmatch(got.container), got
    assert IMAGE_NAME.fullmatch(got.image), got
    assert len(got.image) <= IMAGE_NAME_MAX
    assert got == names(ccid, network_id=network_id, peer_id=peer_id)  # deterministic


@NAMING_SETTINGS
@given(first=ccids | id_text, data=st.data())
def test_distinct_ids_get_distinct_image_names(first: str, data: st.DataObject) -> None:
    """Two ids, the second one edit away: same image only when ':' to '-' makes them equal.

    Fabric hashes the name after turning ':' into '-' (so 2.x finds 1.4's images); any
    other difference (a letter's case, '+' against '-', one more character) changes the
    SHA-256 in the image name.
    """
    position = data.draw(st.integers(0, len(first)))
    inserted = data.draw(st.sampled_from("aA0_.+-:"))
    cut = data.draw(st.booleans())
    second = first[:position] + ("" if cut else inserted) + first[position + 1 :]
    try:
        a = names(first, network_id="t", peer_id="p")
        b = names(second, network_id="t", peer_id="p")
    except InvalidRequest:
        return
    same_ids = first.replace(":", "-") == second.replace(":", "-")
    assert (a.image == b.image) == same_ids, (first, second)
