"""The Docker-API front: a peer's ``vm.endpoint``, served Fabric's calls and nothing else.

Each connection is read with h11 (exchange.py); each request is decided (routes.py,
policy.py) before anything reaches the engine, then carried out through the runtime's
relay (runtime/relay.py: the launch queue's order and bounds, the negotiated API
version), and what the peer makes of its chaincodes is told to the supervisor, so
``ccdaemon ps``, exit tracking, recovery and metrics see them as ccdaemon's own.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import TYPE_CHECKING, Protocol

import anyio
import h11
import orjson

from ccdaemon.dockerfront import routes
from ccdaemon.dockerfront.context import BuildContext
from ccdaemon.dockerfront.exchange import (
    HEAD_TIMEOUT,
    ClientGone,
    Exchange,
    NotHTTP,
    next_event,
    refuse_malformed,
)
from ccdaemon.dockerfront.policy import Refused
from ccdaemon.engine import (
    EngineError,
    EngineUnavailable,
    NoSuchContainer,
    NotModified,
)
from ccdaemon.runtime.relay import NotOwned

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import ByteStream

    from ccdaemon.dockerfront.policy import FrontPolicy
    from ccdaemon.engine.transport import Response
    from ccdaemon.runtime.relay import Relay

log = logging.getLogger(__name__)

#: The lowest API version the front takes in a path (Fabric 1.4's client asks none).
MIN_API = "1.12"
_TAR_BLOCK = 512
_PATH_STAT = "X-Docker-Container-Path-Stat"


class PeerLaunches(Protocol):
    """Told what a peer makes of its chaincodes through the front (the supervisor)."""

    def peer_created(self, ccid: str, container: str, image: str) -> None:
        """The peer created ``container`` for ``ccid``."""

    def peer_started(self, container: str, container_id: str) -> None:
        """The peer started ``container``."""

    def peer_removed(self, container: str) -> None:
        """The peer removed ``container``."""


class DockerFront:
    """Serves one peer's Docker controller.

    Args:
        relay: the engine, behind the launch queue.
        policy: what this peer may make.
        launches: told of the peer's chaincode containers (the supervisor).
        max_upload: the largest archive a peer may upload (``policy.max_package_size``).
    """

    def __init__(
        self, relay: Relay, policy: FrontPolicy, launches: PeerLaunches, *, max_upload: int
    ) -> None:
        self._relay = relay
        self._policy = policy
        self._launches = launches
        self._max_upload = max_upload

    async def serve(self, stream: ByteStream) -> None:
        """Serve one connection until the client leaves (or must be left)."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        async with stream:
            try:
                while True:
                    with anyio.fail_after(HEAD_TIMEOUT):
                        event = await next_event(stream, conn)
                    if not isinstance(event, h11.Request):
                        return
                    exchange = Exchange(stream, conn, event)
                    if not await self._request(exchange):
                        return
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        return
                    conn.start_next_cycle()
            except NotHTTP as exc:
                log.warning("docker front refused a malformed request: %s", str(exc)[:200])
                await refuse_malformed(stream, conn, exc)
            except (ClientGone, TimeoutError, anyio.BrokenResourceError, OSError):
                return

    async def _request(self, ex: Exchange) -> bool:
        """Decide and carry out one request; whether the connection may go on."""
        began = time.perf_counter()
        try:
            call = routes.decide(ex.method, ex.target)
            await self._dispatch(ex, call)
        except Refused as exc:
            log.warning("docker front refused %s %s: %s", ex.method, ex.target[:200], exc)
            await ex.error(exc.status, exc.message)
        except NotOwned as exc:
            message = f"container {exc} is not one of this peer's (ccdaemon's labels)"
            log.warning("docker front refused %s %s: %s", ex.method, ex.target[:200], message)
            await ex.error(403, message)
        except NotModified as exc:
            if ex.conn.our_state is h11.SEND_RESPONSE:
                await ex.answer(exc.status)
        except EngineError as exc:
            await ex.error(exc.status, exc.message)
        except EngineUnavailable as exc:
            await ex.error(503, str(exc))
        except (ClientGone, anyio.BrokenResourceError, OSError, TimeoutError):
            raise
        except Exception:
            # Fail closed: a fault in a check refuses the request; the daemon serves on.
            log.exception("docker front: %s %s failed", ex.method, ex.target[:200])
            await ex.error(500, "ccdaemon's Docker-API front failed on this request; refused")
        finally:
            log.debug(
                "docker front %s %s -> %s in %.3f s",
                ex.method,
                ex.target[:200],
                ex.answered,
                time.perf_counter() - began,
            )
        return ex.answered != 101  # noqa: PLR2004 -- a switched connection is not HTTP again

    async def _dispatch(self, ex: Exchange, call: routes.Call) -> None:
        op = call.op
        if op == "ping":
            await self._ping(ex)
        elif op == "version":
            await ex.read_body(0)
            await self._version(ex)
        elif op == "container.create":
            await self._create(ex, call)
        elif op == "image.inspect":
            await ex.read_body(0)
            self._policy.check_image(call.target)
            await ex.json(200, await self._relay.image(call.target))
        elif op == "build":
            await self._build(ex, call)
        elif op in {"container.inspect", "container.wait", "archive.get", "container.attach"}:
            await ex.read_body(0)
            await self._read(ex, call)
        else:
            await self._step(ex, call)

    async def _ping(self, ex: Exchange) -> None:
        await self._relay.ping()
        version = await self._relay.version()
        headers = [("API-Version", str(version.negotiated)), ("OSType", "linux")]
        await ex.answer(200, b"OK", "text/plain; charset=utf-8", headers)

    async def _version(self, ex: Exchange) -> None:
        """The engine's version, with the API range the front speaks.

        The peer sees the negotiated version as the engine's newest, so it takes its
        modern paths, and the front's floor as the oldest: every path it may send is
        taken, and forwarded at the negotiated version.
        """
        version = await self._relay.version()
        answer = {**version.raw, "ApiVersion": str(version.negotiated), "MinAPIVersion": MIN_API}
        await ex.json(200, answer)

    async def _create(self, ex: Exchange, call: routes.Call) -> None:
        name = call.params.get("name") or None
        try:
            body = orjson.loads(await ex.read_body())
        except orjson.JSONDecodeError as exc:
            raise Refused(f"the create body is not JSON: {exc}", status=400) from None
        created = self._policy.create(name, body)
        line = name or f"builder-{secrets.token_hex(6)}"
        params = {"name": name} if name else None
        answer = await self._relay.create(line, name, orjson.dumps(created.body), params)
        if created.ccid is not None and name is not None:
            self._launches.peer_created(created.ccid, name, str(created.body["Image"]))
            log.info("peer created chaincode container %s (%s)", name, created.ccid)
        await ex.answer(answer.status, answer.body, answer.content_type)

    async def _step(self, ex: Exchange, call: routes.Call) -> None:
        """A control step on one of the peer's containers: start, stop, kill, remove, upload."""
        method, action = _STEPS[call.op]
        body: bytes | AsyncIterator[bytes] | None = None
        content_type = None
        if call.op == "archive.put":
            body = ex.body(limit=self._max_upload)
            content_type = "application/x-tar"
        else:
            sent = await ex.read_body()
            if sent.strip() not in {b"", b"null", b"{}"}:
                # Below API 1.24 a start body is a HostConfig: a second way to ask for one.
                raise Refused(f"{call.op} with a body is refused (a start body is a HostConfig)")
        extra = float(call.params.get("t", "0")) if call.op == "container.stop" else 0.0
        try:
            answer = await self._relay.step(
                call.target,
                method,
                action,
                params=call.params or None,
                body=body,
                content_type=content_type,
                extra_time=extra,
            )
        except NoSuchContainer:
            raise EngineError(404, f"No such container: {call.target}") from None
        if answer.owner is not None and call.op == "container.start":
            self._launches.peer_started(answer.owner[1], answer.owner[0])
        elif answer.owner is not None and call.op == "container.remove":
            self._launches.peer_removed(answer.owner[1])
        await ex.answer(answer.status, answer.body, answer.content_type)

    async def _read(self, ex: Exchange, call: routes.Call) -> None:
        """Inspect, wait, archive read and attach: the container's, checked, then relayed."""
        action = {"container.wait": "wait", "archive.get": "archive", "container.attach": "attach"}
        method = "GET" if call.op == "archive.get" else "POST"
        params = {k: v for k, v in call.params.items() if k != "stdin"} or None
        try:
            if call.op == "container.inspect":
                await ex.json(200, await self._relay.owned(call.target))
                return
            async with self._relay.read(call.target, method, action[call.op], params) as resp:
                await self._relayed(ex, call, resp)
        except NoSuchContainer:
            raise EngineError(404, f"No such container: {call.target}") from None

    async def _relayed(self, ex: Exchange, call: routes.Call, resp: Response) -> None:
        """Pass a streamed answer on: hijacked for an attach, else as it comes."""
        content_type = resp.headers.get("content-type", "")
        if call.op == "container.attach" and ex.wants_upgrade:
            await self._hijacked(ex, content_type, resp.chunks())
            return
        # Moby's client (Fabric 3.x) reads an archive's stat from this header.
        stat = resp.headers.get(_PATH_STAT.lower())
        extra = [(_PATH_STAT, stat)] if stat else []
        await ex.stream_answer(resp.status, content_type, resp.chunks(), extra)

    async def _hijacked(
        self, ex: Exchange, content_type: str, chunks: AsyncIterator[bytes]
    ) -> None:
        """Answer 101 and relay the container's output raw until either side ends."""
        await ex.switch(
            [("Content-Type", content_type), ("Connection", "Upgrade"), ("Upgrade", "tcp")]
        )
        async with anyio.create_task_group() as group:

            async def client_leaves() -> None:
                # Fabric writes nothing on the stream; its end (or a cut) ends the relay.
                try:
                    while await ex.stream.receive(_TAR_BLOCK):
                        pass
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    pass
                group.cancel_scope.cancel()

            group.start_soon(client_leaves)
            async for chunk in chunks:
                await ex.stream.send(chunk)
            group.cancel_scope.cancel()

    async def _build(self, ex: Exchange, call: routes.Call) -> None:
        """A chaincode image build: query and Dockerfile checked before the engine sees it.

        The rest of the context is walked as it is forwarded (context.py): a piece the
        walk refuses is never sent, so the engine is left with a cut context and builds
        nothing.
        """
        params = self._policy.build(call.params)
        walk = BuildContext(self._policy.dockerfile, self._policy.image_labels)
        context = _plain(ex.body(), walk)
        # The walk gives nothing before the Dockerfile is read and allowed, then it.
        dockerfile = await anext(context)
        version = await self._relay.version()
        log.info(
            "peer builds image %s (its path asks API %s; sent at %s)",
            params["t"],
            call.version or "none",
            version.negotiated,
        )

        async def sent() -> AsyncIterator[bytes]:
            yield dockerfile
            async for piece in context:
                yield piece

        async with self._relay.stream(
            "POST", "/build", params=params, body=sent(), content_type="application/x-tar"
        ) as resp:
            await ex.stream_answer(
                resp.status, resp.headers.get("content-type", "application/json"), resp.chunks()
            )


async def _plain(body: AsyncIterator[bytes], walk: BuildContext) -> AsyncIterator[bytes]:
    """The walked context, plain: ``walk``'s output for each piece of ``body``."""
    async for piece in body:
        for plain in walk.feed(piece):
            yield plain
    walk.end()


_STEPS = {
    "container.start": ("POST", "start"),
    "container.stop": ("POST", "stop"),
    "container.kill": ("POST", "kill"),
    "container.remove": ("DELETE", ""),
    "archive.put": ("PUT", "archive"),
}


__all__ = ["DockerFront", "PeerLaunches"]
