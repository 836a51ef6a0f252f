"""What the chapters measure on the book's examples, written once and returned as plain rows.

``book/00_meet_the_model.ipynb`` reads what the trained model finds on its held-out scene
(:func:`match_segments`, :func:`outcome`) and how it differs from the published model
(:func:`model_sizes`); ``book/02_transformer.ipynb`` reads where its encoder and decoder attend
(:func:`encoder_probes`, :func:`decoder_reading`). Each function takes an ``explore.Traced``
(``examples.book_scene().traced``) or a model, computes from it, and returns dicts or strings for
the chapter to print; nothing here draws, and nothing depends on the particular weights: a
retrained model gives other rows, described by the same code.

A segment is named by its class and its number within the class in the order of its list
("circle", "circle 2"), as the legends of ``figures.show_panoptic`` name it
(``attention_analysis.segment_names``).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import torch

from . import pq
from .attention_analysis import MATCH_IOU, cell_cover, segment_names
from .merge import select_queries


def model_sizes(model) -> dict[str, str]:
    """The sizes that tell two DETR panoptic models apart, name -> value as text: backbone, its
    batch norm, Res5's channels and stride, d, M, the layers, the feed-forward width, N, the class
    ids and the parameter count (``book/00_meet_the_model.ipynb``)."""
    config = model.config
    resnet = model.detr.backbone.resnet
    return {
        "backbone": config.backbone,
        "backbone batch norm": "frozen" if config.frozen_batchnorm else "trained",
        "Res5 channels": str(resnet.channels["res5"]),
        "Res5 stride": f"{resnet.strides['res5']} (DC5 {'on' if config.dilation else 'off'})",
        "d, transformer width": str(config.hidden_dim),
        "M, attention heads": str(config.nheads),
        "encoder + decoder layers": f"{config.enc_layers} + {config.dec_layers}",
        "feed-forward width": str(config.dim_feedforward),
        "N, object queries": str(config.num_queries),
        "class ids + 'no object'": f"{config.num_classes} + 1",
        "parameters": f"{sum(p.numel() for p in model.parameters()):,}",
    }


def match_segments(traced) -> tuple[list[dict], list[dict]]:
    """PQ's matching of the default merge (``traced.result``) with the ground truth
    (``traced.truth``): a predicted and a ground-truth segment match when they have one class and
    an IoU above 0.5, so each has at most one match (``book/00_meet_the_model.ipynb``).

    Returns ``(truth_rows, predicted_rows)``, one dict per segment in the order of its list.
    A truth row: "segment" (its name), "class", "isthing", "area", "found_by" (the name of the predicted
    segment that matches it, or None), "queries" (the queries that made that segment), "iou"
    (the match's IoU; for a missed segment the best IoU any predicted segment of its class
    reaches, 0.0 if none has its class). A predicted row: "segment", "class", "isthing", "area", "queries",
    "score", "matches" (the truth segment's name or None), "iou", "lies_on" (the truth segment it
    shares most pixels with) and "verdict": "match"; "duplicate" (no match, it lies on a segment
    of its own class that another predicted segment matches); "loose" (no match, it lies on a
    segment of its own class that nothing matches: found, but with IoU 0.5 or less); "wrong class"
    (it lies on a segment of another class).
    """
    if traced.truth is None:
        raise ValueError("match_segments needs a traced image with a ground truth (explore.trace_scene)")
    gt_ids, gt_segments = traced.truth
    result = traced.result
    names = traced.category_names
    gt_names = segment_names(gt_segments, names)
    pred_names = segment_names(result.segments_info, names)
    gt_ids = torch.as_tensor(np.asarray(gt_ids))                                       # (H, W)
    gt_masks = torch.stack([gt_ids == g["id"] for g in gt_segments])                    # (G, H, W)
    if result.segments_info:
        pred_masks = torch.stack([result.id_map == s["id"] for s in result.segments_info])  # (P, H, W)
    else:
        pred_masks = torch.zeros((0,) + tuple(gt_ids.shape), dtype=torch.bool)
    iou = pq.mask_iou(pred_masks, gt_masks)                                             # (P, G)
    same_class = torch.tensor([[s["category_id"] == g["category_id"] for g in gt_segments]
                               for s in result.segments_info], dtype=torch.bool)
    same_class = same_class.reshape(len(pred_masks), len(gt_segments))                 # (P, G)
    match = (iou > MATCH_IOU) & same_class                                             # (P, G)
    shared = (pred_masks.flatten(1).float() @ gt_masks.flatten(1).float().T)           # (P, G) pixels

    truth_rows = []
    for g, segment in enumerate(gt_segments):
        hits = match[:, g].nonzero().flatten().tolist()
        p = hits[0] if hits else None
        of_class = iou[:, g][same_class[:, g]]
        truth_rows.append({
            "segment": gt_names[g], "class": names.get(segment["category_id"], f"class {segment['category_id']}"),
            "isthing": bool(segment["isthing"]), "area": int(segment["area"]),
            "found_by": pred_names[p] if p is not None else None,
            "queries": list(result.segments_info[p]["queries"]) if p is not None else [],
            "iou": float(iou[p, g]) if p is not None else float(of_class.max()) if len(of_class) else 0.0,
        })
    predicted_rows = []
    for p, segment in enumerate(result.segments_info):
        hits = match[p].nonzero().flatten().tolist()
        on = int(shared[p].argmax())                               # the truth segment it covers most
        if hits:
            verdict = "match"
        elif not same_class[p, on]:
            verdict = "wrong class"
        elif match[:, on].any():
            verdict = "duplicate"
        else:
            verdict = "loose"
        predicted_rows.append({
            "segment": pred_names[p], "class": names.get(segment["category_id"], f"class {segment['category_id']}"),
            "isthing": bool(segment["isthing"]), "area": int(segment["area"]),
            "queries": list(segment["queries"]), "score": float(segment["score"]),
            "matches": gt_names[hits[0]] if hits else None,
            "iou": float(iou[p, hits[0]]) if hits else float(iou[p, on]),
            "lies_on": gt_names[on], "verdict": verdict,
        })
    return truth_rows, predicted_rows


def _queries(queries: Sequence[int]) -> str:
    return ("query " if len(queries) == 1 else "queries ") + ", ".join(map(str, queries))


def outcome(truth_rows: Sequence[Mapping], predicted_rows: Sequence[Mapping]) -> list[str]:
    """Sentences that say what :func:`match_segments` found: the segments found, those missed,
    the duplicates and any other predicted segment without a match, written from the rows, so
    that they stay true for any weights (``book/00_meet_the_model.ipynb``)."""
    found = [r for r in truth_rows if r["found_by"] is not None]
    missed = [r for r in truth_rows if r["found_by"] is None]
    lines = [f"Found: {len(found)} of {len(truth_rows)} ground-truth segments"
             + (": " + ", ".join(f"{r['segment']} (IoU {r['iou']:.2f})" for r in found) if found else "")
             + "."]
    if missed:
        lines.append("Missed: " + "; ".join(
            f"{r['segment']} ({r['area']} px; the best IoU of a predicted segment of its class: "
            f"{r['iou']:.2f})" for r in missed) + ".")
    else:
        lines.append("Missed: none.")
    finder = {r["segment"]: r["queries"] for r in truth_rows}
    duplicates = [r for r in predicted_rows if r["verdict"] == "duplicate"]
    if duplicates:
        lines.append("Duplicated: " + "; ".join(
            f"the {r['lies_on']}, found by {_queries(finder[r['lies_on']])}, also has a {r['class']} "
            f"segment of {_queries(r['queries'])} on it ({r['area']} px, IoU {r['iou']:.2f} with it)"
            for r in duplicates) + ".")
    else:
        lines.append("Duplicated: none.")
    others = [r for r in predicted_rows if r["verdict"] in ("loose", "wrong class")]
    if others:
        lines.append("Other predicted segments without a match: " + "; ".join(
            f"the {r['class']} segment of {_queries(r['queries'])}, "
            + (f"a loose fit of the {r['lies_on']} (IoU {r['iou']:.2f})" if r["verdict"] == "loose"
               else f"the wrong class on the {r['lies_on']}")
            for r in others) + ".")
    return lines


# --------------------------------------------------------------------------------------------
# Where the transformer attends, on the Res5 grid (book/02_transformer.ipynb)
# --------------------------------------------------------------------------------------------

def cell_stride(traced) -> int:
    """Pixels per side of one Res5 cell of a traced image: its height over the grid's
    (``book/02_transformer.ipynb``). The image must be a whole number of cells."""
    height, width = traced.image.shape[:2]
    rows, cols = traced.grid
    if height % rows or width % cols or height // rows != width // cols:
        raise ValueError(f"a {height} x {width} image is not a whole number of cells of its {rows} x {cols} "
                         "grid: the findings of book/02_transformer.ipynb need an unpadded scene")
    return height // rows


def cell_coverage(ids: np.ndarray, segment_id: int, stride: int) -> torch.Tensor:
    """(h, w): the fraction of each ``stride`` x ``stride`` cell's pixels that belong to the
    segment ``segment_id`` of the id map ``ids`` (H, W) (``book/02_transformer.ipynb``)."""
    ids = np.asarray(ids)
    grid = (-(-ids.shape[0] // stride), -(-ids.shape[1] // stride))     # (h, w) cells
    return cell_cover(torch.from_numpy(ids == segment_id)[None], grid)[0]   # (h, w)


def most_covered_cell(ids: np.ndarray, segment_id: int, stride: int) -> tuple[int, int]:
    """(row, column) of the cell the segment covers most; of cells that tie, the one nearest
    the segment's centre (``book/02_transformer.ipynb``)."""
    cover = cell_coverage(ids, segment_id, stride)                       # (h, w)
    rows, cols = torch.nonzero(cover >= cover.max() - 1e-6, as_tuple=True)
    ys, xs = torch.nonzero(torch.from_numpy(np.asarray(ids) == segment_id), as_tuple=True)
    centre = torch.stack([ys.float().mean(), xs.float().mean()]) / stride - 0.5   # in cells
    distance = (torch.stack([rows, cols], 1).float() - centre).norm(dim=1)
    best = int(distance.argmin())
    return int(rows[best]), int(cols[best])


