"""The sine positional encoding: where each Res5 cell sits, as 256 numbers.

Explained in ``book/01_backbone.ipynb``. Attention by itself ignores order, so DETR adds to the
queries and keys of every attention layer a code of each cell's position. Half of the d channels
encode the row, half the column. The coordinate is counted only over real pixels (padding is
skipped), normalised to (0, 2*pi], and fed to sines and cosines of geometrically spaced
frequencies: channel pairs (2i, 2i+1) hold sin and cos of ``coord / temperature ** (2i / F)``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

# Normalised coordinates span one full turn.
POSITION_SCALE = 2 * math.pi
# Guards the division for all-padding columns, whose coordinate count is zero.
NORMALIZE_EPS = 1e-6


class SinePositionEncoding(nn.Module):
    """Position code for a padding mask: (B, h, w) -> (B, 2F, h, w), rows then columns.

    Explained in ``book/01_backbone.ipynb``.
    """

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000.0):
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        not_mask = ~mask                                             # (B, h, w)
        y = not_mask.cumsum(1, dtype=torch.float32)                  # (B, h, w) row index, from 1
        x = not_mask.cumsum(2, dtype=torch.float32)                  # (B, h, w) column index, from 1
        y = y / (y[:, -1:, :] + NORMALIZE_EPS) * POSITION_SCALE      # (B, h, w) in (0, 2*pi]
        x = x / (x[:, :, -1:] + NORMALIZE_EPS) * POSITION_SCALE

        i = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        frequencies = self.temperature ** (2 * (i // 2) / self.num_pos_feats)  # (F,)
        pos_y = y[..., None] / frequencies                           # (B, h, w, F)
        pos_x = x[..., None] / frequencies                           # (B, h, w, F)
        # even channels take the sine, odd channels the cosine, interleaved
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)  # (B, h, w, F)
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)  # (B, h, w, F)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)  # (B, 2F, h, w)
