"""Greedy decoding at the cost of little more than one forward pass: static caches, one fused step.

`decoding.decode_from_context` runs every dimension through the model's modules: per dimension and
layer a dozen module calls, two `torch.cat`s that grow the key/value cache, and an einsum head. On a
CPU at batch 1 that per-call overhead, not the arithmetic, is the cost of a step (benchmarks/
bench_decode.py). `FusedGreedyDecoder` takes the same weights once and decodes with

* a key/value cache allocated once per batch size, written in place (no concatenation),
* LayerNorm gains folded into the next matrix (`x W' + b'` with `W' = g * W`, `b' = b + beta W`),
* each step a fixed list of aten calls: embedding row lookup, then per layer layer_norm, addmm,
  one cache write, scaled_dot_product_attention, addmm, layer_norm, addmm, gelu, addmm; the head
  one addmm per dimension,

and chooses the same bins as `decode_from_context` (tests/test_core_decoding.py; float rounding
differs in the last digits, so Q agrees to ~1e-6). The context and the start token still go through
the model's own modules once (that is the "one forward"). Greedy only: exploration uses the reference.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .decoding import DecodedAction
from .model import QTransformer, prefix_lm_mask


class _Layer:
    """One Transformer block's weights, pre-arranged for the fused step (LayerNorm gains folded in)."""

    def __init__(self, block):
        ln1, ln2 = block.norm1, block.norm2
        qkv_w, qkv_b = block.attn.qkv.weight, block.attn.qkv.bias
        self.eps1, self.eps2 = ln1.eps, ln2.eps
        self.qkv_wt = (qkv_w * ln1.weight[None, :]).t().contiguous()  # (d, 3d)
        self.qkv_b = qkv_b + qkv_w @ ln1.bias
        self.out_wt = block.attn.out.weight.t().contiguous()
        self.out_b = block.attn.out.bias.clone()
        fc1, fc2 = block.mlp[0], block.mlp[2]
        self.fc1_wt = (fc1.weight * ln2.weight[None, :]).t().contiguous()
        self.fc1_b = fc1.bias + fc1.weight @ ln2.bias
        self.fc2_wt = fc2.weight.t().contiguous()
        self.fc2_b = fc2.bias.clone()


