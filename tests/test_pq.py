"""Panoptic quality: hand-computed cases (VOID, crowd, the 0.5 threshold) and agreement with
torchmetrics' PanopticQuality."""
import json
import os

import numpy as np
import pytest
import torch

from detr_explained import synthetic
from detr_explained.pq import (CategoryStat, format_pq_table, pq_compute, pq_compute_files,
                               pq_stats_single, print_pq_table)

CATEGORIES = [
    {"id": 1, "name": "dot", "isthing": 1},
    {"id": 2, "name": "box", "isthing": 1},
    {"id": 7, "name": "floor", "isthing": 0},
    {"id": 8, "name": "sky", "isthing": 0},
]


def segs(*pairs, crowd=()):
    return [{"id": i, "category_id": c, "iscrowd": int(i in crowd)} for i, c in pairs]


def test_perfect_prediction_is_100():
    ids = np.ones((10, 10), np.int64)
    ids[2:5, 2:5] = 2
    segments = segs((1, 7), (2, 1))
    result = pq_compute([((ids, segments), (ids * 5, segs((5, 7), (10, 1))))], CATEGORIES)
    for group in ("All", "Things", "Stuff"):
        assert result.summary[group]["pq"] == pytest.approx(1.0)
    assert result.summary["All"]["n"] == 2


