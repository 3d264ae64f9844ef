"""Q-Transformer against behaviour cloning and its own ablations, on the same data, backbone and budget.

    qt-baselines --data data/bags --out results/baselines --steps 3000 --episodes 50

Variants (same model config and gradient-step budget), each on top of --preset (default: paper, the
configuration the committed baseline rows were trained with: mean-squared value loss, uniform replay,
acting with the online weights; core.config.PRESETS):
  qt          Q-Transformer (conservative regularizer, MC lower bound, n-step returns)
  bc_all      behaviour cloning on all episodes, uniform batches (whatever the preset's sampler)
  bc_success  behaviour cloning on successful episodes only
  qt_no_reg   Q-Transformer without the conservative regularizer (alpha = 0)
  qt_no_mc    Q-Transformer without the Monte-Carlo lower bound
  qt_n1       Q-Transformer with 1-step returns
Trains each (skipping runs already finished), evaluates the final checkpoint on --episodes
episodes per task on held-out seeds, evaluates intermediate checkpoints on --curve-episodes for the
learning curves, and writes OUT/results.json, OUT/results.md (table) and OUT/learning_curves.png.
Each row is merged into OUT/results.json as it finishes, so two processes with disjoint --variants
can share one OUT (on 2 cores: `-- --threads 1` each; two 1-thread runs beat one 2-thread run).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from ..flywheel.config import METHODS
from .algorithms import sampler_name
from .results_file import update_json

#: each variant's settings on top of the preset (config fields by name; success_only filters the episodes)
VARIANTS: dict[str, dict] = {
    "qt": METHODS["qt"],
    "bc_all": {"algo": "bc", "success_batch_fraction": 0.0},  # uniform batches under any preset
    "bc_success": METHODS["bc_success"],
    "qt_no_reg": {"conservative_weight": 0.0},
    "qt_no_mc": {"use_mc_lower_bound": False},
    "qt_n1": {"n_step": 1},
}


def train_variant(name: str, data: Path, run: Path, preset_name: str, steps: int, checkpoint_every: int,
                  extra: list[str]) -> None:
    """Train (or finish) one variant: the preset, then the variant's settings, then the extra flags."""
    from ..training import fit
    from ..training.options import build_parser, config_overrides

    flags = build_parser().parse_args(["--data", str(data), "--out", str(run), *extra])
    settings = dict(VARIANTS[name])
    success_only = settings.pop("success_only", False) or flags.success_only
    settings.update(config_overrides(flags))
    settings.update(steps=steps, checkpoint_every=checkpoint_every)
    fit(data, run, preset_name=preset_name, success_only=success_only, resume=True, threads=flags.threads,
        progress=not flags.no_progress, **settings)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="qt-baselines", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--preset", default="paper", help="the training preset under every variant (default: paper)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--episodes", type=int, default=50, help="evaluation episodes per task for the final checkpoint")
    p.add_argument("--curve-episodes", type=int, default=10, help="episodes per task for intermediate checkpoints (0: skip)")
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--machine", default=f"{platform.node()} ({platform.machine()})", help="label for the results table")
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="after --: extra flags for every training run")
    args = p.parse_args(argv)
    from ..core.checkpoint import read_config
    from ..evaluation import EVAL_SEED_START, evaluate
    from ..sim.tasks import TASKS

    tasks = args.tasks or list(TASKS)
    extra = [a for a in args.train_args if a != "--"]
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for name in args.variants:
        run = args.out / name
        ckpt = run / "checkpoint"
        if not (ckpt.is_dir() and read_config(ckpt)["step"] >= args.steps):
            print(f"== training {name}", flush=True)
            train_variant(name, args.data, run, args.preset, args.steps, args.checkpoint_every, extra)
        cfg = read_config(ckpt)
        entry = results.get(name, {})
        if entry.get("episodes_per_task") != args.episodes or entry.get("step") != cfg["step"]:
            print(f"== evaluating {name}", flush=True)
            res = evaluate(ckpt, tasks, args.episodes, EVAL_SEED_START, batch=10)
            entry = {"step": cfg["step"], "train_wall_time_s": cfg["wall_time_s"], "episodes_per_task": args.episodes,
                     "sampler": sampler_name(cfg["train"], bool(cfg["data"].get("success_only"))),
                     "mean_success": res["mean_success"], "overall": res["overall"], "tasks": res["tasks"],
                     "machine": args.machine, "curve": entry.get("curve", {})}
        if args.curve_episodes:
            for step_dir in sorted(run.glob("step_*")):
                step = str(int(step_dir.name.split("_")[1]))
                if step not in entry["curve"] and int(step) < cfg["step"]:
                    res = evaluate(step_dir, tasks, args.curve_episodes, EVAL_SEED_START, batch=10)
                    entry["curve"][step] = res["mean_success"]
            entry["curve"][str(cfg["step"])] = entry["mean_success"]
        args.out.mkdir(parents=True, exist_ok=True)
        results = merge_row(results_file, name, entry)
    write_table(results, args.out / "results.md", args, extra)
    plot_curves(results, args.out / "learning_curves.png")
    print((args.out / "results.md").read_text())
    return 0


def merge_row(results_file: Path, name: str, entry: dict) -> dict:
    """Write one row into results.json, keeping rows other processes wrote meanwhile; returns all rows."""
    return update_json(results_file, lambda results: results.__setitem__(name, entry))


def in_variant_order(results: dict) -> dict:
    """The known variants in VARIANTS order, then any other rows kept in results.json."""
    return {k: results[k] for k in [*[v for v in VARIANTS if v in results], *[k for k in results if k not in VARIANTS]]}


def write_table(results: dict, path: Path, args, train_flags: list[str] = ()) -> None:
    results = in_variant_order(results)
    lines = [f"| variant | sampler | mean success | 95% CI (all episodes) | steps | train wall time | machine |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        ci = r["overall"]["ci95"]
        lines.append(f"| {name} | {r.get('sampler', 'not recorded')} | {r['mean_success']:.1%} | [{ci[0]:.2f}, {ci[1]:.2f}] | {r['step']} | "
                     f"{r['train_wall_time_s'] / 60:.0f} min | {r['machine']} |")
    tasks = sorted({t for r in results.values() for t in r["tasks"]})
    lines += ["", "| variant | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r['tasks'][t]['success_rate']:.0%}" if t in r["tasks"] else "-"
                                                 for t in tasks) + " |")
    lines += ["", f"Evaluation: {next(iter(results.values()))['episodes_per_task']} episodes per task on seeds "
                  f"from 1,000,000 (never used for data). Reproduce: `qt-baselines "
                  f"--data {args.data} --out {args.out} --steps {args.steps} --episodes {args.episodes}"
                  + (f" --preset {args.preset}" if getattr(args, "preset", "paper") != "paper" else "")
                  + (f" -- {' '.join(train_flags)}" if train_flags else "") + "`."]
    by_hand = [k for k in results if k not in VARIANTS]
    if by_hand:  # kept from results.json: this command does not train them
        lines += ["", f"Rows {', '.join(by_hand)} are not variants of this command: their training and evaluation "
                      "commands are in docs/experiments/mixed-data.md."]
    path.write_text("\n".join(lines) + "\n")


def plot_curves(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(r.get("curve") for r in results.values()):
        return  # --curve-episodes 0: no intermediate evaluations to plot
    results = in_variant_order(results)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, r in results.items():
        pts = sorted((int(s), v) for s, v in r.get("curve", {}).items())
        if pts:
            ax.plot(*zip(*pts), marker="o", label=name)
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("mean success (held-out seeds)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
