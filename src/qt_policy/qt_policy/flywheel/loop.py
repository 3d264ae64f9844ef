"""The flywheel's rounds as stages on disk, each done once.

The run folder:
  flywheel.json          the settings (a resume with other settings is refused)
  bags/                  the training data: seed bags, then r<k>-... bags each round adds
  round_0/train/         the seed policy's run folder (training/fit.py layout); eval.json
  round_k/collect.json   what round k's deployment of the round k-1 policy recorded (k >= 1)
  round_k/train/, eval.json
  round_R/train_seed<S>/, eval_seed<S>.json   more training seeds for the last round
  log.jsonl              one line per finished stage: what it did and how long it took

A stage is done when its JSON file exists (written last, atomically); training and collection also
continue from where a crash left them, so an interrupted run loses at most one batch of episodes.
A stage being run holds <marker>.claim (its process id), so processes running the same command share
the stages (Flywheel.run).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

from ..training.claims import claim, release
from .collection import (collect_in_harness, collect_through_ros, collection_summary, link_bags,
                         seed_demonstrations)
from .config import METHODS, FlywheelConfig

SETTINGS = "flywheel.json"
LOG = "log.jsonl"


def _claim_file(marker: Path) -> Path:
    return marker.with_name(marker.stem + ".claim")


def _write_json(path: Path, value) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    os.replace(tmp, path)


class Flywheel:
    """One method's rounds of deploy -> record -> retrain in `out` (see the module docstring)."""

    def __init__(self, out: Path, config: FlywheelConfig, *, threads: int | None = 1, batch: int = 10,
                 progress: bool = True, log: Callable[[str], None] = lambda s: print(s, flush=True)):
        self.out, self.cfg = Path(out), config
        self.threads, self.batch, self.progress, self.log = threads, batch, progress, log
        self.bags = self.out / "bags"
        self.poll_s = 10.0  # how often a process with nothing to take looks again

    # ------------------------------------------------------------------ the plan
    def stages(self) -> list[tuple[str, Path, Callable[[], dict], tuple[Path, ...]]]:
        """(name, the file that marks it done, the work, the files it waits for) of every stage, in order."""
        cfg, plan = self.cfg, []
        seed = self.out / "seed.json"
        plan.append(("seed data", seed, self._seed, ()))
        for k in range(cfg.rounds + 1):
            folder = self.out / f"round_{k}"
            data = seed
            if k:  # deploy the previous round's policy; train on what it recorded
                data = folder / "collect.json"
                plan.append((f"round {k}: collect", data, lambda k=k: self._collect(k),
                             (self.out / f"round_{k - 1}" / "train.json",)))
            plan.append((f"round {k}: train", folder / "train.json", lambda k=k: self._train(k, cfg.train_seed), (data,)))
            plan.append((f"round {k}: evaluate", folder / "eval.json", lambda k=k: self._evaluate(k, cfg.train_seed),
                         (folder / "train.json",)))
        last = self.out / f"round_{cfg.rounds}"
        for seed_k in range(cfg.train_seed + 1, cfg.train_seed + cfg.final_seeds):
            trained = last / f"train_seed{seed_k}.json"
            plan.append((f"round {cfg.rounds}: train seed {seed_k}", trained,
                         lambda s=seed_k: self._train(cfg.rounds, s), (data,)))
            plan.append((f"round {cfg.rounds}: evaluate seed {seed_k}", last / f"eval_seed{seed_k}.json",
                         lambda s=seed_k: self._evaluate(cfg.rounds, s), (trained,)))
        return plan

    def run_folder(self, round_index: int, seed: int) -> Path:
        folder = self.out / f"round_{round_index}"
        return folder / ("train" if seed == self.cfg.train_seed else f"train_seed{seed}")

    # ------------------------------------------------------------------ running
    def run(self) -> dict:
        """Run every stage not yet done; returns the summary (flywheel.report).

        Processes started with the same command share the run: each takes the first stage, in plan
        order, whose inputs are done and that no live process has claimed (round_k/<stage>.claim), and
        waits while every ready stage is taken. So a second process runs a round's evaluation beside
        the next round's collection and the last round's training seeds side by side; alone, a process
        runs the stages in plan order."""
        from tqdm import tqdm

        from .report import flywheel_summary

        self.out.mkdir(parents=True, exist_ok=True)
        self.bags.mkdir(exist_ok=True)
        self._check_settings()
        plan = self.stages()
        done = sum(marker.is_file() for _, marker, _, _ in plan)
        self.log(f"flywheel {self.cfg.method} in {self.out}: {done} of {len(plan)} stages done")
        bar = tqdm(total=len(plan), initial=done, desc=f"flywheel {self.cfg.method}",
                   disable=not self.progress, dynamic_ncols=True, position=0)
        try:
            while True:
                todo = [stage for stage in plan if not stage[1].is_file()]
                if not todo:
                    break
                stage = self._take([s for s in todo if all(p.is_file() for p in s[3])])
                if stage is None:  # another process holds every stage that can run now
                    time.sleep(self.poll_s)
                    continue
                name, marker, work, _ = stage
                try:
                    t0 = time.time()
                    result = {**work(), "stage": name, "wall_time_s": round(time.time() - t0, 1)}
                    _write_json(marker, result)
                    with open(self.out / LOG, "a") as f:
                        f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **result}) + "\n")
                finally:
                    release(_claim_file(marker))
                self.log(f"{name}: {_describe(result)} ({result['wall_time_s']:.0f} s)")
                bar.update(1)
        finally:
            bar.close()
        summary = flywheel_summary(self.out)
        _write_json(self.out / "summary.json", summary)
        return summary

    def _take(self, ready: list):
        """The first ready stage this process could claim (None: all are taken)."""
        for stage in ready:
            marker = stage[1]
            marker.parent.mkdir(parents=True, exist_ok=True)
            if claim(_claim_file(marker)):
                if not marker.is_file():  # not finished by another process since the listing
                    return stage
                release(_claim_file(marker))
        return None

    def _check_settings(self) -> None:
        path, wanted = self.out / SETTINGS, self.cfg.to_dict()
        if path.is_file():
            # runs from before takeovers, step budgets and the sampler's memory had none of them
            old = {"takeover_after": 0, "max_steps": 0, "success_within": 0, "buffer_mb": 0.0,
                   **json.loads(path.read_text())}
            if old != wanted:
                changed = sorted(k for k in set(old) | set(wanted) if old.get(k) != wanted.get(k))
                raise ValueError(f"{self.out} is a flywheel run with other settings ({', '.join(changed)}: "
                                 f"{[old.get(k) for k in changed]} there); resume with the same settings or use "
                                 "another --out")
        else:
            _write_json(path, wanted)

    # ------------------------------------------------------------------ the stages
    def _seed(self) -> dict:
        cfg = self.cfg
        if cfg.seed_data:
            added = link_bags(Path(cfg.seed_data), self.bags, prefix="seed-")
            return {"source": cfg.seed_data, "episodes": added}
        kept = seed_demonstrations(self.bags, cfg.tasks, cfg.seed_demos, progress=self.progress)
        return {"source": "scripted expert", "episodes": sum(map(len, kept.values())), "seeds": kept}

    def _collect(self, k: int) -> dict:
        cfg = self.cfg
        policy = self.run_folder(k - 1, cfg.train_seed) / "checkpoint"
        seeds = cfg.collect_seeds(k)
        checked = {}
        if cfg.collect == "ros":
            checked = collect_through_ros(policy, self.bags, k, cfg.tasks, seeds, self.out / f"round_{k}" / "ros",
                                          takeover_after=cfg.takeover_after, max_steps=cfg.max_steps or None)
        else:
            collect_in_harness(policy, self.bags, k, cfg.tasks, seeds, self.batch, progress=self.progress,
                               takeover_after=cfg.takeover_after, max_steps=cfg.max_steps or None)
        per_task = collection_summary(self.bags, k, cfg.tasks)
        return {"round": k, "policy": str(policy), "path": cfg.collect, "seeds": [seeds[0], seeds[-1]],
                "tasks": per_task, "episodes": sum(t["episodes"] for t in per_task.values()),
                "successes": sum(t["successes"] for t in per_task.values()),
                "operator_share": sum(t["operator_steps"] for t in per_task.values())
                / max(1, sum(t["steps"] for t in per_task.values())), **checked}

    def _train(self, k: int, seed: int) -> dict:
        from ..training import fit

        cfg = self.cfg
        settings = dict(METHODS[cfg.method])
        success_only = settings.pop("success_only", False)
        if cfg.buffer_mb:
            settings["buffer_mb"] = cfg.buffer_mb
        result = fit(self.bags, self.run_folder(k, seed), preset_name=cfg.preset, success_only=success_only,
                     resume=True, threads=self.threads, progress=self.progress, log=self.log,
                     steps=cfg.steps, checkpoint_every=cfg.steps, seed=seed, **settings)
        from ..core.checkpoint_files import read_config
        data = read_config(result.checkpoint)["data"]
        return {"round": k, "seed": seed, "checkpoint": str(result.checkpoint), "steps": result.steps,
                "episodes": data["episodes"], "successes": data["successes"], "transitions": data["steps"],
                "train_wall_time_s": round(result.wall_time_s, 1)}

    def _evaluate(self, k: int, seed: int) -> dict:
        import torch

        from ..evaluation import EVAL_SEED_START, evaluate

        if self.threads:
            torch.set_num_threads(self.threads)
        checkpoint = self.run_folder(k, seed) / "checkpoint"
        result = evaluate(checkpoint, self.cfg.tasks, self.cfg.eval_episodes, EVAL_SEED_START,
                          min(self.batch, self.cfg.eval_episodes), progress=self.progress,
                          max_steps=self.cfg.max_steps or None)
        return {"round": k, "seed": seed, **result}


def _describe(result: dict) -> str:
    if "overall" in result:
        o = result["overall"]
        return f"{o['successes']}/{o['episodes']} successes on the evaluation seeds"
    if "transitions" in result:
        return f"trained {result['steps']} steps on {result['episodes']} episodes ({result['successes']} successes)"
    if "successes" in result:
        return f"recorded {result['episodes']} episodes, {result['successes']} successes"
    return f"{result['episodes']} episodes ({result['source']})"
