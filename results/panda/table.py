#!/usr/bin/env python3
"""The Panda results table (results/panda/README.md) from the qt-evaluate JSON files in this folder.

    python results/panda/table.py        # prints the Markdown table

One row per (method, path) file named <method>_<path>.json (path: harness | ros); columns: each
task's successes and the overall success with its 95% Wilson interval, as qt-evaluate wrote them.
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = {"qt": "Q-Transformer (recommended)", "bc_all": "BC on all data", "bc_success": "BC on successful episodes"}
PATHS = {"harness": "harness", "ros": "ROS graph (TwistStamped)"}


def main() -> int:
    rows = []
    tasks: list[str] = []
    for method, label in METHODS.items():
        for path, where in PATHS.items():
            f = HERE / f"{method}_{path}.json"
            if not f.is_file():
                continue
            res = json.loads(f.read_text())
            tasks = tasks or list(res["tasks"])
            cells = [f"{res['tasks'][t]['successes']}/{res['tasks'][t]['episodes']}" for t in tasks]
            lo, hi = res["overall"]["ci95"]
            rows.append(f"| {label} | {where} | " + " | ".join(cells)
                        + f" | **{res['mean_success']:.1%}** [{lo:.2f}, {hi:.2f}] | {res['wall_time_s'] / 60:.0f} min |")
    if not rows:
        print("no <method>_<path>.json files here", file=sys.stderr)
        return 1
    print("| model | path | " + " | ".join(tasks) + " | success [95% CI] | wall time |")
    print("|---|---|" + "---|" * len(tasks) + "---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
