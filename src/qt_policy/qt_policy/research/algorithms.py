"""The algorithms table: every method on the same data, backbone, budget and seeds, one row each.

    qt-algorithms --data data/bags --split evaluation --seeds 0 1 2       # results/algorithms/summary.json
    qt-algorithms --data data/bags --split validation --methods qt qt_success   # choosing settings

Each (method, seed) is one `qt-train` run under RUNS/<method>_s<seed> (resumed if interrupted), then
evaluated on the split's seeds; its result is merged into OUT/<split>.json (summary.json for the
evaluation split) as soon as it finishes, and OUT/<split>.md is rewritten. A pair already in the JSON
is skipped, so the table fills in over several sessions and two processes can share the work: each
claims a pair before training it (RUNS/<method>_s<seed>.claim). Every row names its algorithm, preset,
sampler and steps: the table compares like with like only where those say so.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from ..training.claims import claim
from .results_file import update_json

#: method -> (preset, config fields by name; success_only filters the episodes). "Q-T's sampler" is the
#: shipped success_batch_fraction; "uniform" is 0 (every step equally likely, as the paper's replay).
METHODS: dict[str, dict] = {
    "qt": {"preset": "recommended", "settings": {}},
    "qt_paper": {"preset": "paper", "settings": {}},
    "qt_success": {"preset": "recommended", "settings": {"success_only": True}},  # issue 36, item 3
    "qt_uniform": {"preset": "recommended", "settings": {"success_batch_fraction": 0.0}},
    # the recipe of models/qt_metaworld (its pull was 5/31 = 0.16129 per bin, the default 0.161)
    "qt_zero": {"preset": "recommended", "settings": {"conservatism": "zero"}},
    # CQL as the paper's baseline (QT-Opt + CQL): the same per-dimension n-step targets, without Q-T's MC bound
    "cql": {"preset": "recommended", "settings": {"algo": "cql", "use_mc_lower_bound": False}},
    "iql": {"preset": "recommended", "settings": {"algo": "iql"}},
    "dt": {"preset": "recommended", "settings": {"algo": "dt"}},
    "bc_all_uniform": {"preset": "recommended", "settings": {"algo": "bc", "success_batch_fraction": 0.0}},
    "bc_all_qt_sampler": {"preset": "recommended", "settings": {"algo": "bc"}},
    "bc_success": {"preset": "recommended", "settings": {"algo": "bc", "success_only": True}},
    "rt1_bc": {"preset": "recommended", "settings": {"algo": "rt1_bc", "success_only": True}},
    # HG-DAgger (issue 40): BC on the successful episodes and on the steps a person drove in the others, uniform
    "hg_dagger": {"preset": "recommended", "settings": {"algo": "bc", "failure_steps": "interventions",
                                                        "success_batch_fraction": 0.0}},
}

#: the table's methods, in the paper's order, then the imitation rows
TABLE = ["qt", "qt_paper", "cql", "iql", "dt", "bc_all_uniform", "bc_all_qt_sampler", "bc_success", "rt1_bc"]

SPLITS = {"evaluation": {"seed_start": 1_000_000, "episodes": 50, "file": "summary"},
          "validation": {"seed_start": 2_000_000, "episodes": 10, "file": "validation"}}


def run_settings(method: str, steps: int) -> tuple[str, dict, bool]:
    """(preset, config overrides, success_only) of one method at `steps` gradient steps."""
    spec = METHODS[method]
    settings = dict(spec["settings"])
    success_only = bool(settings.pop("success_only", False))
    settings["steps"] = steps
    return spec["preset"], settings, success_only


def sampler_name(train_cfg: dict, success_only: bool) -> str:
    """What a row's batches were drawn from, in words (the table names it in every row)."""
    if success_only:
        return "successes only, uniform"
    f = train_cfg["success_batch_fraction"]
    kept = "successes + a person's steps" if train_cfg.get("failure_steps") == "interventions" else "all"
    return f"{kept}, uniform" if f == 0 else f"{kept}, {f:g} from successes"


