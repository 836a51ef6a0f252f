"""The Hungarian matcher: which query is responsible for which ground-truth segment.

Explained in ``book/07_train_it_yourself.ipynb``. DETR predicts a fixed set of N boxes with no
order; the ground truth is a set of K segments (K <= N). Before any loss can be computed, each
segment is paired with exactly one query, the pairing that makes the total cost smallest
(the Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``). The other N - K queries are
told to predict "no object".

The cost of pairing query i with segment j mixes three terms, with the official weights:

    cost[i, j] = 1 * (-p_i(class_j)) + 5 * |box_i - box_j|_1 + 2 * (-GIoU(box_i, box_j))

The class term uses the probability, not its log, so it is on the same scale as the box terms.
Only boxes are matched, never masks: in DETR the mask head is trained after the boxes are
learned, and the same matching is used for it.
"""
from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torchvision.ops import box_convert, generalized_box_iou

# The official weights of the three cost terms (and, not by chance, of the matching losses).
COST_CLASS = 1.0
COST_BBOX = 5.0
COST_GIOU = 2.0


def match_cost(pred_logits: torch.Tensor, pred_boxes: torch.Tensor, target_labels: torch.Tensor,
               target_boxes: torch.Tensor, cost_class: float = COST_CLASS,
               cost_bbox: float = COST_BBOX, cost_giou: float = COST_GIOU) -> torch.Tensor:
    """The (N, K) cost matrix of one image (``book/07_train_it_yourself.ipynb``).

    pred_logits: (N, C+1); pred_boxes: (N, 4) cxcywh in [0, 1];
    target_labels: (K,) int64; target_boxes: (K, 4) cxcywh in [0, 1].
    """
    prob = pred_logits.softmax(-1)                                               # (N, C+1)
    class_cost = -prob[:, target_labels]                                         # (N, K)
    l1_cost = torch.cdist(pred_boxes, target_boxes, p=1)                         # (N, K)
    giou = generalized_box_iou(box_convert(pred_boxes, "cxcywh", "xyxy"),
                               box_convert(target_boxes, "cxcywh", "xyxy"))      # (N, K)
    return cost_class * class_cost + cost_bbox * l1_cost + cost_giou * (-giou)   # (N, K)


class HungarianMatcher(nn.Module):
    """Pairs each ground-truth segment with one query (``book/07_train_it_yourself.ipynb``).

    ``matcher(outputs, targets)`` with ``outputs = {"pred_logits": (B, N, C+1), "pred_boxes":
    (B, N, 4)}`` and targets as returned by ``coco_panoptic.CocoPanoptic`` (``labels`` (K,),
    ``boxes`` (K, 4)) returns, per image, ``(query_idx, target_idx)``: two int64 tensors of
    length K, sorted by query, with ``query_idx[m]`` matched to segment ``target_idx[m]``.
    """

    def __init__(self, cost_class: float = COST_CLASS, cost_bbox: float = COST_BBOX,
                 cost_giou: float = COST_GIOU):
        super().__init__()
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("all matching costs are 0: every assignment would be equally good")
        self.cost_class = cost_class
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou

    @torch.no_grad()
    def forward(self, outputs: dict, targets: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        pred_logits, pred_boxes = outputs["pred_logits"], outputs["pred_boxes"]  # (B, N, C+1), (B, N, 4)
        if len(targets) != pred_logits.shape[0]:
            raise ValueError(f"{pred_logits.shape[0]} images of predictions but {len(targets)} targets")
        num_queries = pred_logits.shape[1]
        indices = []
        num_classes = pred_logits.shape[-1] - 1  # the last output is "no object"
        for b, target in enumerate(targets):
            num_targets = len(target["labels"])
            if num_targets and not 0 <= int(target["labels"].min()) <= int(target["labels"].max()) < num_classes:
                raise ValueError(
                    f"image {b} has class labels {target['labels'].tolist()}, but the model has "
                    f"num_classes = {num_classes} (labels 0..{num_classes - 1}): build it with "
                    "num_classes = the largest category id + 1 (CocoPanoptic.num_classes)")
            if num_targets > num_queries:
                raise ValueError(
                    f"image {b} has {num_targets} segments but the model has only {num_queries} "
                    "queries: raise num_queries above the most segments in one image"
                )
            if num_targets == 0:
                empty = torch.empty(0, dtype=torch.int64)
                indices.append((empty, empty.clone()))
                continue
            cost = match_cost(pred_logits[b].float(), pred_boxes[b].float(),
                              target["labels"], target["boxes"].to(pred_boxes.device).float(),
                              self.cost_class, self.cost_bbox, self.cost_giou)   # (N, K)
            if not torch.isfinite(cost).all():
                raise NonFiniteCostError(
                    f"image {b}: the matching cost has NaN or infinite entries, because the model's "
                    "class or box predictions are not finite (its weights diverged, e.g. a learning "
                    "rate too high, or were loaded with NaN values)")
            query_idx, target_idx = linear_sum_assignment(cost.cpu().numpy())    # (K,), (K,)
            indices.append((torch.as_tensor(query_idx, dtype=torch.int64),
                            torch.as_tensor(target_idx, dtype=torch.int64)))
        return indices


class NonFiniteCostError(ValueError):
    """The Hungarian matcher was given predictions that are NaN or infinite
    (``book/07_train_it_yourself.ipynb``)."""


def matched_queries(indices: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(image index, query index) of every matched query, image after image: two (M,) tensors
    from the matcher's per-image ``(query_idx, target_idx)`` pairs (``book/07_train_it_yourself.ipynb``).
    The losses gather the matched predictions with them, and the model the queries whose masks
    it computes in training."""
    image_idx = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(indices)])   # (M,)
    query_idx = torch.cat([q for q, _ in indices])                                       # (M,)
    return image_idx, query_idx
