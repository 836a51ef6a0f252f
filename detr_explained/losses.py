"""DETR's training losses: match the sets, then score classes, boxes and masks.

Explained in ``book/07_train_it_yourself.ipynb``. :class:`SetCriterion` does, for a batch:

1. Match: the Hungarian matcher (``detr_explained.matcher``) pairs each of the K ground-truth
   segments of an image with one of the N queries.
2. Classes: cross-entropy over C + 1 classes for all N queries. Matched queries must predict
   their segment's class; the other N - K must predict "no object" (the last index, C). There are
   many more of those, so their weight is only ``EOS_COEF`` = 0.1.
3. Boxes, matched queries only: L1 distance of the (cx, cy, w, h) boxes (weight 5) and
   1 - generalised IoU (weight 2), which cares about overlap whatever the box size.
4. Masks, matched queries only: the (B, N, H/4, W/4) mask logits are upsampled to the padded
   batch size, then sigmoid focal loss (weight 1) and DICE loss (weight 1) against the true masks.
5. Auxiliary losses: the same class and box losses on every intermediate decoder layer's
   predictions (``outputs["aux_outputs"]``), each matched on its own; no masks there.

Shapes: B images, N queries, C classes, M matched queries in the batch (= the ground-truth
segments of all its images), H x W the padded batch size.

Every sum is divided by the number of ground-truth boxes in the batch, so a batch with many
objects does not weigh more than one with few. The result is a dict of named losses and their
weighted total, ``"loss"``, the number to call ``backward()`` on.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert, generalized_box_iou_loss, sigmoid_focal_loss

from .config import OFFICIAL_EOS_COEF
from .matcher import HungarianMatcher, matched_queries

# "No object" is far more common than any class (N = 100 queries, a few objects), so its
# cross-entropy term is weighted by 0.1 to keep the classifier from answering "nothing" always.
# (A model's config says which weight it is trained with: DETRConfig.eos_coef.)
EOS_COEF = OFFICIAL_EOS_COEF

# Focal loss (Lin et al. 2017): alpha balances positives against negatives, gamma shrinks the
# loss of pixels that are already right, so the hard ones dominate.
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0

# Added to the DICE numerator and denominator: an empty prediction of an empty mask scores 0 loss,
# and nothing is divided by zero.
DICE_SMOOTH = 1.0

# The official weight of each loss in the total.
LOSS_WEIGHTS = {
    "loss_ce": 1.0,
    "loss_bbox": 5.0,
    "loss_giou": 2.0,
    "loss_mask": 1.0,
    "loss_dice": 1.0,
}


def focal_loss(mask_logits: torch.Tensor, target_masks: torch.Tensor, num_boxes: float,
               alpha: float = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Sigmoid focal loss of M flattened masks, averaged over pixels, summed over masks, divided
    by ``num_boxes`` (``book/07_train_it_yourself.ipynb``).

    mask_logits, target_masks: (M, P) with P pixels per mask; targets 0 or 1.
    """
    per_pixel = sigmoid_focal_loss(mask_logits, target_masks.float(), alpha=alpha, gamma=gamma,
                                   reduction="none")                              # (M, P)
    return per_pixel.mean(1).sum() / num_boxes


def dice_loss(mask_logits: torch.Tensor, target_masks: torch.Tensor, num_boxes: float,
              smooth: float = DICE_SMOOTH) -> torch.Tensor:
    """1 - DICE coefficient of each mask, summed over masks, divided by ``num_boxes``.

    DICE = 2 |P ∩ T| / (|P| + |T|) with the soft prediction P = sigmoid(logits): a measure of
    overlap that, unlike a per-pixel loss, does not let a small object drown in background.
    mask_logits, target_masks: (M, P).

    Explained in ``book/07_train_it_yourself.ipynb``.
    """
    prob = mask_logits.sigmoid()                                                  # (M, P)
    target = target_masks.float()                                                 # (M, P)
    numerator = 2 * (prob * target).sum(1)                                       # (M,)
    denominator = prob.sum(1) + target.sum(1)                                     # (M,)
    return (1 - (numerator + smooth) / (denominator + smooth)).sum() / num_boxes


