"""Measuring attention maps against a ground truth: where a query's weight lands.

The attention maps (``attention_maps.BoxAttentionMaps``) are weights over the cells of the Res5
grid, one softmax per query over heads x cells. This module measures them against the
segments of a ground truth, on a traced image (``explore.Traced``) that has one, e.g. the
book's trained model on its held-out scene (``examples.book_scene()``):

* :func:`cell_cover`: the fraction of each cell that each segment covers;
* :func:`weight_on_segments`: how much of a query's weight lands on each segment, spreading each
  cell's weight evenly over its pixels;
* :func:`segment_weights`: for every kept query, the segment its pixels overlap best and the
  weight its map puts there, against what uniform attention would put there;
* :func:`map_twins`: for the kept thing queries that found no shape of their own, the found query
  whose map is nearest, and how much their masks overlap;

Explained in ``book/03_attention_maps.ipynb``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import figures
from .merge import select_queries
from .pq import mask_iou

# PQ's match: a prediction matches a ground-truth segment of its class with IoU above this.
MATCH_IOU = 0.5


def cell_cover(masks: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """The fraction of each cell of an (h, w) ``grid`` that each mask covers
    (``book/03_attention_maps.ipynb``).

    ``masks`` (S, H, W) boolean, one per segment; each cell stands for its block of about
    H/h x W/w pixels (the last row and column of cells may be cut short where H or W is not a
    multiple of the stride; then the fraction is of the pixels the cell has). Returns (S, h, w)
    in [0, 1]; for segments that tile the image, every cell's fractions sum to 1.
    """
    masks = torch.as_tensor(masks)
    if masks.dim() != 3:
        raise ValueError(f"masks must be a stack (S, H, W), got shape {tuple(masks.shape)}")
    h, w = (int(s) for s in grid)
    height, width = masks.shape[-2:]
    stride_y, stride_x = -(-height // h), -(-width // w)             # cells of ceil(H/h) pixels
    if -(-height // stride_y) != h or -(-width // stride_x) != w:
        raise ValueError(f"a {h} x {w} grid does not tile a {height} x {width} image with whole cells")
    cover = F.avg_pool2d(masks.float()[:, None], (stride_y, stride_x), ceil_mode=True)  # (S, 1, h, w)
    return cover[:, 0]                                                # (S, h, w)


def weight_on_segments(maps: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
    """How much of each map's weight lands on each segment (``book/03_attention_maps.ipynb``).

    ``maps`` (..., h, w), e.g. (K, h, w) heads summed or (K, M, h, w) per head; ``cover``
    (S, h, w) from :func:`cell_cover`. Each cell's weight is spread evenly over its pixels, so a
    segment gets the cell's weight times the fraction of the cell it covers. Returns (..., S).
    """
    maps, cover = torch.as_tensor(maps), torch.as_tensor(cover)
    if maps.shape[-2:] != cover.shape[-2:]:
        raise ValueError(f"the maps are on a {tuple(maps.shape[-2:])} grid but the cover on "
                         f"{tuple(cover.shape[-2:])}: make the cover with cell_cover(masks, maps.shape[-2:])")
    return torch.einsum("...hw,shw->...s", maps.float(), cover.float())


def map_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Half the summed absolute difference of two maps over their cells
    (``book/03_attention_maps.ipynb``): for two maps that each sum to 1, 0 when they are equal
    and 1 when they have no cell in common. ``a`` (..., h, w) and ``b`` broadcast; returns (...)."""
    return 0.5 * (torch.as_tensor(a) - torch.as_tensor(b)).abs().sum(dim=(-2, -1))