def speed_of(res: dict, k: int, success_within) -> dict:
    """success@K (issue 37), the median steps of the successful episodes and every episode's length."""
    lengths = [n for r in res["tasks"].values() for n, ok in zip(r["lengths"], r["per_episode"]) if ok]
    return {"k": k, "success_at_k": success_within(res, k)["mean"], "max_steps": res.get("max_steps"),
            "median_steps": float(np.median(lengths)) if lengths else None,
            "lengths": {t: r["lengths"] for t, r in res["tasks"].items()},
            "per_episode": {t: r["per_episode"] for t, r in res["tasks"].items()}}


def merge_seed(results_file: Path, method: str, seed: int, row: dict, header: dict, command: str) -> dict:
    """Write one (method, seed) result into the JSON under a lock, recomputing the method's mean."""

    def add(results: dict) -> None:
        if command not in results["commands"]:
            results["commands"].append(command)
        entry = results["methods"].setdefault(method, {"seeds": {}})
        entry["seeds"][str(seed)] = row
        for key in ("algo", "preset", "sampler", "steps", "settings"):
            entry[key] = row[key]
        rates = [entry["seeds"][s]["mean_success"] for s in sorted(entry["seeds"], key=int)]
        entry["success_per_seed"] = rates
        entry["mean"] = float(np.mean(rates))
        entry["std"] = float(np.std(rates, ddof=1)) if len(rates) > 1 else None
        entry["min"], entry["max"] = float(min(rates)), float(max(rates))

    return update_json(results_file, add, empty=lambda: {**header, "methods": {}}, indent=1)


def pooled_interval(entry: dict) -> tuple[float, float]:
    """95% Wilson interval of all the method's episodes, every seed pooled."""
    from ..evaluation import wilson_interval

    k = sum(s["overall"]["successes"] for s in entry["seeds"].values())
    n = sum(s["overall"]["episodes"] for s in entry["seeds"].values())
    return wilson_interval(k, n)


