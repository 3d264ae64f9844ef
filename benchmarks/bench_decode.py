#!/usr/bin/env python3
"""Greedy decoding against one teacher-forced forward pass, torch and ONNX Runtime, side by side.

For each number of action dimensions and bins (default model otherwise, batch 1, random weights),
times from an observation (2 frames 64x64 + instruction embedding + state) to its result:

  forward      encode the context + one teacher-forced pass over all d action tokens (the reference cost)
  reference    core/decoding.py: cached greedy decoding through the model's modules
  fused        core/fast_decoding.py: static cache, LayerNorm folded, fixed aten calls per step
  compiled     the fused decoder under torch.compile (with --compile; compile time printed)
  ort forward  the same teacher-forced pass exported to ONNX, in ONNX Runtime
  ort greedy   inference/onnx_export.py: the whole greedy decoding as one ONNX graph

Every variant of a runtime runs once per round, in turn, so a slow spell of the machine hits them
alike (the torch variants first, then the ONNX Runtime ones: interleaved, their spinning thread pools
slowed each other 5-10x on 2 cores); p50 and p99 over the rounds, and each one's ratio to the forward pass of its own runtime (torch variants to
torch's forward, ONNX Runtime to ONNX Runtime's). The ratio target of issue 22 is <= 1.3.

    python benchmarks/bench_decode.py [--dims 4 8 11] [--bins 32 256] [--threads 2] [--rounds 300] [--compile]
    python benchmarks/bench_decode.py --dims 4 7 --bins 32 --cameras 2 --state-dim 8   # the robosuite Panda's layout
"""
from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "qt_policy"))
from qt_policy.core.config import ModelConfig  # noqa: E402
from qt_policy.core.decoding import greedy_decode  # noqa: E402
from qt_policy.core.fast_decoding import FusedGreedyDecoder  # noqa: E402
from qt_policy.core.model import QTransformer, count_parameters  # noqa: E402


class ForwardGraph(torch.nn.Module):
    """The teacher-forced pass as a graph of its own, to time ONNX Runtime's forward."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images, text, state, prefix):
        return self.model.action_logits(self.model.encode_context(images, text, state), prefix)


def onnx_sessions(model, inputs, prefix, threads: int, folder: Path):
    import onnxruntime as ort

    from qt_policy.inference.onnx_export import GreedyPolicyGraph

    names = ["images", "text", "state"]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(GreedyPolicyGraph(model).eval(), tuple(inputs), str(folder / "greedy.onnx"), input_names=names,
                          opset_version=17, dynamo=False)
        torch.onnx.export(ForwardGraph(model).eval(), (*inputs, prefix), str(folder / "forward.onnx"),
                          input_names=names + ["prefix"], opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    greedy = ort.InferenceSession(str(folder / "greedy.onnx"), options, providers=["CPUExecutionProvider"])
    forward = ort.InferenceSession(str(folder / "forward.onnx"), options, providers=["CPUExecutionProvider"])
    feed = {n: x.numpy() for n, x in zip(names, inputs)}
    return (lambda: forward.run(None, {**feed, "prefix": prefix.numpy()})), (lambda: greedy.run(None, feed))


def measure(variants: dict, rounds: int) -> dict[str, list[float]]:
    for fn in variants.values():
        for _ in range(10):
            fn()
    samples = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1e3)
    return samples


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dims", type=int, nargs="+", default=[4, 8, 11], help="action dimensions (default 4 8 11)")
    p.add_argument("--bins", type=int, nargs="+", default=[32, 256], help="bins per dimension (default 32 256)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads of torch and ONNX Runtime (default 2)")
    p.add_argument("--rounds", type=int, default=300, help="timed rounds (default 300)")
    p.add_argument("--compile", action="store_true", help="also time the fused decoder under torch.compile")
    p.add_argument("--cameras", type=int, default=1, help="camera streams, one token set each (default 1)")
    p.add_argument("--state-dim", type=int, default=4, help="robot state size (default 4)")
    p.add_argument("--no-onnx", action="store_true", help="torch only")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{datetime.date.today()} {platform.node()} {platform.machine()} {platform.processor() or ''}, torch "
          f"{torch.__version__}, {args.threads} threads, batch 1, {args.rounds} rounds, {args.cameras} camera(s) x 2 "
          f"frames 64x64, state {args.state_dim}")
    header = f"{'dims':>4} {'bins':>4} {'params':>9}  {'variant':<12} {'p50 ms':>7} {'p99 ms':>7} {'/ forward':>9}"
    print(header)
    print("-" * len(header))
    for bins in args.bins:
        for d in args.dims:
            torch.manual_seed(0)
            cfg = ModelConfig(action_dim=d, num_bins=bins, action_low=[-1.0] * d, action_high=[1.0] * d,
                              action_names=[f"a{i}" for i in range(d)], state_dim=args.state_dim,
                              cameras=args.cameras)
            model = QTransformer(cfg).eval()
            g = torch.Generator().manual_seed(1)
            images = torch.randint(0, 256, (1,) + cfg.image_shape(), dtype=torch.uint8, generator=g)
            text, state = torch.randn(1, cfg.text_dim, generator=g), torch.randn(1, args.state_dim, generator=g)
            prefix = torch.zeros(1, d - 1, dtype=torch.long)
            fused = FusedGreedyDecoder(model)
            variants = {
                "forward": lambda: model.action_logits(model.encode_context(images, text, state), prefix),
                "reference": lambda: greedy_decode(model, images, text, state),
                "fused": lambda: fused(model.encode_context(images, text, state)),
            }
            if args.compile:
                t0 = time.perf_counter()
                compiled = torch.compile(lambda i, t, s: fused(model.encode_context(i, t, s)).bins, dynamic=False)
                with torch.inference_mode():
                    compiled(images, text, state)
                print(f"{'':>4} {'':>4} {'':>9}  (torch.compile took {time.perf_counter() - t0:.1f} s)")
                variants["compiled"] = lambda: compiled(images, text, state)
            with tempfile.TemporaryDirectory() as tmp:
                if not args.no_onnx:
                    variants["ort forward"], variants["ort greedy"] = onnx_sessions(model, (images, text, state), prefix,
                                                                                   args.threads, Path(tmp))
                with torch.inference_mode():  # torch's and ONNX Runtime's thread pools spin between calls: one
                    samples = measure({k: v for k, v in variants.items() if not k.startswith("ort")}, args.rounds)
                    samples.update(measure({k: v for k, v in variants.items() if k.startswith("ort")}, args.rounds))
            p50 = {k: statistics.median(v) for k, v in samples.items()}
            for name, values in samples.items():
                values.sort()
                base = p50["ort forward"] if name.startswith("ort") else p50["forward"]
                print(f"{d:>4} {bins:>4} {count_parameters(model):>9,}  {name:<12} {p50[name]:>7.2f} "
                      f"{values[int(0.99 * (len(values) - 1))]:>7.2f} {p50[name] / base:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
