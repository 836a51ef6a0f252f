"""The shipped detr-tiny-synthetic weights (book/07_train_it_yourself.ipynb): small, loadable,
recorded, and good on held-out scenes, by a bar that broken weights or a broken merge fail."""
import os

import pytest
import torch

from detr_explained import build_model, hub, inference, synthetic
from detr_explained.coco_panoptic import open_dataset
from detr_explained.evaluate import evaluate
from detr_explained.merge import select_queries

NAME = "detr-tiny-synthetic"
# The first scenes of the 200 held-out ones the record's PQ is measured on (seed 1, 128 px; a
# scene depends on its seed and index only). 40 scenes evaluate in about a second.
EVAL_SCENES = 40
# The bar, a margin below what the shipped file reaches on these 40 scenes (PQ 80.1, things 65.2,
# stuff 95.0; on all 200: 80.9, 66.7, 95.1, see detr_explained/weights/README.md), and above what
# a broken file or merge gives (circle and rectangle swapped: 58.4, things 21.9; merged above the
# official 0.85 instead of the model's own 0.4: 70.9, things 52.8; untrained or nothing kept: 0).
# The previous file (run E: 77.4 / 59.7 / 95.1 here) fails it.
MIN_PQ = {"All": 0.78, "Things": 0.62, "Stuff": 0.92}
# Issue 9's bar for the recorded PQ on all 200 held-out scenes, and on the other seeds' scenes.
TARGET_PQ = {"All": 0.80, "Things": 0.65}
# How far the second run of the same command may land from the shipped file (issue 9).
RERUN_POINTS = 3


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("held_out")
    synthetic.write_dataset(str(root), num_images=EVAL_SCENES, seed=1, min_side=128, max_side=128)
    return open_dataset(root)


@pytest.fixture(scope="module")
def shipped():
    return build_model(NAME, pretrained=True)


def pq(result):
    return {group: result.summary[group]["pq"] for group in MIN_PQ}


def test_weights_are_small_float16_and_load_strictly(shipped):
    path = hub.shipped_checkpoint(NAME)
    assert os.path.getsize(path) <= 10 * 10**6
    state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    for key, value in shipped.state_dict().items():
        assert torch.equal(value, state[key].to(value.dtype)), key


def test_record_beside_the_weights(shipped):
    record = hub.training_record(NAME)
    # one process, or torchrun's processes of the same module
    assert record["command"].startswith(("python -m detr_explained.train ",
                                         "torchrun --standalone --nproc_per_node=2 -m detr_explained.train "))
    assert "--seed" in record["command"] and "--config detr-tiny-synthetic" in record["command"]
    assert all(c.startswith("python -m detr_explained.synthetic ") for c in record["data_commands"])
    assert record["wall_minutes"] <= 60
    # all the steps asked for, or fewer where the command's --max-minutes guard stopped it
    options = record["options"]
    assert record["steps"] == options["steps"] or (
        record["steps"] < options["steps"] and record["train_minutes"] >= 0.99 * options["max_minutes"])
    assert record["eval_images"] == 200
    assert all(record["pq"][group]["pq"] >= bar for group, bar in TARGET_PQ.items()), record["pq"]
    assert record["other_seeds"] and all(row["pq"][group] >= bar for row in record["other_seeds"]
                                         for group, bar in TARGET_PQ.items()), record["other_seeds"]
    assert abs(record["rerun"]["pq"]["All"] - record["pq"]["All"]["pq"]) * 100 <= RERUN_POINTS
    # the threshold the record's PQ was measured at is the model's own
    assert record["keep_threshold"] == shipped.config.keep_threshold == 0.4
    assert record["eos_coef"] == shipped.config.eos_coef == record["options"]["eos_coef"] == 1.0
    size = os.path.getsize(hub.shipped_checkpoint(NAME)) / 1e6
    assert abs(record["weights_megabytes"] - size) < 0.01


def test_quality_on_held_out_scenes(shipped, held_out):
    scores = pq(evaluate(shipped, held_out))
    assert all(scores[group] >= bar for group, bar in MIN_PQ.items()), scores


def test_the_file_carries_its_keep_threshold(shipped):
    """The file's own config says 0.4, so evaluating the file alone (python -m
    detr_explained.evaluate --checkpoint) merges as build_model(pretrained=True) does."""
    from detr_explained.evaluate import load_trained_model
    alone = load_trained_model(hub.shipped_checkpoint(NAME))
    assert alone.config == shipped.config and alone.config.keep_threshold == 0.4


def test_the_bar_fails_at_the_official_threshold(shipped, held_out):
    """A caller that ignores the model's keep threshold and merges above the official 0.85 keeps
    too few queries for this model (trained with "no object" weighted 1)."""
    scores = pq(evaluate(shipped, held_out, threshold=0.85))
    assert scores["All"] < MIN_PQ["All"] and scores["Things"] < MIN_PQ["Things"], scores


def test_the_bar_fails_for_untrained_weights(held_out):
    torch.manual_seed(0)
    scores = pq(evaluate(build_model(NAME), held_out))
    assert scores["All"] < MIN_PQ["All"] and scores["Things"] < MIN_PQ["Things"], scores


def test_the_bar_fails_when_two_classes_are_swapped(shipped, held_out):
    """A subtle break: circle and rectangle swapped in the class layer (a wrong label map)."""
    broken = build_model(NAME, pretrained=True)
    with torch.no_grad():
        for param in (broken.detr.class_embed.weight, broken.detr.class_embed.bias):
            param[[1, 2]] = param[[2, 1]].clone()
    scores = pq(evaluate(broken, held_out))
    assert scores["All"] < MIN_PQ["All"] and scores["Things"] < MIN_PQ["Things"], scores


def test_the_bar_fails_when_the_merge_keeps_nothing(shipped, held_out, monkeypatch):
    """A merge broken so that no query passes (the threshold itself must be below 1)."""
    def keep_none(logits, threshold):
        scores, labels, kept = select_queries(logits, threshold)
        return scores, labels, kept[:0]                               # (0,): nothing kept

    monkeypatch.setattr(inference, "select_queries", keep_none)
    scores = pq(evaluate(shipped, held_out))
    assert scores["All"] < MIN_PQ["All"], scores


def test_missing_weights_are_explained(monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="shipped weights .* are missing"):
        build_model(NAME, pretrained=True)
    with pytest.raises(ValueError, match="no weights ship with the package for 'detr-tiny'"):
        hub.shipped_checkpoint("detr-tiny")
