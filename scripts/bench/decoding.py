#!/usr/bin/env python3
"""Benchmark: the configuration decoded by msgspec, against the loader it replaced and pydantic.

Every figure is a median over rounds, and each comes with its baseline from the same run:

- idle RSS: a fresh interpreter's resident memory (VmRSS) after its imports, against one
  that imports nothing: ``msgspec``; ``pydantic`` (if installed: it is no dependency); the
  daemon's modules (``ccdaemon.daemon.serve``) with the old ``ccdaemon.config``, and with
  the new one. The new daemon's ratio is against the old;
- load: ``load()`` of the example configuration (deploy/config/ccdaemon.toml), and of the
  example with every key uncommented (its core.yaml left out), new against old;
- decode: that uncommented example as one document into msgspec's Structs
  (``schema.Document``) against pydantic models of the same tables, keys, types and
  ranges (strict, unknown keys refused); the library alone, the named checks left out;
- request: a launch body (``POST /v1/chaincodes``, TLS off, no package) from its JSON
  bytes, as the daemon reads it today (orjson, then ``daemon.schemas``: the baseline)
  against a msgspec Struct and a pydantic model of its fields (types, lengths, unknown
  fields refused; the schemas' other checks, such as the peer address's, left out).

The old loader is ccdaemon/config.py as git last had it (``--baseline REV`` for another
revision), imported from a temporary file. Nothing touches an engine or the network.

    .venv/bin/python scripts/bench/decoding.py [--rounds 7] [--baseline REV] [--json]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import json
import operator
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from types import ModuleType, NoneType, UnionType
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

import msgspec

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ccdaemon import config  # noqa: E402 -- after the repository is on the path
from ccdaemon.config import schema  # noqa: E402
from ccdaemon.daemon import schemas  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

EXAMPLE = ROOT / "deploy" / "config" / "ccdaemon.toml"
OLD = "ccdaemon/config.py"
# A commented-out setting or table in the example: "#" directly before it.
_COMMENTED_OUT = re.compile(r"^#(?=[\[A-Za-z])", re.MULTILINE)
_CORE_YAML = re.compile(r"^core_yaml = .*$", re.MULTILINE)
# Run in a child: load the old loader as ccdaemon.config before anything imports it.
_AS_OLD = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('ccdaemon.config', {path!r})\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "sys.modules['ccdaemon.config'] = module\n"
    "spec.loader.exec_module(module)\n"
)
_RSS = "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS:')))"


def old_source(baseline: str | None) -> str:
    """ccdaemon/config.py at ``baseline``, else as git last had it before it became a package."""
    if baseline is None:
        removed = _git("rev-list", "-1", "HEAD", "--", OLD).strip()
        baseline = f"{removed}^"
    return _git("show", f"{baseline}:{OLD}")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout


def load_module(name: str, path: Path) -> ModuleType:
    """The Python file ``path`` imported as the module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


def rss_kib(code: str, rounds: int) -> float:
    """The median VmRSS, in KiB, of a fresh interpreter that runs ``code``."""
    figures = []
    for _ in range(rounds):
        done = subprocess.run(
            [sys.executable, "-c", f"{code}\n{_RSS}"],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT)},
        )
        figures.append(float(done.stdout.split()[-1]))
    return statistics.median(figures)


def per_call(runs: dict[str, Callable[[], object]], rounds: int, calls: int) -> dict[str, float]:
    """Each run's median over ``rounds`` of the mean time of one of ``calls`` runs, in µs.

    The runs take turns within a round, in an order that rotates, so that a busy moment
    of the machine falls on each of them alike.
    """
    for run in runs.values():
        run()  # warm: imports, caches
    names = list(runs)
    figures: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(rounds):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            began = time.perf_counter()
            for _ in range(calls):
                runs[name]()
            figures[name].append((time.perf_counter() - began) / calls * 1e6)
    return {name: statistics.median(times) for name, times in figures.items()}


