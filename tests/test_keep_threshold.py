"""A model's own keep threshold (book/07_train_it_yourself.ipynb): the class score a query needs
to be kept by the merge goes with the "no object" weight the model was trained with, so the
model's config carries both, and every function given a model or a trace uses its threshold."""
import dataclasses

import pytest
import torch

import detr_explained as de
from detr_explained import config, explore, inference, synthetic
from detr_explained.coco_panoptic import open_dataset
from detr_explained.evaluate import evaluate, load_trained_model
from detr_explained.merge import KEEP_THRESHOLD, select_queries


def test_official_presets_keep_the_official_threshold_and_weight():
    for name in ("detr-r50-panoptic", "detr-r50-dc5-panoptic", "detr-r101-panoptic", "detr-tiny"):
        assert de.get_config(name).keep_threshold == KEEP_THRESHOLD == 0.85
        assert de.get_config(name).eos_coef == de.losses.EOS_COEF == 0.1
    tiny = de.get_config("detr-tiny-synthetic")
    assert (tiny.keep_threshold, tiny.eos_coef) == (0.4, 1.0)


def test_a_file_written_before_the_fields_keeps_the_official_values(tmp_path):
    """A model.pth whose saved config has no keep_threshold / eos_coef was trained with the
    official weight: it is loaded with 0.85 and 0.1, not with the preset's 0.4 and 1."""
    model = de.build_model("detr-tiny-synthetic")
    saved = {k: v for k, v in dataclasses.asdict(model.config).items() if k not in ("keep_threshold", "eos_coef")}
    torch.save({"model": model.state_dict(), "config": saved}, tmp_path / "model.pth")
    loaded = load_trained_model(tmp_path / "model.pth")
    assert (loaded.config.keep_threshold, loaded.config.eos_coef) == (0.85, 0.1)
    assert config.saved_config_fields(saved)["keep_threshold"] == 0.85


@pytest.mark.parametrize("bad", [1.0, -0.1, 2])
def test_build_model_refuses_a_threshold_that_is_not_a_score(bad):
    with pytest.raises((ValueError, TypeError), match="keep_threshold"):
        de.build_model("detr-tiny-synthetic", keep_threshold=bad)


def test_keep_threshold_of_models_configs_and_wrapped_models():
    model = de.build_model("detr-tiny-synthetic")
    assert config.keep_threshold(model) == config.keep_threshold(model.config) == 0.4

    class Wrapped(torch.nn.Module):          # as DistributedDataParallel holds it: .module
        def __init__(self):
            super().__init__()
            self.module = model
    assert config.keep_threshold(Wrapped()) == 0.4
    assert config.keep_threshold(torch.nn.Linear(2, 2)) == 0.85   # says nothing: the official value


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("held_out")
    synthetic.write_dataset(str(root), num_images=6, seed=1, min_side=128, max_side=128)
    return open_dataset(root)


def test_segment_evaluate_and_traces_use_the_models_threshold(held_out):
    """The shipped model (0.4): segment, evaluate and trace_image keep what the explicit 0.4
    keeps, and another model config (0.85) changes what they keep by default."""
    model = de.build_model("detr-tiny-synthetic", pretrained=True)
    strict = de.build_model("detr-tiny-synthetic", pretrained=True, keep_threshold=0.85)
    images = [held_out[k][0] for k in range(len(held_out))]
    default, explicit = inference.segment(model, images), inference.segment(model, images, threshold=0.4)
    assert [r.segments_info for r in default] == [r.segments_info for r in explicit]
    assert [r.segments_info for r in inference.segment(strict, images)] == \
        [r.segments_info for r in inference.segment(model, images, threshold=0.85)]
    assert evaluate(model, held_out).summary == evaluate(model, held_out, threshold=0.4).summary
    assert evaluate(strict, held_out).summary == evaluate(model, held_out, threshold=0.85).summary
    kept_counts = []
    for m in (model, strict):
        traced = explore.trace_image(m, images[0], synthetic.CATEGORY_NAMES)
        assert traced.keep_threshold == m.config.keep_threshold
        rows = explore.query_rows(traced)
        _, _, kept = select_queries(traced.trace.pred_logits[0], m.config.keep_threshold)
        assert {r["query"] for r in rows if r["kept"]} == set(kept.tolist())
        assert traced.result.segments_info == explore.merge_result(traced).segments_info
        kept_counts.append(len(kept))
    assert kept_counts[0] >= kept_counts[1]
