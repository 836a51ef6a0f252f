"""Panoptic quality (PQ): one number for "right segments, right classes, right shapes".

Explained in ``book/07_train_it_yourself.ipynb``. For each category, a predicted segment and a
ground-truth segment of that category are a match (a true positive, TP) when their IoU is above
0.5; at that threshold no segment can match two others, so no assignment problem is needed.
Unmatched predictions are false positives (FP), unmatched ground truths false negatives (FN):

    PQ = sum of TP IoUs / (TP + FP/2 + FN/2) = SQ * RQ
    SQ = mean IoU of the TPs           (segmentation quality: how good the shapes are)
    RQ = TP / (TP + FP/2 + FN/2)       (recognition quality: an F1 score of the detections)

PQ is computed per category over the whole dataset, then averaged over the categories that
occur (in the ground truth or the predictions), for all of them, things only and stuff only.

The rules of the reference implementation (panopticapi, Kirillov et al. 2019), followed here:

- VOID pixels (ground-truth id 0, nobody labelled them) do not count: they are removed from the
  union of an IoU, and a predicted segment lying more than half on VOID is not a FP.
- Crowd regions (``iscrowd: 1``, "a crowd of people") are never matched and are not FN; a
  predicted segment lying more than half on VOID plus its category's crowd region is not a FP.
- Predicted pixels with id 0 are "no prediction"; ground-truth segments there are FN.

:func:`pq_compute` takes id maps and ``segments_info`` lists; :func:`pq_compute_files` reads
two COCO panoptic datasets (ground truth and predictions); :func:`print_pq_table` prints the
table in the format of the DETR paper.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Iterable, Sequence, Union

import numpy as np
import torch
from PIL import Image

from .coco_panoptic import ID_BASE, VOID_ID, rgb2id

# A match needs IoU strictly above one half: then each segment has at most one match.
MATCH_IOU = 0.5
# An unmatched prediction lying more than this fraction on VOID (+ crowd) pixels is ignored.
VOID_FRACTION = 0.5
# Segment ids fit in 24 bits (an RGB PNG), so gt_id * 2**24 + pred_id names each pair uniquely.
_PAIR_SHIFT = ID_BASE**3


@dataclass
class CategoryStat:
    """Counts of one category, summed over images.

    Explained in ``book/07_train_it_yourself.ipynb``.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    iou_sum: float = 0.0

    def add(self, other: "CategoryStat") -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.iou_sum += other.iou_sum


@dataclass
class PQResult:
    """``summary["All" | "Things" | "Stuff"] = {"pq", "sq", "rq", "n"}`` (fractions in [0, 1];
    n is the number of categories averaged) and ``per_class[category_id] = {"pq", "sq", "rq",
    "tp", "fp", "fn"}`` for every category that occurs.

    Explained in ``book/07_train_it_yourself.ipynb``.
    """

    summary: dict[str, dict[str, float]]
    per_class: dict[int, dict[str, float]]
    stats: dict[int, CategoryStat] = field(repr=False, default_factory=dict)


def _as_ids(panoptic: np.ndarray) -> np.ndarray:
    """An (H, W) id map, or an (H, W, 3) PNG colour array converted to one."""
    panoptic = np.asarray(panoptic)
    if panoptic.dtype == object or not (np.issubdtype(panoptic.dtype, np.number) or panoptic.dtype == bool):
        raise TypeError(f"expected an id map of whole numbers, got an array of {panoptic.dtype}")
    if np.issubdtype(panoptic.dtype, np.floating) and not np.array_equal(panoptic, np.round(panoptic)):
        raise ValueError("the id map holds fractional values: segment ids are whole numbers (read the "
                         "PNG with rgb2id, or pass an integer array)")
    if panoptic.ndim == 3:
        return rgb2id(panoptic)                                                   # (H, W)
    if panoptic.ndim != 2:
        raise ValueError(f"expected an (H, W) id map or (H, W, 3) colours, got shape {panoptic.shape}")
    return panoptic.astype(np.int64)


