"""ccdaemon: the chaincode launcher that alone holds the container engine's socket."""

# The one place the version is written (pyproject.toml reads it): importlib.metadata,
# which would read it from the installed package, costs a daemon 1.1 MiB of memory and
# any process that asks (the daemon always does) about 30 ms.
__version__ = "0.1.0"
