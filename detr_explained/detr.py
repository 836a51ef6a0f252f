"""DETR for panoptic segmentation: the stages put together, in data-flow order.

Explained across the book; the forward below is the table of contents:

    image batch ----------------------------------------------- book/01_backbone.ipynb
      backbone -> Res2, Res3, Res4, Res5 (+ padding masks), positional encoding of Res5
      input_proj (1x1 conv) -> src_proj (B, d, H/32, W/32)
    transformer ----------------------------------------------- book/02_transformer.ipynb
      encoder -> memory, the encoded image (B, d, H/32, W/32)
      decoder -> hs (L, B, N, d); hs[-1] are the box embeddings
      class_embed, bbox_embed -> pred_logits (B, N, C+1), pred_boxes (B, N, 4)
    box-embedding attention maps ------------------------------ book/03_attention_maps.ipynb
      bbox_attention(query = hs[-1], key = memory) -> (B, N, M, H/32, W/32)
    FPN mask head --------------------------------------------- book/04_mask_head.ipynb
      mask_head(src_proj, maps, [Res4, Res3, Res2]) -> pred_masks (B, N, H/4, W/4)
    argmax merge ---------------------------------------------- book/05_argmax_merge.ipynb
      detr_explained.merge (not part of the module)

Module and parameter names follow the official code, so the official checkpoints load with
``strict=True``: ``detr.backbone.0.body.*``, ``detr.transformer.*``, ``bbox_attention.*``,
``mask_head.*`` and so on.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import nn

from .attention_maps import BoxAttentionMaps
from .backbone import BackboneWithPosition
from .config import DETRConfig
from .mask_head import MaskHead
from .matcher import matched_queries
from .preprocessing import ImageBatch
from .transformer import Transformer


class MLP(nn.Module):
    """Linear layers with ReLU between them (the box head: 3 layers, 256 -> 256 -> 256 -> 4).

    Explained in ``book/02_transformer.ipynb``.
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


# The box head's depth in the official model.
BBOX_HEAD_LAYERS = 3


class DETR(nn.Module):
    """The detection model: backbone, transformer, class and box heads.

    Explained in ``book/02_transformer.ipynb``.
    """

    def __init__(self, config: DETRConfig):
        super().__init__()
        self.config = config
        self.num_queries = config.num_queries
        self.backbone = BackboneWithPosition(config)
        self.input_proj = nn.Conv2d(self.backbone.resnet.channels["res5"], config.hidden_dim, 1)
        self.transformer = Transformer(config)
        self.query_embed = nn.Embedding(config.num_queries, config.hidden_dim)
        self.class_embed = nn.Linear(config.hidden_dim, config.num_classes + 1)  # + "no object"
        self.bbox_embed = MLP(config.hidden_dim, config.hidden_dim, 4, BBOX_HEAD_LAYERS)
        self.aux_loss = False  # set True in training to get every decoder layer's predictions

    def encode_decode(self, batch: ImageBatch, recorder: Optional[dict] = None) -> dict:
        """Backbone, projection and transformer; the intermediates the panoptic head reuses."""
        features, masks, pos = self.backbone(batch)
        # the sine code is computed in float32; a float16 or bfloat16 model needs it in its own
        # dtype, as the official Joiner casts it (for float32 this is the same tensor)
        pos = pos.to(features["res5"].dtype)                           # (B, d, H/32, W/32)
        src_proj = self.input_proj(features["res5"])                   # (B, d, H/32, W/32)
        out = self.transformer(src_proj, masks["res5"], self.query_embed.weight, pos)
        logits = self.class_embed(out.hs)                              # (L, B, N, C+1)
        boxes = self.bbox_embed(out.hs).sigmoid()                      # (L, B, N, 4) cx, cy, w, h in [0, 1]
        state = dict(features=features, masks=masks, pos=pos, src_proj=src_proj, hs=out.hs,
                     memory=out.memory, logits=logits, boxes=boxes)
        if recorder is not None:
            recorder.update(state, encoder_attention=out.encoder_attention,
                            decoder_attention=out.decoder_attention)
        return state

    def outputs(self, state: dict) -> dict:
        out = {"pred_logits": state["logits"][-1], "pred_boxes": state["boxes"][-1]}
        if self.aux_loss:
            out["aux_outputs"] = [{"pred_logits": l, "pred_boxes": b}
                                  for l, b in zip(state["logits"][:-1], state["boxes"][:-1])]
        return out

    def batch(self, images) -> ImageBatch:
        """Check and pad a list of 3xHxW tensors (or take a ready ImageBatch).

        The images must have the model's dtype (a float16 model takes ``image.half()``) and be on
        its device; the error says which conversion to make.
        """
        weight = self.input_proj.weight
        if isinstance(images, ImageBatch):
            tensors = images.tensors
            if tensors.dtype != weight.dtype:
                raise TypeError(
                    f"the ImageBatch has dtype {tensors.dtype} but the model's weights are {weight.dtype}: "
                    f"build it from images converted with image.to({weight.dtype}), or convert the model "
                    f"with model.to({tensors.dtype})")
            on = [tensors]
        elif isinstance(images, (list, tuple)):
            on = [image for image in images if isinstance(image, torch.Tensor)]
        elif isinstance(images, torch.Tensor):
            on = [images]
        else:
            raise TypeError(f"images must be a list of 3xHxW tensors (or an ImageBatch), got "
                            f"{type(images).__name__}; make tensors with detr_explained.prepare_image()")
        for tensor in on:
            if tensor.device != weight.device:
                raise ValueError(f"an image is on {tensor.device} but the model is on {weight.device}: move "
                                 f"the images with image.to({str(weight.device)!r}) (or the model with model.to(...))")
        if isinstance(images, ImageBatch):
            return images
        return ImageBatch.from_images(images, dtype=weight.dtype)

    def forward(self, images: Sequence[torch.Tensor]) -> dict:
        return self.outputs(self.encode_decode(self.batch(images)))