def float32_outputs(outputs):
    """The model's outputs with every floating tensor in float32 (dicts and lists walked), so that
    matching and losses are computed in full precision after a forward under
    ``torch.autocast`` (``--precision bfloat16``, ``book/07_train_it_yourself.ipynb``)."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float() if outputs.is_floating_point() and outputs.dtype != torch.float32 else outputs
    if isinstance(outputs, dict):
        return {name: float32_outputs(value) for name, value in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(float32_outputs(value) for value in outputs)
    return outputs


class SetCriterion(nn.Module):
    """All of DETR's panoptic training losses (``book/07_train_it_yourself.ipynb``).

    num_classes: C; the classifier has C + 1 outputs, the last meaning "no object".
    matcher: a :class:`~detr_explained.matcher.HungarianMatcher` (the official costs by default).
    weights: the weight of each named loss in the total (``LOSS_WEIGHTS`` by default).
    eos_coef: the cross-entropy weight of the "no object" class.

    ``criterion(outputs, targets)`` with ``outputs["pred_logits"]`` (B, N, C+1),
    ``outputs["pred_boxes"]`` (B, N, 4), optional ``outputs["pred_masks"]`` (B, N, H/4, W/4) and
    ``outputs["aux_outputs"]`` (a list of dicts with pred_logits and pred_boxes), or instead of
    pred_masks the ``selected`` pairs and ``selected_masks`` (K, H/4, W/4) of a model called with
    ``select=criterion.match_for(targets)``, and targets as
    returned by ``coco_panoptic.CocoPanoptic``, returns ``{"loss_ce", "loss_bbox", "loss_giou",
    ["loss_mask", "loss_dice"], "loss_ce_0", "loss_bbox_0", ..., "loss"}``: the unweighted
    losses (``_i`` for auxiliary decoder layer i) and ``"loss"``, their weighted sum.
    After a call, ``criterion.last_indices`` holds the final layer's matching.
    """

    def __init__(self, num_classes: int, matcher: Optional[HungarianMatcher] = None,
                 weights: Optional[dict[str, float]] = None, eos_coef: float = EOS_COEF):
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher if matcher is not None else HungarianMatcher()
        self.weights = dict(LOSS_WEIGHTS if weights is None else weights)
        class_weight = torch.ones(num_classes + 1)                                # (C+1,)
        class_weight[-1] = eos_coef
        self.register_buffer("class_weight", class_weight)
        self.last_indices: list[tuple[torch.Tensor, torch.Tensor]] = []

    def loss_labels(self, outputs: dict, targets: list[dict], indices) -> dict[str, torch.Tensor]:
        """Cross-entropy over C + 1 classes for every query; unmatched ones are "no object"."""
        logits = outputs["pred_logits"]                                           # (B, N, C+1)
        if logits.shape[-1] != self.num_classes + 1:
            raise ValueError(
                f"pred_logits has {logits.shape[-1]} classes, expected num_classes + 1 = "
                f"{self.num_classes + 1} (the last one is 'no object')"
            )
        target_classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64,
                                    device=logits.device)                         # (B, N)
        batch_idx, query_idx = matched_queries(indices)                     # (M,), (M,)
        matched_labels = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)])  # (M,)
        target_classes[batch_idx, query_idx] = matched_labels.to(logits.device)
        loss_ce = F.cross_entropy(logits.transpose(1, 2), target_classes,        # (B, C+1, N)
                                  weight=self.class_weight.to(logits.dtype))
        return {"loss_ce": loss_ce}

    def loss_boxes(self, outputs: dict, targets: list[dict], indices,
                   num_boxes: float) -> dict[str, torch.Tensor]:
        """L1 and 1 - GIoU between each matched query's box and its segment's box."""
        batch_idx, query_idx = matched_queries(indices)                     # (M,), (M,)
        pred_boxes = outputs["pred_boxes"][batch_idx, query_idx]                  # (M, 4) cxcywh
        target_boxes = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)])  # (M, 4)
        target_boxes = target_boxes.to(pred_boxes)                                # (M, 4) cxcywh
        loss_bbox = F.l1_loss(pred_boxes, target_boxes, reduction="sum") / num_boxes
        loss_giou = generalized_box_iou_loss(box_convert(pred_boxes, "cxcywh", "xyxy"),
                                             box_convert(target_boxes, "cxcywh", "xyxy"),
                                             reduction="sum") / num_boxes
        return {"loss_bbox": loss_bbox, "loss_giou": loss_giou}

    def loss_masks(self, outputs: dict, targets: list[dict], indices,
                   num_boxes: float) -> dict[str, torch.Tensor]:
        """Focal and DICE losses of each matched query's mask, at the padded batch size."""
        if "selected_masks" in outputs:   # the model computed the matched queries' masks only
            pred_masks = outputs["selected_masks"]                                # (M, H/4, W/4)
        else:
            batch_idx, query_idx = matched_queries(indices)                       # (M,), (M,)
            pred_masks = outputs["pred_masks"][batch_idx, query_idx]             # (M, H/4, W/4)
        height = max(t["masks"].shape[-2] for t in targets)
        width = max(t["masks"].shape[-1] for t in targets)
        # Each image's masks, zero-padded at the bottom and right like the images of the batch.
        target_masks = torch.cat([
            F.pad(t["masks"][j].float(), (0, width - t["masks"].shape[-1], 0, height - t["masks"].shape[-2]))
            for t, (_, j) in zip(targets, indices)
        ]).to(pred_masks.device)                                                  # (M, H, W)
        pred_masks = F.interpolate(pred_masks[:, None], size=(height, width), mode="bilinear",
                                   align_corners=False)[:, 0]                     # (M, H, W)
        pred_flat = pred_masks.flatten(1)                                         # (M, H*W)
        target_flat = target_masks.flatten(1)                                     # (M, H*W)
        return {"loss_mask": focal_loss(pred_flat, target_flat, num_boxes),
                "loss_dice": dice_loss(pred_flat, target_flat, num_boxes)}

    def match_for(self, targets: list[dict]):
        """The function to pass as ``DETRPanoptic.forward``'s ``select``: it matches the model's
        final predictions to ``targets``, so that the model computes masks for the matched queries
        only (the masks of the others get no loss). ``model(images, select=criterion.match_for(targets))``
        then ``criterion(outputs, targets)`` gives the same losses as the full forward."""
        return lambda outputs: self.matcher(float32_outputs(outputs), targets)

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        # The normaliser: ground-truth boxes in the batch (at least 1, for an all-empty batch).
        num_boxes = float(max(sum(len(t["labels"]) for t in targets), 1))

        # A model called with select=criterion.match_for(targets) has matched already, and
        # computed masks for those pairs only ("selected", "selected_masks").
        indices = outputs["selected"] if "selected" in outputs else self.matcher(outputs, targets)
        self.last_indices = indices
        losses = {**self.loss_labels(outputs, targets, indices),
                  **self.loss_boxes(outputs, targets, indices, num_boxes)}
        if "pred_masks" in outputs or "selected_masks" in outputs:
            losses.update(self.loss_masks(outputs, targets, indices, num_boxes))

        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            aux_indices = self.matcher(aux, targets)
            aux_losses = {**self.loss_labels(aux, targets, aux_indices),
                          **self.loss_boxes(aux, targets, aux_indices, num_boxes)}
            losses.update({f"{name}_{i}": value for name, value in aux_losses.items()})

        losses["loss"] = sum(self.weights[_base_name(name)] * value for name, value in losses.items())
        return losses


def _base_name(name: str) -> str:
    """``"loss_giou_3"`` -> ``"loss_giou"``: auxiliary losses share their layer-free weight."""
    head, _, tail = name.rpartition("_")
    return head if tail.isdigit() else name