def pydantic_document(pydantic: Any) -> Any:
    """Models of the file's tables in pydantic: schema's keys, types and ranges, strict."""
    settings = pydantic.ConfigDict(extra="forbid", strict=True, regex_engine="python-re")

    def table(prefix: str) -> Any:
        names = dict.fromkeys(
            k.removeprefix(prefix).split(".")[0] for k in schema.KINDS if k.startswith(prefix)
        )
        fields: dict[str, Any] = {}
        for name in names:
            key = f"{prefix}{name}"
            if key in schema.KINDS:
                kind, limits = _plain(schema.KINDS[key])
                fields[name] = (kind | None, pydantic.Field(default=None, **limits))
            else:
                fields[name] = (table(f"{key}.") | None, None)
        return pydantic.create_model(
            prefix.rstrip(".") or "Document", __config__=settings, **fields
        )

    return table("")


def _plain(kind: Any) -> tuple[Any, dict[str, Any]]:
    """``kind`` without msgspec's Meta, and the ranges and pattern Meta set, as pydantic's."""
    limits: dict[str, Any] = {}
    if get_origin(kind) is Annotated:
        kind, *extras = get_args(kind)
        for meta in (m for m in extras if isinstance(m, msgspec.Meta)):
            for name in ("ge", "le", "min_length", "pattern"):
                if getattr(meta, name) is not None:
                    limits[name] = getattr(meta, name)
    if get_origin(kind) in {Union, UnionType}:
        members = [_plain(arg)[0] for arg in get_args(kind) if arg is not NoneType]
        return functools.reduce(operator.or_, members), limits
    if get_origin(kind) is tuple:  # strict pydantic takes a TOML array as a list only
        return list[str], limits
    return kind, limits


_LAUNCH = (
    b'{"ccid": "kv:8f3b9f1c2a5d4e6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",'
    b' "type": "golang", "peer_address": "peer0.org1.example.com:7052",'
    b' "mspid": "Org1MSP", "tls": {"enabled": false}}'
)
_Text = Annotated[str, msgspec.Meta(max_length=schemas.MAX_TEXT)]