class DETRPanoptic(nn.Module):
    """DETR with the panoptic head: attention maps and the FPN mask head (official: DETRsegm).

    Built in ``book/01_backbone.ipynb``; its stages are explained chapter by chapter.
    """

    def __init__(self, config: DETRConfig):
        super().__init__()
        self.config = config
        self.detr = DETR(config)
        channels = self.detr.backbone.resnet.channels
        self.bbox_attention = BoxAttentionMaps(config.hidden_dim, config.hidden_dim, config.nheads, dropout=0.0)
        self.mask_head = MaskHead(config.hidden_dim, config.nheads,
                                  (channels["res4"], channels["res3"], channels["res2"]), config.mask_groups)

    def forward(self, images: Sequence[torch.Tensor], recorder: Optional[dict] = None,
                select: Optional[Callable[[dict], list]] = None, masks: bool = True) -> dict:
        """images: a list of 3xHxW normalised float tensors of any sizes (or an ImageBatch).

        Returns pred_logits (B, N, C+1), pred_boxes (B, N, 4) and pred_masks (B, N, H/4, W/4).
        ``recorder``, a dict, receives every intermediate (see detr_explained.trace).

        ``select`` (training, ``book/07_train_it_yourself.ipynb``): a function that receives the
        detection outputs (pred_logits, pred_boxes, aux_outputs) and returns, per image, a pair
        ``(query_idx, target_idx)`` as the Hungarian matcher does. Masks are then computed only
        for those queries, the only ones the mask losses look at: the output has
        ``selected_masks`` (K, H/4, W/4), in the pairs' order (image after image), and
        ``selected`` (the pairs) instead of pred_masks. Each query is its own sample of the mask
        head, so the selected masks equal the corresponding ones of the full forward; a training
        step of detr-tiny-synthetic takes about 1/6 less time (benchmarks/train_step_speed.py).
        ``masks=False``: the box detector's outputs only (pred_logits, pred_boxes, aux_outputs),
        no attention map or mask: the first stage of the official two-stage recipe
        (``book/09_your_own_dataset.ipynb``).
        """
        if recorder is not None and not isinstance(recorder, dict):
            raise TypeError(f"recorder must be a dict (it receives the intermediates) or None, got "
                            f"{type(recorder).__name__}")
        if select is not None and not callable(select):
            raise TypeError(f"select must be a function of the detection outputs (e.g. the matcher's), "
                            f"got {type(select).__name__}")
        batch = self.detr.batch(images)
        if recorder is not None:
            recorder["batch"] = batch
        state = self.detr.encode_decode(batch, recorder)
        if not masks:
            return self.detr.outputs(state)
        res2, res3, res4 = (state["features"][level] for level in ("res2", "res3", "res4"))
        box_embeddings = state["hs"][-1]                                # (B, N, d)
        bbox_mask = self.bbox_attention(box_embeddings, state["memory"],
                                        state["masks"]["res5"])        # (B, N, M, H/32, W/32)
        out = self.detr.outputs(state)
        if select is not None:
            pairs = select(out)
            image_index, query_index = matched_queries(pairs)                 # (K,), (K,)
            if len(query_index) > 0:
                image_index, query_index = image_index.to(bbox_mask.device), query_index.to(bbox_mask.device)
                mask_logits = self.mask_head.forward_selected(
                    state["src_proj"], bbox_mask[image_index, query_index], [res4, res3, res2],
                    image_index)                                        # (K, 1, H/4, W/4)
                out["selected_masks"] = mask_logits[:, 0]               # (K, H/4, W/4)
                out["selected"] = pairs
                return out
            # nothing to select (no segment in the batch): fall through to every query's mask
        mask_logits = self.mask_head(state["src_proj"], bbox_mask, [res4, res3, res2],
                                     recorder)                         # (B*N, 1, H/4, W/4)
        out["pred_masks"] = mask_logits.view(
            len(batch.sizes), self.detr.num_queries, *mask_logits.shape[-2:])  # (B, N, H/4, W/4)
        if recorder is not None:
            recorder.update(attention_maps=bbox_mask, **out)
        return out
