"""The Docker-API front: the part of the Docker Engine API a Fabric peer's controller uses.

A peer on its own Docker controller (Fabric 1.4, or 2.x/3.x without external builders)
points ``vm.endpoint`` at this front's socket and keeps driving DockerVM.Start itself;
the front decides each call (``routes``: which calls; ``policy``: which objects and
bodies) and carries it out through the runtime's relay, so that everything it lets
through is labelled, queued and supervised as ccdaemon's own (``front``). ``exchange``
is the HTTP/1.1 of one connection.
"""
