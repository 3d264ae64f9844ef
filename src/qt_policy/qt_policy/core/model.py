"""Q-Transformer network: FiLM image encoder + TokenLearner + causal Transformer over action dimensions.

Sequence layout, for a state with N context tokens and d action dimensions:

    [ctx_1 .. ctx_N | start, emb_1(a^1), .., emb_{d-1}(a^{d-1})]

Context tokens (image tokens of a short frame history of each camera, the instruction, the
optional robot state) see each other; action tokens see the whole context and the earlier action tokens
(prefix-LM mask). The output at action position i holds Q(s, a^{1:i-1}, a^i = b) for every bin b,
passed through a sigmoid because sparse binary rewards keep every return in [0, 1].
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import EXTRA_HEADS, ModelConfig
from .discretizer import Discretizer

KVCache = list  # one {"k": Tensor, "v": Tensor} dict per Transformer layer


class FiLM(nn.Module):
    """Feature-wise affine modulation by the instruction (Perez et al. 2018); identity at init."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(cond).chunk(2, dim=-1)
        return x * (1 + gamma[..., None, None]) + beta[..., None, None]


class FiLMConvBlock(nn.Module):
    """Stride-2 conv then a residual conv, both FiLM-conditioned on the instruction."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int):
        super().__init__()
        self.down = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1)
        self.norm1 = nn.GroupNorm(min(8, out_ch), out_ch)
        self.film1 = FiLM(cond_dim, out_ch)
        self.conv = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.norm2 = nn.GroupNorm(min(8, out_ch), out_ch)
        self.film2 = FiLM(cond_dim, out_ch)

    def forward(self, x, cond):
        x = F.gelu(self.film1(self.norm1(self.down(x)), cond))
        return x + F.gelu(self.film2(self.norm2(self.conv(x)), cond))


class TokenLearner(nn.Module):
    """Reduce a feature map to a few tokens by learned spatial attention (Ryoo et al. 2021)."""

    def __init__(self, channels: int, num_tokens: int):
        super().__init__()
        self.attention = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.GELU(), nn.Conv2d(channels, num_tokens, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.attention(x).flatten(2).softmax(dim=-1)  # (N, K, h*w)
        return torch.einsum("nkp,ncp->nkc", weights, x.flatten(2))


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x, attn_mask=None, cache: dict | None = None):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg.d_model, cfg.num_heads, cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model),
            nn.GELU(),
            nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x, attn_mask=None, cache=None):
        x = x + self.attn(self.norm1(x), attn_mask, cache)
        return x + self.mlp(self.norm2(x))


def prefix_lm_mask(num_context: int, length: int, device=None) -> torch.Tensor:
    """Boolean mask (True = may attend): everyone sees the context, action tokens see earlier ones."""
    i = torch.arange(length, device=device)[:, None]
    j = torch.arange(length, device=device)[None, :]
    return (j < num_context) | (j <= i)


class QTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.discretizer = Discretizer(tuple(cfg.action_low), tuple(cfg.action_high), cfg.num_bins)
        d = cfg.d_model
        if cfg.image_size:
            chans = [3] + list(cfg.conv_channels)
            self.conv_blocks = nn.ModuleList(FiLMConvBlock(a, b, cfg.text_dim) for a, b in zip(chans[:-1], chans[1:]))
            self.token_learner = TokenLearner(chans[-1], cfg.tokens_per_frame)
            self.image_proj = nn.Linear(chans[-1], d)
            self.image_pos = nn.Parameter(torch.randn(cfg.frames, cfg.tokens_per_frame, d) * 0.02)
            if cfg.cameras > 1:  # which camera a token comes from (one camera needs none: older checkpoints load)
                self.camera_embed = nn.Parameter(torch.randn(cfg.cameras, d) * 0.02)
            self.register_buffer("pixel_mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("pixel_std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1), persistent=False)
        self.text_proj = nn.Linear(cfg.text_dim, d)
        self.state_proj = nn.Linear(cfg.state_dim, d) if cfg.state_dim else None
        self.context_type = nn.Parameter(torch.randn(3, d) * 0.02)  # image, text, state
        self.start_token = nn.Parameter(torch.randn(d) * 0.02)
        # Bins of dimensions 1..d-1 are inputs; one table, offset per dimension.
        # RT-1 style (independent_dims) shows no earlier bins: no embedding to train
        self.bin_embed = None if cfg.independent_dims else nn.Embedding(max(cfg.action_dim - 1, 1) * cfg.num_bins, d)
        if self.bin_embed is not None:
            nn.init.normal_(self.bin_embed.weight, std=0.02)
        self.dim_pos = nn.Parameter(torch.randn(cfg.action_dim, d) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(d)
        self.head_weight = nn.Parameter(torch.randn(cfg.action_dim, d, cfg.num_bins) / math.sqrt(d))
        self.head_bias = nn.Parameter(torch.zeros(cfg.action_dim, cfg.num_bins))
        # heads other algorithms train on the same hidden states (ModelConfig.extra_heads); acting uses `head`
        self.extra_weights = nn.ParameterDict()
        self.extra_biases = nn.ParameterDict()
        for name in cfg.extra_heads:
            width = cfg.num_bins if EXTRA_HEADS[name] == "bins" else 1
            self.extra_weights[name] = nn.Parameter(torch.randn(cfg.action_dim, d, width) / math.sqrt(d))
            self.extra_biases[name] = nn.Parameter(torch.zeros(cfg.action_dim, width))
        if cfg.return_token:  # Decision Transformer: the return asked for, as one more context token
            self.return_proj = nn.Linear(1, d)
            self.return_type = nn.Parameter(torch.randn(d) * 0.02)

    # ----- context -------------------------------------------------------------------------
    @property
    def num_context_tokens(self) -> int:
        cfg = self.cfg
        n = 1 + (1 if cfg.state_dim else 0) + (1 if cfg.return_token else 0)
        return n + (cfg.frames * cfg.cameras * cfg.tokens_per_frame if cfg.image_size else 0)

    def encode_context(self, images=None, text=None, state=None, returns=None) -> torch.Tensor:
        """images uint8 (B, F, H, W, 3) or, with K cameras, (B, F, K, H, W, 3); text (B, text_dim),
        state (B, state_dim) -> (B, N, d_model). `returns` (B,): the return-to-go a return-conditioned
        model is told (training: the data's; acting: None = cfg.target_return).

        Every camera's frames go through the same FiLM conv encoder and TokenLearner; a learned
        per-camera embedding tells the Transformer which view a token shows (scene vs wrist)."""
        cfg = self.cfg
        if text is None:
            raise ValueError("an instruction embedding is required")
        text = text.float()
        tokens = []
        if cfg.image_size:
            if images is None:
                raise ValueError("this model needs camera images")
            if tuple(images.shape[1:]) != cfg.image_shape():
                raise ValueError(f"images must be (B, {', '.join(map(str, cfg.image_shape()))}), got {tuple(images.shape)}")
            b, h, w, c, k = images.shape[0], cfg.image_size, cfg.image_size, 3, cfg.cameras
            f = cfg.frames
            x = images.reshape(b * f * k, h, w, c).permute(0, 3, 1, 2).float().div(255.0)
            x = (x - self.pixel_mean) / self.pixel_std
            cond = text.repeat_interleave(f * k, dim=0)
            for block in self.conv_blocks:
                x = block(x, cond)
            img = self.image_proj(self.token_learner(x)).view(b, f, k, cfg.tokens_per_frame, -1)
            img = img + self.image_pos[:, None] + self.context_type[0]
            if k > 1:
                img = img + self.camera_embed[None, None, :, None]
            tokens.append(img.flatten(1, 3))
        tokens.append((self.text_proj(text) + self.context_type[1])[:, None])
        if cfg.state_dim:
            if state is None:
                raise ValueError("this model needs the robot state")
            tokens.append((self.state_proj(state.float()) + self.context_type[2])[:, None])
        if cfg.return_token:
            if returns is None:
                returns = torch.full((text.shape[0],), float(cfg.target_return), device=text.device)
            tokens.append((self.return_proj(returns.float()[:, None]) + self.return_type)[:, None])
        return torch.cat(tokens, dim=1)

    # ----- action tokens -------------------------------------------------------------------
    def action_token(self, dim: int, prev_bin: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Input token at action position `dim` (B, 1, d): start token, or the embedding of a^{dim-1}."""
        if dim == 0 or self.cfg.independent_dims:  # RT-1 style: the earlier bins are not shown
            tok = self.start_token.expand(batch, -1)
        else:
            tok = self.bin_embed(prev_bin + (dim - 1) * self.cfg.num_bins)
        return (tok + self.dim_pos[dim])[:, None]

    def action_tokens(self, prefix_bins: torch.Tensor) -> torch.Tensor:
        """prefix_bins (B, k) with k < action_dim -> input tokens for positions 0..k, (B, k+1, d)."""
        b, k = prefix_bins.shape
        toks = [self.action_token(0, None, b)] + [self.action_token(i + 1, prefix_bins[:, i], b) for i in range(k)]
        return torch.cat(toks, dim=1)

    def head(self, hidden: torch.Tensor, first_dim: int = 0) -> torch.Tensor:
        """Hidden states at action positions first_dim.. -> logits over bins (B, k, num_bins)."""
        return self._per_dimension(hidden, self.head_weight, self.head_bias, first_dim)

    def extra_head(self, name: str, hidden: torch.Tensor, first_dim: int = 0) -> torch.Tensor:
        """One of cfg.extra_heads on the hidden states at action positions first_dim.., (B, k, bins or 1)."""
        return self._per_dimension(hidden, self.extra_weights[name], self.extra_biases[name], first_dim)

    def _per_dimension(self, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, first_dim: int) -> torch.Tensor:
        """Final LayerNorm, then each action position's own linear map: (B, k, d_model) -> (B, k, out)."""
        k = hidden.shape[1]
        return torch.einsum("bkd,kdn->bkn", self.norm(hidden), weight[first_dim:first_dim + k]) + bias[first_dim:first_dim + k]

    def action_hidden(self, context: torch.Tensor, prefix_bins: torch.Tensor) -> torch.Tensor:
        """Teacher-forced pass: hidden states at action positions 0..k given the k chosen bins, (B, k+1, d_model)."""
        n = context.shape[1]
        x = torch.cat([context, self.action_tokens(prefix_bins)], dim=1)
        mask = prefix_lm_mask(n, x.shape[1], x.device)
        for block in self.blocks:
            x = block(x, mask)
        return x[:, n:]

    def action_logits(self, context: torch.Tensor, prefix_bins: torch.Tensor) -> torch.Tensor:
        """Teacher-forced pass: logits for dimensions 0..k given the k chosen bins, (B, k+1, num_bins)."""
        return self.head(self.action_hidden(context, prefix_bins))

    def q_values(self, context: torch.Tensor, action_bins: torch.Tensor) -> torch.Tensor:
        """Q(s, a^{1:i-1}, a^i = b) for all dimensions i and bins b, with the dataset bins fed in. (B, d, num_bins)."""
        return torch.sigmoid(self.action_logits(context, action_bins[:, : self.cfg.action_dim - 1]))

    def first_dim_q(self, context: torch.Tensor) -> torch.Tensor:
        """Q(s, a^1 = b) for every bin b, (B, num_bins): the value of a state is its max."""
        empty = torch.zeros(context.shape[0], 0, dtype=torch.long, device=context.device)
        return torch.sigmoid(self.action_logits(context, empty)[:, 0])

    # ----- incremental decoding with a key/value cache ------------------------------------
    def start_decoding(self, context: torch.Tensor) -> tuple[torch.Tensor, KVCache]:
        """Run the context and the start token once; returns dimension-0 logits (B, num_bins) and the cache."""
        n = context.shape[1]
        x = torch.cat([context, self.action_token(0, None, context.shape[0])], dim=1)
        mask = prefix_lm_mask(n, n + 1, x.device)
        cache: KVCache = [{} for _ in self.blocks]
        for block, layer_cache in zip(self.blocks, cache):
            x = block(x, mask, layer_cache)
        return self.head(x[:, -1:], 0)[:, 0], cache

    def decode_step(self, dim: int, prev_bin: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Feed a^{dim-1}; returns dimension-`dim` logits (B, num_bins), extending the cache in place."""
        x = self.action_token(dim, prev_bin, prev_bin.shape[0])
        for block, layer_cache in zip(self.blocks, cache):
            x = block(x, None, layer_cache)  # one new query may attend to every cached position
        return self.head(x, dim)[:, 0]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
