#!/usr/bin/env python3
"""Decode latency of the default Q-Transformer on this CPU: cached vs uncached, side by side.

For 4, 8 and 11 action dimensions (default model otherwise), prints median and p90 latency of one
greedy action for a batch of one, both for the decoding alone (context already encoded) and end to
end (camera frames + instruction embedding -> action).

    python benchmarks/bench_decode.py [--repeats 200] [--threads 2]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "qt_policy"))
from qt_policy.core.config import ModelConfig  # noqa: E402
from qt_policy.core.decoding import decode_from_context, greedy_decode  # noqa: E402
from qt_policy.core.model import QTransformer, count_parameters  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, float]:
    for _ in range(10):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dims", type=int, nargs="+", default=[4, 8, 11])
    parser.add_argument("--num-bins", type=int, default=ModelConfig.num_bins, help="bins per dimension (default: ModelConfig's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}, batch 1, {args.repeats} repeats")
    header = f"{'dims':>4} {'params':>9} | {'decode cached':>14} {'uncached':>10} {'speed-up':>8} | {'end-to-end cached':>18} {'uncached':>10} {'speed-up':>8}"
    print(header)
    print("-" * len(header))
    for d in args.dims:
        cfg = ModelConfig(action_dim=d, action_low=[-1.0] * d, action_high=[1.0] * d, action_names=[f"a{i}" for i in range(d)],
                          num_bins=args.num_bins)
        model = QTransformer(cfg).eval()
        images = torch.randint(0, 256, (1, cfg.frames, cfg.image_size, cfg.image_size, 3), dtype=torch.uint8)
        text = torch.randn(1, cfg.text_dim)
        with torch.inference_mode():
            ctx = model.encode_context(images, text)
            c_med, _ = timed(lambda: decode_from_context(model, ctx, use_cache=True), args.repeats)
            u_med, _ = timed(lambda: decode_from_context(model, ctx, use_cache=False), args.repeats)
            ec_med, ec_p90 = timed(lambda: greedy_decode(model, images, text, use_cache=True), args.repeats)
            eu_med, eu_p90 = timed(lambda: greedy_decode(model, images, text, use_cache=False), args.repeats)
        print(f"{d:>4} {count_parameters(model):>9,} | {c_med:>11.2f} ms {u_med:>7.2f} ms {u_med / c_med:>7.2f}x |"
              f" {ec_med:>15.2f} ms {eu_med:>7.2f} ms {eu_med / ec_med:>7.2f}x")
    print("median latency per action; end to end = 2 frames 64x64 + instruction embedding -> action")


if __name__ == "__main__":
    main()
