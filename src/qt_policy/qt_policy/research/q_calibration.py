"""How well the greedy Q predicts success (issue 40, "ask for help"): reliability on held-out episodes.

    python -m qt_policy.research.q_calibration --checkpoint models/qt_metaworld --episodes 20 \
        --out results/q_calibration

Rolls the checkpoint out greedily on validation placements (seeds 2,000,000+, never evaluation's), keeps
the greedy Q of every step and the episode's outcome, and asks of Q at each step "will this episode
succeed?". The episodes are split in two halves (even and odd placement seeds): a monotone map from Q
to the success frequency (isotonic regression, scipy) is fitted on one half and measured on the other:
expected calibration error (10 equal-width bins, steps weighted so each episode counts once), Brier
score, raw and calibrated, a reliability plot, and AUROC (does Q separate the episodes that succeed
from the others at all? calibration cannot add that). A help signal (the node's `help_needed`) needs the
calibrated number: a threshold on raw Q means something else for every model.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

BINS = 10


def step_table(episodes: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Q of every step, the episode's outcome per step, weight 1/length per step: each episode counts once)."""
    q = np.concatenate([np.asarray(e["q"], float) for e in episodes])
    y = np.concatenate([np.full(len(e["q"]), float(e["success"])) for e in episodes])
    w = np.concatenate([np.full(len(e["q"]), 1.0 / len(e["q"])) for e in episodes])
    return q, y, w


def fit_calibration(q: np.ndarray, y: np.ndarray, w: np.ndarray):
    """A non-decreasing map Q -> success frequency (weighted isotonic regression), as a callable."""
    from scipy.optimize import isotonic_regression

    order = np.argsort(q, kind="stable")
    fitted = isotonic_regression(y[order], weights=w[order], increasing=True).x
    xs = q[order]
    return lambda values: np.interp(np.asarray(values, float), xs, fitted)


def reliability(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict:
    """Per equal-width bin of the predicted probability: mean prediction, success frequency, weight; ECE, Brier."""
    edges = np.linspace(0.0, 1.0, BINS + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, BINS - 1)
    rows, ece = [], 0.0
    for b in range(BINS):
        m = idx == b
        if not m.any():
            continue
        wb = w[m].sum()
        pred, freq = float(np.average(p[m], weights=w[m])), float(np.average(y[m], weights=w[m]))
        rows.append({"bin": [float(edges[b]), float(edges[b + 1])], "predicted": pred, "observed": freq,
                     "weight": float(wb)})
        ece += wb / w.sum() * abs(pred - freq)
    return {"ece": float(ece), "brier": float(np.average((p - y) ** 2, weights=w)), "bins": rows}


def auroc(q: np.ndarray, y: np.ndarray) -> float | None:
    """How well Q separates the steps of episodes that succeeded from the others (0.5: not at all)."""
    from scipy.stats import mannwhitneyu

    pos, neg = q[y > 0.5], q[y <= 0.5]
    if not len(pos) or not len(neg):
        return None
    return float(mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))


def rollouts(checkpoint: Path, tasks: list[str], episodes: int, seed_start: int, max_steps, progress: bool):
    from tqdm import tqdm

    from ..core.text import shared_encoder
    from ..evaluation.rollout import BatchPolicy, run_task
    from ..inference import load_policy
    from ..sim.arms import make_arm, suite_of
    from ..sim.tasks import get_task

    model = load_policy([checkpoint], "torch")
    policy = BatchPolicy(model, shared_encoder())
    arms = [make_arm(suite_of(tasks), model.cfg.image_size or 64) for _ in range(10)]
    out = []
    try:
        for name in tqdm(tasks, desc="tasks", disable=not progress):
            for start in range(0, episodes, len(arms)):
                seeds = list(range(seed_start + start, seed_start + min(start + len(arms), episodes)))
                ok, lengths, q, _ = run_task(arms[:len(seeds)], policy, get_task(name), seeds, max_steps=max_steps)
                out += [{"task": name, "seed": s, "success": bool(o), "length": int(n), "q": qt}
                        for s, o, n, qt in zip(seeds, ok, lengths, q)]
    finally:
        for arm in arms:
            arm.close()
    return out


