"""Measure the Panda's scripted collection policies: success and episode length per task and kind.

    python -m qt_policy.research.panda_experts --out results/panda_experts --seeds 0-19 --failure-seeds 0-9

For every task (PANDA_TASKS in sim/tasks.py) and policy kind (sim/panda/scripted.py: the noisy expert and
each failure maker) it runs one episode per seed on the Panda arm with both cameras rendering, and
writes OUT/experts.md (table: success k/N, mean/max length of the successes, step time) and
OUT/experts.json; with --contact-sheet, a PNG of a few frames of each task's first expert episode
(both cameras side by side) to check the images by eye. Episodes stop at the first success or after
--max-steps (default: the task's max_steps), so the failure makers' rates are those collection sees.
Seeds are placement seeds of the training data (0..999): never pass evaluation seeds (1,000,000+).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import zlib
from pathlib import Path

import numpy as np

EVAL_SEED_START = 1_000_000  # evaluation placements start here; tuning on them would leak


def parse_seeds(text: str) -> list[int]:
    """'0-19' -> 0..19, '3,5,8' -> [3, 5, 8] (ranges and lists can be mixed: '0-4,10')."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        seeds += range(int(lo), int(hi) + 1) if hi else [int(lo)]
    return seeds


def policy_rng(task: str, kind: str, seed: int) -> np.random.Generator:
    """The policy's generator for (task, kind, seed): independent of the placement (the arm's)."""
    return np.random.default_rng([int(seed), zlib.crc32(task.encode()), zlib.crc32(kind.encode())])


def run_episode(arm, task, kind: str, seed: int, max_steps: int, keep_frames: bool = False) -> dict:
    """One episode of `kind` on placement `seed`; success, length, step time (and frames)."""
    from ..sim.panda import scripted

    policy = scripted.make_collection_policy(kind, task, policy_rng(task.name, kind, seed))
    obs = arm.reset(task.name, seed)
    frames = [obs.camera_images] if keep_frames else []
    success, steps, step_time = False, 0, 0.0
    while steps < max_steps and not success:
        action = arm.clip_action(policy.act(obs.raw_obs))
        t = time.perf_counter()
        obs, success = arm.step(action)
        step_time += time.perf_counter() - t
        steps += 1
        if keep_frames:
            frames.append(obs.camera_images)
    return {"seed": seed, "success": bool(success), "steps": steps, "step_s": step_time, "frames": frames}


def contact_sheet(rows: list[list[tuple]], n_frames: int = 5) -> np.ndarray:
    """One row per episode: `n_frames` evenly spaced steps, each its cameras side by side, 2x."""
    lines = []
    for frames in rows:
        picks = np.linspace(0, len(frames) - 1, n_frames).round().astype(int)
        tiles = [np.concatenate(frames[i], axis=1) for i in picks]
        gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
        lines.append(np.concatenate([x for t in tiles for x in (t, gap)][:-1], axis=1))
    sheet = np.concatenate([x for line in lines for x in (line, np.full((4, line.shape[1], 3), 255, np.uint8))][:-1])
    return np.kron(sheet, np.ones((2, 2, 1), np.uint8))


def summarize(task: str, kind: str, episodes: list[dict]) -> dict:
    lengths = [e["steps"] for e in episodes if e["success"]]
    steps = sum(e["steps"] for e in episodes)
    return {
        "task": task, "kind": kind, "episodes": len(episodes), "successes": len(lengths),
        "mean_success_length": float(np.mean(lengths)) if lengths else None,
        "max_success_length": int(max(lengths)) if lengths else None,
        "step_ms": 1e3 * sum(e["step_s"] for e in episodes) / max(steps, 1),
        "seeds": [e["seed"] for e in episodes],
        "failed_seeds": [e["seed"] for e in episodes if not e["success"]],
    }


