"""Analyses of the mask head's output and of the merge on the book's scene, written once.

Chapters 4 and 5 (``book/04_mask_head.ipynb``, ``book/05_argmax_merge.ipynb``) call these
instead of carrying long analysis cells: how a query's masks and attention maps sit on the
ground truth, how much the queries of an image differ at each stage of the head, and how the
merge changes with its threshold. Nothing here runs a model: every function reads a trace
(``DETRTrace``), a traced scene (``explore.Traced``) or a merge result.

Masks follow the merge's rule: a query's mask logits (H/4, W/4) are brought to the image's size
by bilinear interpolation (``align_corners=False``) and a pixel is in the mask where the logit
is above 0.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import figures, pq
from .explore import THRESHOLD_RANGE, Traced, merge_result, pq_of
from .merge import PanopticResult, select_queries


def logits_at(pred_masks: torch.Tensor, size) -> torch.Tensor:
    """Mask logits (K, h, w) brought to ``size`` (H, W) as the merge does it (bilinear, no
    corner alignment): (K, H, W) (``book/04_mask_head.ipynb``)."""
    return F.interpolate(pred_masks[:, None].float(), size=tuple(size), mode="bilinear",
                         align_corners=False)[:, 0]                            # (K, H, W)


def masks_at(pred_masks: torch.Tensor, size) -> torch.Tensor:
    """Boolean masks (K, H, W): the logits at ``size``, above 0 (``book/04_mask_head.ipynb``)."""
    return logits_at(pred_masks, size) > 0


def segment_iou(pred_masks: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """IoU of every query's mask with every ground-truth segment: ``pred_masks`` (N, h, w) of
    one image, ``segments`` (S, H, W) boolean (``Scene.masks()``); returns (N, S)
    (``book/04_mask_head.ipynb``)."""
    return pq.mask_iou(masks_at(pred_masks, segments.shape[-2:]), segments)


def query_for_segment(traced: Traced, segment: int) -> int:
    """The query that stands for ground-truth segment number ``segment`` (its position in the
    ground truth's ``segments_info``): the highest product of the query's probability for the
    segment's class and its mask's IoU with the segment (``book/04_mask_head.ipynb``)."""
    ids, segments_info = traced.truth
    target = torch.from_numpy(np.asarray(ids) == segments_info[segment]["id"])      # (H, W)
    iou = segment_iou(traced.trace.pred_masks[0], target[None])[:, 0]              # (N,)
    probability = traced.probabilities[:, segments_info[segment]["category_id"]]  # (N,)
    return int((probability * iou).argmax())


def cells_touched(segment: torch.Tensor, grid) -> torch.Tensor:
    """(h, w) boolean: the cells of a feature grid that a segment (H, W) has any pixel in
    (``book/04_mask_head.ipynb``)."""
    return F.adaptive_max_pool2d(torch.as_tensor(segment)[None].float(), tuple(grid))[0] > 0


def attention_on_segment(maps: torch.Tensor, segment: torch.Tensor) -> dict:
    """How a query's M attention maps (M, h, w) sit on a ground-truth segment (H, W)
    (``book/04_mask_head.ipynb``).

    Returns ``cells``, the share of the grid's cells the segment touches (what a flat map would
    put there); ``share``, the share of the query's attention on those cells; ``heads`` (M,),
    each head's share of the query's attention (the M maps share one softmax, so they sum to 1
    together); ``top``, the head with the largest share, and ``top_share``, the share of that
    head's attention on the segment's cells.
    """
    on = cells_touched(segment, maps.shape[-2:])                              # (h, w)
    total = maps.sum()
    heads = maps.sum((1, 2)) / total                                          # (M,)
    top = int(heads.argmax())
    return {"cells": float(on.float().mean()), "share": float(maps[:, on].sum() / total),
            "heads": heads, "top": top, "top_share": float(maps[top][on].sum() / maps[top].sum())}


def kept_queries_on_truth(traced: Traced, threshold: Optional[float] = None) -> list[dict]:
    """One row per query the merge keeps (above ``threshold``, default the model's keep threshold) (``book/04_mask_head.ipynb``): its class and score,
    the ground-truth segment its mask overlaps best (position in the ground truth, class, kind,
    IoU) and how its attention sits on that segment (:func:`attention_on_segment`)."""
    tr = traced.trace
    ids, segments_info = traced.truth
    segments = torch.stack([torch.from_numpy(np.asarray(ids) == s["id"]) for s in segments_info])  # (S, H, W)
    threshold = traced.keep_threshold if threshold is None else threshold
    scores, labels, kept = select_queries(tr.pred_logits[0], threshold)
    iou = segment_iou(tr.pred_masks[0], segments)                             # (N, S)
    rows = []
    for q in kept.tolist():
        k = int(iou[q].argmax())
        on = attention_on_segment(tr.attention_maps[0, q], segments[k])
        rows.append({"query": q, "class": traced.name(int(labels[q])), "score": float(scores[q]),
                     "label": int(labels[q]), "segment": k,
                     "segment_class": traced.name(segments_info[k]["category_id"]),
                     "isthing": bool(segments_info[k]["isthing"]),
                     "category_id": segments_info[k]["category_id"], "iou": float(iou[q, k]),
                     "cells": on["cells"], "attention": on["share"]})
    return rows


def print_kept_queries(rows: Sequence[dict]) -> None:
    """Print :func:`kept_queries_on_truth`'s rows as a table (``book/04_mask_head.ipynb``)."""
    print(f"{'query':>5}  {'class':<10}{'score':>6}   {'best segment':<14}{'kind':<6}{'IoU':>5}"
          f"   {'its cells':>9}  {'attention there':>15}")
    for r in rows:
        kind = "thing" if r["isthing"] else "stuff"
        print(f"{r['query']:>5}  {r['class']:<10}{r['score']:6.2f}   {r['segment_class']:<14}{kind:<6}"
              f"{r['iou']:5.2f}   {r['cells']:9.0%}  {r['attention']:15.0%}")


def show_mask_logits(logits: torch.Tensor, titles: Sequence[str], truth=None, predicted=None,
                     ncols: int = 4, size: float = 2.3, suptitle: Optional[str] = None):
    """Mask logits (K, h, w), or a list of K (h, w) maps, on one colour scale centred on 0 (``figures.LOGIT_CMAP``), with one
    colour bar, each panel optionally outlined (``book/04_mask_head.ipynb``,
    ``book/05_argmax_merge.ipynb``).

    ``truth`` (K, H, W) boolean: a ground-truth segment per panel, outlined in
    ``figures.TRUTH_COLOR``; ``predicted`` (K, H, W) boolean: the predicted mask, outlined in
    ``figures.PREDICTION_COLOR``. The outlines may be at any resolution; they are drawn at the
    map's. Returns the figure.
    """
    logits = torch.stack([torch.as_tensor(m) for m in logits])               # (K, h, w)
    fig = figures.show_maps(logits, titles=titles, ncols=ncols, size=size, cmap=figures.LOGIT_CMAP,
                            suptitle=suptitle, label="mask logit (> 0: in the mask)")
    h, w = logits.shape[-2:]
    for outlines, color in ((truth, figures.TRUTH_COLOR), (predicted, figures.PREDICTION_COLOR)):
        if outlines is None:
            continue
        for ax, outline in zip(fig.axes, outlines):   # the maps' axes come first, then the bar
            outline = torch.as_tensor(outline).float()                        # (H, W)
            height, width = outline.shape
            rows = (torch.arange(height) + 0.5) * h / height - 0.5            # pixel centres in cells
            cols = (torch.arange(width) + 0.5) * w / width - 0.5
            ax.contour(cols.numpy(), rows.numpy(), outline.numpy(), levels=[0.5], colors=color,
                       linewidths=1.2)
    return fig


def peak(trace) -> float:
    """The largest attention weight of a trace's attention maps, in units of the flat weight
    1 / (M x cells) a query would give every head and cell alike (``book/04_mask_head.ipynb``)."""
    _, _, heads, rows, cols = trace.attention_maps.shape
    return float(trace.attention_maps.max()) * heads * rows * cols


def spread(stage: torch.Tensor, num_queries: int) -> float:
    """How much the queries of an image differ at one stage of the head (B*N, C, h, w): the mean
    distance of a query's features from the mean query's, relative to the features' mean size
    (``book/04_mask_head.ipynb``)."""
    x = stage.reshape(-1, num_queries, *stage.shape[1:])                     # (B, N, C, h, w)
    return float((x - x.mean(1, keepdim=True)).abs().mean() / x.abs().mean())


# --------------------------------------------------------------------------------------------
# The merge (book/05_argmax_merge.ipynb)
# --------------------------------------------------------------------------------------------

def print_segments(result: PanopticResult, category_names=None) -> None:
    """Print a merge result's segments, one line each: id, category (by name with
    ``category_names``), kind, area and the queries that made it (``book/05_argmax_merge.ipynb``)."""
    print(f"{'id':>3} {'category':>9}  {'kind':<5} {'area':>6}  queries")
    for s in result.segments_info:
        kind = "thing" if s["isthing"] else "stuff"
        category = (category_names or {}).get(s["category_id"], s["category_id"])
        print(f"{s['id']:>3} {category:>9}  {kind:<5} {s['area']:>6}  {s['queries']}")


def threshold_steps(traced: Traced) -> list[dict]:
    """The merge at each step of the merge explorer's threshold slider (0.01 apart over
    ``explore.THRESHOLD_RANGE``) where the kept queries change (``book/05_argmax_merge.ipynb``):
    one row per change with the threshold, the kept queries, the number of segments and the
    scene's PQ (all classes)."""
    low, high = THRESHOLD_RANGE
    logits = traced.trace.pred_logits[0]
    rows = []
    for threshold in np.arange(round(100 * low), round(100 * high) + 1) / 100:
        kept = select_queries(logits, float(threshold))[2].tolist()
        if rows and kept == rows[-1]["kept"]:
            continue                                                          # same queries, same merge
        merged = merge_result(traced, float(threshold))
        rows.append({"threshold": float(threshold), "kept": kept, "segments": len(merged.segments_info),
                     "pq": pq_of(traced, merged).summary["All"]["pq"]})
    return rows
