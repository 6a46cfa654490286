"""ccdaemon: the chaincode launcher that alone holds the container engine's socket."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ccdaemon")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