def plot(raw: dict, calibrated: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect")
    for rel, label, color in ((raw, "greedy Q", "tab:blue"), (calibrated, "calibrated", "tab:green")):
        xs = [b["predicted"] for b in rel["bins"]]
        ys = [b["observed"] for b in rel["bins"]]
        ax.plot(xs, ys, "o-", color=color, label=f"{label} (ECE {rel['ece']:.3f}, Brier {rel['brier']:.3f})")
    ax.set_xlabel("predicted success (per step)")
    ax.set_ylabel("episodes that succeeded")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="q_calibration", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="the model whose greedy Q is checked")
    p.add_argument("--tasks", nargs="+", default=None, help="tasks (default: the checkpoint's)")
    p.add_argument("--episodes", type=int, default=20, help="episodes per task (default 20)")
    p.add_argument("--seed-start", type=int, default=2_000_000, help="first placement seed (default: validation's)")
    p.add_argument("--max-steps", type=int, default=None, help="step budget (default: each task's)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", type=Path, required=True, help="folder for calibration.json and reliability.png")
    p.add_argument("--reuse", type=Path, default=None, help="a calibration.json whose rollouts to use again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    import torch

    from ..sim.arms import tasks_for_checkpoint
    torch.set_num_threads(args.threads)
    tasks = args.tasks or tasks_for_checkpoint(args.checkpoint)
    if args.reuse is not None:  # the rollouts of an earlier run: only the statistics again
        eps = json.loads(args.reuse.read_text())["episodes"]
    else:
        eps = rollouts(args.checkpoint, tasks, args.episodes, args.seed_start, args.max_steps, not args.no_progress)
    fit_half = [e for e in eps if e["seed"] % 2 == 0]
    test_half = [e for e in eps if e["seed"] % 2 == 1]
    calibrate = fit_calibration(*step_table(fit_half))
    q, y, w = step_table(test_half)
    raw, calibrated = reliability(q, y, w), reliability(calibrate(q), y, w)
    q0 = np.array([e["q"][0] for e in test_half])
    y0 = np.array([float(e["success"]) for e in test_half])
    result = {"checkpoint": str(args.checkpoint), "tasks": tasks, "episodes_per_task": args.episodes,
              "seed_start": args.seed_start, "success_rate": float(np.mean([e["success"] for e in eps])),
              "fit_episodes": len(fit_half), "test_episodes": len(test_half),
              "every_step": {"raw": raw, "calibrated": calibrated, "auroc": auroc(q, y)},
              "first_step": {"raw": reliability(q0, y0, np.ones_like(q0)),
                             "calibrated": reliability(calibrate(q0), y0, np.ones_like(q0)), "auroc": auroc(q0, y0)},
              "episodes": eps}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration.json").write_text(json.dumps(result, indent=1))
    grid = np.linspace(0.0, 1.0, 101)  # the map itself, for the node's help signal (help_calibration)
    (args.out / "calibration_map.json").write_text(json.dumps({"q": grid.tolist(), "p": calibrate(grid).tolist()}))
    plot(raw, calibrated, args.out / "reliability.png",
         f"{args.checkpoint.name}: {len(test_half)} held-out episodes, every step")
    for where in ("every_step", "first_step"):
        r = result[where]
        separates = "n/a" if r["auroc"] is None else f"{r['auroc']:.3f}"
        print(f"{where:<11} raw ECE {r['raw']['ece']:.3f} Brier {r['raw']['brier']:.3f}   calibrated ECE "
              f"{r['calibrated']['ece']:.3f} Brier {r['calibrated']['brier']:.3f}   AUROC {separates}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
