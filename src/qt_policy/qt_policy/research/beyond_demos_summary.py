"""Issue 37's summary: every method's success, success@K, median steps to success and its length against
the demonstrator on the same placements, from qt-algorithms' per-seed results, with the pre-registered
targets judged.

    python -m qt_policy.research.beyond_demos_summary          # results/beyond_demos/summary.{json,md}

The demonstrator (the slow scripted demonstrator of the benchmark's data) is rolled out once on the
evaluation placements and kept in demonstrator.json, so the paired length ratio compares each method
with it placement by placement.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .beyond_demos_precheck import measure

RESULTS = Path("results/beyond_demos")
QT, FILTERED_BC, BC_ALL = "qt", "bc_success", "bc_all_qt_sampler"
SEEDS = 3  # training seeds per method in the protocol: fewer make a provisional summary


def demonstrator_lengths(path: Path, k_file: dict, progress: bool) -> dict[str, list[int | None]]:
    """Per task, the demonstrator's length on each evaluation placement (None where it failed), measured once."""
    if not path.is_file():
        runs = measure(k_file["tasks"], k_file["episodes_per_task"], k_file["max_steps"], progress=progress,
                       seed_start=k_file["seed_start"], kinds=("slow",))["slow"]
        path.write_text(json.dumps({"seed_start": k_file["seed_start"], "max_steps": k_file["max_steps"],
                                    "command": "python -m qt_policy.research.beyond_demos_summary", **runs}))
    runs = json.loads(path.read_text())
    out: dict[str, list[int | None]] = {}
    for task, n, ok in zip(runs["task"], runs["length"], runs["success"]):
        out.setdefault(task, []).append(n if ok else None)
    return out


def paired_ratios(row: dict, demo: dict[str, list[int | None]]) -> list[float]:
    """method length / demonstrator length on the placements both solved."""
    ratios = []
    for task, lengths in row["lengths"].items():
        for n, ok, d in zip(lengths, row["per_episode"][task], demo.get(task, [])):
            if ok and d:
                ratios.append(n / d)
    return ratios


def summarize(per_seed: dict, k: int, demo: dict) -> dict:
    methods = {}
    for name, entry in per_seed["methods"].items():
        seeds = sorted(entry["seeds"], key=int)
        rows = [entry["seeds"][s] for s in seeds]
        successes = [n for r in rows for t, ls in r["lengths"].items() for n, ok in zip(ls, r["per_episode"][t]) if ok]
        ratios = [x for r in rows for x in paired_ratios(r, demo)]
        methods[name] = {
            "success": float(np.mean([r["mean_success"] for r in rows])),
            "success_at_k": float(np.mean([r["success_at_k"] for r in rows])),
            "median_steps": float(np.median(successes)) if successes else None,
            "seeds": len(rows), "sampler": entry["sampler"], "algo": entry["algo"], "steps": entry["steps"],
            "length_ratio_vs_demonstrator": float(np.median(ratios)) if ratios else None,
            "per_seed": [{"seed": int(s), "success": r["mean_success"], "success_at_k": r["success_at_k"],
                          "median_steps": r["median_steps"]} for s, r in zip(seeds, rows)]}
    return {"k": k, "methods": methods, "targets": targets(methods),
            "complete": bool(methods) and all(m["seeds"] >= SEEDS for m in methods.values()),
            "evaluation": {"seed_start": per_seed["seed_start"], "episodes_per_task": per_seed["episodes_per_task"]},
            "commands": per_seed["commands"] + ["python -m qt_policy.research.beyond_demos_summary"]}


def targets(m: dict) -> dict:
    """The pre-registered targets (docs/experiments/beyond-demos.md), judged where their rows exist."""
    if QT not in m:
        return {}
    q, out = m[QT], {}
    if FILTERED_BC in m:
        f = m[FILTERED_BC]
        out["success@K >= filtered BC + 20 points"] = q["success_at_k"] >= f["success_at_k"] + 0.20
        out["success >= filtered BC - 5 points"] = q["success"] >= f["success"] - 0.05
        if q["median_steps"] is not None and f["median_steps"] is not None:
            out["median steps <= 0.75x filtered BC's"] = q["median_steps"] <= 0.75 * f["median_steps"]
    if BC_ALL in m:
        out["success@K >= BC on all data + 20 points"] = q["success_at_k"] >= m[BC_ALL]["success_at_k"] + 0.20
    return out


def write_markdown(summary: dict, path: Path) -> None:
    def pct(x):
        return "-" if x is None else f"{x:.1%}"

    lines = ["# Beyond the demonstrations (issue 37): the comparison", ""]
    if not summary["complete"]:
        lines += [f"**Provisional**: not every method has its {SEEDS} training seeds yet (column `seeds`); "
                  "the targets below are judged on the seeds there are.", ""]
    lines += [f"K = {summary['k']} steps; evaluation placements from seed {summary['evaluation']['seed_start']:,}, "
              f"{summary['evaluation']['episodes_per_task']} per task; means over training seeds; median steps "
              "pool the successful episodes of every seed; the length ratio is the median over placements both "
              "the method and the demonstrator solved.", "",
              "| method | algo | sampler | steps | seeds | success | success@K | median steps | length / demonstrator | per seed (success, success@K) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in summary["methods"].items():
        per = "; ".join(f"s{p['seed']}: {p['success']:.0%}, {p['success_at_k']:.0%}" for p in r["per_seed"])
        ratio = "-" if r["length_ratio_vs_demonstrator"] is None else f"{r['length_ratio_vs_demonstrator']:.2f}"
        steps = "-" if r["median_steps"] is None else f"{r['median_steps']:.0f}"
        lines.append(f"| {name} | {r['algo']} | {r['sampler']} | {r['steps']} | {r['seeds']} | {pct(r['success'])} | "
                     f"{pct(r['success_at_k'])} | {steps} | {ratio} | {per} |")
    lines += ["", "Pre-registered targets (Q-T against the rows named):", ""]
    lines += [f"- {name}: {'met' if ok else 'NOT met'}" for name, ok in summary["targets"].items()]
    lines += ["", "Commands: " + "; ".join(f"`{c}`" for c in summary["commands"])]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="beyond_demos_summary", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=RESULTS, help="folder with per_seed.json and k.json; written to")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the demonstrator's rollouts)")
    args = p.parse_args(argv)
    per_seed = json.loads((args.results / "per_seed.json").read_text())
    k_file = json.loads((args.results / "k.json").read_text())
    demo = demonstrator_lengths(args.results / "demonstrator.json", k_file, not args.no_progress)
    summary = summarize(per_seed, k_file["k"], demo)
    (args.results / "summary.json").write_text(json.dumps(summary, indent=1))
    write_markdown(summary, args.results / "summary.md")
    for name, ok in summary["targets"].items():
        print(f"{name}: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
