"""The two ways to act with a policy, behind one `act`: torch (a checkpoint) or onnxruntime (an export).

Both take numpy arrays (images uint8 (B, frames, H, W, 3), text float32 (B, text_dim), state float32
(B, state_dim) or None) and return a `PolicyOutput` of numpy arrays. Importing this module imports
neither torch nor onnxruntime; each backend imports its own runtime when it is built.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .export_files import PolicyOutput, is_export

BACKENDS = ("torch", "onnxruntime")
class TorchPolicy:
    """A checkpoint (or an ensemble) in torch; a single model decodes with the fused greedy decoder."""

    backend = "torch"

    def __init__(self, model, device: str | None = None):
        import torch

        from ..core.fast_decoding import FusedGreedyDecoder
        from ..core.model import QTransformer

        self.model = model.eval()
        self.cfg = model.cfg
        self.device = torch.device(device) if device else next(model.parameters()).device
        self._decoder = FusedGreedyDecoder(model) if isinstance(model, QTransformer) else None
        self._torch = torch

    def act(self, images, text, state=None) -> PolicyOutput:
        torch = self._torch
        from ..core.decoding import decode_from_context

        as_tensor = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        with torch.inference_mode():
            context = self.model.encode_context(as_tensor(images), as_tensor(text), as_tensor(state))
            out = self._decoder(context) if self._decoder is not None else decode_from_context(self.model, context)
        return PolicyOutput(out.bins.cpu().numpy().astype(np.int64), out.values.float().cpu().numpy(),
                            out.q_value.float().cpu().numpy(), out.dim_q.float().cpu().numpy())


def as_policy(model):
    """A backend as it is; a torch model or ensemble wrapped in TorchPolicy."""
    return model if hasattr(model, "act") else TorchPolicy(model)


def load_policy(path, backend: str = "torch", device: str = "cpu", threads: int = 0):
    """The policy in folder `path`: a checkpoint, an ensemble or a list of checkpoints acting on their mean Q
    (torch), or an export (onnxruntime). threads > 0 sets the runtime's intra-op threads (torch's are
    process-wide)."""
    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    if backend == "torch":
        import torch

        from ..core.checkpoint import load_policy_model

        for p in paths:
            if is_export(p):
                raise ValueError(f"{p} is an ONNX export: act with it through backend 'onnxruntime'")
        if threads > 0:
            torch.set_num_threads(threads)
        return TorchPolicy(load_policy_model(paths, device=device), device)
    if backend == "onnxruntime":
        from .onnx_policy import OnnxPolicy

        if len(paths) != 1:
            raise ValueError(f"backend 'onnxruntime' acts with one export, got {len(paths)} folders")
        return OnnxPolicy(paths[0], threads=threads)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
