"""An ensemble of independently trained Q-Transformers that acts on their mean Q.

Why: with sparse rewards the greedy argmax often separates a good bin from an untried one by a
few hundredths of Q, and which bin wins changes with the training seed (docs/experiments/mixed-data.md). The
mean over runs keeps what the runs agree on and averages their seed noise. (Measured on the
simulated tasks: no better than its members' average; the tool stays, as the standard thing to try.)

It has the decoding interface of `QTransformer` (`encode_context`, `start_decoding`,
`decode_step`, `action_logits`, `cfg`, `discretizer`), so `greedy_decode`, the evaluation CLI
and the policy node take it unchanged. Logits it returns are logit(mean sigmoid), so the
sigmoid the decoder applies gives the mean Q, and the argmax is the argmax of the mean Q.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .model import KVCache, QTransformer

# Fields that must agree for members to read the same observation and write the same action, and
# (tokens_per_frame, d_model) for their context tokens to stack into one (B, M, N, d_model) tensor.
_SHARED_FIELDS = ("action_dim", "num_bins", "action_low", "action_high", "image_size", "frames", "state_dim", "text_dim",
                  "tokens_per_frame", "d_model")


class QEnsemble(nn.Module):
    def __init__(self, members: list[QTransformer]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        first = members[0].cfg
        for k, m in enumerate(members[1:], start=1):
            for field in _SHARED_FIELDS:
                if getattr(m.cfg, field) != getattr(first, field):
                    raise ValueError(f"ensemble member {k} has {field}={getattr(m.cfg, field)!r}, "
                                     f"member 0 has {getattr(first, field)!r}: members must share inputs, action bins and width")
        self.members = nn.ModuleList(members)
        self.cfg = first
        self.discretizer = members[0].discretizer

    @staticmethod
    def _mean_logit(logits: list[torch.Tensor]) -> torch.Tensor:
        q = torch.stack([torch.sigmoid(x) for x in logits]).mean(dim=0)
        return torch.logit(q, eps=1e-6)

    def encode_context(self, images=None, text=None, state=None) -> torch.Tensor:
        """-> (B, M, N, d_model): member m's context tokens at [:, m]."""
        return torch.stack([m.encode_context(images, text, state) for m in self.members], dim=1)

    def action_logits(self, context: torch.Tensor, prefix_bins: torch.Tensor) -> torch.Tensor:
        return self._mean_logit([m.action_logits(context[:, k], prefix_bins) for k, m in enumerate(self.members)])

    def start_decoding(self, context: torch.Tensor) -> tuple[torch.Tensor, list[KVCache]]:
        logits, caches = zip(*(m.start_decoding(context[:, k]) for k, m in enumerate(self.members)))
        return self._mean_logit(list(logits)), list(caches)

    def decode_step(self, dim: int, prev_bin: torch.Tensor, cache: list[KVCache]) -> torch.Tensor:
        return self._mean_logit([m.decode_step(dim, prev_bin, c) for m, c in zip(self.members, cache)])
