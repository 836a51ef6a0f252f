"""Fine-tuning (--init-from) and the official two-stage recipe (--stage boxes, then --stage masks)
of the training command (book/09_your_own_dataset.ipynb): what is kept, what is re-initialised,
what is frozen, and what is refused."""
import json

import pytest
import torch

from detr_explained import recipes, runs, train
from detr_explained.evaluate import load_trained_model
from detr_explained.hub import read_checkpoint, shipped_checkpoint

from test_robust_commands import fails_with


def run(data_dir, out, *extra):
    return train.main(["--data", data_dir, "--out", str(out), "--batch-size", "4", "--val-size", "2",
                       "--threads", "1", "--progress", "lines", *map(str, extra)])


@pytest.fixture(scope="module")
def star_data(tmp_path_factory):
    """The synthetic scenes with one category more, 9 'star' (a thing no scene has): 10 classes
    instead of 7, so the shipped class head does not fit."""
    from detr_explained.synthetic import write_dataset
    root = tmp_path_factory.mktemp("star")
    write_dataset(str(root), num_images=8, seed=0, min_side=64, max_side=96)
    path = root / "panoptic.json"
    data = json.loads(path.read_text())
    data["categories"].append({"id": 9, "name": "star", "isthing": 1, "supercategory": "shape"})
    path.write_text(json.dumps(data))
    return str(root)


def weights(path):
    return read_checkpoint(path)


def test_fine_tuning_to_new_categories_keeps_all_but_the_class_head(star_data):
    shipped = weights(shipped_checkpoint("detr-tiny-synthetic"))
    initial = recipes.read_initial_weights("detr-tiny-synthetic")
    from detr_explained.coco_panoptic import open_dataset
    from detr_explained.evaluate import category_list
    categories = category_list(open_dataset(star_data).categories.values())
    assert not recipes.same_categories(initial, categories)
    torch.manual_seed(0)
    model, kept = recipes.build_from_initial(initial, categories, num_classes=10)
    assert not kept
    state = model.state_dict()
    assert state["detr.class_embed.weight"].shape == (11, 128)          # 10 classes + no object
    assert shipped["detr.class_embed.weight"].shape == (8, 128)
    for key, value in shipped.items():
        if not key.startswith(recipes.CLASS_HEAD):
            assert torch.equal(state[key], value.to(state[key].dtype)), key


def test_same_categories_keep_every_weight(data_dir):
    from detr_explained.coco_panoptic import open_dataset
    from detr_explained.evaluate import category_list
    initial = recipes.read_initial_weights("detr-tiny-synthetic")
    categories = category_list(open_dataset(data_dir).categories.values())
    model, kept = recipes.build_from_initial(initial, categories, num_classes=7)
    assert kept
    assert torch.equal(model.state_dict()["detr.class_embed.weight"],
                       initial.state_dict["detr.class_embed.weight"].float())


def test_init_from_a_run_then_evaluate_on_the_new_categories(star_data, tmp_path, capsys):
    record = run(star_data, tmp_path / "ft", "--steps", 2, "--init-from", "detr-tiny-synthetic")
    out = capsys.readouterr().out
    assert "class head re-initialised" in out
    assert set(record) >= {"pq_all", "pq_things"}
    saved = runs.load_training_checkpoint(tmp_path / "ft")
    assert saved["args"]["init_from"] == "detr-tiny-synthetic"
    assert saved["config"]["num_classes"] == 10
    assert [c["name"] for c in saved["categories"]][-1] == "star"
    # a run's model.pth is itself a starting point, and on the same categories nothing is reset
    run(star_data, tmp_path / "again", "--steps", 1, "--init-from", tmp_path / "ft" / runs.MODEL_FILE)
    assert "all weights kept" in capsys.readouterr().out


def test_box_stage_trains_the_detector_only(data_dir, tmp_path):
    record = run(data_dir, tmp_path / "boxes", "--steps", 2, "--stage", "boxes",
                 "--init-from", "detr-tiny-synthetic")
    assert "pq_all" not in record and record["step"] == 2        # no mask head trained: no PQ
    before = weights(shipped_checkpoint("detr-tiny-synthetic"))
    after = runs.load_training_checkpoint(tmp_path / "boxes")["model"]
    for key, value in before.items():
        same = torch.equal(after[key], value.float())
        if key.startswith(("bbox_attention.", "mask_head.")):
            assert same, f"{key} changed in the box stage"
    assert not torch.equal(after["detr.class_embed.weight"], before["detr.class_embed.weight"].float())