def _segments_by_id(ids: np.ndarray, segments: Sequence[dict], categories: dict, where: str) -> dict:
    """``{segment id: info}``, with ``area`` counted in the id map, after checking that the
    map and the list agree."""
    labels, counts = np.unique(ids, return_counts=True)
    areas = dict(zip(labels.tolist(), counts.tolist()))
    if isinstance(segments, (str, bytes, dict)) or not isinstance(segments, Sequence):
        raise TypeError(f"{where}: segments_info must be a list of dicts, got {type(segments).__name__}")
    by_id = {}
    for k, seg in enumerate(segments):
        if not isinstance(seg, dict) or "id" not in seg or "category_id" not in seg:
            raise ValueError(f"{where}: segments_info[{k}] must be a dict with 'id' and 'category_id', got {seg!r:.80}")
        if seg["id"] in by_id:
            raise ValueError(f"{where}: segment id {seg['id']} is in segments_info twice; each segment "
                             "needs its own id")
        if seg["category_id"] not in categories:
            raise ValueError(f"{where}: segment {seg['id']} has unknown category_id {seg['category_id']}")
        if seg["id"] == VOID_ID:
            raise ValueError(f"{where}: segment id 0 is reserved for VOID")
        if seg["id"] not in areas:
            raise ValueError(f"{where}: segment {seg['id']} is in segments_info but not in the id map")
        by_id[seg["id"]] = {**seg, "area": areas[seg["id"]]}
    unknown = sorted(set(areas) - set(by_id) - {VOID_ID})
    if unknown:
        raise ValueError(f"{where}: id(s) {unknown} are in the id map but not in segments_info")
    return by_id


def mask_iou(masks, other) -> torch.Tensor:
    """Intersection over union of every mask in ``masks`` (K, H, W) with every mask in ``other``
    (S, H, W), boolean tensors or arrays: a (K, S) float tensor; two empty masks give 0. The IoU
    that PQ thresholds at 0.5, for pairing predictions with ground truth by hand
    (``book/03_attention_maps.ipynb``, ``book/04_mask_head.ipynb``, ``book/05_argmax_merge.ipynb``).
    """
    a, b = torch.as_tensor(masks), torch.as_tensor(other)
    if a.dim() < 2 or b.dim() < 2:
        raise ValueError(f"expected stacks of masks (K, H, W) and (S, H, W), got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}; add a leading dimension for a single mask: mask[None]")
    a = a.bool().flatten(1).float()                            # (K, H*W)
    b = b.bool().flatten(1).float()                            # (S, H*W)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"masks of {a.shape[1]} and {b.shape[1]} pixels: both need the same (H, W)")
    inter = a @ b.T                                            # (K, S) pixel counts, exact in float32
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter        # (K, S)
    return inter / union.clamp(min=1)