def _segment_covering(covers: torch.Tensor, row: int, col: int) -> int:
    """The index of the segment that covers cell (row, col) most; ``covers`` (S, h, w)."""
    return int(covers[:, row, col].argmax())


def encoder_probes(traced, layer: int = -1, stuff: int = 2, things: int = 2) -> list[dict]:
    """Probe cells of the encoder's self-attention: for the ``stuff`` largest stuff segments and
    the ``things`` largest things of the ground truth, the cell each covers most, and how much of
    that cell's row of ``layer``'s attention (heads averaged) lands on its own segment
    (``book/02_transformer.ipynb``).

    One dict per probe: "segment" (its name), "cell" (row, col), "covered" (the fraction of the
    cell it covers), "on_segment" (the share of the row's weight on the segment's pixels, each
    cell's weight spread evenly over its pixels), "even" (the segment's share of the image: what
    an even spread gives), "favour" (on_segment / even), "top_cell" (the cell the row weighs
    most), "top_weight", "top_segment" (the name of the segment covering that cell most) and
    "reads_itself" (top_cell is its own cell).
    """
    gt_ids, truth = traced.truth
    stride = cell_stride(traced)
    rows_, cols_ = traced.grid
    names = segment_names(truth, traced.category_names)
    covers = torch.stack([cell_coverage(gt_ids, s["id"], stride) for s in truth])   # (S, h, w)
    attention = traced.trace.encoder_attention[layer, 0]                            # (M', M')
    by_area = sorted(range(len(truth)), key=lambda k: -truth[k]["area"])
    chosen = ([k for k in by_area if not truth[k]["isthing"]][:stuff]
              + [k for k in by_area if truth[k]["isthing"]][:things])
    probes = []
    for k in chosen:
        row, col = most_covered_cell(gt_ids, truth[k]["id"], stride)
        weights = attention[row * cols_ + col].view(rows_, cols_)                   # (h, w)
        on_segment = float((weights * covers[k]).sum())
        even = truth[k]["area"] / gt_ids.size
        top_row, top_col = divmod(int(weights.argmax()), cols_)
        probes.append({
            "segment": names[k], "cell": (row, col), "covered": float(covers[k, row, col]),
            "on_segment": on_segment, "even": even, "favour": on_segment / even,
            "top_cell": (top_row, top_col), "top_weight": float(weights.max()),
            "top_segment": names[_segment_covering(covers, top_row, top_col)],
            "reads_itself": (top_row, top_col) == (row, col),
        })
    return probes


