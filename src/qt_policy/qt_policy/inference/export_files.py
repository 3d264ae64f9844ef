"""What an export folder holds and what every backend returns: shared by the backends, the exporter
and the ONNX policy, so none of them imports another for a file name."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

GRAPH = "policy.onnx"  # an export's graph (inference/onnx_export.py)
TEXT_EMBEDDINGS = "text_embeddings.npz"  # an export's table of the training instructions' embeddings


def is_export(path) -> bool:
    """A folder qt-export wrote (a graph, no torch weights)."""
    from ..core.checkpoint_files import WEIGHTS

    return (Path(path) / GRAPH).is_file() and not (Path(path) / WEIGHTS).is_file()


@dataclass
class PolicyOutput:
    bins: np.ndarray  # (B, d) int64
    values: np.ndarray  # (B, d) float32 bin centres
    q_value: np.ndarray  # (B,) greedy Q of the whole action: the estimated success probability
    dim_q: np.ndarray  # (B, d) greedy Q at each dimension
