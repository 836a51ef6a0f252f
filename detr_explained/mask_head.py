"""Stage 4: the FPN-style mask head, from H/32 attention maps to H/4 mask logits.

Explained in ``book/04_mask_head.ipynb``. The official name is MaskHeadSmallConv.

Every query is processed on its own, as one sample of a batch of B*N:

    input   cat(projected Res5, the query's M attention maps)  (B*N, d+M,  H/32, W/32)
    lay1    3x3 conv, GroupNorm, ReLU                           (B*N, d+M,  H/32, W/32)
    lay2    3x3 conv, GroupNorm, ReLU                           (B*N, d/2,  H/32, W/32)
    + Res4  nearest x2 upsampling + 1x1 adapter(Res4)           (B*N, d/2,  H/16, W/16)
    lay3                                                        (B*N, d/4,  H/16, W/16)
    + Res3                                                      (B*N, d/4,  H/8,  W/8)
    lay4                                                        (B*N, d/8,  H/8,  W/8)
    + Res2                                                      (B*N, d/8,  H/4,  W/4)
    lay5                                                        (B*N, d/16, H/4,  W/4)
    out_lay 3x3 conv to one channel, no activation              (B*N, 1,    H/4,  W/4)

The "Res5" that is concatenated is the *projected* Res5 (``src_proj``, the 1x1 input_proj of
the backbone's last stage, d channels), not the raw 2048-channel Res5 and not the encoder memory.
The skips Res4, Res3, Res2 are the backbone's layer3, layer2, layer1 outputs, brought to the
head's width by 1x1 "adapter" convolutions.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .checks import describe, whole_number


# The backbone levels the head adds back, from coarse to fine.
SKIPS = ("res4", "res3", "res2")


def _conv_gn_relu(x, conv: nn.Conv2d, norm: nn.GroupNorm):
    return F.relu(norm(conv(x)))


def _add_skip(x: torch.Tensor, skip: torch.Tensor, image_index: Optional[torch.Tensor]) -> torch.Tensor:
    """Upsample ``x`` (queries of all images) to the skip's size and add the skip of each
    query's image. x: (K, C, h, w); skip: (B, C, h', w'); returns (K, C, h', w'). The skip is
    the next stage, so h' x w' is 2h x 2w, except at a DC5 model's first skip (Res4), which is
    as large as Res5: h' x w' = h x w, and the resize copies."""
    up = F.interpolate(x, size=skip.shape[-2:], mode="nearest")      # (K, C, h', w')
    if image_index is None:                                           # all N queries of every image
        batch = skip.shape[0]
        up = up.view(batch, -1, *up.shape[1:]) + skip[:, None]        # (B, N, C, h', w') by broadcasting
        return up.flatten(0, 1)                                       # (B*N, C, h', w')
    # queries of any images: each gets its own image's skip
    return up + skip[image_index]                                     # (K, C, h', w')


class MaskHead(nn.Module):
    """FPN-style convolutional mask head with Res4, Res3, Res2 skips.

    Explained in ``book/04_mask_head.ipynb``.
    """

    def __init__(self, hidden_dim: int = 256, nheads: int = 8,
                 fpn_dims: Sequence[int] = (1024, 512, 256), groups: int = 8):
        super().__init__()
        _check_sizes(hidden_dim, nheads, fpn_dims, groups)
        dim = hidden_dim + nheads
        # widths: d+M, then d/2, d/4, d/8, d/16 as the maps get 2x larger at each skip
        widths = [dim, hidden_dim // 2, hidden_dim // 4, hidden_dim // 8, hidden_dim // 16]
        for width in widths:
            if width % groups:
                raise ValueError(
                    f"mask head width {width} is not divisible by {groups} GroupNorm groups; "
                    "choose hidden_dim and nheads so that hidden_dim + nheads and hidden_dim / 16 are"
                )
        self.hidden_dim = hidden_dim
        self.lay1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.gn1 = nn.GroupNorm(groups, dim)
        self.lay2 = nn.Conv2d(dim, widths[1], 3, padding=1)
        self.gn2 = nn.GroupNorm(groups, widths[1])
        self.lay3 = nn.Conv2d(widths[1], widths[2], 3, padding=1)
        self.gn3 = nn.GroupNorm(groups, widths[2])
        self.lay4 = nn.Conv2d(widths[2], widths[3], 3, padding=1)
        self.gn4 = nn.GroupNorm(groups, widths[3])
        self.lay5 = nn.Conv2d(widths[3], widths[4], 3, padding=1)
        self.gn5 = nn.GroupNorm(groups, widths[4])
        self.out_lay = nn.Conv2d(widths[4], 1, 3, padding=1)
        self.adapter1 = nn.Conv2d(fpn_dims[0], widths[1], 1)
        self.adapter2 = nn.Conv2d(fpn_dims[1], widths[2], 1)
        self.adapter3 = nn.Conv2d(fpn_dims[2], widths[3], 1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=1)
                nn.init.zeros_(module.bias)

    def forward(self, src_proj: torch.Tensor, bbox_mask: torch.Tensor, fpns: Sequence[torch.Tensor],
                recorder: Optional[dict] = None) -> torch.Tensor:
        """src_proj (B, d, h, w); bbox_mask (B, N, M, h, w); fpns [Res4, Res3, Res2].
        Returns mask logits (B*N, 1, H/4, W/4), batch-major (image 0's N queries first)."""
        _check_inputs(self, src_proj, bbox_mask, fpns)
        n = bbox_mask.shape[1]
        context = src_proj.repeat_interleave(n, dim=0)                # (B*N, d, h, w): same for each query
        x = torch.cat([context, bbox_mask.flatten(0, 1)], dim=1)      # (B*N, d+M, h, w)
        stages = None if recorder is None else {"input": x}
        x = _conv_gn_relu(x, self.lay1, self.gn1)                     # (B*N, d+M, h, w)
        if stages is not None:
            stages["lay1"] = x
            recorder["mask_head_stages"] = stages
        return self._upsample(x, fpns, None, stages)

    def forward_selected(self, src_proj: torch.Tensor, bbox_mask: torch.Tensor,
                         fpns: Sequence[torch.Tensor], image_index: torch.Tensor) -> torch.Tensor:
        """The same mask logits for only some queries, computed with less work (the fast path of
        ``book/appendix_side_topics.ipynb``).

        bbox_mask (K, M, h, w) holds the attention maps of K chosen queries; image_index (K,)
        says which image each belongs to. Returns (K, 1, H/4, W/4). Used by inference
        (the kept queries) and by training (the matched queries, ``DETRPanoptic.forward``'s
        ``select``); gradients flow through it as through ``forward``.

        Why the answer is unchanged: every query is an independent sample of the head (its
        convolutions and GroupNorm never mix samples), so dropping queries does not change the
        others. And lay1 is linear in its input, so the convolution of cat(src_proj, maps)
        equals conv(src_proj, W[:, :d]) + conv(maps, W[:, d:]) + bias. The first term is the
        same for every query of an image: it is computed once per image instead of once per
        query, which removes about a third of the head's work. Only floating-point summation
        order changes (differences around 1e-6).
        """
        _check_inputs(self, src_proj, bbox_mask, fpns, image_index)
        d = self.hidden_dim
        weight = self.lay1.weight                                     # (d+M, d+M, 3, 3)
        context = F.conv2d(src_proj, weight[:, :d], self.lay1.bias, padding=1)  # (B, d+M, h, w)
        per_query = F.conv2d(bbox_mask, weight[:, d:], None, padding=1)        # (K, d+M, h, w)
        x = F.relu(self.gn1(context[image_index] + per_query))        # (K, d+M, h, w)
        return self._upsample(x, fpns, image_index, None)

    def _upsample(self, x, fpns, image_index, stages: Optional[dict]) -> torch.Tensor:
        """lay2 .. out_lay: the FPN part shared by both forwards."""
        steps = (
            ("+res4", self.adapter1, "lay3", self.lay3, self.gn3),
            ("+res3", self.adapter2, "lay4", self.lay4, self.gn4),
            ("+res2", self.adapter3, "lay5", self.lay5, self.gn5),
        )
        x = _conv_gn_relu(x, self.lay2, self.gn2)                     # (K, d/2, H/32, W/32)
        if stages is not None:
            stages["lay2"] = x
        for (skip_name, adapter, conv_name, conv, norm), fpn in zip(steps, fpns):
            x = _add_skip(x, adapter(fpn), image_index)               # (K, C, 2h, 2w): x2 larger
            if stages is not None:
                stages[skip_name] = x
            x = _conv_gn_relu(x, conv, norm)                          # (K, C/2, 2h, 2w)
            if stages is not None:
                stages[conv_name] = x
        x = self.out_lay(x)                                           # (K, 1, H/4, W/4)
        if stages is not None:
            stages["out_lay"] = x
        return x


def _check_sizes(hidden_dim, nheads, fpn_dims, groups) -> None:
    for name, value in (("hidden_dim", hidden_dim), ("nheads", nheads), ("groups", groups)):
        whole_number(value, name)
    if len(fpn_dims) != len(SKIPS):
        raise ValueError(f"fpn_dims must give the channels of {', '.join(SKIPS)} ({len(SKIPS)} numbers), "
                         f"got {tuple(fpn_dims)}")


def _check_inputs(head: MaskHead, src_proj, bbox_mask, fpns, image_index=None) -> None:
    """src_proj (B, d, h, w); the maps (B, N, M, h, w), or (K, M, h, w) with ``image_index`` (K,)
    naming each query's image; d + M = lay1's input; three skips."""
    if not (isinstance(src_proj, torch.Tensor) and src_proj.dim() == 4 and src_proj.shape[1] == head.hidden_dim):
        raise ValueError(f"src_proj must be the projected Res5 (B, {head.hidden_dim}, h, w), "
                         f"got {describe(src_proj)}")
    heads = head.lay1.in_channels - head.hidden_dim
    maps = (heads, *src_proj.shape[-2:])                              # (M, h, w) per query
    mask_dims = 5 if image_index is None else 4
    if not (isinstance(bbox_mask, torch.Tensor) and bbox_mask.dim() == mask_dims
            and tuple(bbox_mask.shape[-3:]) == maps):
        leading = "B, N" if mask_dims == 5 else "K"
        raise ValueError(f"bbox_mask must be attention maps ({leading}, {', '.join(map(str, maps))}), "
                         f"got {describe(bbox_mask)}")
    if len(fpns) != len(SKIPS):
        raise ValueError(f"fpns must be the {len(SKIPS)} backbone features [{', '.join(SKIPS)}], got {len(fpns)}")
    images = src_proj.shape[0]
    if image_index is None:
        if bbox_mask.shape[0] != images:
            raise ValueError(f"bbox_mask has {bbox_mask.shape[0]} images but src_proj {images}")
        return
    if not (isinstance(image_index, torch.Tensor) and image_index.dim() == 1
            and len(image_index) == len(bbox_mask) and not image_index.is_floating_point()):
        raise ValueError(f"image_index must be a 1-D integer tensor with one entry per query ({len(bbox_mask)})")
    if len(image_index) and not 0 <= int(image_index.min()) <= int(image_index.max()) < images:
        raise ValueError(f"image_index must name images 0 to {images - 1} of src_proj, got "
                         f"{int(image_index.min())} to {int(image_index.max())}")
