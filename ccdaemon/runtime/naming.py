"""Fabric's names for a chaincode's container and image (dockercontroller, 1.4 and 2.x).

    container: [network-][peer-]<ccid>, ":" as "-", then [^a-zA-Z0-9-_.] -> "-"
    image:     the same, "-", sha256 of the unsanitised name, all lower case, and it must
               pass Docker's repository rule ^[a-z0-9]+(([._-][a-z0-9]+)+)?$

A 2.x package id (``label:hash``) and a 1.4 id (``name:version``, or a bare name) follow
the same rule, so a legacy ``mycc:1.0`` gets the names Fabric 1.4 gave ``mycc`` 1.0.
Ids are checked before naming: Fabric's own lifecycle only ever produces letters, digits
and ``_.+-`` around one colon, and anything else (a path, a shell word, a look-alike
letter) is refused here rather than sanitised into some other chaincode's name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ccdaemon.engine import InvalidParameter, images
from ccdaemon.runtime.errors import InvalidRequest

_VM_NAME = re.compile(r"[^a-zA-Z0-9\-_.]")
_IMAGE_NAME = re.compile(r"[a-z0-9]+(([._-][a-z0-9]+)+)?")
# Label (2.x) or name (1.4), then the hash (2.x) or version (1.4), ASCII only.
_CCID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+\-]*(:[A-Za-z0-9_.+\-]+)?")
#: The longest image name every engine of the test bed accepts: Docker 20.10 and Podman
#: count the hidden "docker.io/library/" against Docker's 255 (26.1 and 28.5 allow 247).
_IMAGE_NAME_MAX = 237


@dataclass(frozen=True, slots=True)
class Names:
    """The container and image names of one chaincode on one peer."""

    container: str
    image: str


def check_ccid(ccid: str) -> str:
    """Return ``ccid`` if it is a Fabric chaincode id (``label:hash``, ``name:version``).

    Raises:
        InvalidRequest: the id is empty, too long, or holds anything but ASCII letters,
            digits and ``_.+-`` around at most one colon (field ``ccid``).
    """
    if not ccid:
        raise InvalidRequest("ccid", "must not be empty")
    if len(ccid) > _IMAGE_NAME_MAX:
        raise InvalidRequest("ccid", f"is {len(ccid)} characters; at most {_IMAGE_NAME_MAX}")
    if not _CCID.fullmatch(ccid):
        raise InvalidRequest(
            "ccid",
            f"{ccid!r} is not a chaincode id: expected label:hash or name:version, of ASCII "
            "letters, digits and _.+- (starting with a letter or digit)",
        )
    return ccid


def check_image(reference: str) -> str:
    """Return ``reference``, an image a request names, if it is one by Docker's grammar.

    Raises:
        InvalidRequest: it breaks the grammar; the message says how (field ``image``).
    """
    try:
        images.check_reference(reference)
    except InvalidParameter as exc:
        raise InvalidRequest("image", exc.message) from None
    return reference


def names(ccid: str, *, network_id: str = "", peer_id: str = "") -> Names:
    """Fabric's container and image names for ``ccid`` on peer ``peer_id`` of ``network_id``.

    As Fabric 2.x does, every ``:`` of the whole name (the peer id's included) becomes
    ``-`` before the name is hashed, so 2.x peers find pre-2.0 images.

    Raises:
        InvalidRequest: ``ccid`` is not a chaincode id; a network or peer id holds
            whitespace, a slash or a control character; or the image name breaks
            Docker's repository rule or is too long, with Fabric's wording. The field
            names the part at fault (``ccid``, ``peer.networkId`` or ``peer.id``).
    """
    check_ccid(ccid)
    parts = (("peer.networkId", network_id), ("peer.id", peer_id), ("ccid", ccid))
    for field, value in parts[:2]:
        printable = value.isascii() and value.isprintable()
        if value and (not printable or {" ", "/", "\\"} & set(value)):
            raise InvalidRequest(
                field, f"{value!r} must be printable ASCII without spaces or slashes"
            )
    name = "-".join(value for _, value in parts if value).replace(":", "-")
    container = _VM_NAME.sub("-", name)
    image = f"{container}-{hashlib.sha256(name.encode()).hexdigest()}".lower()
    if not _IMAGE_NAME.fullmatch(image):
        # Parts that each pass the rule pass it joined by "-": blame the first that fails.
        field = next(
            (
                f
                for f, v in parts
                if v and not _IMAGE_NAME.fullmatch(_VM_NAME.sub("-", v.replace(":", "-")).lower())
            ),
            "ccid",
        )
        raise InvalidRequest(
            field,
            f"Error constructing Docker VM Name. '{image}' breaks Docker's repository naming rules",
        )
    if len(image) > _IMAGE_NAME_MAX:
        raise InvalidRequest(
            "ccid",
            f"the image name would be {len(image)} characters; engines take {_IMAGE_NAME_MAX}",
        )
    return Names(container=container, image=image)


_NOT_ALNUM = re.compile(r"[^a-zA-Z0-9]+")
#: Swarm's limits: a service name is a DNS label, a secret name 64 of ``[a-zA-Z0-9-_.]``.
_SERVICE_NAME_MAX = 63
_SECRET_NAME_MAX = 64
_HASH = 12
#: How much of a file's name a secret's name keeps: "client-pem-key".
_STEM = 14


def service_name(container: str) -> str:
    """The swarm service name of the chaincode whose Fabric container name is ``container``.

    A service name must be a DNS label (letters, digits, inner dashes; at most 63), while
    Fabric's names hold the peer id's dots and a 2.x package hash. Runs of other
    characters become one dash; a name that changed or is too long gets a hash of the
    whole Fabric name, so two chaincodes never share a service.
    """
    label = _NOT_ALNUM.sub("-", container).strip("-")
    if label == container and len(label) <= _SERVICE_NAME_MAX:
        return label
    digest = hashlib.sha256(container.encode()).hexdigest()[:_HASH]
    keep = _SERVICE_NAME_MAX - _HASH - 1
    return f"{label[:keep].rstrip('-')}-{digest}".lstrip("-")


def secret_name(service: str, path: str, content: bytes) -> str:
    """The name of the swarm secret holding ``content`` as file ``path`` of ``service``.

    Secrets cannot change, so the name carries a hash of the path and the content: each
    launch's fresh certificate is a new secret, and a retried launch finds its own.
    """
    stem = _NOT_ALNUM.sub("-", path.rsplit("/", 1)[-1]).strip("-")[:_STEM].rstrip("-")
    digest = hashlib.sha256(path.encode() + b"\0" + content).hexdigest()[:_HASH]
    keep = _SECRET_NAME_MAX - len(stem) - _HASH - 2
    return f"{service[:keep].rstrip('-')}-{stem}-{digest}"
