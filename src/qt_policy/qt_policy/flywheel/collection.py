"""The data a flywheel adds: seed demonstrations, then each round's own episodes, as episode bags.

Every function writes finalized bags into one folder (the run's training data) and skips the bags
already there, so a collection interrupted at any point continues where it stopped.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..data.bag_io import list_episode_bags, read_episode_bag
from ..data.bag_writer import write_episode_bag


def link_bags(source: Path, bags: Path, prefix: str = "") -> int:
    """Hard-link (copy across file systems) every finished bag of `source` into `bags` as prefix+name."""
    added = 0
    for bag in list_episode_bags(source):
        target = bags / f"{prefix}{bag.name}"
        if target.exists():
            continue
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            shutil.copytree(bag, partial, copy_function=os.link)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(bag, partial)
        partial.rename(target)
        added += 1
    return added


def seed_demonstrations(bags: Path, tasks: list[str], per_task: int, max_attempts_per_demo: int = 5,
                        progress: bool = True) -> dict:
    """`per_task` successful scripted-expert episodes per task (N(0, 0.1) noise: sim/scripted.py) on
    the generator's placements 0, 1, ...; failed attempts are not kept. Returns {task: [seeds]}."""
    from tqdm import tqdm

    from ..sim.arms import make_arm, suite_of
    from ..sim.collect import collect_episode

    arm = make_arm(suite_of(tasks))
    kept: dict[str, list[int]] = {}
    try:
        for task in tqdm(tasks, desc="seed demonstrations", disable=not progress, dynamic_ncols=True):
            kept[task] = []
            for seed in range(per_task * max_attempts_per_demo):
                if len(kept[task]) == per_task:
                    break
                name = f"seed-{task}-{seed:06d}"
                if (bags / name).is_dir():
                    kept[task].append(seed)
                    continue
                episode = collect_episode(arm, task, seed, "expert")
                if episode.success:
                    write_episode_bag(bags, episode, name=name)
                    kept[task].append(seed)
            if len(kept[task]) < per_task:
                raise RuntimeError(f"the scripted expert succeeded {len(kept[task])} times on {task} in "
                                   f"{per_task * max_attempts_per_demo} placements; {per_task} demonstrations wanted")
    finally:
        arm.close()
    return kept


def collected_name(round_index: int, task: str, seed: int) -> str:
    return f"r{round_index}-{task}-{seed:07d}"


def collect_in_harness(checkpoint: Path, bags: Path, round_index: int, tasks: list[str], seeds: list[int],
                       batch: int, progress: bool = True, takeover_after: int = 0, max_steps: int | None = None) -> None:
    """The policy's greedy episodes on `seeds` for every task, in lockstep batches, one bag each; with
    takeover_after > 0 a scripted person takes over an episode after that many steps without success;
    max_steps: the episodes' step budget (default: the task's)."""
    from tqdm import tqdm

    from ..core.text import shared_encoder
    from ..evaluation.policy_episodes import collect_policy_episodes
    from ..evaluation.rollout import BatchPolicy
    from ..inference import load_policy
    from ..sim.arms import make_arm, suite_of
    from ..sim.operator import ScriptedOperator
    from ..sim.tasks import get_task

    model = load_policy([checkpoint], "torch")
    policy = BatchPolicy(model, shared_encoder())
    todo = [(t, s) for t in tasks for s in seeds if not (bags / collected_name(round_index, t, s)).is_dir()]
    arms = [make_arm(suite_of(tasks), model.cfg.image_size or 64) for _ in range(min(batch, len(seeds)))]
    bar = tqdm(total=len(todo), desc=f"round {round_index}: collecting", disable=not progress, dynamic_ncols=True)
    try:
        for task in tasks:
            missing = [s for t, s in todo if t == task]
            for start in range(0, len(missing), len(arms)):
                chunk = missing[start:start + len(arms)]
                person = ScriptedOperator(get_task(task), takeover_after, round_index) if takeover_after else None
                episodes = collect_policy_episodes(arms, policy, get_task(task), chunk, takeover=person, max_steps=max_steps,
                                                   episode_id=lambda seed, t=task: collected_name(round_index, t, seed))
                for episode in episodes:  # a batch is written when it is done: a crash loses that batch only
                    write_episode_bag(bags, episode, name=episode.episode_id)
                bar.update(len(chunk))
    finally:
        bar.close()
        for arm in arms:
            arm.close()


def collect_through_ros(checkpoint: Path, bags: Path, round_index: int, tasks: list[str], seeds: list[int],
                        work: Path, takeover_after: int = 0, max_steps: int | None = None) -> dict:
    """The same episodes through the ROS graph (sim arm, policy node and recorder as processes): the
    recorder's bags are linked into `bags` as r{round}-<recorder name>. An interrupted graph run is
    redone whole (its bags are not added until it has finished). With takeover_after > 0 a scripted
    person's node takes over, and the bags' intervention flags are checked against what it drove (returned)."""
    from ..evaluation.takeover_flags import check_takeover_record
    from ..evaluation.through_ros import evaluate_through_ros

    if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
        raise ValueError("the ROS graph runs consecutive placements")
    for stale in [*bags.glob(f"r{round_index}-*")]:
        shutil.rmtree(stale)
    shutil.rmtree(work, ignore_errors=True)
    record = work / "person.jsonl"
    evaluate_through_ros(checkpoint, tasks, len(seeds), seeds[0], work, takeover_after=takeover_after,
                         person_record=str(record) if takeover_after else "", max_steps=max_steps)
    link_bags(work / "bags", bags, prefix=f"r{round_index}-")
    if not takeover_after:
        return {}
    check = check_takeover_record(work / "bags", record)
    (work / "flags_check.json").write_text(json.dumps(check, indent=1))
    return {"flags_check": {k: v for k, v in check.items() if k != "rows"}}


def collection_summary(bags: Path, round_index: int, tasks: list[str]) -> dict:
    """Successes, steps and the steps a person drove per task among the round's bags, read back from the bags."""
    from ..sim.tasks import task_for_instruction

    rows: dict[str, list[tuple[bool, int, int]]] = {t: [] for t in tasks}
    for bag in list_episode_bags(bags):
        if bag.name.startswith(f"r{round_index}-"):
            episode = read_episode_bag(bag)  # the recorder's bags name the instruction, not always the task
            task = episode.task or task_for_instruction(episode.instruction).name
            rows.setdefault(task, []).append((bool(episode.success), len(episode), episode.operator_steps))
    return {t: {"episodes": len(v), "successes": sum(r[0] for r in v), "steps": sum(r[1] for r in v),
                "operator_steps": sum(r[2] for r in v)} for t, v in rows.items()}
