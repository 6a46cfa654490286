"""Fabric 2.5's shell scripts: the Go and Node build scripts, Node's start script.

The scripts are Fabric's text as it is. The only caller-supplied text substituted into
one unquoted, the package metadata's Go path, is checked first (``check_go_path``); the
peer's address is checked by the caller (``Platform.launch_args``).
"""

from __future__ import annotations

import re

from ccdaemon.runtime.errors import InvalidRequest

# Fabric release-2.5 golang buildScript; {ldflags} is its %[1]s, {path} its %[2]s and
# {toolchain} its %[3]s (the v2.5.16 Go download, always empty here: see go_build_script).
_GO_BUILD_SCRIPT = """
set -e
{toolchain}
if [ -f "/chaincode/input/src/go.mod" ] && [ -d "/chaincode/input/src/vendor" ]; then
    cd /chaincode/input/src
    GO111MODULE=on go build -v -mod=vendor {ldflags} -o /chaincode/output/chaincode {path}
elif [ -f "/chaincode/input/src/go.mod" ]; then
    cd /chaincode/input/src
    GO111MODULE=on go build -v -mod=readonly {ldflags} -o /chaincode/output/chaincode {path}
elif [ -f "/chaincode/input/src/{path}/go.mod" ] && [ -d "/chaincode/input/src/{path}/vendor" ]; then
    cd /chaincode/input/src/{path}
    GO111MODULE=on go build -v -mod=vendor {ldflags} -o /chaincode/output/chaincode .
elif [ -f "/chaincode/input/src/{path}/go.mod" ]; then
    cd /chaincode/input/src/{path}
    GO111MODULE=on go build -v -mod=readonly {ldflags} -o /chaincode/output/chaincode .
else
    GO111MODULE=off GOPATH=/chaincode/input:$GOPATH go build -v {ldflags} -o /chaincode/output/chaincode {path}
fi
echo Done!
"""  # noqa: E501 -- Fabric's text as it is

#: Fabric release-2.5 node buildScript (tabs included).
NODE_BUILD_SCRIPT = """
set -e
if [ -x /chaincode/build.sh ]; then
\t/chaincode/build.sh
else
\tcp -R /chaincode/input/src/. /chaincode/output && cd /chaincode/output && npm install --production
fi
"""

#: Fabric release-2.5 dockercontroller nodeStartScript; {address} is its %[1]s.
NODE_START_SCRIPT = """
set -e
if [ -x /chaincode/start.sh ]; then
\t/chaincode/start.sh --peer.address {address}
else
\tcd /usr/local/src
\tnpm start -- --peer.address {address}
fi
"""

# Go's import path alphabet (golang.org/x/mod/module: letters, digits, "-._~" and "+"),
# ASCII only, slash-separated, no empty element. None of these characters means
# anything to /bin/sh unquoted or inside double quotes, so the path can be substituted
# into Fabric's script as it is; "~" only expands at the start of a word, which the
# leading-character rule below rules out.
_GO_PATH = re.compile(r"[A-Za-z0-9_.+-][A-Za-z0-9_.~+-]*(?:/[A-Za-z0-9_.~+-]+)*", re.ASCII)
_GO_PATH_MAX = 4096


def check_go_path(path: str) -> str:
    """Return ``path`` if it is a plausible Go import path, fit for Fabric's build script.

    The empty path is allowed: a module at the root of ``src`` builds with ``go build``
    in that directory.

    Args:
        path: the package metadata's ``path``.

    Returns:
        ``path`` unchanged.

    Raises:
        InvalidRequest: field ``package.metadata.path``; the path holds characters the
            shell would interpret, a ``..``, an empty element, or starts with ``-`` or
            ``/``.
    """
    if path == "":
        return path
    if len(path) > _GO_PATH_MAX:
        raise InvalidRequest("package.metadata.path", f"longer than {_GO_PATH_MAX} characters")
    # ".." is refused anywhere, not only as an element: no import path needs it, and
    # "cd /chaincode/input/src/.." would leave the package.
    if ".." in path or path.startswith("-") or not _GO_PATH.fullmatch(path):
        raise InvalidRequest(
            "package.metadata.path",
            f"not a Go import path: {path!r} (allowed: letters, digits, '-._~+' and '/' "
            "between non-empty elements; no '..', no leading '-' or '/')",
        )
    return path


def go_build_script(ldflags: str, path: str) -> str:
    """Fabric 2.5's Go build script with ``ldflags`` and a checked ``path`` substituted."""
    # %[3]s is empty: Fabric 2.5.16 fills it only when go.mod asks for a newer Go than
    # the builder's, with a curl from go.dev that builders here (no network) cannot do.
    # Empty, it leaves the blank line Fabric itself leaves in that case.
    return _GO_BUILD_SCRIPT.format(ldflags=ldflags, path=path, toolchain="")
