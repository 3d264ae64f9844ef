"""Export a greedy Q-Transformer policy as one ONNX graph: observation in, greedy action out.

One graph, not an encoder plus a per-step decoder: a checkpoint's number of action dimensions is
fixed, so the greedy loop unrolls into a static graph (context encoding, the start pass, then one
cached step per dimension with its argmax). The runtime then makes one call per decision, where a
step-by-step export would pay a session call, and copies of the key/value cache, per dimension
(measured in benchmarks/bench_decode.py: the per-call overhead is what a step costs at batch 1).

Exported with torch's TorchScript-based exporter (dynamo=False): it traces the unrolled loop as it
runs and needs only the `onnx` package; torch deprecates it in favour of the torch.export-based one,
so a later torch may need `dynamo=True` (and onnxscript) here. tests/test_onnx_export.py says when.

Inputs:  images uint8 (B, frames, H, W, 3) [if the model has a camera], text float32 (B, text_dim),
         state float32 (B, state_dim) [if the model has a state]
Outputs: bins int64 (B, d), values float32 (B, d), q_value float32 (B,), dim_q float32 (B, d)
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..core.checkpoint_files import CONFIG, ENSEMBLE_KEY, read_config
from ..core.model import QTransformer

from .export_files import GRAPH, TEXT_EMBEDDINGS

OPSET = 17
EXPORT_INFO = "export.json"
OUTPUTS = ["bins", "values", "q_value", "dim_q"]


class GreedyPolicyGraph(nn.Module):
    """The fused greedy decoding (core/fast_decoding.py) as a traceable graph: the same folded weights and
    steps, with the cache grown by concatenation (GrowingCache: ONNX has no in-place writes). Exporting
    the model's own modules step by step gave a graph ~1.5x slower in ONNX Runtime at 11 dimensions
    (one A/B run on the dev VM, 2026-12-03, 4.38 vs 2.88 ms p50 under load; not a committed benchmark)."""

    def __init__(self, model: QTransformer):
        super().__init__()
        from ..core.fast_decoding import FusedGreedyDecoder

        self.model = model
        self.fused = FusedGreedyDecoder(model)
        cfg = model.cfg
        self.register_buffer("low", torch.tensor(cfg.action_low, dtype=torch.float32), persistent=False)
        self.register_buffer("high", torch.tensor(cfg.action_high, dtype=torch.float32), persistent=False)

    def forward(self, images=None, text=None, state=None):
        from ..core.fast_decoding import GrowingCache

        cfg = self.model.cfg
        context = self.model.encode_context(images, text, state)
        bins, dim_q = self.fused.decode(context, GrowingCache(cfg.d_model // cfg.num_heads))
        action = self.low + bins.float() / (cfg.num_bins - 1) * (self.high - self.low)
        return bins, action, dim_q[:, -1], dim_q


def input_names(cfg) -> list[str]:
    return (["images"] if cfg.image_size else []) + ["text"] + (["state"] if cfg.state_dim else [])


def example_inputs(cfg, batch: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {}
    if cfg.image_size:
        out["images"] = torch.randint(0, 256, (batch,) + cfg.image_shape(), dtype=torch.uint8,
                                      generator=g)
    out["text"] = torch.randn(batch, cfg.text_dim, generator=g)
    if cfg.state_dim:
        out["state"] = torch.randn(batch, cfg.state_dim, generator=g)
    return out


def export_policy(checkpoint: Path, out: Path, encoder=None, opset: int = OPSET) -> Path:
    """Write OUT/policy.onnx, OUT/config.json (the checkpoint's: model, embodiment, instructions),
    OUT/text_embeddings.npz (the training instructions, encoded) and OUT/export.json."""
    from ..core.checkpoint import load_model

    checkpoint, out = Path(checkpoint), Path(out)
    config = read_config(checkpoint)
    if ENSEMBLE_KEY in config:
        raise ValueError(f"{checkpoint} is an ensemble: export its members one at a time (one graph per model)")
    model = load_model(checkpoint).eval()
    cfg = model.cfg
    graph = GreedyPolicyGraph(model).eval()
    names = input_names(cfg)
    example = example_inputs(cfg)
    out.mkdir(parents=True, exist_ok=True)
    dynamic = {name: {0: "batch"} for name in names + OUTPUTS}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the unrolled loop's shapes are static by design
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: see the module docstring
        torch.onnx.export(graph, tuple(example[n] for n in names), str(out / GRAPH), input_names=names,
                          output_names=OUTPUTS, dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    (out / CONFIG).write_text(json.dumps(config, indent=2))
    instructions = list(config.get("instructions") or [])
    if instructions:
        if encoder is None:
            from ..core.text import shared_encoder

            encoder = shared_encoder()
        np.savez(out / TEXT_EMBEDDINGS, instructions=np.array(instructions),
                 embeddings=np.stack([np.asarray(encoder(t), np.float32) for t in instructions]))
    info = {"source": str(checkpoint), "graph": GRAPH, "opset": opset, "inputs": names, "outputs": OUTPUTS,
            "torch": torch.__version__, "action_dim": cfg.action_dim, "num_bins": cfg.num_bins}
    (out / EXPORT_INFO).write_text(json.dumps(info, indent=2))
    return out
