"""Act with an exported policy (inference/onnx_export.py) through ONNX Runtime: no torch, no training code.

What it imports: numpy, onnxruntime, and from this package the config dataclasses (core/config.py,
plain dataclasses) and this module. The instruction embeddings of the training instructions come
with the export (text_embeddings.npz), so a node that hears only those needs no sentence encoder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.checkpoint_files import read_config
from ..core.config import ModelConfig, from_dict
from .export_files import GRAPH, TEXT_EMBEDDINGS, PolicyOutput


class OnnxPolicy:
    backend = "onnxruntime"

    def __init__(self, export_dir, threads: int = 0):
        import onnxruntime as ort

        export_dir = Path(export_dir)
        if not (export_dir / GRAPH).is_file():
            raise FileNotFoundError(f"no {GRAPH} in {export_dir}: export a checkpoint first "
                                    f"(qt-export --checkpoint CHECKPOINT --out {export_dir})")
        self.config = read_config(export_dir)
        self.cfg = from_dict(ModelConfig, self.config["model"])
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(export_dir / GRAPH), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.embeddings: dict[str, np.ndarray] = {}
        if (export_dir / TEXT_EMBEDDINGS).is_file():
            data = np.load(export_dir / TEXT_EMBEDDINGS)
            self.embeddings = {str(t): e.astype(np.float32) for t, e in zip(data["instructions"], data["embeddings"])}

    def act(self, images, text, state=None) -> PolicyOutput:
        given = {"images": images, "text": text, "state": state}
        feed = {}
        for name in self.input_names:
            if given[name] is None:
                raise ValueError(f"this policy needs {name!r}")
            feed[name] = np.ascontiguousarray(given[name], dtype=np.uint8 if name == "images" else np.float32)
        bins, values, q_value, dim_q = self.session.run(None, feed)
        return PolicyOutput(bins.astype(np.int64), values, q_value, dim_q)
