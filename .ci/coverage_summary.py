"""Print `make coverage`'s table and enforce its floor.

Reads the JSON report of the combined data (`coverage json`), prints lines and branches
covered per module, every module, covered ones too, lowest lines first, then the total, and
exits 1 when the total of lines covered is under --floor percent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the output of `coverage json`")
    parser.add_argument("--floor", type=float, required=True, help="lowest total of lines covered, percent")
    args = parser.parse_args()
    report = json.loads(args.report.read_text())

    rows = []
    for path, file in report["files"].items():
        summary = file["summary"]
        rows.append((summary["percent_statements_covered"], path, summary))
    rows.sort(key=lambda row: (row[0], row[1]))
    width = max([len(path) for _, path, _ in rows] + [5])
    print(f"{'Module':<{width}}  {'lines':>13} {'%':>6}  {'branches':>11} {'%':>6}")
    for _, path, summary in rows:
        print(_row(path, summary, width))
    totals = report["totals"]
    print(_row("TOTAL", totals, width))

    lines = totals["percent_statements_covered"]
    if lines < args.floor:
        print(f"FAIL: {lines:.1f}% of lines covered, under the floor of {args.floor:g}%", file=sys.stderr)
        return 1
    print(f"{lines:.1f}% of lines covered (floor {args.floor:g}%)")
    return 0


def _row(name: str, summary: dict, width: int) -> str:
    lines = f"{summary['covered_lines']}/{summary['num_statements']}"
    branches = f"{summary['covered_branches']}/{summary['num_branches']}"
    return (
        f"{name:<{width}}  {lines:>13} {summary['percent_statements_covered']:>6.1f}"
        f"  {branches:>11} {summary['percent_branches_covered']:>6.1f}"
    )


if __name__ == "__main__":
    sys.exit(main())
