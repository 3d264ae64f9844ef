"""Plot training curves (metrics.jsonl) of one or more runs side by side.

    qt-plot-training results/baselines/qt results/baselines/bc_all --out curves.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PANELS = [("loss", "loss"), ("td_loss", "TD loss (Q-T)"), ("q_data", "Q of dataset actions (Q-T)"),
          ("q_unseen_rms", "RMS Q of unseen bins (Q-T)"), ("bin_accuracy", "bin accuracy (BC)")]


def load(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    by_step = {r["step"]: r for r in rows}  # a resumed run may repeat a step: keep the last
    return [by_step[s] for s in sorted(by_step)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="qt-plot-training", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run folders holding metrics.jsonl")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {run.name: load(run) for run in args.runs}
    panels = [(k, t) for k, t in PANELS if any(k in r for rows in data.values() for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3))
    for ax, (key, title) in zip(list(axes) if len(panels) > 1 else [axes], panels):
        for i, (name, rows) in enumerate(data.items()):
            pts = [(r["step"], r[key]) for r in rows if key in r]
            if pts:  # one colour per run in every panel, also where earlier runs have no such metric
                ax.plot(*zip(*pts), label=name, lw=1, color=f"C{i % 10}")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if len(data) > 1:  # one legend for all panels: a run may appear in some panels only
        handles = {}
        for a in fig.axes:
            for h, label in zip(*a.get_legend_handles_labels()):
                handles.setdefault(label, h)
        fig.legend(handles.values(), handles.keys(), fontsize=7, loc="upper right")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