def test_mask_stage_freezes_the_whole_detector_batch_norm_included(data_dir, tmp_path):
    start = tmp_path / "boxes"
    run(data_dir, start, "--steps", 1, "--stage", "boxes", "--model-dtype", "float32")
    box_model = weights(start / runs.MODEL_FILE)
    record = run(data_dir, tmp_path / "masks", "--steps", 2, "--stage", "masks",
                 "--init-from", start / runs.MODEL_FILE)
    assert "pq_all" in record
    after = runs.load_training_checkpoint(tmp_path / "masks")["model"]
    changed = [key for key, value in box_model.items() if not torch.equal(after[key], value)]
    assert changed and all(key.startswith(("bbox_attention.", "mask_head.")) for key in changed), changed
    assert any(key.startswith("mask_head.") for key in changed)
    # the losses that count in the mask stage are the mask losses only
    log = [json.loads(line) for line in (tmp_path / "masks" / runs.LOG_FILE).read_text().splitlines()]
    last = [r for r in log if "loss" in r][-1]
    assert last["loss"] == pytest.approx(last["loss_mask"] + last["loss_dice"], rel=1e-4)
    # resuming keeps the stage
    run(data_dir, tmp_path / "masks", "--steps", 3, "--resume")
    resumed = runs.load_training_checkpoint(tmp_path / "masks")
    assert resumed["args"]["stage"] == "masks"
    for key in box_model:
        if key.startswith("detr."):
            assert torch.equal(resumed["model"][key], box_model[key]), key
    load_trained_model(tmp_path / "masks" / runs.MODEL_FILE)


@pytest.mark.parametrize("extra, says", [
    (["--stage", "masks"], "give that model with --init-from"),
    (["--init-from", "detr-tiny-synthetic", "--config", "detr-tiny"], "leave out --config and --set"),
    (["--init-from", "no/such/model.pth"], "no such file, and not the name of shipped weights"),
    (["--stage", "both-ways"], "invalid choice"),
])
def test_refused_before_anything_is_written(data_dir, tmp_path, capsys, extra, says):
    err = fails_with(capsys, run, data_dir, tmp_path / "run", "--steps", 1, *extra)
    assert says in err
    assert not (tmp_path / "run").exists()


def test_mask_stage_on_a_model_of_other_categories_is_refused(star_data, tmp_path, capsys):
    err = fails_with(capsys, run, star_data, tmp_path / "run", "--steps", 1, "--stage", "masks",
                     "--init-from", "detr-tiny-synthetic")
    assert "other categories" in err and "--stage boxes" in err
    assert not (tmp_path / "run").exists()


def test_a_pretrained_backbone_trains_only_layer2_to_layer4(data_dir, tmp_path):
    """The official configs (frozen batch norm, meant for pretrained weights) train as the
    official BackboneBase does: stem and layer1 frozen; detr-tiny-synthetic (from scratch) does not."""
    import detr_explained as de
    model = de.build_model("detr-tiny")
    frozen = recipes.freeze_pretrained_stem(model)
    stem = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen > 0 and stem and all(".body.conv1." in n or ".body.layer1." in n for n in stem)
    assert all(p.requires_grad for n, p in model.named_parameters() if ".layer2." in n or "transformer" in n)
    run(data_dir, tmp_path / "tiny", "--steps", 1, "--config", "detr-tiny", "--val-size", "0")
    saved = runs.load_training_checkpoint(tmp_path / "tiny")
    torch.manual_seed(0)
    fresh = de.build_model("detr-tiny", num_classes=7).state_dict()
    for name in stem:
        assert torch.equal(saved["model"][name], fresh[name]), name
    changed = "detr.backbone.0.body.layer2.0.conv1.weight"
    assert not torch.equal(saved["model"][changed], fresh[changed])
    run(data_dir, tmp_path / "scratch", "--steps", 1, "--val-size", "0")   # detr-tiny-synthetic
    saved = runs.load_training_checkpoint(tmp_path / "scratch")
    torch.manual_seed(0)
    fresh = de.build_model("detr-tiny-synthetic").state_dict()
    assert not torch.equal(saved["model"]["detr.backbone.0.body.conv1.weight"], fresh["detr.backbone.0.body.conv1.weight"])
