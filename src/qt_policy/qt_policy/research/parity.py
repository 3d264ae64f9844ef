"""Does the policy as the robot runs it (through the ROS graph) do what the evaluation harness says?

    qt-parity HARNESS.json ROS.json --out results/ros_loop/parity.json \
        [--replay-bags data/eval_ros/bags --checkpoint models/qt_metaworld]

Both inputs are `tools.evaluate --out` files of the same checkpoint on the same placements (the
second made with --through-ros). Per task: successes of each path with 95% Wilson intervals, and
the paired outcomes of the same seeds (how often one path succeeded where the other failed; an
exact McNemar test of whether the disagreements lean one way). The target (issue 18): the ROS
loop's mean success within 3 points of the harness's, and no task's ROS rate below the harness's
95% interval. Writes the comparison as JSON (and a Markdown table beside it).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TARGET_POINTS = 3.0


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs: a binomial test of b in b + c at 1/2."""
    from scipy.stats import binomtest

    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def compare(harness: dict, ros: dict) -> dict:
    tasks = {}
    for name, h in harness["tasks"].items():
        r = ros["tasks"].get(name)
        if r is None:
            continue
        if h.get("seeds") and r.get("seeds") and h["seeds"][: len(r["seeds"])] != r["seeds"][: len(h["seeds"])]:
            raise ValueError(f"{name}: the two runs used different seeds")
        pairs = list(zip(h.get("per_episode", []), r.get("per_episode", [])))
        only_h = sum(1 for a, b in pairs if a and not b)
        only_r = sum(1 for a, b in pairs if b and not a)
        tasks[name] = {
            "harness": {"successes": h["successes"], "episodes": h["episodes"], "rate": h["success_rate"],
                        "ci95": h["ci95"]},
            "ros": {"successes": r["successes"], "episodes": r["episodes"], "rate": r["success_rate"],
                    "ci95": r["ci95"]},
            "difference_points": 100 * (r["success_rate"] - h["success_rate"]),
            "harness_only_successes": only_h, "ros_only_successes": only_r,
            "mcnemar_p": mcnemar_exact(only_h, only_r),
            "ros_below_harness_interval": r["success_rate"] < h["ci95"][0],
        }
    mean_h = sum(t["harness"]["rate"] for t in tasks.values()) / len(tasks)
    mean_r = sum(t["ros"]["rate"] for t in tasks.values()) / len(tasks)
    only_h = sum(t["harness_only_successes"] for t in tasks.values())
    only_r = sum(t["ros_only_successes"] for t in tasks.values())
    gap = 100 * (mean_r - mean_h)
    return {
        "checkpoint": harness.get("checkpoint"), "seed_start": harness.get("seed_start"),
        "episodes_per_task": harness.get("episodes_per_task"), "tasks": tasks,
        "mean": {"harness": mean_h, "ros": mean_r, "difference_points": gap,
                 "harness_only_successes": only_h, "ros_only_successes": only_r,
                 "mcnemar_p": mcnemar_exact(only_h, only_r)},
        "target": {"within_points": TARGET_POINTS, "met": abs(gap) <= TARGET_POINTS
                   and not any(t["ros_below_harness_interval"] for t in tasks.values())},
    }


def replay_agreement(bag_dir: Path, checkpoint: Path) -> dict:
    """Decide again, with the evaluation's decision function, on the frames each recorded episode's
    actions were decided from: the share of steps whose bins the ROS policy node chose identically, and
    the largest greedy-Q difference. Every step identical = the node is the evaluated policy, step for
    step; any success gap then comes from elsewhere (the placements, the simulator's timing)."""
    import numpy as np

    from ..core.checkpoint import load_policy_model
    from ..core.text import shared_encoder
    from ..data.bag_io import list_episode_bags
    from ..evaluation.replay import decide_on_episode, load_episode

    model, embed = load_policy_model(checkpoint), shared_encoder()
    steps = same = episodes = identical = 0
    max_q = 0.0
    for bag in list_episode_bags(bag_dir):
        ep, recorded, recorded_q = load_episode(bag)
        if recorded is None:
            continue
        bins, q, _ = decide_on_episode(model, ep, embed)
        agree = (bins == recorded).all(1)
        steps, same, episodes = steps + len(ep), same + int(agree.sum()), episodes + 1
        identical += bool(agree.all())
        max_q = max(max_q, float(np.abs(q - recorded_q).max()))
    return {"episodes": episodes, "episodes_identical": identical, "steps": steps, "steps_identical": same,
            "max_greedy_q_difference": max_q}


def markdown(c: dict) -> str:
    lines = ["| task | harness | ROS loop | difference | harness-only / ROS-only successes | McNemar p |",
             "|---|---|---|---|---|---|"]
    for name, t in c["tasks"].items():
        h, r = t["harness"], t["ros"]
        flag = " (below the harness's interval)" if t["ros_below_harness_interval"] else ""
        lines.append(f"| {name} | {h['successes']}/{h['episodes']} [{h['ci95'][0]:.2f}, {h['ci95'][1]:.2f}] | "
                     f"{r['successes']}/{r['episodes']} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]{flag} | "
                     f"{t['difference_points']:+.1f} | {t['harness_only_successes']} / {t['ros_only_successes']} | "
                     f"{t['mcnemar_p']:.2f} |")
    m = c["mean"]
    lines.append(f"| **mean** | {100 * m['harness']:.1f}% | {100 * m['ros']:.1f}% | {m['difference_points']:+.1f} | "
                 f"{m['harness_only_successes']} / {m['ros_only_successes']} | {m['mcnemar_p']:.2f} |")
    lines.append("")
    if "replay" in c:
        r = c["replay"]
        lines.append("")
        lines.append(f"Replay of the ROS loop's {r['episodes']} recorded episodes through the evaluation's decision "
                     f"function: {r['steps_identical']} of {r['steps']} steps chose the same bins "
                     f"({r['episodes_identical']} episodes identical at every step); largest greedy-Q difference "
                     f"{r['max_greedy_q_difference']:.1e}.")
        lines.append("")
    lines.append(f"Target (ROS loop within {c['target']['within_points']:g} points of the harness, no task below "
                 f"the harness's 95% interval): **{'met' if c['target']['met'] else 'not met'}**.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="qt-parity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("harness", type=Path, help="tools.evaluate --out JSON of the harness")
    p.add_argument("ros", type=Path, help="tools.evaluate --through-ros --out JSON of the same checkpoint and seeds")
    p.add_argument("--out", type=Path, help="write the comparison here (JSON, and .md beside it)")
    p.add_argument("--replay-bags", type=Path, default=None,
                   help="the ROS run's episode bags: decide again on their frames and count identical steps")
    p.add_argument("--checkpoint", type=Path, default=None, help="with --replay-bags: the model that ran")
    args = p.parse_args(argv)
    c = compare(json.loads(args.harness.read_text()), json.loads(args.ros.read_text()))
    if args.replay_bags is not None:
        if args.checkpoint is None:
            p.error("--replay-bags needs --checkpoint")
        c["replay"] = replay_agreement(args.replay_bags, args.checkpoint)
    c["inputs"] = {"harness": str(args.harness), "ros": str(args.ros)}
    text = markdown(c)
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(c, indent=2) + "\n")
        args.out.with_suffix(".table.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
