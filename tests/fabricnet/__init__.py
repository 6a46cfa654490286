"""A real Fabric network for tests: one orderer and one peer of one org on 127.0.0.1.

From Fabric's own programs (../shared/fabric, unpacked into a cache at run time, never
copied into the project), with TLS everywhere, crypto from ``cryptogen``, an etcdraft
channel from ``configtxgen`` joined through the channel participation API, and the peer's
only chaincode builder ccdaemon's external builder. From a fixture::

    with Network.create(daemon_socket) as net:     # up on enter, down on exit
        package = net.admin.package("kv_1")
        package_id = net.admin.install(package)    # the daemon builds the image
        net.admin.deploy("kv", package_id)
        net.admin.invoke("kv", "init", is_init=True)
        assert net.admin.query("kv", "get", "greeting") == "hello"

From a shell: ``python -m tests.fabricnet up|down|status`` (see ``__main__``).

Fabric 1.4 (a solo orderer with a system channel, no external builders, 1.4's chaincode
CLI): ``tests.fabricnet.legacy.LegacyNetwork``.
"""

from tests.fabricnet.admin import Admin, CLIError, Invoked, package_id
from tests.fabricnet.dist import KitError, distribution, go_root
from tests.fabricnet.network import Network, container_name

__all__ = [
    "Admin",
    "CLIError",
    "Invoked",
    "KitError",
    "Network",
    "container_name",
    "distribution",
    "go_root",
    "package_id",
]
