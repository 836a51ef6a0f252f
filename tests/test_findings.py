"""The analyses of detr_explained.findings: on hand-made maps whose answer is known, and on the
book's trained model, where they must agree with PQ and with the trace."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from detr_explained import build_model, examples, explore, findings
from detr_explained.merge import PanopticResult

NAMES = {1: "circle", 2: "rectangle", 4: "sky", 5: "ground"}


def traced_by_hand(pred_ids, pred_segments):
    """A stand-in for explore.Traced with a 4 x 8 ground truth: sky on the top half, ground below,
    a circle (id 30) and a rectangle (id 40) on the ground."""
    gt = np.full((4, 8), 10, dtype=np.int64)              # sky
    gt[2:] = 20                                            # ground
    gt[2:, 0:2] = 30                                       # circle, 4 px
    gt[2:, 4:8] = 40                                       # rectangle, 8 px
    truth = [{"id": 10, "category_id": 4, "isthing": 0}, {"id": 20, "category_id": 5, "isthing": 0},
             {"id": 30, "category_id": 1, "isthing": 1}, {"id": 40, "category_id": 2, "isthing": 1}]
    for segment in truth:
        segment["area"] = int((gt == segment["id"]).sum())
    ids = torch.as_tensor(pred_ids, dtype=torch.int64)
    for segment in pred_segments:
        segment.setdefault("isthing", int(segment["category_id"] in (1, 2)))
        segment.setdefault("score", 0.9)
        segment["area"] = int((ids == segment["id"]).sum())
    return SimpleNamespace(truth=(gt, truth), result=PanopticResult(ids, pred_segments),
                           category_names=NAMES)


def test_match_segments_names_found_missed_duplicated_and_wrong_class():
    pred = np.full((4, 8), 1)                              # sky, exact
    pred[2:] = 2                                           # ground, exact
    pred[2:, 4:6] = 3                                      # rectangle, left half: IoU 0.5, not above
    pred[2:, 6:8] = 4                                      # rectangle, right half: IoU 0.5
    pred[2:, 0:2] = 5                                      # "rectangle" on the circle: wrong class
    segments = [{"id": 1, "category_id": 4, "queries": [7]}, {"id": 2, "category_id": 5, "queries": [3]},
                {"id": 3, "category_id": 2, "queries": [0]}, {"id": 4, "category_id": 2, "queries": [5]},
                {"id": 5, "category_id": 2, "queries": [9]}]
    truth_rows, predicted_rows = findings.match_segments(traced_by_hand(pred, segments))
    assert [r["found_by"] for r in truth_rows] == ["sky", "ground", None, None]
    assert [r["queries"] for r in truth_rows] == [[7], [3], [], []]
    assert truth_rows[3]["iou"] == pytest.approx(0.5)       # the best of its class, not a match
    assert truth_rows[2]["iou"] == 0.0                       # no circle was predicted
    assert [r["verdict"] for r in predicted_rows] == ["match", "match", "loose", "loose", "wrong class"]
    lines = findings.outcome(truth_rows, predicted_rows)
    assert lines[0].startswith("Found: 2 of 4")
    assert "circle (4 px" in lines[1] and "rectangle (8 px" in lines[1]
    assert lines[2] == "Duplicated: none."
    assert "wrong class on the circle" in lines[3]


def test_a_second_segment_on_a_found_shape_is_a_duplicate():
    pred = np.full((4, 8), 1)
    pred[2:] = 2
    pred[2:, 0:2] = 3                                      # the circle, exact
    pred[2:, 4:8] = 4                                      # the rectangle, exact ...
    pred[3, 7] = 5                                         # ... but one pixel, a second rectangle
    segments = [{"id": 1, "category_id": 4, "queries": [0]}, {"id": 2, "category_id": 5, "queries": [1]},
                {"id": 3, "category_id": 1, "queries": [2]}, {"id": 4, "category_id": 2, "queries": [3]},
                {"id": 5, "category_id": 2, "queries": [4]}]
    truth_rows, predicted_rows = findings.match_segments(traced_by_hand(pred, segments))
    assert all(r["found_by"] is not None for r in truth_rows)
    assert predicted_rows[-1]["verdict"] == "duplicate" and predicted_rows[-1]["lies_on"] == "rectangle"
    lines = findings.outcome(truth_rows, predicted_rows)
    assert lines[:2] == [lines[0], "Missed: none."]
    assert lines[2].startswith("Duplicated: the rectangle, found by query 3, also has a rectangle segment of query 4")


def test_segment_names_number_within_a_class():
    segments = [{"category_id": 1}, {"category_id": 4}, {"category_id": 1}, {"category_id": 99}]
    assert findings.segment_names(segments, NAMES) == ["circle", "sky", "circle 2", "class 99"]


def test_cell_coverage_and_most_covered_cell():
    ids = np.zeros((4, 6), dtype=np.int64)
    ids[:2, 2:5] = 7                                       # cells of 2 x 2: (0, 1) full, (0, 2) half
    cover = findings.cell_coverage(ids, 7, 2)
    assert cover.shape == (2, 3)
    assert cover.tolist() == [[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]]
    assert findings.most_covered_cell(ids, 7, 2) == (0, 1)
    total = findings.cell_coverage(ids, 7, 2) + findings.cell_coverage(ids, 0, 2)
    assert torch.allclose(total, torch.ones(2, 3))        # every pixel in one segment


def test_model_sizes_read_the_model():
    model = build_model("detr-tiny")
    sizes = findings.model_sizes(model)
    assert sizes["N, object queries"] == str(model.config.num_queries)
    assert sizes["parameters"] == f"{sum(p.numel() for p in model.parameters()):,}"
    assert sizes["Res5 stride"].startswith("32")


@pytest.fixture(scope="module")
def book():
    return examples.book_scene()


def test_on_the_book_scene_the_pairs_are_pqs(book):
    truth_rows, predicted_rows = findings.match_segments(book.traced)
    score = explore.pq_of(book.traced, book.traced.result)
    true_positives = sum(row["tp"] for row in score.per_class.values())
    assert sum(r["found_by"] is not None for r in truth_rows) == true_positives
    assert sum(r["verdict"] == "match" for r in predicted_rows) == true_positives
    assert len(predicted_rows) - true_positives == sum(row["fp"] for row in score.per_class.values())


def test_on_the_book_scene_the_attention_shares_add_up(book):
    stride = findings.cell_stride(book.traced)
    assert stride * book.traced.grid[0] == book.scene.ids.shape[0]
    probes = findings.encoder_probes(book.traced)
    assert 1 <= len(probes) <= 4
    for probe in probes:
        assert 0 <= probe["on_segment"] <= 1 + 1e-6
        assert probe["favour"] == pytest.approx(probe["on_segment"] / probe["even"])
    most = findings.cell_read_most(book.traced)
    assert most["received"] >= most["next"]
    rows_ = findings.decoder_reading(book.traced)
    kept = findings.kept_queries(book.traced)
    assert [r["query"] for r in rows_] == [r["query"] for r in kept if r["truth"] is not None]
    for row in rows_:
        assert 0 <= row["reads"] <= 1 + 1e-6 and 0 < row["even"] <= 1


def test_an_empty_result_finds_nothing():
    traced = traced_by_hand(np.zeros((4, 8)), [])
    truth_rows, predicted_rows = findings.match_segments(traced)
    assert predicted_rows == [] and all(r["found_by"] is None and r["iou"] == 0.0 for r in truth_rows)
    assert findings.outcome(truth_rows, predicted_rows)[:3] == [
        "Found: 0 of 4 ground-truth segments.",
        "Missed: sky (16 px; the best IoU of a predicted segment of its class: 0.00); ground (4 px; the "
        "best IoU of a predicted segment of its class: 0.00); circle (4 px; the best IoU of a predicted "
        "segment of its class: 0.00); rectangle (8 px; the best IoU of a predicted segment of its class: "
        "0.00).", "Duplicated: none."]