def cell_read_most(traced, layer: int = -1) -> dict:
    """The cell that ``layer``'s encoder attention reads most, summed over all rows (each row
    gives 1 in all, so an even spread gives every cell 1): "cell", "received", "next" (the
    runner-up's total) and "segment" (the name of the segment covering it most)
    (``book/02_transformer.ipynb``)."""
    gt_ids, truth = traced.truth
    stride = cell_stride(traced)
    rows_, cols_ = traced.grid
    received = traced.trace.encoder_attention[layer, 0].sum(0).view(rows_, cols_)   # (h, w)
    row, col = divmod(int(received.argmax()), cols_)
    covers = torch.stack([cell_coverage(gt_ids, s["id"], stride) for s in truth])   # (S, h, w)
    top_two = received.flatten().topk(min(2, received.numel())).values
    return {"cell": (row, col), "received": float(top_two[0]),
            "next": float(top_two[-1]),
            "segment": segment_names(truth, traced.category_names)[_segment_covering(covers, row, col)]}


def kept_queries(traced, threshold: Optional[float] = None) -> list[dict]:
    """The queries the merge keeps (above ``threshold``, default the model's keep threshold), each with the ground-truth segment its predicted segment
    overlaps most (``book/02_transformer.ipynb``).

    One dict per kept query: "query", "class", "score", "truth" (the index of that ground-truth
    segment in ``traced.truth[1]``, None if the default merge left the query no pixel),
    "truth_name" and "iou" (of the query's segment in the default merge with it).
    """
    gt_ids, truth = traced.truth
    names = segment_names(truth, traced.category_names)
    gt_masks = torch.stack([torch.as_tensor(np.asarray(gt_ids)) == s["id"] for s in truth])   # (G, H, W)
    threshold = traced.keep_threshold if threshold is None else threshold
    scores, labels, kept = select_queries(traced.trace.pred_logits[0], threshold)
    rows = []
    for q in kept.tolist():
        segment = next((s for s in traced.result.segments_info if q in s["queries"]), None)
        k, iou = None, 0.0
        if segment is not None:
            ious = pq.mask_iou((traced.result.id_map == segment["id"])[None], gt_masks)[0]  # (G,)
            k, iou = int(ious.argmax()), float(ious.max())
        rows.append({"query": q, "class": traced.name(int(labels[q])), "score": float(scores[q]),
                     "truth": k, "truth_name": names[k] if k is not None else None, "iou": iou})
    return rows


