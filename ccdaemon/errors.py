"""The root of every error ccdaemon raises on purpose.

Each layer hangs its own family below ``CcdaemonError``; the CLI and the HTTP API catch
only this type, so anything else that escapes is a bug and shows its traceback.
"""


class CcdaemonError(Exception):
    """Base class of every error ccdaemon raises deliberately."""
