"""One record of every intermediate the book shows, from one real forward pass.

Explained in ``book/01_backbone.ipynb`` onwards: each chapter reads its shapes and pictures
from a trace, so every number on the page comes from the computation itself.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import torch

from .detr import DETRPanoptic
from .preprocessing import ImageBatch


@dataclass
class DETRTrace:
    """Named intermediates of one forward pass (B images, N queries, M heads, L layers, d width).

    Res5 and everything read from it are written H/32 x W/32, the published models' grid. A DC5
    model (``dilation=True``: ``detr-r50-dc5-panoptic`` and ``detr-tiny-synthetic``) keeps Res5 at
    stride 16, so for it read H/16 x W/16 wherever H/32 x W/32 is written below.

    images:            (B, 3, H, W) the padded batch; ``padding_mask`` (B, H, W) True at padding;
                       ``sizes`` each image's (h, w) before padding.
    res2 .. res5:      backbone features, (B, 256, H/4, W/4) .. (B, 2048, H/32, W/32) for R50.
    feature_masks:     padding mask at each level, e.g. feature_masks["res5"] (B, H/32, W/32).
    pos:               (B, d, H/32, W/32) sine positional encoding of Res5.
    src_proj:          (B, d, H/32, W/32) Res5 after the 1x1 input projection.
    memory:            (B, d, H/32, W/32) the encoder output: the encoded image.
    encoder_attention: (L_enc, B, M', M') self-attention per layer, averaged over heads, M' = H/32*W/32.
    hs:                (L_dec, B, N, d) decoder outputs of every layer; ``box_embeddings`` is hs[-1].
    decoder_attention: (L_dec, B, N, M') cross-attention of each query over the image cells.
    attention_maps:    (B, N, M, H/32, W/32) the box-embedding attention maps (MHAttentionMap).
    mask_head_stages:  stage name -> (B*N, C, h, w): input, lay1, lay2, +res4, lay3, +res3,
                       lay4, +res2, lay5, out_lay.
    pred_logits (B, N, C+1), pred_boxes (B, N, 4), pred_masks (B, N, H/4, W/4): the outputs.

    Explained in ``book/01_backbone.ipynb``.
    """

    images: torch.Tensor
    padding_mask: torch.Tensor
    sizes: list
    res2: torch.Tensor
    res3: torch.Tensor
    res4: torch.Tensor
    res5: torch.Tensor
    feature_masks: dict
    pos: torch.Tensor
    src_proj: torch.Tensor
    memory: torch.Tensor
    encoder_attention: torch.Tensor
    hs: torch.Tensor
    decoder_attention: torch.Tensor
    attention_maps: torch.Tensor
    mask_head_stages: dict
    pred_logits: torch.Tensor
    pred_boxes: torch.Tensor
    pred_masks: torch.Tensor

    @property
    def box_embeddings(self) -> torch.Tensor:
        """(B, N, d): the last decoder layer's outputs, the queries of the attention maps."""
        return self.hs[-1]

    @property
    def outputs(self) -> dict:
        """The model's output dict, for ``merge_panoptic``."""
        return {"pred_logits": self.pred_logits, "pred_boxes": self.pred_boxes,
                "pred_masks": self.pred_masks}

    def shapes(self) -> dict:
        """Field name -> shape of every tensor in the trace (nested dicts flattened with '.')."""
        table = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                table[f.name] = tuple(value.shape)
            elif isinstance(value, dict):
                for key, item in value.items():
                    table[f"{f.name}.{key}"] = tuple(item.shape)
        return table


@torch.inference_mode()
def trace(model: DETRPanoptic, images: Sequence[torch.Tensor] | ImageBatch) -> DETRTrace:
    """Run ``model`` once on ``images`` and keep every intermediate (``book/01_backbone.ipynb``).

    ``images``: a list of normalised 3xHxW tensors (``prepare_image``) or an ImageBatch, in the
    model's dtype and on its device.
    """
    if not isinstance(model, DETRPanoptic):
        raise TypeError(f"trace needs a DETRPanoptic (from build_model(...)), got {type(model).__name__}; "
                        "a box-only DETR has no masks to trace")
    recorder: dict = {}
    model(images, recorder=recorder)
    batch: ImageBatch = recorder["batch"]
    features = recorder["features"]
    return DETRTrace(
        images=batch.tensors, padding_mask=batch.mask, sizes=batch.sizes,
        res2=features["res2"], res3=features["res3"], res4=features["res4"], res5=features["res5"],
        feature_masks=recorder["masks"], pos=recorder["pos"], src_proj=recorder["src_proj"],
        memory=recorder["memory"], encoder_attention=recorder["encoder_attention"],
        hs=recorder["hs"], decoder_attention=recorder["decoder_attention"],
        attention_maps=recorder["attention_maps"], mask_head_stages=recorder["mask_head_stages"],
        pred_logits=recorder["pred_logits"], pred_boxes=recorder["pred_boxes"],
        pred_masks=recorder["pred_masks"],
    )
