#!/usr/bin/env python3
"""Training throughput by loader workers: samples/s and how busy the device is, the batches coming from
the shards through data/loader.py exactly as `fit` gets them (docs/scale.md).

    python benchmarks/bench_loader.py --shards data/bags/_shards --device cuda --batch-size 256 --workers 0 2 4
    python benchmarks/bench_loader.py --shards /tmp/shards --device cpu --batch-size 64 --workers 0 1 --steps 20

Busy fraction: the time the device spends in the training step (CUDA events around forward, backward and
the optimizer step; on a CPU the step's own time) over the wall time of all steps; the rest is the loop
waiting for batches and copying them. One JSON line per worker count.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "qt_policy"))


def measure(args, workers: int) -> dict:
    import torch

    from qt_policy.core.algorithms import model_requirements
    from qt_policy.core.config import LossConfig, TrainConfig
    from qt_policy.core.learner import Learner
    from qt_policy.core.model import QTransformer
    from qt_policy.data.loader import training_batches
    from qt_policy.data.shard_format import count_kept, load_manifest
    from qt_policy.training import model_config_for

    manifest = load_manifest(args.shards)
    loss = LossConfig()
    cfg = model_config_for(manifest, model_requirements("qt", loss))
    train = TrainConfig(batch_size=args.batch_size, loader_workers=workers, amp=args.amp)
    texts = {t: np.zeros(cfg.text_dim, np.float32) for t in count_kept(manifest, None)["instructions"]}
    cuda = torch.device(args.device).type == "cuda"
    batches = training_batches(args.shards, cfg, loss, train, texts, None, rank=0, world=1,
                               rng=np.random.default_rng(0), start_step=0, pin_memory=cuda)
    learner = Learner(QTransformer(cfg).to(args.device), loss, train)
    for _ in range(args.warmup):
        learner.update(next(batches).to(args.device, non_blocking=True))
    if cuda:
        torch.cuda.synchronize()
    busy, events = 0.0, []
    t0 = time.perf_counter()
    for _ in range(args.steps):
        batch = next(batches).to(args.device, non_blocking=True)
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            learner.update(batch)
            end.record()
            events.append((start, end))
        else:
            s = time.perf_counter()
            learner.update(batch)
            busy += time.perf_counter() - s
    if cuda:
        torch.cuda.synchronize()
        busy = sum(s.elapsed_time(e) for s, e in events) / 1000
    wall = time.perf_counter() - t0
    batches.close()
    return {"what": "loader", "device": args.device, "workers": workers, "batch": args.batch_size, "amp": args.amp,
            "steps": args.steps, "samples_per_s": round(args.steps * args.batch_size / wall, 1),
            "busy_fraction": round(busy / wall, 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", required=True, type=Path, help="a shard folder (qt-convert)")
    p.add_argument("--device", default="cuda", help="torch device (default cuda)")
    p.add_argument("--batch-size", type=int, default=256, help="transitions per step")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4], help="loader worker counts to measure")
    p.add_argument("--steps", type=int, default=200, help="timed steps per worker count")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    args = p.parse_args(argv)
    for workers in args.workers:
        print(json.dumps(measure(args, workers)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