def write_markdown(path: Path, rows: list[dict], meta: dict) -> None:
    lines = [
        "# Panda (robosuite) scripted collection policies",
        "",
        f"Written by `python -m qt_policy.research.panda_experts` on {meta['machine']}; expert noise "
        f"N(0, {meta['expert_noise']}); both {meta['image_size']}x{meta['image_size']} cameras rendered every step. "
        "Length: steps to the first success (mean/max over the successes). Step time: `PandaArm.step` "
        "(physics, controller, both renders), single-threaded.",
        "",
        "| task | kind | success | mean length | max length | budget | step ms | failed seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mean = f"{r['mean_success_length']:.1f}" if r["mean_success_length"] is not None else "-"
        longest = r["max_success_length"] if r["max_success_length"] is not None else "-"
        lines.append(f"| {r['task']} | {r['kind']} | {r['successes']}/{r['episodes']} | {mean} | {longest} "
                     f"| {r['max_steps']} | {r['step_ms']:.1f} | {r['failed_seeds'] or ''} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="panda_experts", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results/panda_experts"),
                   help="folder for experts.md, experts.json and the contact sheet (default: results/panda_experts)")
    p.add_argument("--tasks", nargs="+", default=None, help="Panda task names (default: all of PANDA_TASKS in sim/tasks.py)")
    p.add_argument("--kinds", nargs="+", default=None,
                   help="policy kinds to run (default: expert and every failure maker)")
    p.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-19"),
                   help="placement seeds for the expert, e.g. 0-19 or 0,3,5 (default: 0-19)")
    p.add_argument("--failure-seeds", type=parse_seeds, default=parse_seeds("0-9"),
                   help="placement seeds for each failure maker (default: 0-9)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="episode budget for every task (default: each task's max_steps)")
    p.add_argument("--image-size", type=int, default=64, help="camera image size in pixels (default: 64)")
    p.add_argument("--contact-sheet", action="store_true",
                   help="also write OUT/contact_sheet.png: frames of each task's first expert episode")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = p.parse_args(argv)

    from tqdm import tqdm

    from ..sim.panda import scripted
    from ..sim.panda.arm import PandaArm
    from ..sim.tasks import PANDA_TASKS

    tasks = [PANDA_TASKS[name] for name in (args.tasks or PANDA_TASKS)]
    kinds = args.kinds or list(scripted.POLICY_KINDS)
    unknown = sorted(set(kinds) - set(scripted.POLICY_KINDS))
    if unknown:
        p.error(f"unknown kinds {unknown}; known: {list(scripted.POLICY_KINDS)}")
    if any(s >= EVAL_SEED_START for s in args.seeds + args.failure_seeds):
        p.error(f"seeds >= {EVAL_SEED_START} are evaluation seeds: not for tuning the scripted policies")
    args.out.mkdir(parents=True, exist_ok=True)

    jobs = [(task, kind, seed) for task in tasks for kind in kinds
            for seed in (args.seeds if kind == "expert" else args.failure_seeds)]
    episodes: dict[tuple[str, str], list[dict]] = {}
    sheet_rows = []
    with PandaArm(args.image_size) as arm:
        for task, kind, seed in tqdm(jobs, disable=args.no_progress, desc="episodes"):
            limit = args.max_steps or task.max_steps
            first = kind == "expert" and seed == args.seeds[0]
            episode = run_episode(arm, task, kind, seed, limit, keep_frames=args.contact_sheet and first)
            frames = episode.pop("frames")
            if frames:
                sheet_rows.append(frames)
            episodes.setdefault((task.name, kind), []).append(episode)

    rows = []
    for (task_name, kind), eps in episodes.items():
        row = summarize(task_name, kind, eps)
        row["max_steps"] = args.max_steps or PANDA_TASKS[task_name].max_steps
        rows.append(row)
    meta = {"machine": f"{platform.node()} ({platform.machine()})", "expert_noise": scripted.EXPERT_NOISE,
            "image_size": args.image_size, "command": " ".join(sys.argv)}
    (args.out / "experts.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    write_markdown(args.out / "experts.md", rows, meta)
    if sheet_rows:
        import imageio.v3 as iio

        iio.imwrite(args.out / "contact_sheet.png", contact_sheet(sheet_rows))
    for r in rows:
        print(f"{r['task']:6s} {r['kind']:12s} {r['successes']}/{r['episodes']}  "
              f"max len {r['max_success_length']}  {r['step_ms']:.1f} ms/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
