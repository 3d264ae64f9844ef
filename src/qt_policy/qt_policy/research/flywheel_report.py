"""Compare flywheel runs: success per round per method (table and plot).

    qt-flywheel-report runs/flywheel/qt runs/flywheel/bc_all runs/flywheel/bc_success --out results/flywheel
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def main(argv=None) -> int:
    from ..flywheel.report import flywheel_summary, plot_rounds, write_table

    p = argparse.ArgumentParser(prog="qt-flywheel-report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="qt-flywheel run folders")
    p.add_argument("--out", required=True, type=Path, help="writes results.md, summary.json and rounds.png here")
    args = p.parse_args(argv)
    summaries = [flywheel_summary(run) for run in args.runs]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summaries, indent=1) + "\n")
    command = "qt-flywheel-report " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    print(write_table(summaries, args.out / "results.md", command))
    plot_rounds(summaries, args.out / "rounds.png")
    print(f"table, summary and plot in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
