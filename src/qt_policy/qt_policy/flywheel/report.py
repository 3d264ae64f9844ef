"""What flywheel runs did, read back from their stage files: per round the data trained on, the
success of the round's policy on the evaluation seeds (95% Wilson interval) and of its deployment."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from ..evaluation.stats import success_within, wilson_interval


def _read(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def flywheel_summary(out: Path) -> dict:
    """{method, settings, rounds: [{round, trained_on, eval, collected}], final_seeds: [...]}."""
    out = Path(out)
    settings = json.loads((out / "flywheel.json").read_text())
    within = settings.get("success_within", 0)  # K of success@K; 0: none
    rounds = []
    for k in range(settings["rounds"] + 1):
        folder = out / f"round_{k}"
        train, ev, collect = _read(folder / "train.json"), _read(folder / "eval.json"), _read(folder / "collect.json")
        row = {"round": k}
        if collect:
            row["collected"] = {"episodes": collect["episodes"], "successes": collect["successes"],
                                "tasks": collect["tasks"], "operator_share": collect.get("operator_share", 0.0)}
        if train:
            row["trained_on"] = {key: train[key] for key in ("episodes", "successes", "transitions", "steps",
                                                             "train_wall_time_s")}
        if ev:
            row["eval"] = _eval_row(ev, within)
        rounds.append(row)
    last = out / f"round_{settings['rounds']}"
    finals = []
    for seed in range(settings["train_seed"], settings["train_seed"] + settings["final_seeds"]):
        name = "eval.json" if seed == settings["train_seed"] else f"eval_seed{seed}.json"
        ev = _read(last / name)
        if ev:
            finals.append({"seed": seed, **_eval_row(ev, within)})
    collected = [r["collected"]["tasks"][t] for r in rounds if "collected" in r for t in r["collected"]["tasks"]]
    takeover = settings.get("takeover_after", 0)
    summary = {"method": settings["method"], "settings": settings, "rounds": rounds, "final_seeds": finals,
               "label": settings["method"] + (f" + person after {takeover} steps" if takeover else ""),
               # the person's share of every step the rounds collected (issue 40's budget: <= 20%)
               "person_share": sum(c.get("operator_steps", 0) for c in collected) / max(1, sum(c["steps"] for c in collected))}
    if finals:
        pooled_s, pooled_n = sum(f["successes"] for f in finals), sum(f["episodes"] for f in finals)
        summary["final"] = {"seeds": len(finals), "mean_success": sum(f["success_rate"] for f in finals) / len(finals),
                            "pooled_ci95": list(wilson_interval(pooled_s, pooled_n))}
        if within:
            summary["final"]["mean_success_at_k"] = sum(f["success_at_k"] for f in finals) / len(finals)
    return summary


def _eval_row(ev: dict, k: int = 0) -> dict:
    """One evaluation's counts; with k > 0 also success@K (the share of episodes that succeeded within k steps)."""
    o = ev["overall"]
    row = {"successes": o["successes"], "episodes": o["episodes"], "success_rate": o["successes"] / o["episodes"],
           "ci95": o["ci95"], "tasks": {t: v["successes"] for t, v in ev["tasks"].items()},
           "wall_time_s": round(ev.get("wall_time_s", 0.0), 1)}
    if k:
        at_k = success_within(dict(ev), k)["overall"]
        row.update(k=k, success_at_k=at_k["successes"] / at_k["episodes"], success_at_k_ci95=at_k["ci95"])
    lengths = [n for t in ev["tasks"].values() for n, ok in zip(t.get("lengths", []), t["per_episode"]) if ok]
    if lengths:  # how fast the successes were (evaluations before per-episode lengths have none)
        row["median_steps"] = float(statistics.median(lengths))
    return row


