#!/usr/bin/env python3
"""Run the hostile-input tests and write their answers into docs/resilience.md.

    scripts/resilience.py [pytest arguments...]

The tests (tests/hostile) append one JSON line per case to $CCDAEMON_RESILIENCE_OUT;
this runs them with it set, prints the table, and puts it between the markers
<!-- hostile:begin --> and <!-- hostile:end --> of docs/resilience.md. It exits with
pytest's status; the document is updated only when every test passed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "resilience.md"
BEGIN, END = "<!-- hostile:begin -->", "<!-- hostile:end -->"


def table(lines: list[dict[str, object]]) -> str:
    """The cases as a Markdown table, in the order the tests ran them."""

    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", "\\n")

    rows = [
        "| group | input | route | answer | code | field | created |",
        "|---|---|---|---|---|---|---|",
    ]
    rows += [
        "| "
        + " | ".join(
            cell(line[key]) for key in ("group", "case", "route", "status", "code", "field")
        )
        + f" | {line['created']} |"
        for line in lines
    ]
    created = sum(int(str(line["created"])) for line in lines)
    rows.append(f"\n{len(lines)} hostile inputs; created on the engine in all: {created}.")
    return "\n".join(rows)


def main() -> int:
    """Run, print, update the document; pytest's exit status."""
    with tempfile.TemporaryDirectory(prefix="ccd-resilience-") as directory:
        out = Path(directory) / "hostile.jsonl"
        env = {**os.environ, "CCDAEMON_RESILIENCE_OUT": str(out)}
        command = [str(ROOT / ".venv" / "bin" / "pytest"), "-q", "tests/hostile", *sys.argv[1:]]
        done = subprocess.run(command, cwd=ROOT, env=env, check=False)
        text = out.read_text() if out.exists() else ""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    rendered = table(lines)
    print(rendered)
    if done.returncode != 0:
        print(f"pytest failed ({done.returncode}); {DOC} left as it was", file=sys.stderr)
        return done.returncode
    document = DOC.read_text()
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{rendered}\n{END}{tail}")
    print(f"updated {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
