"""The optional TCP listener: mutual TLS, and nothing for a client without a good certificate."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import aiohttp
import pytest

from tests.daemon.conftest import make_config, running_daemon
from tests.tlscerts import free_port, mutual_tls

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
async def test_tcp_listener_serves_only_clients_with_a_certificate_from_its_ca(
    engine_socket: str, sockdir: Path, host: str
) -> None:
    """A client certificate from tcp_ca gets answers; none, or another CA's, gets a TLS refusal.

    An IPv6 address is given as TOML has it, in brackets (it reached the socket with them).
    """
    tls = mutual_tls(sockdir)
    port = free_port()
    config = make_config(engine_socket, sockdir)
    config = replace(
        config,
        listen=replace(
            config.listen,
            tcp=f"{host}:{port}",
            tcp_ca=tls.ca,
            tcp_cert=tls.server[0],
            tcp_key=tls.server[1],
        ),
    )
    async with running_daemon(config), aiohttp.ClientSession() as session:
        url = f"https://{host}:{port}/v1/health"
        async with session.get(url, ssl=tls.client_context(tls.client)) as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ok"
        for chain in (None, tls.stranger):
            with pytest.raises(aiohttp.ClientError):
                async with session.get(url, ssl=tls.client_context(chain)) as resp:
                    await resp.read()
