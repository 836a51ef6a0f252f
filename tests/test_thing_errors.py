"""scripts/thing_errors.py (issue 9's error analysis): its sorting of unmatched thing segments agrees
with PQ's own counts, so the kinds add up to PQ's false negatives and false positives."""
import os
import sys

import pytest

from detr_explained import build_model, synthetic
from detr_explained.coco_panoptic import open_dataset
from detr_explained.evaluate import evaluate

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))

import thing_errors  # noqa: E402


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("held_out_errors")
    synthetic.write_dataset(str(root), num_images=24, seed=1, min_side=128, max_side=128)
    return open_dataset(root)


@pytest.fixture(scope="module")
def model():
    return build_model("detr-tiny-synthetic", pretrained=True)


def _by_name(counter, dataset):
    totals = {}
    for key, value in counter.items():
        name = key[0] if isinstance(key, tuple) else key
        totals[name] = totals.get(name, 0) + value
    return totals


def test_counts_add_up_to_pq(model, scenes):
    counts = thing_errors.thing_errors(model, scenes)
    stats = evaluate(model, scenes).per_class
    things = {c: scenes.categories[c]["name"] for c in stats if scenes.categories[c]["isthing"]}
    assert things, "the scenes have shapes"
    matched, missed, extra = (_by_name(counts[k], scenes) for k in ("matched", "missed", "extra"))
    for category_id, name in things.items():
        assert matched.get(name, 0) == stats[category_id]["tp"], name
        assert missed.get(name, 0) == stats[category_id]["fn"], name
        assert extra.get(name, 0) == stats[category_id]["fp"], name
    assert sum(matched.values()) > 0 and sum(missed.values()) + sum(extra.values()) > 0
    assert len(counts["areas"]["matched"]) == sum(matched.values())


def test_a_model_that_keeps_nothing_misses_every_shape(model, scenes):
    counts = thing_errors.thing_errors(model, scenes, threshold=0.999999)
    assert not counts["matched"] and not counts["extra"]
    kinds = {kind for _, kind in counts["missed"]}
    assert kinds <= {"below the threshold", "not found"}
    assert "below the threshold" in kinds  # the shapes are there, only their scores fall short


def test_command_prints_the_table(model, scenes, capsys):
    thing_errors.main(["--checkpoint", _shipped_path(), "--data", os.path.dirname(scenes.annotation_file), "--threads", "1"])
    out = capsys.readouterr().out
    assert "missed shapes (false negatives)" in out and "duplicate" in out and "area of matched" in out


def _shipped_path():
    from detr_explained import hub
    return hub.shipped_checkpoint("detr-tiny-synthetic")