def write_table(summaries: list[dict], path: Path, command: str) -> str:
    """A markdown table: success per round per method, then the last round's seeds."""
    rounds = max(len(s["rounds"]) for s in summaries)
    lines = [f"Command: `{command}`", "",
             "Success on the evaluation seeds (1,000,000+) of each round's policy, 95% Wilson interval; "
             "in brackets: the episodes it was trained on (successes).", "",
             "| method | " + " | ".join(f"round {k}" for k in range(rounds)) + " |",
             "|---|" + "---|" * rounds]
    for s in summaries:
        cells = []
        for row in s["rounds"]:
            if "eval" not in row:
                cells.append("—")
                continue
            e, t = row["eval"], row.get("trained_on", {})
            at_k = f", success@{e['k']} {e['success_at_k']:.1%}" if "k" in e else ""
            at_k += f", median {e['median_steps']:.0f} steps" if "k" in e and "median_steps" in e else ""
            cells.append(f"{e['success_rate']:.1%} [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}]{at_k} "
                         f"({t.get('episodes', '?')} eps, {t.get('successes', '?')} succ.)")
        lines.append(f"| {s['label']} | " + " | ".join(cells) + " |")
    lines += ["", "Last round, every training seed:", "", "| method | seeds | mean success | pooled 95% interval |",
              "|---|---|---|---|"]
    for s in summaries:
        if s.get("final"):
            per = ", ".join(f"{f['seed']}: {f['success_rate']:.1%}" for f in s["final_seeds"])
            f = s["final"]
            at_k = f" (success@K {f['mean_success_at_k']:.1%})" if "mean_success_at_k" in f else ""
            lines.append(f"| {s['label']} | {per} | {f['mean_success']:.1%}{at_k} | "
                         f"[{f['pooled_ci95'][0]:.2f}, {f['pooled_ci95'][1]:.2f}] |")
    lines += ["", "Deployment (the collecting policy's own episodes on the round's fresh placements):", "",
              "| method | " + " | ".join(f"round {k}" for k in range(1, rounds)) + " | person's share, all rounds |",
              "|---|" + "---|" * rounds]
    for s in summaries:
        cells = [f"{r['collected']['successes']}/{r['collected']['episodes']}"
                 + (f" (person {r['collected']['operator_share']:.0%} of steps)" if r["collected"]["operator_share"] else "")
                 if "collected" in r else "—" for r in s["rounds"][1:]]
        lines.append(f"| {s['label']} | " + " | ".join(cells) + f" | {s['person_share']:.1%} |")
    text = "\n".join(lines) + "\n"
    Path(path).write_text(text)
    return text


def plot_rounds(summaries: list[dict], path: Path) -> None:
    """Success against round per method, with the 95% intervals, and the last round's other seeds; beside it
    success@K when the runs had a step budget (issue 37: reachable only by doing better than the data)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("success_rate", "ci95", "success")]
    k = next((r["eval"]["k"] for s in summaries for r in s["rounds"] if "k" in r.get("eval", {})), 0)
    if k:
        panels.append(("success_at_k", "success_at_k_ci95", f"success within {k} steps"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.4), squeeze=False)
    for ax, (key, interval, label) in zip(axes[0], panels):
        for i, s in enumerate(summaries):
            rows = [r for r in s["rounds"] if "eval" in r]
            x = [r["round"] + (i - 1) * 0.06 for r in rows]
            y = [r["eval"][key] for r in rows]
            err = [[v - r["eval"][interval][0] for v, r in zip(y, rows)],
                   [r["eval"][interval][1] - v for v, r in zip(y, rows)]]
            line = ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=s["label"])
            extra = [f for f in s.get("final_seeds", []) if f["seed"] != s["settings"]["train_seed"]]
            if extra and rows:
                ax.scatter([rows[-1]["round"] + (i - 1) * 0.06 + 0.12] * len(extra), [f[key] for f in extra],
                           marker="x", color=line[0].get_color())
        ax.set_xlabel("round (0 = seed data only)")
        ax.set_ylabel(f"{label}, evaluation seeds")
        ax.set_ylim(0, 1)
        ax.set_xticks(range(max(len(s["rounds"]) for s in summaries)))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"deploy -> record -> retrain: {label} (x: other training seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
