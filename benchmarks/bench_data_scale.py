#!/usr/bin/env python3
"""The training data path at scale: conversion rate, bytes per episode, and a training run's open
files, memory maps, RSS and start-up time as the number of episodes grows (docs/scale.md).

    python benchmarks/bench_data_scale.py convert --episodes 400 --image-size 64 --cameras 1 --workers 1 2
    python benchmarks/bench_data_scale.py synth --episodes 100000 --image-size 16 --out /tmp/shards_100k
    python benchmarks/bench_data_scale.py train --shards /tmp/shards_100k --steps 1000 --ulimit 256
    python benchmarks/bench_data_scale.py sampler --data DIR --episodes 2000 [--old-src OLD/src/qt_policy]

`convert` writes synthetic episode bags (35 steps, random frames) and times qt-convert's converter
at each worker count. `synth` writes episodes straight into shards (the converter's writer, no bags:
100,000 bags would take hours to write here) and prints bytes per episode. `train` runs `qt-train` in a
child process under an open-file limit and samples /proc every 0.2 s: start-up (launch to the first
logged step), open files, memory maps and RSS at the first step and at the end. `sampler` times the
sampler alone and a training step at batch 64 on the same episodes, from the shards, and with
--old-src from the memory-mapped cache of an earlier checkout (the same measurement run there).
Prints one JSON object per measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src" / "qt_policy"
TINY = ["--conv-channels", "8", "16", "--tokens-per-frame", "4", "--d-model", "32", "--num-layers", "1",
        "--num-heads", "2", "--num-bins", "32"]


def synthetic_episode(i: int, size: int, cameras: int, steps: int = 35):
    sys.path.insert(0, str(SRC))
    from qt_policy.data.episode import EpisodeData

    rng = np.random.default_rng(i)
    shape = (steps, size, size, 3) if cameras == 1 else (steps, cameras, size, size, 3)
    return EpisodeData(instruction=f"task {i % 10}", images=rng.integers(0, 255, shape, dtype=np.uint8),
                       actions=rng.uniform(-1, 1, (steps, 4)).astype(np.float32), success=i % 5 == 0,
                       action_names=["dx", "dy", "dz", "gripper"], states=rng.normal(size=(steps, 4)).astype(np.float32),
                       state_names=["x", "y", "z", "g"], episode_id=f"ep{i:07d}", task=f"task{i % 10}")


def cmd_convert(args) -> None:
    sys.path.insert(0, str(SRC))
    from qt_policy.data.bag_writer import write_episode_bag
    from qt_policy.data.convert import convert_bags
    from qt_policy.data.shard_format import summarize_manifest

    root = Path(tempfile.mkdtemp(prefix="bench_convert_", dir=args.tmp))
    try:
        for i in range(args.episodes):
            write_episode_bag(root / "bags", synthetic_episode(i, args.image_size, args.cameras), name=f"ep{i:07d}")
        bag_bytes = sum(f.stat().st_size for f in (root / "bags").rglob("*") if f.is_file())
        for workers in args.workers:
            out = root / f"shards_w{workers}"
            t0 = time.perf_counter()
            manifest = convert_bags(root / "bags", out, workers=workers, progress=False)
            wall = time.perf_counter() - t0
            s = summarize_manifest(manifest)
            print(json.dumps({"what": "convert", "episodes": s["episodes"], "image_size": args.image_size,
                              "cameras": args.cameras, "workers": workers, "seconds": round(wall, 2),
                              "episodes_per_s": round(s["episodes"] / wall, 1),
                              "bag_bytes_per_episode": bag_bytes // args.episodes,
                              "shard_bytes_per_episode": s["bytes"] // s["episodes"], "shards": s["shards"]}), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def cmd_synth(args) -> None:
    sys.path.insert(0, str(SRC))
    from qt_policy.data.convert import convert_episodes
    from qt_policy.data.shard_format import summarize_manifest

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    episodes = ((f"synthetic-{i}", synthetic_episode(i, args.image_size, args.cameras)) for i in range(args.episodes))
    manifest = convert_episodes(episodes, out)  # the converter's own path, in one process
    wall = time.perf_counter() - t0
    s = summarize_manifest(manifest)
    print(json.dumps({"what": "synth", "episodes": s["episodes"], "image_size": args.image_size, "cameras": args.cameras,
                      "seconds": round(wall, 1), "bytes": s["bytes"], "bytes_per_episode": s["bytes"] // s["episodes"],
                      "shards": s["shards"], "manifest_bytes": (out / "manifest.json").stat().st_size}), flush=True)


def _proc(pid: int) -> dict[str, int]:
    """Open files, memory maps and RSS (kB) of a process, from /proc."""
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        maps = sum(1 for _ in open(f"/proc/{pid}/maps"))
        rss = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS"))
    except (OSError, StopIteration):
        return {}
    return {"open_files": fds, "maps": maps, "rss_mb": rss // 1024}


def cmd_train(args) -> None:
    run = Path(tempfile.mkdtemp(prefix="bench_train_", dir=args.tmp))
    cmd = [sys.executable, "-m", "qt_policy.tools.train", "--data", str(args.shards), "--out", str(run / "run"),
           "--steps", str(args.steps), "--log-every", "1", "--checkpoint-every", str(10**9), "--threads", "1",
           "--no-progress", "--batch-size", str(args.batch_size), *(TINY if args.tiny else [])]

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.ulimit, args.ulimit))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, preexec_fn=limit, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": f"{SRC}:{os.environ.get('PYTHONPATH', '')}"})
    first, last, peak = None, {}, {"open_files": 0, "maps": 0, "rss_mb": 0}
    metrics = run / "run" / "metrics.jsonl"
    while proc.poll() is None:
        sample = _proc(proc.pid)
        if sample:
            last = sample
            peak = {k: max(peak[k], v) for k, v in sample.items()}
        if first is None and metrics.exists() and metrics.stat().st_size:
            first = {"startup_s": round(time.perf_counter() - t0, 1), **sample}
        time.sleep(0.2)
    out = proc.stdout.read()
    if proc.returncode:
        sys.exit(f"qt-train failed ({proc.returncode}):\n{out[-3000:]}")
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    print(json.dumps({"what": "train", "shards": str(args.shards), "steps": rows[-1]["step"],
                      "ulimit_n": args.ulimit, "tiny_model": args.tiny, "batch_size": args.batch_size,
                      "at_first_step": first, "at_end": last, "peak": peak,
                      "steps_per_s": round(len(rows) / (rows[-1]["wall_time_s"] - rows[0]["wall_time_s"] + 1e-9), 2)}),
          flush=True)
    shutil.rmtree(run, ignore_errors=True)


def cmd_sampler(args) -> None:
    """Write the episodes as bags once (kept in --data), then time the sampler in this checkout and,
    with --old-src, in the earlier one (its memory-mapped cache), each in a child process."""
    data = Path(args.data)
    if not (data / "bags").is_dir() or len(list((data / "bags").iterdir())) < args.episodes:
        sys.path.insert(0, str(SRC))
        from qt_policy.data.bag_writer import write_episode_bag
        for i in range(args.episodes):
            if not (data / "bags" / f"ep{i:07d}").exists():
                write_episode_bag(data / "bags", synthetic_episode(i, 64, 1), name=f"ep{i:07d}")
    for label, src in [("shards", SRC)] + ([("cache (earlier checkout)", Path(args.old_src))] if args.old_src else []):
        child = subprocess.run([sys.executable, __file__, "_time_sampler", "--data", str(data / "bags"),
                                "--batches", str(args.batches), "--train-steps", str(args.train_steps)],
                               env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, text=True)
        if child.returncode:
            sys.exit(child.stdout[-2000:] + child.stderr[-3000:])
        print(json.dumps({"what": "sampler", "reads": label, "episodes": args.episodes,
                          **json.loads(child.stdout.strip().splitlines()[-1])}), flush=True)


def cmd_time_sampler(args) -> None:
    """(child) samples/s of the sampler and of training steps, whichever data path this checkout has."""
    import torch

    from qt_policy.core.config import LossConfig, ModelConfig, TrainConfig
    from qt_policy.core.learner import Learner
    from qt_policy.core.model import QTransformer
    from qt_policy.data.dataset import TransitionSampler
    from qt_policy.training import model_config_for
    torch.set_num_threads(1)
    try:  # this checkout: shards
        from qt_policy.data.convert import convert_bags
        from qt_policy.data.shard_format import load_manifest as load
        folder = Path(args.data) / "_shards"
    except ImportError:  # an earlier checkout: the memory-mapped cache
        from qt_policy.data.cache import convert_bags
        from qt_policy.data.cache import load_index as load
        folder = Path(args.data) / "_cache"
    convert_bags(args.data, folder, progress=False)
    from qt_policy.core.algorithms import model_requirements
    cfg: ModelConfig = model_config_for(load(folder), model_requirements("qt", LossConfig()))
    t0 = time.perf_counter()
    sampler = TransitionSampler(folder, cfg, LossConfig(), lambda text: np.zeros(384, np.float32))
    start = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    sampler.sample(64, rng, 0.9)
    t0 = time.perf_counter()
    for _ in range(args.batches):
        sampler.sample(64, rng, 0.9)
    sample_s = (time.perf_counter() - t0) / args.batches
    learner = Learner(QTransformer(cfg), LossConfig(), TrainConfig())
    learner.update(sampler.sample(64, rng, 0.9))
    t0 = time.perf_counter()
    for _ in range(args.train_steps):
        learner.update(sampler.sample(64, rng, 0.9))
    step_s = (time.perf_counter() - t0) / args.train_steps
    print(json.dumps({"sampler_start_s": round(start, 2), "sampler_samples_per_s": round(64 / sample_s),
                      "train_samples_per_s": round(64 / step_s, 1), "batch": 64, "threads": 1}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="conversion rate and bytes per episode, by worker count")
    c.add_argument("--episodes", type=int, default=400, help="synthetic 35-step episodes")
    c.add_argument("--image-size", type=int, default=64, help="square frames of this side")
    c.add_argument("--cameras", type=int, default=1, help="cameras per step")
    c.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="converter processes to time")
    c.add_argument("--tmp", default=None, help="scratch folder (default: the system's)")
    s = sub.add_parser("synth", help="write synthetic episodes straight into a shard folder")
    s.add_argument("--episodes", type=int, default=100_000, help="episodes to write")
    s.add_argument("--image-size", type=int, default=16, help="square frames of this side")
    s.add_argument("--cameras", type=int, default=1, help="cameras per step")
    s.add_argument("--out", required=True, help="shard folder to (re)create")
    t = sub.add_parser("train", help="a training run's files, maps, RSS and start-up, sampled from /proc")
    t.add_argument("--shards", required=True, type=Path, help="shard folder to train on")
    t.add_argument("--steps", type=int, default=1000, help="training steps")
    t.add_argument("--batch-size", type=int, default=64, help="transitions per step")
    t.add_argument("--ulimit", type=int, default=256, help="open-file limit (soft and hard) of the run")
    t.add_argument("--full-model", dest="tiny", action="store_false",
                   help="the default network (default: a tiny one, the data path being what is measured)")
    t.add_argument("--tmp", default=None, help="scratch folder (default: the system's)")
    m = sub.add_parser("sampler", help="sampler and training samples/s, shards against an earlier checkout's cache")
    m.add_argument("--data", required=True, help="folder for the bags (kept: written once)")
    m.add_argument("--episodes", type=int, default=2000, help="synthetic 35-step 64x64 episodes")
    m.add_argument("--batches", type=int, default=200, help="sampler batches to time")
    m.add_argument("--train-steps", type=int, default=30, help="training steps (default network) to time")
    m.add_argument("--old-src", default=None, help="src/qt_policy of an earlier checkout (the cache)")
    h = sub.add_parser("_time_sampler", help=argparse.SUPPRESS)
    h.add_argument("--data", required=True)
    h.add_argument("--batches", type=int, default=200)
    h.add_argument("--train-steps", type=int, default=30)
    args = p.parse_args(argv)
    {"convert": cmd_convert, "synth": cmd_synth, "train": cmd_train, "sampler": cmd_sampler,
     "_time_sampler": cmd_time_sampler}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
