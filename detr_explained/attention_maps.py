"""Stage 3: box embeddings x encoded image -> N x M x H/32 x W/32 attention maps.

Explained in ``book/03_attention_maps.ipynb``. The official name is MHAttentionMap.

The QUERY is each box embedding (the last decoder layer's output, one per object query); the
KEY is the encoded image (the encoder's memory, one vector per Res5 cell). There are no values:
the attention weights themselves are the output. For every query and every head, the map says
how strongly that head of that query matches each cell of the image.

Steps, with d = 256 and M = 8 heads of d/M = 32 channels:
1. project the queries with a Linear layer and the keys with the *same kind* of Linear layer,
   applied to every cell as a 1x1 convolution (its weight reshaped to (d, d, 1, 1));
2. split both into M heads;
3. einsum "bqnc,bnchw->bqnhw": a dot product per (query, head, cell), scaled by 1/sqrt(d/M);
4. padded cells get -inf;
5. ONE softmax per query, taken jointly over all heads and cells (not per head): the M maps of a
   query together sum to 1.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .checks import describe, whole_number


class BoxAttentionMaps(nn.Module):
    """Multi-head attention weights of box embeddings (queries) over the encoded image (keys).

    Explained in ``book/03_attention_maps.ipynb``.
    """

    def __init__(self, query_dim: int = 256, hidden_dim: int = 256, num_heads: int = 8, dropout: float = 0.0):
        super().__init__()
        _check_sizes(query_dim, hidden_dim, num_heads, dropout)
        self.num_heads = num_heads
        self.head_dim = hidden_dim // num_heads
        # dot products of head_dim-channel vectors are scaled back to unit variance
        self.scale = self.head_dim ** -0.5
        self.q_linear = nn.Linear(query_dim, hidden_dim)
        self.k_linear = nn.Linear(query_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        for linear in (self.q_linear, self.k_linear):
            nn.init.zeros_(linear.bias)
            nn.init.xavier_uniform_(linear.weight)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """queries (B, N, d) box embeddings; memory (B, d, h, w) encoded image; mask (B, h, w)
        True at padding. Returns (B, N, M, h, w): summed over (M, h, w) each query gives 1."""
        _check_inputs(self.q_linear.in_features, queries, memory, mask)
        q = self.q_linear(queries)                                     # (B, N, d)
        k = F.conv2d(memory, self.k_linear.weight[:, :, None, None],
                     self.k_linear.bias)                               # (B, d, h, w): Linear per cell
        batch, n = q.shape[:2]
        h, w = k.shape[-2:]
        q = q.view(batch, n, self.num_heads, self.head_dim)            # (B, N, M, d/M)
        k = k.view(batch, self.num_heads, self.head_dim, h, w)         # (B, M, d/M, h, w)
        scores = torch.einsum("bqnc,bnchw->bqnhw", q * self.scale, k)  # (B, N, M, h, w)
        if mask is not None:
            scores = scores.masked_fill(mask[:, None, None], float("-inf"))
        weights = F.softmax(scores.flatten(2), dim=-1)                 # (B, N, M*h*w): one softmax per query
        return self.dropout(weights.view(scores.shape))                # (B, N, M, h, w)


def _check_sizes(query_dim, hidden_dim, num_heads, dropout) -> None:
    for name, value in (("query_dim", query_dim), ("hidden_dim", hidden_dim), ("num_heads", num_heads)):
        whole_number(value, name)
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be from 0 up to (not including) 1, got {dropout!r}")
    if hidden_dim % num_heads:
        raise ValueError(f"hidden_dim {hidden_dim} must be divisible by num_heads {num_heads}")


def _check_inputs(width: int, queries, memory, mask) -> None:
    """Shapes that fit: queries (B, N, width), memory (B, width, h, w), mask (B, h, w) bool."""
    if not (isinstance(queries, torch.Tensor) and queries.dim() == 3 and queries.shape[-1] == width):
        raise ValueError(f"queries must be box embeddings (B, N, {width}), got {describe(queries)}")
    batch = queries.shape[0]
    if not (isinstance(memory, torch.Tensor) and memory.dim() == 4 and memory.shape[:2] == (batch, width)):
        raise ValueError(f"memory must be the encoded image ({batch}, {width}, h, w) for these queries, "
                         f"got {describe(memory)}")
    expected = (batch, *memory.shape[-2:])
    if mask is not None and not (isinstance(mask, torch.Tensor) and mask.dtype == torch.bool
                                 and tuple(mask.shape) == expected):
        raise ValueError(f"mask must be a bool padding mask {expected} (True at padding), got {describe(mask)}")
