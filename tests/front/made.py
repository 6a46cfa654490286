"""What a peer's deploy made on the engine: its chaincode container and image.

``made`` reads, through aiodocker (not ccdaemon), the container a 1.4 peer launched for a
chaincode and the image it runs: the name, image, Cmd, Env, HostConfig and labels of
the container, the files the peer uploaded into it (Fabric's TLS files, by path, mode
and owner) and the chaincode binary's digest in the image, with the peer's network id,
its chaincode address and 64-hex ids replaced, so that two deploys on two networks
compare equal where the peer asked the same. ``differences`` lists the dotted keys
where two such records differ.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from typing import Any

import aiodocker

#: Where Fabric 1.4 uploads the chaincode's TLS files, and where its image has the binary.
TLS_DIRECTORY = "/etc/hyperledger/fabric"
BINARY = "/usr/local/bin/chaincode"
_HEX = re.compile(r"[0-9a-f]{64}")


def _normal(value: Any, replace: dict[str, str]) -> Any:
    """``value`` with ``replace``'s texts and 64-hex ids replaced, through lists and dicts."""
    if isinstance(value, str):
        for text, stand_in in replace.items():
            value = value.replace(text, stand_in)
        return _HEX.sub("<id>", value)
    if isinstance(value, list):
        return [_normal(v, replace) for v in value]
    if isinstance(value, dict):
        return {_normal(k, replace): _normal(v, replace) for k, v in value.items()}
    return value


async def _tar(docker: aiodocker.Docker, container: str, path: str) -> tarfile.TarFile:
    """``path`` in ``container`` as the engine's archive read gives it."""
    async with docker._query(  # noqa: SLF001 -- aiodocker's get_archive keeps no bytes
        f"containers/{container}/archive", method="GET", params={"path": path}
    ) as answer:
        data = await answer.read()
    return tarfile.open(fileobj=io.BytesIO(data))


async def made(
    engine_socket: str, container_name: str, network_id: str, peer_address: str
) -> dict[str, Any]:
    """The record of ``container_name`` (exact) on the engine at ``engine_socket``.

    ``network_id`` (``peer.networkId``) and ``peer_address`` (the chaincode address the
    peer gives its chaincode) are replaced by ``<net>`` and ``<peer>``.
    """
    docker = aiodocker.Docker(url=f"unix://{engine_socket}")
    try:
        container = await docker.containers.get(container_name)
        info = container._container  # noqa: SLF001 -- aiodocker keeps inspect's answer here
        image = await docker.images.inspect(info["Config"]["Image"])
        with await _tar(docker, container_name, TLS_DIRECTORY) as tls:
            files = {
                m.name: f"{m.mode:04o} {m.uid}:{m.gid}" for m in tls.getmembers() if m.isfile()
            }
        with await _tar(docker, container_name, BINARY) as binary:
            member = binary.extractfile(binary.getmembers()[0])
            assert member is not None
            digest = hashlib.sha256(member.read()).hexdigest()
    finally:
        await docker.close()
    record = {
        "name": info["Name"],
        "image": info["Config"]["Image"],
        "cmd": info["Config"]["Cmd"],
        "entrypoint": info["Config"]["Entrypoint"],
        "env": sorted(info["Config"]["Env"] or []),
        "labels": info["Config"]["Labels"] or {},
        "host_config": info["HostConfig"],
        "files": files,
        "image_env": sorted(image["Config"]["Env"] or []),
        "image_labels": image["Config"]["Labels"] or {},
        "image_workdir": image["Config"]["WorkingDir"],
    }
    # The digest is compared as it is: the same source built by the same Go in the same
    # paths makes the same binary, whichever network's peer asked.
    replace = {network_id: "<net>", peer_address: "<peer>"}
    return {**_normal(record, replace), "binary": digest}


def differences(
    first: dict[str, Any], second: dict[str, Any], prefix: str = ""
) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (first's value, second's value) wherever the two records differ."""
    found: dict[str, tuple[Any, Any]] = {}
    for key in sorted(first.keys() | second.keys()):
        a, b = first.get(key), second.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found |= differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found[f"{prefix}{key}"] = (a, b)
    return found