def decoder_reading(traced, layer: int = -1, threshold: Optional[float] = None) -> list[dict]:
    """How much of each kept query's cross-attention in decoder ``layer`` (heads averaged) lands
    on the cells that its ground-truth segment (:func:`kept_queries`) touches, against the share
    of the grid those cells are (``book/02_transformer.ipynb``).

    One dict per kept query that has a segment: the keys of :func:`kept_queries`, "isthing" (of its truth segment),
    "cells" (how many cells the segment touches), "reads" (the share of the query's attention on
    them), "even" (their share of the grid) and "ratio" (reads / even).
    """
    gt_ids, truth = traced.truth
    stride = cell_stride(traced)
    rows_, cols_ = traced.grid
    cross = traced.trace.decoder_attention[layer, 0]                                  # (N, M')
    out = []
    for row in kept_queries(traced, threshold):
        if row["truth"] is None:                                                        # no pixel
            continue
        touched = cell_coverage(gt_ids, truth[row["truth"]]["id"], stride) > 0           # (h, w)
        reads = float(cross[row["query"]].view(rows_, cols_)[touched].sum())
        even = float(touched.float().mean())
        out.append(dict(row, isthing=bool(truth[row["truth"]]["isthing"]), cells=int(touched.sum()),
                        reads=reads, even=even, ratio=reads / even))
    return out
