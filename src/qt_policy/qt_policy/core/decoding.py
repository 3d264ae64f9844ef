"""Greedy autoregressive decoding: argmax dimension 1, feed the bin, argmax dimension 2, ...

Deterministic unless an explicit epsilon is given (for exploration), and then reproducible from a
torch.Generator. With the key/value cache the whole action costs about one Transformer pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import QTransformer


@dataclass
class DecodedAction:
    bins: torch.Tensor  # (B, d) long
    values: torch.Tensor  # (B, d) continuous bin centres
    q_value: torch.Tensor  # (B,) Q of the full chosen action: the estimated success probability
    dim_q: torch.Tensor  # (B, d) Q of the chosen bin at each dimension


def _choose(logits: torch.Tensor, epsilon: float, generator: torch.Generator | None) -> torch.Tensor:
    choice = logits.argmax(dim=-1)
    if epsilon > 0.0:
        b, n = logits.shape
        explore = torch.rand(b, generator=generator, device=logits.device) < epsilon
        random_bins = torch.randint(0, n, (b,), generator=generator, device=logits.device)
        choice = torch.where(explore, random_bins, choice)
    return choice


@torch.no_grad()
def decode_from_context(
    model: QTransformer,
    context: torch.Tensor,
    use_cache: bool = True,
    epsilon: float = 0.0,
    generator: torch.Generator | None = None,
) -> DecodedAction:
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    d = model.cfg.action_dim
    bins, chosen_logits = [], []
    if use_cache:
        logits, cache = model.start_decoding(context)
    for i in range(d):
        if not use_cache:  # recompute the whole sequence: the reference the cache must equal
            prefix = torch.stack(bins, dim=1) if bins else context.new_zeros(context.shape[0], 0, dtype=torch.long)
            logits = model.action_logits(context, prefix)[:, i]
        elif i > 0:
            logits = model.decode_step(i, bins[-1], cache)
        choice = _choose(logits, epsilon, generator)
        bins.append(choice)
        chosen_logits.append(logits.gather(-1, choice[:, None])[:, 0])
    bins_t = torch.stack(bins, dim=1)
    dim_q = torch.sigmoid(torch.stack(chosen_logits, dim=1))
    return DecodedAction(bins_t, model.discretizer.to_values(bins_t), dim_q[:, -1], dim_q)


@torch.no_grad()
def greedy_decode(model: QTransformer, images=None, text=None, state=None, use_cache: bool = True,
                  epsilon: float = 0.0, generator: torch.Generator | None = None) -> DecodedAction:
    """Observation batch -> action. See `QTransformer.encode_context` for the input layout."""
    return decode_from_context(model, model.encode_context(images, text, state), use_cache, epsilon, generator)