def pq_stats_single(gt_ids: np.ndarray, gt_segments: Sequence[dict], pred_ids: np.ndarray,
                    pred_segments: Sequence[dict], categories: Union[Sequence[dict], dict],
                    name: str = "image") -> dict[int, CategoryStat]:
    """TP, FP, FN and IoU sum per category for one image (``book/07_train_it_yourself.ipynb``).

    gt_ids, pred_ids: (H, W) segment ids (or (H, W, 3) PNG colours); 0 is VOID.
    gt_segments, pred_segments: ``[{"id", "category_id", ["iscrowd"]}]``.
    categories: COCO category dicts (``id``, ``isthing``), as a list or keyed by id.
    """
    categories = _category_dict(categories)
    gt_ids, pred_ids = _as_ids(gt_ids), _as_ids(pred_ids)                        # (H, W) each
    if gt_ids.shape != pred_ids.shape:
        raise ValueError(f"{name}: ground truth is {gt_ids.shape} but prediction is {pred_ids.shape}")
    gt = _segments_by_id(gt_ids, gt_segments, categories, f"{name} (ground truth)")
    pred = _segments_by_id(pred_ids, pred_segments, categories, f"{name} (prediction)")

    # Pixels shared by every (gt segment, predicted segment) pair, VOID included.
    pair_codes, pair_counts = np.unique(gt_ids * _PAIR_SHIFT + pred_ids, return_counts=True)
    overlap = {(int(c // _PAIR_SHIFT), int(c % _PAIR_SHIFT)): int(n)
               for c, n in zip(pair_codes, pair_counts)}

    stats: dict[int, CategoryStat] = {}

    def stat(category_id: int) -> CategoryStat:
        return stats.setdefault(category_id, CategoryStat())

    gt_matched, pred_matched = set(), set()
    for (gt_id, pred_id), intersection in overlap.items():
        if gt_id not in gt or pred_id not in pred:
            continue  # VOID on either side
        if gt[gt_id].get("iscrowd", 0) == 1:
            continue
        if gt[gt_id]["category_id"] != pred[pred_id]["category_id"]:
            continue
        union = (pred[pred_id]["area"] + gt[gt_id]["area"] - intersection
                 - overlap.get((VOID_ID, pred_id), 0))
        iou = intersection / union
        if iou > MATCH_IOU:
            s = stat(gt[gt_id]["category_id"])
            s.tp += 1
            s.iou_sum += iou
            gt_matched.add(gt_id)
            pred_matched.add(pred_id)

    crowd_of_category = {}
    for gt_id, info in gt.items():
        if info.get("iscrowd", 0) == 1:
            crowd_of_category[info["category_id"]] = gt_id
        elif gt_id not in gt_matched:
            stat(info["category_id"]).fn += 1

    for pred_id, info in pred.items():
        if pred_id in pred_matched:
            continue
        ignored = overlap.get((VOID_ID, pred_id), 0)
        if info["category_id"] in crowd_of_category:
            ignored += overlap.get((crowd_of_category[info["category_id"]], pred_id), 0)
        if ignored / info["area"] > VOID_FRACTION:
            continue
        stat(info["category_id"]).fp += 1
    return stats


def _category_dict(categories: Union[Sequence[dict], dict]) -> dict[int, dict]:
    if isinstance(categories, dict):
        return categories
    if isinstance(categories, (str, bytes)) or not isinstance(categories, Sequence):
        raise TypeError(f"categories must be a list of COCO category dicts (id, isthing) or a dict keyed by "
                        f"id, got {type(categories).__name__}")
    bad = [c for c in categories if not isinstance(c, dict) or "id" not in c]
    if bad:
        raise ValueError(f"every category needs an 'id' (and 'isthing'), got {bad[0]!r:.80}")
    return {c["id"]: c for c in categories}


def summarize(stats: dict[int, CategoryStat], categories: Union[Sequence[dict], dict]) -> PQResult:
    """PQ, SQ, RQ per category and averaged over all, things and stuff categories.

    Explained in ``book/07_train_it_yourself.ipynb``.
    """
    categories = _category_dict(categories)
    unknown = sorted(set(stats) - set(categories))
    if unknown:
        raise ValueError(f"stats for category id(s) {unknown}, which are not among the categories "
                         f"{sorted(categories)}: pass the categories the stats were counted with")
    per_class = {}
    for category_id, s in sorted(stats.items()):
        denominator = s.tp + 0.5 * s.fp + 0.5 * s.fn
        if denominator == 0:
            continue  # the category occurs nowhere: it does not enter the averages
        sq = s.iou_sum / s.tp if s.tp else 0.0
        rq = s.tp / denominator
        per_class[category_id] = {"pq": sq * rq, "sq": sq, "rq": rq,
                                  "tp": s.tp, "fp": s.fp, "fn": s.fn}
    summary = {}
    for group, keep in (("All", lambda c: True), ("Things", lambda c: bool(c.get("isthing", 1))),
                        ("Stuff", lambda c: not c.get("isthing", 1))):
        rows = [r for cid, r in per_class.items() if keep(categories[cid])]
        n = len(rows)
        summary[group] = {key: (sum(r[key] for r in rows) / n if n else 0.0)
                          for key in ("pq", "sq", "rq")}
        summary[group]["n"] = n
    return PQResult(summary=summary, per_class=per_class, stats=stats)


def pq_compute(pairs: Iterable[tuple[tuple[np.ndarray, Sequence[dict]], tuple[np.ndarray, Sequence[dict]]]],
               categories: Union[Sequence[dict], dict]) -> PQResult:
    """PQ over a dataset (``book/07_train_it_yourself.ipynb``).

    pairs: one ``((gt_ids, gt_segments), (pred_ids, pred_segments))`` per image, as in
    :func:`pq_stats_single`. Counts are summed over images before PQ is computed.
    """
    total: dict[int, CategoryStat] = {}
    for k, pair in enumerate(pairs):
        try:
            (gt_ids, gt_segments), (pred_ids, pred_segments) = pair
        except (TypeError, ValueError):
            raise ValueError(f"pairs[{k}] must be ((gt_ids, gt_segments), (pred_ids, pred_segments))") from None
        for category_id, s in pq_stats_single(gt_ids, gt_segments, pred_ids, pred_segments,
                                              categories, name=f"image {k}").items():
            total.setdefault(category_id, CategoryStat()).add(s)
    return summarize(total, categories)


def pq_compute_files(gt_json: str, gt_dir: str, pred_json: str, pred_dir: str) -> PQResult:
    """PQ of predictions written in the COCO panoptic format against a ground truth in it.

    The predictions' JSON needs ``annotations`` (``image_id``, ``file_name``, ``segments_info``);
    categories come from the ground truth's JSON. Every ground-truth image needs a prediction.

    Explained in ``book/07_train_it_yourself.ipynb``.
    """
    gt_data = _read_panoptic_json(gt_json, ("annotations", "categories"))
    pred_data = _read_panoptic_json(pred_json, ("annotations",))
    categories = _category_dict(gt_data["categories"])
    predictions = {}
    for ann in pred_data["annotations"]:
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise ValueError(f"{pred_json!r}: every annotation needs an 'image_id', got {ann!r:.80}")
        if ann["image_id"] in predictions:
            raise ValueError(f"{pred_json!r} has two predictions for image_id {ann['image_id']}: give one per image")
        predictions[ann["image_id"]] = ann

    def read(folder: str, ann: dict) -> np.ndarray:
        path = os.path.join(folder, ann["file_name"])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"missing panoptic PNG {path!r}")
        with Image.open(path) as png:
            return rgb2id(np.asarray(png.convert("RGB")))                         # (H, W)

    def pairs():
        for gt_ann in gt_data["annotations"]:
            if not isinstance(gt_ann, dict) or not {"image_id", "file_name", "segments_info"} <= set(gt_ann):
                raise ValueError(f"{gt_json!r}: every annotation needs image_id, file_name and segments_info, "
                                 f"got {gt_ann!r:.80}")
            if gt_ann["image_id"] not in predictions:
                raise ValueError(f"{pred_json!r} has no prediction for image_id {gt_ann['image_id']}")
            pred_ann = predictions[gt_ann["image_id"]]
            yield ((read(gt_dir, gt_ann), gt_ann["segments_info"]),
                   (read(pred_dir, pred_ann), pred_ann["segments_info"]))

    return pq_compute(pairs(), categories)


def _read_panoptic_json(path: str, keys: Sequence[str]) -> dict:
    """A COCO panoptic JSON file, after checking that it has ``keys``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no JSON file at {path!r}")
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path!r} is not valid JSON ({err})") from err
    missing = [key for key in keys if not isinstance(data, dict) or not isinstance(data.get(key), list)]
    if missing:
        raise ValueError(f"{path!r} is not a COCO panoptic JSON: it has no {missing} list(s)")
    return data


def format_pq_table(result: PQResult, categories: Union[Sequence[dict], dict, None] = None) -> str:
    """The PQ table as text, values in percent; with ``categories``, one row per category too.

    Explained in ``book/07_train_it_yourself.ipynb``.
    """
    lines = [f"{'':10s}| {'PQ':>6s} {'SQ':>6s} {'RQ':>6s} {'N':>4s}", "-" * 36]
    for group in ("All", "Things", "Stuff"):
        r = result.summary[group]
        lines.append(f"{group:10s}| {100 * r['pq']:6.1f} {100 * r['sq']:6.1f} "
                     f"{100 * r['rq']:6.1f} {r['n']:4d}")
    if categories is not None:
        categories = _category_dict(categories)
        lines += ["", f"{'category':14s}| {'PQ':>6s} {'SQ':>6s} {'RQ':>6s} {'TP':>4s} {'FP':>4s} {'FN':>4s}"]
        for category_id, r in result.per_class.items():
            name = str(categories[category_id].get("name", category_id))[:14]
            lines.append(f"{name:14s}| {100 * r['pq']:6.1f} {100 * r['sq']:6.1f} {100 * r['rq']:6.1f} "
                         f"{r['tp']:4d} {r['fp']:4d} {r['fn']:4d}")
    return "\n".join(lines)


def print_pq_table(result: PQResult, categories: Union[Sequence[dict], dict, None] = None) -> None:
    """Print :func:`format_pq_table` (``book/07_train_it_yourself.ipynb``)."""
    print(format_pq_table(result, categories))
