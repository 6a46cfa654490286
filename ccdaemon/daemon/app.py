"""The aiohttp application: routes, the error middleware, the body limit."""

from __future__ import annotations

import anyio
from aiohttp import web

from ccdaemon.daemon import api
from ccdaemon.daemon.errors import BODY_LIMIT, error_middleware
from ccdaemon.daemon.state import DAEMON, Daemon

#: Room for the JSON around a base64 package.
_ENVELOPE = 64 * 1024


def make_app(daemon: Daemon) -> web.Application:
    """The API of ``daemon``; bodies over what the largest package needs are refused (413)."""
    limit = daemon.max_package_size * 4 // 3 + _ENVELOPE
    app = web.Application(middlewares=[error_middleware], client_max_size=limit)
    app[BODY_LIMIT] = limit
    app[DAEMON] = daemon
    app[api.PARSING] = anyio.CapacityLimiter(api.PARSE_LIMIT)
    app.add_routes(api.routes())
    return app