class _TLSBody(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True
    client_cert: str | None = None
    client_key: str | None = None
    root_cert: str | None = None


class _LaunchBody(msgspec.Struct, forbid_unknown_fields=True):
    ccid: Annotated[_Text, msgspec.Meta(min_length=1)]
    type: Annotated[_Text, msgspec.Meta(min_length=1)]
    peer_address: Annotated[_Text, msgspec.Meta(min_length=1)]
    mspid: _Text | None = None
    format: _Text | None = None
    path: _Text | None = None
    image: _Text | None = None
    package: str | None = None
    tls: _TLSBody | None = None


def pydantic_launch(pydantic: Any) -> Any:
    """The launch body as a pydantic model, with the Struct's fields and lengths, strict."""
    settings = pydantic.ConfigDict(extra="forbid", strict=True)
    text = {"max_length": schemas.MAX_TEXT}
    tls = pydantic.create_model(
        "TLSBody",
        __config__=settings,
        enabled=(bool, True),
        **dict.fromkeys(("client_cert", "client_key", "root_cert"), (str | None, None)),
    )
    return pydantic.create_model(
        "LaunchBody",
        __config__=settings,
        **{
            name: (str, pydantic.Field(min_length=1, **text))
            for name in ("ccid", "type", "peer_address")
        },
        **{
            name: (str | None, pydantic.Field(default=None, **text))
            for name in ("mspid", "format", "path", "image")
        },
        package=(str | None, None),
        tls=(tls | None, None),
    )


def measure(rounds: int, baseline: str | None) -> dict[str, dict[str, float]]:
    """Every figure of the module's docstring."""
    work = Path(tempfile.mkdtemp(prefix="ccdaemon-decoding-"))
    old_path = work / "old_config.py"
    old_path.write_text(old_source(baseline), encoding="utf-8")
    old = load_module("ccdaemon_config_old", old_path)
    uncommented = work / "uncommented.toml"
    text = _COMMENTED_OUT.sub("", EXAMPLE.read_text(encoding="utf-8"))
    uncommented.write_text(_CORE_YAML.sub("", text), encoding="utf-8")
    if repr(old.load(uncommented, {})) != repr(config.load(uncommented, {})):  # classes differ
        raise SystemExit("the old and the new loader disagree on the uncommented example")

    rss = {
        "python": rss_kib("pass", rounds),
        "msgspec": rss_kib("import msgspec", rounds),
        "daemon, old config": rss_kib(
            _AS_OLD.format(path=str(old_path)) + "import ccdaemon.daemon.serve", rounds
        ),
        "daemon, new config": rss_kib("import ccdaemon.daemon.serve", rounds),
    }
    try:
        pydantic: Any = importlib.import_module("pydantic")
    except ImportError:
        pydantic = None
    else:
        rss["pydantic"] = rss_kib("import pydantic", rounds)

    calls = 200
    load = per_call(
        {
            "example, old": lambda: old.load(EXAMPLE, {}),
            "example, new": lambda: config.load(EXAMPLE, {}),
            "uncommented, old": lambda: old.load(uncommented, {}),
            "uncommented, new": lambda: config.load(uncommented, {}),
        },
        rounds,
        calls,
    )
    document = tomllib.loads(uncommented.read_text(encoding="utf-8"))
    decode: dict[str, Callable[[], object]] = {
        "msgspec": lambda: msgspec.convert(document, schema.Document, strict=True)
    }
    request: dict[str, Callable[[], object]] = {
        "schemas": lambda: schemas.launch_request(schemas.parse_json(_LAUNCH), max_package_size=1),
        "msgspec": lambda: msgspec.json.decode(_LAUNCH, type=_LaunchBody),
    }
    if pydantic is not None:
        model, body = pydantic_document(pydantic), pydantic_launch(pydantic)
        decode["pydantic"] = lambda: model.model_validate(document)
        request["pydantic"] = lambda: body.model_validate_json(_LAUNCH)
    return {
        "rss_kib": rss,
        "load_us": load,
        "decode_us": per_call(decode, rounds, calls * 10),
        "request_us": per_call(request, rounds, calls * 10),
    }


def report(figures: dict[str, dict[str, float]]) -> str:
    """The figures as lines, each with its ratio to its baseline."""
    rss, load, decode = figures["rss_kib"], figures["load_us"], figures["decode_us"]
    request = figures["request_us"]
    lines = ["idle RSS (KiB; + over a bare interpreter)"]
    for name, kib in rss.items():
        lines.append(f"  {name:<20} {kib:8.0f}  +{kib - rss['python']:6.0f}")
    new, old = rss["daemon, new config"], rss["daemon, old config"]
    lines.append(f"  daemon new/old       {new / old:8.3f}  ({new - old:+.0f} KiB)")
    lines.append("load() per call (µs)")
    for case in ("example", "uncommented"):
        before, after = load[f"{case}, old"], load[f"{case}, new"]
        lines.append(
            f"  {case:<12} old {before:8.1f}  new {after:8.1f}  new/old {after / before:.2f}"
        )
    lines.append("decode of the uncommented example, library alone (µs)")
    for name, micros in decode.items():
        lines.append(f"  {name:<8} {micros:8.2f}  /msgspec {micros / decode['msgspec']:.2f}")
    lines.append("a launch body from JSON (µs)")
    for name, micros in request.items():
        lines.append(f"  {name:<8} {micros:8.2f}  /schemas {micros / request['schemas']:.2f}")
    return "\n".join(lines)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline", help="the revision whose ccdaemon/config.py to compare")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = measure(args.rounds, args.baseline)
    print(json.dumps(figures, indent=2) if args.json else report(figures))


if __name__ == "__main__":
    main()