def test_hand_computed_case():
    gt = np.full((10, 10), 2)                      # floor, rows 4-9
    gt[:4] = 1                                     # sky, rows 0-3: 40 px
    gt[5:8, 1:4] = 3                               # dot A: 9 px
    gt[5:8, 6:9] = 4                               # dot B: 9 px  -> floor 60 - 18 = 42 px
    pred = np.full((10, 10), 11)                   # floor, rows 5-9 minus dots: 32 px
    pred[:5] = 10                                  # sky, rows 0-4: 50 px
    pred[5:8, 1:4] = 12                            # dot A, exact
    pred[5:8, 6:9] = 13                            # dot B, but called a box
    result = pq_compute([((gt, segs((1, 8), (2, 7), (3, 1), (4, 1))),
                          (pred, segs((10, 8), (11, 7), (12, 1), (13, 2))))], CATEGORIES)
    sky, floor = 40 / 50, 32 / 42                  # IoU = intersection / union
    dot_pq, dot_rq = 1 * (1 / (1 + 0.5)), 1 / 1.5  # TP 1 (IoU 1), FN 1 (dot B)
    assert result.per_class[8]["pq"] == pytest.approx(sky)
    assert result.per_class[7]["pq"] == pytest.approx(floor)
    assert result.per_class[1] == pytest.approx({"pq": dot_pq, "sq": 1.0, "rq": dot_rq,
                                                 "tp": 1, "fp": 0, "fn": 1})
    assert result.per_class[2] == pytest.approx({"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 1, "fn": 0})
    assert result.summary["All"]["pq"] == pytest.approx((sky + floor + dot_pq + 0) / 4)
    assert result.summary["All"]["sq"] == pytest.approx((sky + floor + 1 + 0) / 4)
    assert result.summary["All"]["rq"] == pytest.approx((1 + 1 + dot_rq + 0) / 4)
    assert result.summary["Things"] == pytest.approx({"pq": dot_pq / 2, "sq": 0.5, "rq": dot_rq / 2, "n": 2})
    assert result.summary["Stuff"] == pytest.approx({"pq": (sky + floor) / 2, "sq": (sky + floor) / 2,
                                                     "rq": 1.0, "n": 2})


def test_void_is_left_out():
    gt = np.full((10, 10), 2)                      # floor, rows 4-9
    gt[2:4] = 1                                    # sky, rows 2-3: 20 px
    gt[:2] = 0                                     # VOID, rows 0-1: 20 px
    pred = np.full((10, 10), 11)
    pred[:4] = 10                                  # sky, rows 0-3 ...
    pred[0:2, 0:3] = 20                            # ... minus a dot lying wholly on VOID (6 px)
    pred[1:3, 5:9] = 21                            # ... minus a dot half on VOID, half on sky (8 px)
    stats = pq_stats_single(gt, segs((1, 8), (2, 7)), pred, segs((10, 8), (11, 7), (20, 1), (21, 1)),
                            CATEGORIES)
    # Sky: pred 40 - 6 - 8 = 26 px, 10 of them on VOID; it shares 20 - 4 = 16 px with the true sky.
    # Union without VOID: 26 + 20 - 16 - 10 = 20, IoU 16 / 20.
    assert stats[8].tp == 1 and stats[8].iou_sum == pytest.approx(16 / 20)
    assert stats[7].tp == 1 and stats[7].iou_sum == pytest.approx(1.0)
    # Dot 20 is all VOID: ignored. Dot 21 is exactly half VOID, not more than half: a FP.
    assert (stats[1].tp, stats[1].fp, stats[1].fn) == (0, 1, 0)


def test_crowd_regions_are_neither_fn_nor_fp():
    gt = np.full((10, 10), 1)                      # floor
    gt[0:5, 0:5] = 5                               # a crowd of dots: 25 px
    gt[7:9, 7:9] = 6                               # one dot: 4 px  -> floor 71 px
    pred = np.full((10, 10), 30)                   # floor: 100 - 9 - 4 - 4 = 83 px
    pred[0:3, 0:3] = 20                            # a dot inside the crowd
    pred[7:9, 7:9] = 21                            # the single dot, exact
    pred[3:5, 3:5] = 22                            # a box inside the crowd of dots
    stats = pq_stats_single(gt, segs((1, 7), (5, 1), (6, 1), crowd=(5,)),
                            pred, segs((30, 7), (20, 1), (21, 1), (22, 2)), CATEGORIES)
    assert (stats[1].tp, stats[1].fp, stats[1].fn) == (1, 0, 0), "the crowd is not FN, the dot in it not FP"
    assert (stats[2].tp, stats[2].fp, stats[2].fn) == (0, 1, 0), "a crowd of dots does not excuse a box"
    assert stats[7].iou_sum == pytest.approx(71 / 83)


def test_unpredicted_pixels_count_against_the_prediction():
    """Predicted id 0 means "no prediction", not VOID: as in panopticapi, those pixels stay in the
    union. (torchmetrics removes them, and would give IoU 1 here; DETR's merge leaves a whole image
    unpredicted when no query is kept.)"""
    gt = np.full((10, 10), 1)
    gt[0:4, 0:4] = 2                               # dot: 16 px
    pred = np.full((10, 10), 1)
    pred[0:4, 0:4] = 0
    pred[0:4, 0:3] = 2                             # 12 px of it found, 4 px unpredicted
    stats = pq_stats_single(gt, segs((1, 7), (2, 1)), pred, segs((1, 7), (2, 1)), CATEGORIES)
    assert stats[1].tp == 1 and stats[1].iou_sum == pytest.approx(12 / 16)
    empty = pq_stats_single(gt, segs((1, 7), (2, 1)), np.zeros_like(gt), [], CATEGORIES)
    assert (empty[1].fn, empty[7].fn) == (1, 1), "nothing predicted: every true segment is missed"


def test_iou_of_exactly_one_half_is_no_match():
    gt = np.full((4, 8), 1)
    gt[0, 0:6] = 2                                 # dot: 6 px
    for start, matched in ((2, False), (1, True)):
        pred = np.full((4, 8), 1)
        pred[0, start:start + 6] = 2               # IoU 4/8 = 0.5, then 5/7
        stats = pq_stats_single(gt, segs((1, 7), (2, 1)), pred, segs((1, 7), (2, 1)), CATEGORIES)
        assert (stats[1].tp, stats[1].fp, stats[1].fn) == ((1, 0, 0) if matched else (0, 1, 1))


def test_inconsistent_inputs_are_named():
    ids = np.ones((4, 4), np.int64)
    ids[0, 0] = 2
    with pytest.raises(ValueError, match=r"prediction.*\[2\].*not in segments_info"):
        pq_stats_single(ids, segs((1, 7), (2, 1)), ids, segs((1, 7)), CATEGORIES)
    with pytest.raises(ValueError, match="segment 9 is in segments_info but not in the id map"):
        pq_stats_single(ids, segs((1, 7), (2, 1)), ids, segs((1, 7), (2, 1), (9, 1)), CATEGORIES)
    with pytest.raises(ValueError, match="unknown category_id 3"):
        pq_stats_single(ids, segs((1, 7), (2, 1)), ids, segs((1, 7), (2, 3)), CATEGORIES)


# ---- the reference: torchmetrics ---------------------------------------------------------------

def to_torchmetrics(ids, segments):
    """(H, W) ids -> (1, H, W, 2) (category_id, instance id); VOID gets category 0, unknown there."""
    category = np.zeros_like(ids)
    for s in segments:
        category[ids == s["id"]] = s["category_id"]
    return torch.from_numpy(np.stack([category, ids], -1))[None]


def reference_cases():
    """Synthetic scenes against other scenes, shifted copies of themselves and VOID-striped truths."""
    cases = []
    for i in range(4):
        gt = synthetic.make_scene(0, i, size=(64, 80))
        other = synthetic.make_scene(1, i, size=(64, 80))
        cases.append(((gt.ids, gt.segments), (other.ids, other.segments)))
        shifted = np.roll(gt.ids, shift=(i + 1, 2 * i), axis=(0, 1))
        cases.append(((gt.ids, gt.segments), (shifted, gt.segments)))
        void_gt = gt.ids.copy()
        void_gt[::7] = 0                           # unlabelled rows in the ground truth
        present = set(np.unique(void_gt).tolist())
        cases.append(((void_gt, [s for s in gt.segments if s["id"] in present]),
                      (other.ids, other.segments)))
    return cases


def test_agrees_with_torchmetrics():
    from torchmetrics.detection import PanopticQuality

    categories = synthetic.CATEGORIES
    things = {c["id"] for c in categories if c["isthing"]}
    stuffs = {c["id"] for c in categories if not c["isthing"]}
    cases = reference_cases()
    reference = PanopticQuality(things=things, stuffs=stuffs, return_sq_and_rq=True)
    for (gt_ids, gt_segments), (pred_ids, pred_segments) in cases:
        reference.update(to_torchmetrics(pred_ids, pred_segments), to_torchmetrics(gt_ids, gt_segments))
    ours = pq_compute(cases, categories)
    pq, sq, rq = reference.compute().tolist()
    assert (ours.summary["All"]["pq"], ours.summary["All"]["sq"], ours.summary["All"]["rq"]) == \
        pytest.approx((pq, sq, rq), abs=1e-6)
    assert 0.1 < pq < 0.9, "a case in which both right and wrong segments occur"
    for k, category_id in enumerate(sorted(things) + sorted(stuffs)):
        stat = ours.stats.get(category_id, CategoryStat())
        assert stat.tp == reference.true_positives[k]
        assert stat.fp == reference.false_positives[k]
        assert stat.fn == reference.false_negatives[k]
        assert stat.iou_sum == pytest.approx(reference.iou_sum[k].item(), abs=1e-6)  # it sums float32 IoUs


def test_files_and_table(tmp_path, capsys):
    paths = synthetic.write_dataset(tmp_path, num_images=2, seed=0)
    result = pq_compute_files(paths.annotation_file, paths.panoptic_dir,
                              paths.annotation_file, paths.panoptic_dir)
    assert result.summary["All"]["pq"] == pytest.approx(1.0)
    print_pq_table(result, synthetic.CATEGORIES)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["|", "PQ", "SQ", "RQ", "N"]
    assert lines[2].split()[:3] == ["All", "|", "100.0"]
    assert lines[3].startswith("Things") and lines[4].startswith("Stuff")
    assert "circle" in out and "sky" in out
    assert format_pq_table(result).count("\n") == 4, "without categories: the summary only"


def test_mask_iou_matrix():
    from detr_explained.pq import mask_iou
    a = np.zeros((2, 4, 4), dtype=bool)
    a[0, :2] = True                          # top half, 8 pixels
    b = np.zeros((3, 4, 4), dtype=bool)
    b[0, :1] = True                          # top row, 4 pixels: IoU 4/8 with a[0]
    b[1, 2:] = True                          # bottom half: disjoint from a[0]
    iou = mask_iou(a, b)                     # a[1] and b[2] are empty
    assert iou.shape == (2, 3)
    assert iou.tolist() == [[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="same"):
        mask_iou(a, np.zeros((1, 3, 3), dtype=bool))
