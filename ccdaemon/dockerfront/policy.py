"""What the Docker-API front lets a peer make: create bodies, builds, names and images.

Every decision is an allow-list, and fails closed (docs/docker-front.md):

- a create body may set only the fields Fabric's Docker controller sends (Image, Cmd,
  Env, AttachStdout/Stderr, and HostConfig's core.yaml keys); any other field must be
  absent or zero (null, "", false, 0, empty), since Go clients send zero values of
  fields they never set. A non-zero field outside the list is refused, by name;
- HostConfig values are checked against ccdaemon's policy: the network of
  ``runtime.host_config``, no added capabilities, no host or shared namespaces, no
  unconfined security options, limits no higher than ``[policy]``'s; what the policy
  adds where the peer set nothing (PidsLimit, no-new-privileges, a Memory limit) is
  added, as for ccdaemon's own launches;
- a named container must be a chaincode of this peer: its Env names the chaincode
  (``CORE_CHAINCODE_ID_NAME``), and its name and image are exactly the ones Fabric
  gives that chaincode on this peer (runtime/naming.py); an unnamed one must be a
  builder: a configured builder image running ``/bin/sh -c`` (not a script that
  downloads a Go toolchain, as 3.x's does when go.mod asks a newer Go);
- a build tags one image of this peer's, and its Dockerfile does no more than Fabric's
  (FROM a configured runtime image, ADD binpackage.tar, LABEL, ENV): no RUN, so a
  build executes nothing.

These checks are hand-written over the decoded JSON because the rule "absent or zero"
is not one a schema library states (msgspec's and pydantic's unknown-field handling is
all or nothing); the values' types are checked field by field below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ccdaemon.errors import CcdaemonError
from ccdaemon.runtime.errors import InvalidRequest
from ccdaemon.runtime.hostconfig import CCID_LABEL, ROLE_LABEL
from ccdaemon.runtime.naming import names

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ccdaemon.config import PolicyConfig


class Refused(CcdaemonError):
    """The front refuses a request; ``status`` is the HTTP status of the answer (403, 400)."""

    def __init__(self, message: str, *, status: int = 403) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


#: The environment variable in which Fabric passes the chaincode id (package id in 2.x).
CCID_ENV = "CORE_CHAINCODE_ID_NAME"
_BUILDER_SHELL = ["/bin/sh", "-c"]
# Fabric 2.5.16+ and 3.x ask the builder image its Go version first (util.ParamsImage).
_GO_VERSION = ["go", "version"]
# Fabric 3.x's build script when go.mod asks a newer Go than the builder image has.
_GO_DOWNLOAD = re.compile(r"https://go\.dev/dl/go(\d[\w.]*?)\.[a-z]+-\w+\.tar\.gz")
# The usual cause of an unknown builder or runtime image: core.yaml names them by
# Fabric's release ($(TWO_DIGIT_VERSION)), read for another release than the peer's.
_RELEASE = "is runtime.fabric_version the peer's release?"

# Config fields Fabric sets, with the check of each value.
_CONFIG: dict[str, tuple[Callable[[Any], bool], str]] = {
    "Image": (lambda v: isinstance(v, str) and bool(v), "an image name"),
    "Cmd": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "strings"),
    "Env": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "strings"),
    "AttachStdout": (lambda v: isinstance(v, bool), "true or false"),
    "AttachStderr": (lambda v: isinstance(v, bool), "true or false"),
    "HostConfig": (lambda v: isinstance(v, dict), "an object"),
}


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _text(v: Any) -> bool:
    return isinstance(v, str)


def _log_config(v: Any) -> bool:
    if not isinstance(v, dict) or set(v) - {"Type", "Config"}:
        return False
    options = v.get("Config") or {}
    return (
        isinstance(v.get("Type", ""), str)
        and isinstance(options, dict)
        and all(isinstance(x, str) for x in options.values())
    )


# HostConfig keys core.yaml may set (vm.docker.hostConfig), with the check of each type;
# the policy's own checks (network, namespaces, limits) come after.
_HOST_CONFIG: dict[str, tuple[Callable[[Any], bool], str]] = {
    "NetworkMode": (_text, "a string"),
    "Dns": (_strings, "a list of strings"),
    "DnsSearch": (_strings, "a list of strings"),
    "ExtraHosts": (_strings, "a list of strings"),
    "CapDrop": (_strings, "a list of strings"),
    "LogConfig": (_log_config, "a log driver (Type, Config)"),
    "ReadonlyRootfs": (lambda v: isinstance(v, bool), "true or false"),
    "SecurityOpt": (_strings, "a list of strings"),
    "Memory": (_whole, "a whole number of bytes"),
    "MemorySwap": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a number"),
    "MemorySwappiness": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a number"),
    "OomKillDisable": (lambda v: isinstance(v, bool), "true or false"),
    "CpuShares": (_whole, "a whole number"),
    "Cpuset": (_text, "a string"),
    "CpusetCpus": (_text, "a string"),
    "CpusetMems": (_text, "a string"),
    "CpuQuota": (_whole, "a whole number"),
    "CpuPeriod": (_whole, "a whole number"),
    "BlkioWeight": (_whole, "a whole number"),
    "PidsLimit": (_whole, "a whole number"),
    "NanoCpus": (_whole, "a whole number"),
}
_NO_NEW_PRIVILEGES = re.compile(r"no-new-privileges(?:[:=]true)?")
# The JSON name of a field of the engine's API structs (Go's exported names).
_GO_FIELD = re.compile(r"[A-Z][A-Za-z0-9]*")


def is_zero(value: Any) -> bool:
    """Whether ``value`` is what a Go client sends for a field it never set.

    An object is zero when it is a struct of zero fields; one with a key no Go field
    has (``{"/data": {}}``, ``{"bridge": {}}``) is a map, and a map with entries says
    something (a volume, a network endpoint, a label) even when its values are empty.
    """
    if isinstance(value, list):
        return all(is_zero(v) for v in value)
    if isinstance(value, dict):
        return all(_GO_FIELD.fullmatch(k) and is_zero(v) for k, v in value.items())
    return value is None or value is False or value == "" or value == 0  # noqa: PLR1714 -- False == 0, but {} and [] are handled above


@dataclass(frozen=True, slots=True)
class Created:
    """A create the front allows: what to send, and what it makes.

    Attributes:
        body: the create body to send the engine, ccdaemon's labels and policy added.
        ccid: the chaincode, for a chaincode container; None for a builder container.
    """

    body: dict[str, Any]
    ccid: str | None


@dataclass(frozen=True, slots=True)
class FrontPolicy:
    """The peer the front serves and the limits it applies.

    Attributes:
        network_id: the peer's ``peer.networkId``, the first part of its names.
        peer_id: the peer's ``peer.id``.
        network_mode: the one network chaincode and builds may use (``NetworkMode``).
        builder_images: images a builder container may run.
        runtime_images: images a chaincode image may be built FROM.
        labels: ccdaemon's ownership labels (managed, instance), put on everything made.
        limits: ``[policy]``: memory, CPUs, processes, no-new-privileges.
    """

    network_id: str
    peer_id: str
    network_mode: str
    builder_images: frozenset[str]
    runtime_images: frozenset[str]
    labels: Mapping[str, str]
    limits: PolicyConfig
    _prefix: str = field(init=False)

    def __post_init__(self) -> None:
        parts = [p for p in (self.network_id, self.peer_id) if p]
        prefix = re.sub(r"[^a-zA-Z0-9\-_.]", "-", "-".join(parts).replace(":", "-"))
        object.__setattr__(self, "_prefix", f"{prefix}-".lower() if prefix else "")

    # --- containers ---------------------------------------------------------------

    def create(self, name: str | None, body: Any) -> Created:
        """Decide a ``POST /containers/create``: the body to send, or Refused."""
        if not isinstance(body, dict):
            raise Refused("the create body must be a JSON object", status=400)
        for key, value in body.items():
            check = _CONFIG.get(key)
            if is_zero(value):
                continue  # unset (a Go client sends null for an empty Env)
            if check is None:
                raise Refused(f"create field {key} is not one Fabric sends; refused")
            if not check[0](value):
                raise Refused(f"create field {key} must be {check[1]}", status=400)
        image = body.get("Image")
        if not isinstance(image, str) or not image:
            raise Refused("create body names no Image", status=400)
        env = body.get("Env") or []
        ccids = [e.partition("=")[2] for e in env if e.startswith(f"{CCID_ENV}=")]
        labels = dict(self.labels)
        if name:
            ccid = self._chaincode(name, image, ccids)
            labels[CCID_LABEL] = ccid
        else:
            self._builder(image, body.get("Cmd") or [], ccids)
            labels[ROLE_LABEL] = "builder"
            ccid = None
        sent = {k: v for k, v in body.items() if k in _CONFIG and not is_zero(v)}
        sent["HostConfig"] = self.host_config(body.get("HostConfig") or {})
        sent["Labels"] = labels
        return Created(sent, ccid)

    def _chaincode(self, name: str, image: str, ccids: list[str]) -> str:
        if len(ccids) != 1:
            raise Refused(
                f"container {name}: a named container must be a chaincode, its Env holding "
                f"{CCID_ENV} once"
            )
        try:
            expected = names(ccids[0], network_id=self.network_id, peer_id=self.peer_id)
        except InvalidRequest as exc:
            raise Refused(f"container {name}: {CCID_ENV}: {exc}") from None
        if name != expected.container:
            raise Refused(
                f"container name {name} is not this peer's name for chaincode {ccids[0]} "
                f"({expected.container})"
            )
        if image != expected.image:
            raise Refused(f"container {name}: image {image} is not chaincode {ccids[0]}'s image")
        return ccids[0]

    def _builder(self, image: str, cmd: list[str], ccids: list[str]) -> None:
        if ccids:
            raise Refused("an unnamed container must be a builder, not a chaincode")
        if image not in self.builder_images:
            allowed = ", ".join(sorted(self.builder_images))
            raise Refused(
                f"image {image} is not a builder image of this peer ({allowed}; {_RELEASE})"
            )
        shell = cmd[:2] == _BUILDER_SHELL and len(cmd) == len(_BUILDER_SHELL) + 1
        if not shell and cmd != _GO_VERSION:
            raise Refused(
                "a builder container runs /bin/sh -c SCRIPT (or go version), as Fabric's do"
            )
        if shell and (download := _GO_DOWNLOAD.search(cmd[2])):
            raise Refused(
                f"the chaincode's go.mod asks Go {download[1]}, newer than builder image"
                f" {image}'s, and the peer's build script would download it from go.dev;"
                f" a build reaches no network here: give the peer a builder image with Go"
                f" {download[1]} or newer (core.yaml chaincode.builder)"
            )

    def host_config(self, given: Any) -> dict[str, Any]:
        """Check a HostConfig against the policy; the HostConfig to send, policy added."""
        if not isinstance(given, dict):
            raise Refused("HostConfig must be a JSON object", status=400)
        kept: dict[str, Any] = {}
        for key, value in given.items():
            if is_zero(value):
                continue  # unset: moby's client (Fabric 3.x) sends null for CapDrop
            check = _HOST_CONFIG.get(key)
            if check is None:
                raise Refused(f"HostConfig.{key} is not one Fabric sends; refused")
            if not check[0](value):
                raise Refused(f"HostConfig.{key} must be {check[1]}", status=400)
            kept[key] = value
        self._check_limits(kept)
        kept["NetworkMode"] = kept.get("NetworkMode") or self.network_mode
        return self.limits.apply(kept)

    def _check_limits(self, kept: Mapping[str, Any]) -> None:
        network = kept.get("NetworkMode") or self.network_mode
        if network != self.network_mode:
            raise Refused(
                f"HostConfig.NetworkMode {network!r}: chaincode runs on {self.network_mode!r} "
                "only (runtime.host_config NetworkMode)"
            )
        for option in kept.get("SecurityOpt", []):
            if not _NO_NEW_PRIVILEGES.fullmatch(option):
                raise Refused(f"HostConfig.SecurityOpt {option!r} is refused")
        limits = self.limits
        for key, limit in (("Memory", limits.memory), ("PidsLimit", limits.pids_limit)):
            if limit and kept.get(key, 0) > limit:
                raise Refused(f"HostConfig.{key} {kept[key]} is above the policy's {limit}")
        if limits.cpus and kept.get("NanoCpus", 0) > limits.cpus * 1e9:
            raise Refused(f"HostConfig.NanoCpus is above the policy's {limits.cpus:g} CPUs")
        if limits.memory and kept.get("MemorySwap", 0) < 0:
            raise Refused("HostConfig.MemorySwap -1 (unlimited swap) is refused")

    # --- images -----------------------------------------------------------------------

    def chaincode_image(self, image: str) -> bool:
        """Whether ``image`` is named as one of this peer's chaincode images."""
        if not image.startswith(self._prefix):
            return False
        return bool(_CHAINCODE_IMAGE.fullmatch(image[len(self._prefix) :]))

    def check_image(self, image: str) -> None:
        """Refuse an image this peer's front has no business with (inspect)."""
        known = self.builder_images | self.runtime_images
        if image not in known and not self.chaincode_image(image):
            allowed = ", ".join(sorted(known))
            raise Refused(
                f"image {image} is neither a builder or runtime image ({allowed}; {_RELEASE})"
                " nor one this peer built"
            )

    @property
    def image_labels(self) -> dict[str, str]:
        """The labels of a chaincode image the peer builds."""
        return {**self.labels, ROLE_LABEL: "image"}

    def build(self, params: Mapping[str, str]) -> dict[str, str]:
        """Decide a ``POST /build`` query; the query to send (no leftovers).

        The image's labels go into its Dockerfile (``image_labels``, context.py).
        """
        tag = params.get("t", "")
        if not self.chaincode_image(tag):
            raise Refused(f"build tag {tag!r} is not a chaincode image of this peer")
        network = params.get("networkmode") or self.network_mode
        if network != self.network_mode:
            raise Refused(f"build networkmode {network!r}: builds use {self.network_mode!r} only")
        for key, value in params.items():
            if key in _BUILD_KNOWN:
                continue
            if key == "dockerfile" and value in {"", "Dockerfile"}:
                continue
            if value not in {"", "0", "false"}:
                raise Refused(f"build parameter {key}={value!r} is not one Fabric sends; refused")
        sent = {"t": tag, "networkmode": network, "rm": "1", "forcerm": "1"}
        if params.get("q") in {"1", "true"}:
            sent["q"] = "1"
        return sent

    def dockerfile(self, text: str) -> None:
        """Refuse a Dockerfile that does more than Fabric's (see the module's docstring)."""
        logical = re.sub(r"\\\r?\n", " ", text)
        seen_from = False
        for raw in logical.splitlines():
            line = raw.strip()
            if _DIRECTIVE.fullmatch(line):
                # "# escape=`" makes a backslash plain text: lines joined above would be
                # instructions of their own to the engine (a RUN behind a LABEL).
                raise Refused(f"Dockerfile parser directive {line[:40]!r} is refused")
            if not line or line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            word = word.upper()
            if word == "FROM":
                self._from(rest.strip(), seen=seen_from)
                seen_from = True
            elif word == "ADD":
                if rest.split()[:1] != ["binpackage.tar"] or len(rest.split()) != 2:  # noqa: PLR2004
                    raise Refused(f"Dockerfile ADD {rest.strip()}: only binpackage.tar is added")
            elif word not in {"LABEL", "ENV", "WORKDIR"}:
                raise Refused(f"Dockerfile instruction {word} is not one Fabric writes; refused")
        if not seen_from:
            raise Refused("Dockerfile has no FROM")

    def _from(self, image: str, *, seen: bool) -> None:
        if seen:
            raise Refused(f"Dockerfile FROM {image}: a second FROM (stage) is refused")
        if image not in self.runtime_images:
            allowed = ", ".join(sorted(self.runtime_images))
            raise Refused(
                f"Dockerfile FROM {image}: not a runtime image of this peer ({allowed}; {_RELEASE})"
            )


_BUILD_KNOWN = frozenset({"t", "networkmode", "rm", "forcerm", "q"})
# A parser directive as the engine reads one (escape, syntax, check): Fabric writes none.
_DIRECTIVE = re.compile(r"#\s*[a-zA-Z][a-zA-Z0-9]*\s*=.*")
# After the peer's prefix: the chaincode's part, then "-" and the sha256 Fabric appends.
_CHAINCODE_IMAGE = re.compile(r"[a-z0-9][a-z0-9._-]*-[0-9a-f]{64}", re.ASCII)
