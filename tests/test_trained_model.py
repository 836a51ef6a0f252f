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
# The bar, a margin below what the shipped file reaches on these 40 scenes (PQ 77.4, things 59.7,
# stuff 95.1; on all 200: 76.9, 59.2, 94.6, see detr_explained/weights/README.md), and above what
# a broken file or merge gives (circle and rectangle swapped: 56.2, things 17.3; untrained or
# nothing kept: 0). The previous file (stride 32, 20 queries: 74.5 / 54.4 / 94.7 here) fails it.
MIN_PQ = {"All": 0.73, "Things": 0.56, "Stuff": 0.90}
# The recorded PQ on all 200 held-out scenes: at least the previous file's 73.3, with a margin.
# (Issue 9 asks for 0.80; this file does not reach it yet.)
TARGET_PQ = 0.75


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


def test_record_beside_the_weights():
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
    assert record["eval_images"] == 200 and record["pq"]["All"]["pq"] >= TARGET_PQ
    size = os.path.getsize(hub.shipped_checkpoint(NAME)) / 1e6
    assert abs(record["weights_megabytes"] - size) < 0.01


def test_quality_on_held_out_scenes(shipped, held_out):
    scores = pq(evaluate(shipped, held_out))
    assert all(scores[group] >= bar for group, bar in MIN_PQ.items()), scores


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