class FusedGreedyDecoder:
    """Greedy decoding of one `QTransformer` (eval mode, no dropout); call with a context batch."""

    def __init__(self, model: QTransformer):
        if not isinstance(model, QTransformer):
            raise TypeError(f"FusedGreedyDecoder takes a QTransformer, got {type(model).__name__}")
        self.model = model
        cfg = model.cfg
        self.d, self.bins, self.heads = cfg.action_dim, cfg.num_bins, cfg.num_heads
        self.width = cfg.d_model
        with torch.no_grad():
            self.layers = [_Layer(block) for block in model.blocks]
            norm = model.norm
            self.norm_eps = norm.eps
            # head of dimension i: (LN(x) * g + beta) W_i + b_i = LN(x) (g * W_i) + (beta W_i + b_i)
            self.head_w = (model.head_weight * norm.weight[None, :, None]).contiguous()  # (d, d_model, bins)
            self.head_b = (model.head_bias + torch.einsum("c,kcn->kn", norm.bias, model.head_weight)).contiguous()
            # input token of dimension i >= 1 for bin b: bin_embed[(i-1)*bins + b] + dim_pos[i]
            if model.bin_embed is None:  # RT-1 style: every later token is the start token (bins unseen)
                table = model.start_token.expand(max(self.d - 1, 0), self.bins, self.width)
            else:
                table = model.bin_embed.weight.view(-1, self.bins, self.width)[: max(self.d - 1, 0)]
            self.token_table = (table + model.dim_pos[1:, None, :]).contiguous()  # (d-1, bins, d_model)
        self._cache: torch.Tensor | None = None

    def _cache_for(self, batch: int, length: int, like: torch.Tensor) -> torch.Tensor:
        """(layers, 2, B, heads, length, head_dim) key/value buffer, reused while the shapes stay."""
        shape = (len(self.layers), 2, batch, self.heads, length, self.width // self.heads)
        if (self._cache is None or self._cache.shape != shape or self._cache.dtype != like.dtype
                or self._cache.is_inference() != torch.is_inference_mode_enabled()):
            self._cache = like.new_empty(shape)
        return self._cache

    @torch.no_grad()
    def __call__(self, context: torch.Tensor) -> DecodedAction:
        b, n, _ = context.shape
        bins, dim_q = self.decode(context, StaticCache(self._cache_for(b, n + self.d, context)))
        return DecodedAction(bins, self.model.discretizer.to_values(bins), dim_q[:, -1], dim_q)

    def decode(self, context: torch.Tensor, cache) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy bins (B, d) and their per-dimension Q (B, d), keeping keys and values in `cache`
        (StaticCache here, GrowingCache in the exported graph: inference/onnx_export.py)."""
        model, d, heads, width = self.model, self.d, self.heads, self.width  # python ints, also when traced
        b, n = context.shape[0], context.shape[1]
        head_dim = width // heads
        # the context and the start token through the model's own blocks: the cache's first n + 1 rows
        x = torch.cat([context, model.action_token(0, None, b)], dim=1)
        mask = prefix_lm_mask(n, n + 1, x.device)
        for l, block in enumerate(model.blocks):
            q, k, v = block.attn.qkv(block.norm1(x)).view(b, n + 1, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
            cache.start(l, k, v)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = x + block.attn.out(y.transpose(1, 2).reshape(b, n + 1, width))
            x = x + block.mlp(block.norm2(x))
        hidden = x[:, -1]  # (B, d_model) at action position 0
        bins, chosen = [], []
        for i in range(d):
            logits = torch.addmm(self.head_b[i], F.layer_norm(hidden, (width,), eps=self.norm_eps), self.head_w[i])
            choice = logits.argmax(dim=-1)
            bins.append(choice)
            chosen.append(logits.gather(1, choice[:, None]))
            if i + 1 == d:
                break
            t = n + 1 + i  # cache row of this step's token
            x = self.token_table[i].index_select(0, choice)  # (B, d_model): the embedding of a^i at position i+1
            for l, layer in enumerate(self.layers):
                qkv = torch.addmm(layer.qkv_b, F.layer_norm(x, (width,), eps=layer.eps1), layer.qkv_wt)
                y = cache.attend(l, t, qkv.view(b, 3, heads, 1, head_dim))
                x = torch.addmm(x, y.reshape(b, width), layer.out_wt).add_(layer.out_b)
                m = F.gelu(torch.addmm(layer.fc1_b, F.layer_norm(x, (width,), eps=layer.eps2), layer.fc1_wt))
                x = torch.addmm(x, m, layer.fc2_wt).add_(layer.fc2_b)
            hidden = x
        return torch.stack(bins, dim=1), torch.sigmoid(torch.cat(chosen, dim=1))


class StaticCache:
    """Keys and values in one preallocated buffer, written in place (the torch path)."""

    def __init__(self, buffer: torch.Tensor):
        self.buffer = buffer  # (layers, 2, B, heads, length, head_dim)

    def start(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        self.buffer[layer, 0, :, :, : k.shape[2]] = k
        self.buffer[layer, 1, :, :, : v.shape[2]] = v

    def attend(self, layer: int, t: int, qkv: torch.Tensor) -> torch.Tensor:
        """Store row t's key and value (qkv (B, 3, heads, 1, head_dim)); its query's attention over rows 0..t."""
        cache = self.buffer[layer]
        cache[:, :, :, t: t + 1] = qkv[:, 1:].transpose(0, 1)
        return F.scaled_dot_product_attention(qkv[:, 0], cache[0, :, :, : t + 1], cache[1, :, :, : t + 1])


class GrowingCache:
    """Keys and values grown by concatenation, attention written out: what an ONNX graph can hold (no
    in-place writes) and what ONNX Runtime ran fastest of the forms tried (inference/onnx_export.py)."""

    def __init__(self, head_dim: int):
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        self.scale = 1.0 / math.sqrt(head_dim)

    def start(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        self.keys[layer], self.values[layer] = k, v

    def attend(self, layer: int, t: int, qkv: torch.Tensor) -> torch.Tensor:
        self.keys[layer] = torch.cat([self.keys[layer], qkv[:, 1]], dim=2)
        self.values[layer] = torch.cat([self.values[layer], qkv[:, 2]], dim=2)
        weights = torch.softmax((qkv[:, 0] @ self.keys[layer].transpose(2, 3)) * self.scale, dim=-1)
        return weights @ self.values[layer]
