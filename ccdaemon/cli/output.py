"""How the command line prints: JSON answers, build progress, timings and times."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import orjson


def print_json(value: object) -> None:
    """Print ``value`` as indented JSON on stdout (``--json``)."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def print_progress(line: str) -> None:
    """Print one line of build output on stderr as it comes."""
    sys.stderr.write(line.rstrip("\n") + "\n")
    sys.stderr.flush()


def timing_summary(timings: dict[str, float]) -> str:
    """A launch's total seconds and each phase's; ``-`` when the answer has none."""
    if "total" not in timings:
        return "-"
    phases = ", ".join(
        f"{name} {seconds:.2f}" for name, seconds in timings.items() if name != "total"
    )
    return f"{timings['total']:.2f} s" + (f" ({phases})" if phases else "")


def when(timestamp: object) -> str:
    """An ISO time to the second in UTC, for a table; ``-`` when absent."""
    if not isinstance(timestamp, str):
        return "-"
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.tzinfo else "")
