"""Stage 2: the transformer, which makes the encoded image and the box embeddings.

Explained in ``book/02_transformer.ipynb``.

* The encoder reads the projected Res5 as M' = H/32 * W/32 tokens of width d (M' for tokens:
  M is the number of heads) and lets every cell
  attend to every other. Its output, reshaped back to (B, d, H/32, W/32), is the "encoded image"
  (``memory``) that the box embeddings later attend to.
* The decoder starts from N zero vectors. Each layer lets them attend to one another and then
  to the memory; N learned object queries are added to them as their positional code. The last
  layer's N outputs of width d are the box embeddings; class and box heads read all layers.

H/32 x W/32 is Res5's grid in the published models; a DC5 model (``dilation=True``, as
``detr-tiny-synthetic``) has Res5 at stride 16, an H/16 x W/16 grid, and the same code runs on it.

Post-norm layers (LayerNorm after each residual sum), ReLU feed-forward blocks; the positional
encoding is added to queries and keys only, never to values. Attention uses
torch.nn.MultiheadAttention, whose parameter names are those of the official checkpoints.

Inside, tokens are laid out sequence-first, (M', B, d), as in the official code, and attention
weights are always computed: the same kernels in the same order, so the results are the
official ones bit for bit (checked by the tests), not merely close.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .config import DETRConfig


class EncoderLayer(nn.Module):
    """Self-attention over all image tokens, then a feed-forward block (each with add & norm).

    Explained in ``book/02_transformer.ipynb``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src, pos, padding_mask):
        q = k = src + pos                                              # (M', B, d)
        attended, weights = self.self_attn(q, k, value=src, key_padding_mask=padding_mask)
        src = self.norm1(src + self.dropout1(attended))                # (M', B, d); weights (B, M', M')
        hidden = self.dropout(torch.relu(self.linear1(src)))           # (M', B, dim_feedforward)
        src = self.norm2(src + self.dropout2(self.linear2(hidden)))    # (M', B, d)
        return src, weights


class DecoderLayer(nn.Module):
    """Self-attention among the N queries, cross-attention to the memory, feed-forward.

    Explained in ``book/02_transformer.ipynb``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt, memory, pos, query_pos, padding_mask):
        q = k = tgt + query_pos                                        # (N, B, d)
        attended, _ = self.self_attn(q, k, value=tgt)
        tgt = self.norm1(tgt + self.dropout1(attended))                # (N, B, d)
        attended, cross_weights = self.multihead_attn(
            query=tgt + query_pos, key=memory + pos, value=memory, key_padding_mask=padding_mask,
        )                                                              # (N, B, d), (B, N, M')
        tgt = self.norm2(tgt + self.dropout2(attended))
        hidden = self.dropout(torch.relu(self.linear1(tgt)))           # (N, B, dim_feedforward)
        tgt = self.norm3(tgt + self.dropout3(self.linear2(hidden)))    # (N, B, d)
        return tgt, cross_weights


class Encoder(nn.Module):
    """The stack of encoder layers (``book/02_transformer.ipynb``); Transformer.forward runs it."""

    def __init__(self, layer: EncoderLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))


class Decoder(nn.Module):
    """The stack of decoder layers and the LayerNorm applied to each layer's output
    (``book/02_transformer.ipynb``); Transformer.forward runs it."""

    def __init__(self, layer: DecoderLayer, num_layers: int, d_model: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)  # applied to every layer's output before the heads


@dataclass
class TransformerOutput:
    """hs: (L, B, N, d) every decoder layer's output after the final LayerNorm; hs[-1] are the
    box embeddings. memory: (B, d, H/32, W/32), the encoded image. Attention weights averaged
    over heads: encoder (L_enc, B, M', M'), decoder cross-attention (L_dec, B, N, M').

    Explained in ``book/02_transformer.ipynb``.
    """

    hs: torch.Tensor
    memory: torch.Tensor
    encoder_attention: Optional[torch.Tensor] = None
    decoder_attention: Optional[torch.Tensor] = None


class Transformer(nn.Module):
    """The encoder-decoder of DETR (``book/02_transformer.ipynb``)."""

    def __init__(self, config: DETRConfig):
        super().__init__()
        d, heads, ffn, p = config.hidden_dim, config.nheads, config.dim_feedforward, config.dropout
        self.encoder = Encoder(EncoderLayer(d, heads, ffn, p), config.enc_layers)
        self.decoder = Decoder(DecoderLayer(d, heads, ffn, p), config.dec_layers, d)
        self.d_model = d
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    def forward(self, src, mask, query_embed, pos) -> TransformerOutput:
        """src: (B, d, h, w) projected Res5; mask: (B, h, w) padding; query_embed: (N, d);
        pos: (B, d, h, w)."""
        batch, d, h, w = src.shape
        src = src.flatten(2).permute(2, 0, 1)          # (M', B, d) with M' = h * w tokens
        pos = pos.flatten(2).permute(2, 0, 1)          # (M', B, d)
        padding_mask = mask.flatten(1)                 # (B, M')
        query_pos = query_embed.unsqueeze(1).repeat(1, batch, 1)  # (N, B, d)

        memory, encoder_attention = src, []
        for layer in self.encoder.layers:
            memory, weights = layer(memory, pos, padding_mask)      # (M', B, d)
            encoder_attention.append(weights)

        tgt = torch.zeros_like(query_pos)              # (N, B, d): the decoder starts from zeros
        hs, decoder_attention = [], []
        for layer in self.decoder.layers:
            tgt, weights = layer(tgt, memory, pos, query_pos, padding_mask)  # (N, B, d)
            hs.append(self.decoder.norm(tgt))
            decoder_attention.append(weights)

        return TransformerOutput(
            hs=torch.stack(hs).transpose(1, 2),                    # (L, B, N, d)
            memory=memory.permute(1, 2, 0).view(batch, d, h, w),   # (B, d, H/32, W/32)
            encoder_attention=torch.stack(encoder_attention),      # (L_enc, B, M', M')
            decoder_attention=torch.stack(decoder_attention),      # (L_dec, B, N, M')
        )
