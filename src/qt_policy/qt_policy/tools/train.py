"""Train Q-Transformer (or the behaviour-cloning baseline) from recorded or generated episodes.

    python -m qt_policy.tools.train --data data/bags --out runs/qt
    python -m qt_policy.tools.train --data data/bags --out runs/bc --algo bc [--success-only]
    torchrun --nproc-per-node 2 -m qt_policy.tools.train --data ... --out ...   # data-parallel (gloo on CPU)

--data is a folder of episode bags (converted into the training cache on first use) or a cache.
Every config field is a flag (see below); --resume continues from OUT/checkpoint.
Writes OUT/checkpoint (latest), OUT/checkpoint_averaged (the Polyak average of the weights, rate
--target-tau: the Q-T target network; a policy can act with it), OUT/step_N (every --checkpoint-every), OUT/metrics.jsonl and
tensorboard logs in OUT/tb.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..core.checkpoint import load_model, load_training_state, read_config, save_checkpoint
from ..core.config import LossConfig, ModelConfig, TrainConfig, from_dict, to_dict
from ..core.learner import Learner
from ..core.model import QTransformer, count_parameters
from ..data.cache import index_image_size
from .args import add_dataclass_arguments, dataclass_overrides


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qt-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="folder of episode bags, or a training cache (has index.json)")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--success-only", action="store_true", help="train only on successful episodes (BC-on-successes baseline)")
    p.add_argument("--tasks", nargs="+", default=None, help="only episodes of these task names")
    p.add_argument("--embodiment", type=Path, default=None,
                   help="the robot's embodiment file (config/embodiments/*.yaml); default: the one the recorder stored "
                        "in the bags, if any. The checkpoint carries it: the policy node refuses another robot")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores / processes)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    add_dataclass_arguments(p, ModelConfig, "model (defaults shaped by the data: action_dim, names, state_dim, image_size)")
    add_dataclass_arguments(p, LossConfig, "loss")
    add_dataclass_arguments(p, TrainConfig, "training")
    return p


def resolve_cache(data: Path, image_size: int | None, progress: bool = True) -> Path:
    from ..data.cache import convert_bags

    if (data / "index.json").is_file():
        return data
    cache = cache_dir_for(data, image_size)
    convert_bags(data, cache, image_size=image_size, progress=progress)
    return cache


def cache_dir_for(data: Path, image_size: int | None) -> Path:
    """Where a folder of bags keeps its cache: ``_cache`` at the bags' own size, ``_cache_N`` resized."""
    return data / "_cache" if image_size is None else data / f"_cache_{image_size}"


def data_embodiment(index: dict, requested: Path | None):
    """The embodiment of the training data: --embodiment, else the one every episode's bag carries
    (None when the bags carry none). Raises ValueError when the episodes disagree with it."""
    from ..robot.embodiment import Embodiment, load_embodiment

    stored = {json.dumps(e["embodiment"], sort_keys=True) for e in index["episodes"] if e.get("embodiment")}
    if requested is not None:
        emb = load_embodiment(requested)
    elif len(stored) > 1:
        names = sorted({json.loads(x).get("name", "?") for x in stored})
        raise ValueError(f"the episodes were recorded with {len(stored)} different embodiments {names}: train one "
                         "robot at a time, or pass --embodiment")
    elif stored:
        emb = Embodiment.from_dict(json.loads(stored.pop()))
    else:
        return None
    bad = sorted({tuple(e["action_names"]) for e in index["episodes"]} - {tuple(emb.action_names)})
    if bad:
        raise ValueError(f"embodiment {emb.name!r} has action dimensions {emb.action_names}; episodes in the data "
                         f"have {[list(b) for b in bad]}")
    return emb


