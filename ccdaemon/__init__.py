"""ccdaemon: the chaincode launcher that alone holds the container engine's socket."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # ``__version__`` is looked up when asked for: importlib.metadata costs the builder's
    # short-lived steps, which import ccdaemon but never ask, about 30 ms.
    if name != "__version__":
        raise AttributeError(f"module 'ccdaemon' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        found = version("ccdaemon")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0+unknown"
    globals()["__version__"] = found
    return found