def write_table(results: dict, path: Path) -> None:
    order = [m for m in TABLE if m in results["methods"]] + [m for m in results["methods"] if m not in TABLE]
    lines = [f"# Algorithms on {results['data']}: {results['split']} seeds", "",
             f"{results['episodes_per_task']} episodes per task from seed {results['seed_start']:,}; every row "
             "the same backbone and data; mean over training seeds (spread = sample std); the interval pools every "
             "episode of every seed (95% Wilson). Made by `qt-algorithms` (command below).", "",
             "| method | algo | preset | sampler | steps | seeds | mean success | std | per seed | 95% CI (pooled) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m in order:
        e = results["methods"][m]
        lo, hi = pooled_interval(e)
        seeds = ", ".join(sorted(e["seeds"], key=int))
        per_seed = ", ".join(f"{r:.1%}" for r in e["success_per_seed"])
        std = f"{e['std']:.1%}" if e["std"] is not None else "-"
        lines.append(f"| {m} | {e['algo']} | {e['preset']} | {e['sampler']} | {e['steps']} | {seeds} | "
                     f"{e['mean']:.1%} | {std} | {per_seed} | [{lo:.2f}, {hi:.2f}] |")
    lines += ["", "Per task (mean over seeds):", ""]
    tasks = sorted({t for e in results["methods"].values() for s in e["seeds"].values() for t in s["tasks"]})
    lines += ["| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for m in order:
        seeds = results["methods"][m]["seeds"].values()
        cells = [f"{np.mean([s['tasks'][t] for s in seeds if t in s['tasks']]):.0%}" for t in tasks]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Commands: " + "; ".join(f"`{c}`" for c in results.get("commands", []))]
    path.write_text("\n".join(lines) + "\n")


def curves_folder(out: Path, split: str, file: str | None) -> Path:
    """Where a row's training curves are kept beside its result: OUT/runs/<split>, or OUT/runs/<file> for a
    named results file, so that two files of one split (e.g. two budgets) do not overwrite each other's."""
    return out / "runs" / (file or split)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="qt-algorithms", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="folder of episode bags (or a shard folder)")
    p.add_argument("--methods", nargs="+", default=TABLE, choices=list(METHODS), help="rows to fill (default: the table)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds per method")
    p.add_argument("--split", default="evaluation", choices=list(SPLITS),
                   help="evaluation: seeds 1,000,000+, 50 per task (report only); validation: 2,000,000+, 10 per task "
                        "(choose settings here)")
    p.add_argument("--steps", type=int, default=3000, help="gradient steps of every run")
    p.add_argument("--runs", type=Path, default=Path("runs/algorithms"), help="where the run folders go")
    p.add_argument("--out", type=Path, default=Path("results/algorithms"), help="where the JSON and the table go")
    p.add_argument("--threads", type=int, default=None, help="torch threads per run (two processes on 2 cores: 1)")
    p.add_argument("--device", default="cpu", help="torch device of the training, e.g. cuda (evaluation runs on the CPU)")
    p.add_argument("--batch", type=int, default=10, help="simulated arms stepped together in evaluation")
    p.add_argument("--tasks", nargs="+", default=None, help="tasks to evaluate on (default: every Meta-World task)")
    p.add_argument("--max-steps", type=int, default=None, help="evaluation step budget (default: each task's)")
    p.add_argument("--success-within", type=int, default=None, metavar="K",
                   help="also report success within K steps and the median steps to success (issue 37)")
    p.add_argument("--buffer-mb", type=float, default=None,
                   help="the sampler's memory of every run (default: TrainConfig's); data that fits is held whole")
    p.add_argument("--file", default=None,
                   help="name of the results JSON/table in OUT (default: summary for evaluation, validation)")
    p.add_argument("--workers", type=int, default=1, help="evaluation processes, one task each (the same results)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)

    from ..core.checkpoint import read_config
    from ..evaluation.parallel import evaluate_in_processes
    from ..evaluation.stats import success_within
    from ..sim.tasks import TASKS
    from ..training import fit

    split = SPLITS[args.split]
    results_file = args.out / f"{args.file or split['file']}.json"
    header = {"data": str(args.data), "split": args.split, "seed_start": split["seed_start"],
              "episodes_per_task": split["episodes"], "commands": []}
    command = "qt-algorithms " + " ".join(argv if argv is not None else sys.argv[1:])
    for seed in args.seeds:
        for method in args.methods:
            done = json.loads(results_file.read_text())["methods"] if results_file.is_file() else {}
            if str(seed) in done.get(method, {}).get("seeds", {}):
                continue
            run = args.runs / f"{method}_s{seed}"
            if not claim(args.runs / f"{method}_s{seed}.claim"):
                print(f"== {method} seed {seed}: another process has it", flush=True)
                continue
            try:
                preset, settings, success_only = run_settings(method, args.steps)
                if args.buffer_mb is not None:
                    settings["buffer_mb"] = args.buffer_mb
                print(f"== {method} seed {seed}: training ({preset}, {settings})", flush=True)
                fit(args.data, run, preset_name=preset, success_only=success_only, resume=True, seed=seed,
                    device=args.device, threads=args.threads, progress=not args.no_progress, **settings)
                cfg = read_config(run / "checkpoint")
                print(f"== {method} seed {seed}: evaluating", flush=True)
                res = evaluate_in_processes(
                    dict(checkpoint=run / "checkpoint", episodes=split["episodes"], seed_start=split["seed_start"],
                         batch=args.batch, max_steps=args.max_steps), args.tasks or list(TASKS), args.workers,
                    progress=not args.no_progress)
                row = {"algo": cfg["train"]["algo"], "preset": preset, "sampler": sampler_name(cfg["train"], success_only),
                       "steps": cfg["step"], "settings": settings, "mean_success": res["mean_success"],
                       "overall": res["overall"], "tasks": {t: r["success_rate"] for t, r in res["tasks"].items()},
                       "train_wall_time_s": cfg["wall_time_s"], "eval_wall_time_s": res["wall_time_s"],
                       "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu",
                       "date": datetime.date.today().isoformat()}
                if args.success_within is not None:
                    row.update(speed_of(res, args.success_within, success_within))
                results = merge_seed(results_file, method, seed, row, header, command)
                write_table(results, results_file.with_suffix(".md"))
                run_copy = curves_folder(args.out, args.split, args.file) / f"{method}_s{seed}"
                run_copy.mkdir(parents=True, exist_ok=True)
                (run_copy / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text())
                print(f"== {method} seed {seed}: {res['mean_success']:.1%}", flush=True)
            finally:
                (args.runs / f"{method}_s{seed}.claim").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