def kept_regions(traced) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The kept queries of a traced image and their pixels (``book/03_attention_maps.ipynb``).

    A query is kept as in chapter 5 (``merge.select_queries``: best class a real one, with
    probability above the model's keep threshold, ``traced.keep_threshold``); each pixel goes to the kept query with the highest mask logit
    (the masks resized to the image, bilinear). Returns (kept (K,), regions (K, H, W) boolean,
    own (K, H, W) boolean: each query's own mask before the argmax, where its logit is > 0).
    """
    tr = traced.trace
    _, _, kept = select_queries(tr.pred_logits[0], traced.keep_threshold)   # (K,)
    height, width = traced.image.shape[:2]
    logits = F.interpolate(tr.pred_masks[:, kept], size=(height, width), mode="bilinear",
                           align_corners=False)[0]                    # (K, H, W)
    if len(kept) == 0:
        empty = torch.zeros(0, height, width, dtype=torch.bool)
        return kept, empty, empty
    winner = logits.argmax(dim=0)                                    # (H, W)
    regions = torch.stack([winner == k for k in range(len(kept))])   # (K, H, W)
    return kept, regions, logits > 0


@dataclass
class SegmentWeights:
    """Where each kept query's attention lands, against a ground truth (made by
    :func:`segment_weights`, ``book/03_attention_maps.ipynb``). K kept queries, S segments.

    queries (K,): the kept queries; classes: their predicted class names; thing (K,): predicted
    class is a thing; segment (K,): the ground-truth segment (its position in ``names``) their
    pixels overlap best, with that IoU ``iou`` (K,); found (K,): a thing query whose segment is a
    thing of its class with IoU above 0.5 (PQ's match); on_each (K, S): the weight its map
    (heads summed) puts on each segment; on_segment (K,): on its own segment; uniform (K,): what
    uniform attention would put there; names: the segments' names ("circle 2": the second one).
    """

    queries: torch.Tensor
    classes: list
    thing: torch.Tensor
    segment: torch.Tensor
    iou: torch.Tensor
    found: torch.Tensor
    on_each: torch.Tensor
    on_segment: torch.Tensor
    uniform: torch.Tensor
    names: list

    @property
    def ratio(self) -> torch.Tensor:
        """(K,) weight on its own segment over what uniform attention gives: 1 = no preference."""
        return self.on_segment / self.uniform.clamp(min=1e-12)

    def __repr__(self) -> str:
        rows = [("query", "class", "its segment (IoU)", "weight on it", "uniform", "ratio",
                 "most weight on")]
        for k, query in enumerate(self.queries.tolist()):
            most = int(self.on_each[k].argmax())
            rows.append((str(query), self.classes[k],
                         f"{self.names[int(self.segment[k])]} ({self.iou[k]:.2f})",
                         f"{self.on_segment[k]:.3f}", f"{self.uniform[k]:.3f}", f"{self.ratio[k]:.1f}",
                         f"{self.names[most]} ({self.on_each[k, most]:.3f})"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.rjust(wd) if i in (0, 3, 4, 5) else c.ljust(wd)
                                   for i, (c, wd) in enumerate(zip(r, widths))).rstrip() for r in rows)


def segment_names(segments_info: Sequence[dict], category_names) -> list[str]:
    """Segment names as the legends give them: "circle", then "circle 2" for the second circle
    (``figures.segment_labels`` without kind and area; ``book/03_attention_maps.ipynb``)."""
    return [label.split(" (")[0] for label in figures.segment_labels(segments_info, category_names)]


def segment_weights(traced) -> SegmentWeights:
    """Where each kept query's attention lands on a traced image with a ground truth
    (``book/03_attention_maps.ipynb``).

    Each kept query is paired with the ground-truth segment that its pixels (chapter 5's argmax,
    :func:`kept_regions`) overlap best, by IoU; the pairing reads the masks only, never the maps.
    Its heads-summed map is measured on every segment with :func:`weight_on_segments`.
    """
    if traced.truth is None:
        raise ValueError("segment_weights needs a traced image with a ground truth "
                         "(explore.trace_scene, or trace_image(..., truth=...))")
    gt_ids, gt_segments = traced.truth
    ids = torch.as_tensor(np.asarray(gt_ids))                        # (H, W)
    truth_masks = torch.stack([ids == s["id"] for s in gt_segments])  # (S, H, W)
    kept, regions, _ = kept_regions(traced)
    maps = traced.trace.attention_maps[0].sum(dim=1)                  # (N, h, w): heads summed
    cover = cell_cover(truth_masks, maps.shape[-2:])                  # (S, h, w)
    on_each = weight_on_segments(maps[kept], cover)                   # (K, S)
    uniform_each = cover.mean(dim=(1, 2))                             # (S,): a uniform map's weight
    iou, segment = mask_iou(regions, truth_masks).max(dim=1) if len(kept) else (
        torch.zeros(0), torch.zeros(0, dtype=torch.long))             # (K,), (K,)
    labels = traced.trace.pred_logits[0, kept].argmax(-1)             # (K,)
    thing = torch.tensor([bool(traced.is_thing(int(c))) for c in labels], dtype=torch.bool)
    same = torch.tensor([int(labels[k]) == gt_segments[int(s)]["category_id"] and bool(gt_segments[int(s)]["isthing"])
                         for k, s in enumerate(segment.tolist())], dtype=torch.bool)
    rows = torch.arange(len(kept))
    return SegmentWeights(
        queries=kept, classes=[traced.name(int(c)) for c in labels], thing=thing, segment=segment,
        iou=iou, found=thing & same & (iou > MATCH_IOU), on_each=on_each,
        on_segment=on_each[rows, segment], uniform=uniform_each[segment],
        names=segment_names(gt_segments, traced.category_names))


@dataclass
class MapTwin:
    """A kept thing query that found no shape, and the found query whose map is nearest
    (``book/03_attention_maps.ipynb``): the distance of the two heads-summed maps
    (:func:`map_distance`) and the IoU of their masks before the argmax."""

    query: int
    nearest: int
    same_class: bool
    distance: float
    mask_iou: float


def map_twins(traced, weights: SegmentWeights) -> list[MapTwin]:
    """For each kept thing query that found no shape of its own (``weights.found`` False), the
    found query whose heads-summed map is nearest, and how much the two queries' own masks
    (logit > 0, before the argmax) overlap (``book/03_attention_maps.ipynb``)."""
    maps = traced.trace.attention_maps[0].sum(dim=1)                  # (N, h, w)
    kept, _, own = kept_regions(traced)
    found = weights.found.nonzero().flatten()                         # positions in kept
    labels = traced.trace.pred_logits[0].argmax(-1)                   # (N,)
    twins = []
    if len(found) == 0:
        return twins
    for k in (weights.thing & ~weights.found).nonzero().flatten().tolist():
        gaps = map_distance(maps[kept[k]], maps[kept[found]])         # (F,)
        j = int(found[gaps.argmin()])
        twins.append(MapTwin(query=int(kept[k]), nearest=int(kept[j]),
                             same_class=bool(labels[kept[k]] == labels[kept[j]]),
                             distance=float(gaps.min()),
                             mask_iou=float(mask_iou(own[k:k + 1], own[j:j + 1])[0, 0])))
    return twins
