"""The peer benchmark's figures: medians by seam, ratios against straight, the report.

See peer.py for what each figure is.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

SEAMS = ("straight", "builder", "front")
#: Name, seam, figure compared with straight's, most allowed.
TARGETS = (
    ("install builder/straight", "builder", "install", 1.1),
    ("first invoke builder/straight", "builder", "first_invoke", 1.05),
    ("install front/straight", "front", "install", 1.05),
    ("first invoke front/straight", "front", "first_invoke", 1.05),
)
BUILD_STEP_TARGET = 1.0


class Run(Protocol):
    """One seam in one round, as measured (peer.SeamRun)."""

    seam: str
    round: int
    daemon_exit: int | str | None
    figures: dict[str, Any]


#: The table's columns: figure, heading.
COLUMNS = (
    ("install", "install"),
    ("pre", "pre"),
    ("compile", "compile"),
    ("image", "image"),
    ("finish", "finish"),
    ("install_peer_cpu", "peer cpu"),
    ("install_daemon_cpu", "daemon cpu"),
    ("first_invoke", "1st invoke"),
    ("launch", "launch"),
    ("boot_tx", "boot+tx"),
)


def summarise(runs: Sequence[Run]) -> dict[str, Any]:
    """Medians by seam, ratios against straight, verdicts."""
    median: dict[str, dict[str, float]] = {}
    for seam in SEAMS:
        mine = [run.figures for run in runs if run.seam == seam]
        keys = {key for figures in mine for key, value in figures.items() if _number(value)}
        median[seam] = {
            key: statistics.median(f[key] for f in mine if _number(f.get(key))) for key in keys
        }
    ratios: dict[str, dict[str, Any]] = {}
    for name, seam, key, target in TARGETS:
        value = median[seam][key] / median["straight"][key]
        paired = [
            mine.figures[key] / base.figures[key]
            for mine in runs
            if mine.seam == seam
            for base in runs
            if base.seam == "straight" and base.round == mine.round
        ]
        ratios[name] = {"value": value, "target": target, "paired": paired, "met": value <= target}
    step = median["builder"].get("build_step")
    ratios["re-install build step (s)"] = {
        "value": step,
        "target": BUILD_STEP_TARGET,
        "paired": [],
        "met": step is not None and step < BUILD_STEP_TARGET,
    }
    exits = sorted({str(run.daemon_exit) for run in runs if run.seam != "straight"})
    rebuilt = [run.figures.get("reinstall_builder_runs") for run in runs if run.seam == "builder"]
    return {
        "median": median,
        "ratios": ratios,
        "daemon_exits": exits,
        "met": all(r["met"] for r in ratios.values()) and exits == ["0"] and not any(rebuilt),
    }


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(runs: Sequence[Run], summary: dict[str, Any], args: argparse.Namespace) -> None:
    """Print the table, the re-install, the per-round figures and the ratios."""
    print(
        f"Fabric {args.fabric} peer, engine {args.engine or args.socket}; median of "
        f"{args.rounds} rounds, seconds"
    )
    print(f"{'seam':<9}" + "".join(f"{title:>11}" for _, title in COLUMNS))
    for seam in SEAMS:
        row = summary["median"][seam]
        print(f"{seam:<9}" + "".join(f"{_cell(row.get(key)):>11}" for key, _ in COLUMNS))
    builder = summary["median"]["builder"]
    print(
        "builder, the same package on a fresh peer while the image exists: install "
        f"{_cell(builder.get('reinstall'))}, build step {_cell(builder.get('build_step'))}"
    )
    print("per round:")
    for run in runs:
        f = run.figures
        extra = ""
        if run.seam == "builder":
            extra = (
                f"  re-install {_cell(f.get('reinstall'))}, build step "
                f"{_cell(f.get('build_step'))}, builder containers run "
                f"{f.get('reinstall_builder_runs')}, image reused {f.get('reinstall_image_reused')}"
            )
        if run.seam != "straight":
            extra += f"  daemon exit {run.daemon_exit}"
        print(
            f"  {run.round + 1} {run.seam:<9} network {f.get('network_id')}  install "
            f"{_cell(f.get('install'))} (compile {_cell(f.get('compile'))})  first invoke "
            f"{_cell(f.get('first_invoke'))}{extra}"
        )
    for name, ratio in summary["ratios"].items():
        seconds = name.endswith("(s)")
        value = "-" if ratio["value"] is None else f"{ratio['value']:.3f}"
        target = f"< {ratio['target']} s" if seconds else f"<= {ratio['target']}"
        paired = ", ".join(f"{x:.3f}" for x in ratio["paired"])
        print(
            f"{name:<31} {value:>7}  target {target:<8} {'yes' if ratio['met'] else 'NO':<4}"
            + (f"  per round: {paired}" if paired else "")
        )
    print(f"daemon exit status on SIGTERM: {', '.join(summary['daemon_exits'])}")