def model_config_for(index: dict, overrides: dict, embodiment=None) -> ModelConfig:
    """Shape the model to the data (and its embodiment): action dimensions, names, limits, state size, image size."""
    first = index["episodes"][0]
    d = len(first["action_names"])
    kw = dict(action_dim=d, action_names=list(first["action_names"]), action_low=[-1.0] * d, action_high=[1.0] * d,
              state_dim=len(first.get("state_names") or []))
    if embodiment is not None:
        kw.update(action_low=embodiment.action_low, action_high=embodiment.action_high)
    if first["image_shape"][0] != first["image_shape"][1] and not index.get("image_size"):
        raise ValueError("the cache holds non-square images: convert with --image-size N")
    kw["image_size"] = index_image_size(index)
    kw.update(overrides)
    return ModelConfig(**kw)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..core.text import shared_encoder
    from ..data.cache import load_index
    from ..data.dataset import TransitionSampler

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo")
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // world))
    is_main = rank == 0

    ckpt_dir = args.out / "checkpoint"
    if args.resume and (ckpt_dir / "config.json").is_file():
        saved = read_config(ckpt_dir)
        model_cfg = from_dict(ModelConfig, saved["model"])
        embodiment_dict = saved.get("embodiment")
        loss_cfg = from_dict(LossConfig, saved["loss"])
        train_cfg = from_dict(TrainConfig, {**saved["train"], **dataclass_overrides(TrainConfig, args)})
        cache = Path(saved["data"]["cache"])
        start_step = int(saved["step"])
    else:
        cache = resolve_cache(args.data, args.image_size, not args.no_progress) if is_main else None
        if world > 1:
            holder = [str(cache) if cache else None]
            dist.broadcast_object_list(holder, src=0)
            cache = Path(holder[0])
        index = load_index(cache)
        embodiment = data_embodiment(index, args.embodiment)
        embodiment_dict = embodiment.to_dict() if embodiment is not None else None
        model_cfg = model_config_for(index, dataclass_overrides(ModelConfig, args), embodiment)
        loss_cfg = from_dict(LossConfig, dataclass_overrides(LossConfig, args))
        train_cfg = from_dict(TrainConfig, dataclass_overrides(TrainConfig, args))
        start_step = 0

    torch.manual_seed(train_cfg.seed)
    rng = np.random.default_rng([train_cfg.seed, rank, start_step])
    tasks = set(args.tasks) if args.tasks else None
    success_only = args.success_only or (args.resume and ckpt_dir.is_dir() and read_config(ckpt_dir)["data"].get("success_only"))

    def keep(entry):
        return (not success_only or entry["success"]) and (tasks is None or entry.get("task") in tasks)

    encoder = shared_encoder()
    sampler = TransitionSampler(cache, model_cfg, loss_cfg, encoder, episode_filter=keep)
    model = QTransformer(model_cfg)
    learner_state = None
    if start_step:
        model = load_model(ckpt_dir)
        learner_state = load_training_state(ckpt_dir)
    model.to(args.device)
    wrap = None
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        wrap = lambda m: DDP(m)  # noqa: E731
    learner = Learner(model, loss_cfg, train_cfg, wrap=wrap)
    if learner_state:
        learner.load_state_dict(learner_state["learner"])
        rng = np.random.default_rng([train_cfg.seed, rank, start_step])
    if rank or start_step:  # other image shifts per rank, and new ones after a resume (as for rng)
        learner.augment_generator.manual_seed(int(np.random.default_rng([train_cfg.seed, rank, start_step, 1]).integers(2**62)))

    instructions = sorted({e["instruction"] for e in load_index(cache)["episodes"] if keep(e)})
    meta = lambda step, wall: {  # noqa: E731
        "loss": to_dict(loss_cfg), "train": to_dict(train_cfg), "step": step, "wall_time_s": wall,
        "data": {"cache": str(cache), "episodes": len(sampler.episodes), "steps": sampler.num_steps,
                 "successes": sampler.num_successes, "success_only": bool(success_only), "tasks": sorted(tasks) if tasks else None},
        "instructions": instructions, "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu",
        "world_size": world, **({"embodiment": embodiment_dict} if embodiment_dict else {})}
    writer = None
    if is_main:
        args.out.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(args.out / "tb"))
        print(f"{train_cfg.algo}: {count_parameters(model):,} parameters; {len(sampler.episodes)} episodes, "
              f"{sampler.num_steps} steps, {sampler.num_successes} successes; steps {start_step}->{train_cfg.steps}; "
              f"world {world}", flush=True)
    prior_wall = float(read_config(ckpt_dir).get("wall_time_s", 0.0)) if start_step else 0.0
    t0 = time.time()
    from tqdm import tqdm
    bar = tqdm(range(start_step, train_cfg.steps), initial=start_step, total=train_cfg.steps,
               disable=not is_main or args.no_progress, dynamic_ncols=True)
    metrics_file = open(args.out / "metrics.jsonl", "a") if is_main else None
    step = start_step
    for step in bar:
        batch = sampler.sample(train_cfg.batch_size, rng, train_cfg.success_batch_fraction).to(args.device)
        info = learner.update(batch)
        done = step + 1
        if is_main and (done % train_cfg.log_every == 0 or done == train_cfg.steps):
            for k, v in info.items():
                writer.add_scalar(f"train/{k}", v, done)
            metrics_file.write(json.dumps({"step": done, "wall_time_s": prior_wall + time.time() - t0, **info}) + "\n")
            metrics_file.flush()
            bar.set_postfix(loss=f"{info['loss']:.4f}")
        if is_main and (done % train_cfg.checkpoint_every == 0 or done == train_cfg.steps):
            metadata = meta(done, prior_wall + time.time() - t0)
            save_checkpoint(ckpt_dir, model, metadata, {"learner": learner.state_dict()})
            save_checkpoint(args.out / "checkpoint_averaged", learner.target,
                            {**metadata, "weights": f"Polyak average of {ckpt_dir.name}/, tau {train_cfg.target_tau}"})
            if done % train_cfg.checkpoint_every == 0:
                save_checkpoint(args.out / f"step_{done:07d}", model, metadata)
    if is_main:
        writer.close()
        metrics_file.close()
        print(f"done: {train_cfg.steps} steps in {time.time() - t0:.0f} s; checkpoint {ckpt_dir}", flush=True)
    if world > 1:  # every rank saw other batches: identical weights prove the gradients were averaged
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        ref = flat.clone()
        dist.broadcast(ref, src=0)
        mismatch = torch.tensor([float(not torch.equal(flat, ref))])
        dist.all_reduce(mismatch)
        if is_main:
            print("ranks in sync" if mismatch.item() == 0 else "RANKS OUT OF SYNC", flush=True)
        dist.destroy_process_group()
        if mismatch.item():
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
