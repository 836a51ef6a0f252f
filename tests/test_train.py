"""The training command (book/07_train_it_yourself.ipynb): it learns, saves, resumes exactly,
never overwrites a run by accident, and runs in two processes under torchrun."""
import json
import os
import subprocess
import sys

import pytest
import torch

import detr_explained as de
from detr_explained import train
from detr_explained.coco_panoptic import collate, open_dataset
from detr_explained.evaluate import load_trained_model
from detr_explained.losses import SetCriterion
from detr_explained.synthetic import NUM_CLASSES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(data_dir, out, *extra):
    """The command line, in this process; --val-size 0: no held-out set, so no evaluation;
    --threads 1: with one thread a run repeats bit for bit (with two, even two identical runs
    differ by rounding), so a resumed run can be compared bit for bit with an uninterrupted one."""
    train.main(["--data", data_dir, "--out", str(out), "--batch-size", "4", "--val-size", "0",
                "--threads", "1", *map(str, extra)])


def test_preset_trains_from_scratch():
    """No ImageNet weights offline: the synthetic preset has ordinary, trainable batch norm."""
    model = de.build_model("detr-tiny-synthetic")
    assert model.config.num_classes == NUM_CLASSES
    assert isinstance(model.detr.backbone.resnet.body.bn1, torch.nn.BatchNorm2d)
    args = train.build_parser().parse_args(["--data", "d", "--out", "o"])
    assert train.default_lr_backbone(args, frozen_batchnorm=False) == args.lr
    assert train.default_lr_backbone(args, frozen_batchnorm=True) == train.LR_PRETRAINED_BACKBONE


def test_optimizer_gives_the_backbone_its_own_learning_rate():
    model = de.build_model("detr-tiny-synthetic")
    optimizer = train.build_optimizer(model, lr=1e-4, lr_backbone=3e-5, weight_decay=1e-4)
    rest, backbone = optimizer.param_groups
    assert (rest["lr"], backbone["lr"]) == (1e-4, 3e-5)
    assert sum(p.numel() for p in backbone["params"]) == sum(
        p.numel() for p in model.detr.backbone.parameters())
    assert train.set_learning_rate(optimizer, step=10, lr_drop=10) == pytest.approx(1e-5)


def test_loss_is_finite_and_falls_on_one_batch(data_dir):
    """Overfitting one batch: the smallest sign that the losses, the matcher and the optimiser
    fit together."""
    torch.manual_seed(0)
    model = de.build_model("detr-tiny-synthetic").train()
    model.detr.aux_loss = True
    criterion = SetCriterion(NUM_CLASSES)
    optimizer = train.build_optimizer(model, lr=1e-3, lr_backbone=1e-3, weight_decay=1e-4)
    images, targets = collate([open_dataset(data_dir)[i] for i in range(2)])
    losses = [train.train_step(model, criterion, optimizer, images, targets, clip=0.1)["loss"]
              for _ in range(6)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.95 * losses[0], losses  # about 0.89 after 6 steps


def test_bfloat16_forward_gives_float32_losses_close_to_float32_ones(data_dir):
    """--precision bfloat16: the forward under autocast, the losses in float32 and within bfloat16's
    rounding of the float32 ones; the weights stay float32 and the loss falls as in float32."""
    import copy

    from detr_explained.losses import float32_outputs

    torch.manual_seed(0)
    model = de.build_model("detr-tiny-synthetic", dropout=0.0).train()
    model.detr.aux_loss = True
    twin = copy.deepcopy(model)
    criterion = SetCriterion(NUM_CLASSES)
    images, targets = collate([open_dataset(data_dir)[i] for i in range(2)])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        raw = model(images, select=criterion.match_for(targets))
    assert raw["pred_logits"].dtype == torch.bfloat16  # autocast really ran the head in bfloat16
    outputs = float32_outputs(raw)
    assert outputs["pred_logits"].dtype == torch.float32
    assert all(a["pred_boxes"].dtype == torch.float32 for a in outputs["aux_outputs"])
    full = criterion(twin(images, select=criterion.match_for(targets)), targets)["loss"].item()
    half = criterion(outputs, targets)["loss"].item()
    assert half == pytest.approx(full, rel=0.02) and half != full
    optimizer = train.build_optimizer(model, lr=1e-3, lr_backbone=1e-3, weight_decay=1e-4)
    losses = [train.train_step(model, criterion, optimizer, images, targets, clip=0.1,
                               precision="bfloat16")["loss"] for _ in range(6)]
    assert losses[-1] < 0.95 * losses[0], losses
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16"):
        train.train_step(model, criterion, optimizer, images, targets, clip=0.1, precision="float16")


def test_random_hflip_mirrors_image_masks_and_boxes_together(data_dir):
    """A mirrored sample is still a correct sample: its boxes are the boxes of its mirrored masks."""
    from torchvision.ops import box_convert, masks_to_boxes
    images, targets = collate([open_dataset(data_dir)[i] for i in range(2)])
    flipped_images, flipped = train.random_hflip(images, targets, probability=1.0)
    for image, target, new_image, new in zip(images, targets, flipped_images, flipped):
        assert torch.equal(new_image, image.flip(-1))
        assert torch.equal(new["masks"], target["masks"].flip(-1))
        height, width = new["masks"].shape[-2:]
        boxes = masks_to_boxes(new["masks"])
        boxes[:, 2:] += 1
        expected = box_convert(boxes, "xyxy", "cxcywh") / torch.tensor([width, height, width, height])
        torch.testing.assert_close(new["boxes"], expected)
        assert not torch.equal(new["boxes"], target["boxes"])
        assert torch.equal(new["labels"], target["labels"])
    # the originals are untouched, and probability 0 changes nothing
    assert train.random_hflip(images, targets, probability=0.0) == (images, targets)
    torch.testing.assert_close(collate([open_dataset(data_dir)[0]])[1][0]["boxes"], targets[0]["boxes"])


def test_masks_of_matched_queries_only_give_the_same_losses_and_gradients(data_dir):
    """Training computes masks only for the matched queries (``select``): the losses and every
    gradient must equal those of the full forward, which computes all N masks."""
    torch.manual_seed(0)
    model = de.build_model("detr-tiny-synthetic", dropout=0.0).train()  # no random draws
    model.detr.aux_loss = True
    criterion = SetCriterion(NUM_CLASSES)
    images, targets = collate([open_dataset(data_dir)[i] for i in range(3)])

    def losses_and_grads(**kwargs):
        model.zero_grad()
        outputs = model(images, **kwargs)
        losses = criterion(outputs, targets)
        losses["loss"].backward()
        return outputs, losses, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    full_out, full, full_grads = losses_and_grads()
    fast_out, fast, fast_grads = losses_and_grads(select=criterion.match_for(targets))
    assert "pred_masks" in full_out and "pred_masks" not in fast_out
    matched = sum(len(t["labels"]) for t in targets)
    assert fast_out["selected_masks"].shape == (matched, *full_out["pred_masks"].shape[-2:])
    assert set(full) == set(fast)
    for name in full:
        torch.testing.assert_close(fast[name], full[name], rtol=1e-4, atol=1e-5, msg=name)
    assert set(full_grads) == set(fast_grads) == {n for n, p in model.named_parameters() if p.requires_grad}
    for name in full_grads:
        torch.testing.assert_close(fast_grads[name], full_grads[name], rtol=1e-3, atol=1e-5, msg=name)


def test_checkpoint_resume_and_shipped_model(data_dir, tmp_path):
    # 1 step, then 2 more resumed (from the middle of an epoch: 8 images / batch 4 = 2 steps),
    # equal 3 steps in one go: the same weights and optimiser state.
    run(data_dir, tmp_path / "split", "--steps", 1)
    first = train.load_training_checkpoint(tmp_path / "split")
    assert (first["step"], first["epoch"]) == (1, 0)
    run(data_dir, tmp_path / "split", "--steps", 3, "--resume")
    run(data_dir, tmp_path / "whole", "--steps", 3)
    resumed = train.load_training_checkpoint(tmp_path / "split")
    whole = train.load_training_checkpoint(tmp_path / "whole")
    assert resumed["step"] == whole["step"] == 3
    for key, value in whole["model"].items():  # bit for bit, with one thread
        assert torch.equal(resumed["model"][key], value), key
    assert resumed["optimizer"]["state"][0]["step"] == 3

    # The checkpoint records what made it, as plain types.
    assert resumed["config"]["backbone"] == "resnet10"
    assert resumed["args"]["batch_size"] == 4
    # model.pth: only the state dict, in float16, read by hub.read_checkpoint.
    shipped = de.read_checkpoint(tmp_path / "split" / "model.pth")
    assert shipped["mask_head.out_lay.weight"].dtype == torch.float16
    model = load_trained_model(tmp_path / "split" / "model.pth")
    assert torch.allclose(model.state_dict()["detr.query_embed.weight"],
                          whole["model"]["detr.query_embed.weight"], rtol=1e-3, atol=1e-4)  # float16
    assert (tmp_path / "split" / "log.jsonl").read_text().count('"step": 3') == 1


def test_build_model_loads_the_shipped_model(data_dir, tmp_path):
    run(data_dir, tmp_path, "--steps", 1)
    de.build_model("detr-tiny-synthetic", checkpoint=tmp_path / "model.pth")


def test_never_overwrites_a_run_by_accident(data_dir, tmp_path, capsys):
    run(data_dir, tmp_path, "--steps", 1)
    with pytest.raises(SystemExit) as exit_info:
        run(data_dir, tmp_path, "--steps", 1)
    assert exit_info.value.code == 2
    assert "--resume" in capsys.readouterr().err
    assert train.check_run_dir(str(tmp_path), resume=False, overwrite=True) is None
    assert "no" in train.check_run_dir(str(tmp_path / "new"), resume=True, overwrite=False)


def test_hflip_must_be_a_probability(data_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(data_dir, tmp_path, "--steps", 1, "--hflip", 1.5)
    assert exit_info.value.code == 2
    assert "argument --hflip: 1.5 is not a probability" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "log.jsonl")  # refused before anything was written


def test_two_processes_with_torchrun(data_dir, tmp_path):
    """torchrun --nproc_per_node=2: gloo on the CPU, each process half of every epoch, one
    checkpoint written by process 0."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "detr_explained.train", "--data", data_dir, "--out", str(out), "--steps", "2",
         "--batch-size", "2", "--val-size", "2"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["checkpoint.pth", "log.jsonl", "model.pth"]
    checkpoint = train.load_training_checkpoint(out)
    assert checkpoint["step"] == 2
    assert len(checkpoint["rng"]) == 2  # each process's random state, to resume exactly
    assert completed.stdout.count("PQ on the 2 held-out images") == 1  # process 0 alone prints


def test_set_changes_fields_of_the_preset_and_resume_keeps_them(data_dir, tmp_path, capsys):
    run(data_dir, tmp_path, "--steps", 1, "--set", "dilation=true", "--set", "num_queries=12")
    saved = train.load_training_checkpoint(tmp_path)
    assert (saved["config"]["dilation"], saved["config"]["num_queries"]) == (True, 12)
    assert saved["model"]["detr.query_embed.weight"].shape[0] == 12
    for name in ("checkpoint.pth", "model.pth"):  # both carry the config: not the preset's
        model = load_trained_model(tmp_path / name)
        assert model.config.dilation and model.config.num_queries == 12, name
        assert model.detr.backbone.resnet.strides["res5"] == 16
    # Resuming with other fields would not continue the same model: refused, nothing touched.
    before = (tmp_path / "checkpoint.pth").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        run(data_dir, tmp_path, "--steps", 2, "--resume", "--set", "num_queries=13")
    assert exit_info.value.code == 2 and "leave them out to resume" in capsys.readouterr().err
    assert (tmp_path / "checkpoint.pth").read_bytes() == before
    run(data_dir, tmp_path, "--steps", 2, "--resume")
    assert train.load_training_checkpoint(tmp_path)["config"]["num_queries"] == 12


def test_precision_option_trains_and_resume_keeps_it(data_dir, tmp_path, capsys):
    run(data_dir, tmp_path, "--steps", 1, "--precision", "bfloat16")
    saved = train.load_training_checkpoint(tmp_path)
    assert saved["args"]["precision"] == "bfloat16"
    run(data_dir, tmp_path, "--steps", 2, "--resume")
    assert train.load_training_checkpoint(tmp_path)["args"]["precision"] == "bfloat16"
    assert load_trained_model(tmp_path / "model.pth").config.num_classes == NUM_CLASSES
    with pytest.raises(SystemExit):
        run(data_dir, tmp_path / "other", "--steps", 1, "--precision", "float16")
    assert "invalid choice: 'float16'" in capsys.readouterr().err


@pytest.mark.parametrize("assignment, message", [
    ("dilation=maybe", "dilation takes true or false"),
    ("num_queries=0", "at least 1"),
    ("num_classes=9", "num_classes comes from the data"),
    ("queries=30", "'queries' is not a field you can set"),
    ("dropout=1", "from 0 up to (not including) 1"),
    ("num_queries", "give FIELD=VALUE"),
])
def test_set_refuses_what_is_not_a_field_value(data_dir, tmp_path, capsys, assignment, message):
    with pytest.raises(SystemExit) as exit_info:
        run(data_dir, tmp_path, "--steps", 1, "--set", assignment)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "log.jsonl")


def test_loss_weight_changes_the_total_and_resume_keeps_it(data_dir, tmp_path, capsys, monkeypatch):
    """--loss-weight loss_dice=3: the criterion the run builds weighs DICE by 3 (the auxiliary
    layers' class and box losses keep theirs), the checkpoint remembers it, and --resume uses it."""
    built = []
    real = train.SetCriterion

    def recording(*args, **kwargs):
        criterion = real(*args, **kwargs)
        built.append(dict(criterion.weights))
        return criterion

    monkeypatch.setattr(train, "SetCriterion", recording)
    run(data_dir, tmp_path, "--steps", 1, "--loss-weight", "loss_dice=3", "--loss-weight", "loss_mask=0.5")
    assert built[-1] == dict(de.losses.LOSS_WEIGHTS, loss_dice=3.0, loss_mask=0.5)
    assert "loss weights loss_ce 1, loss_bbox 5, loss_giou 2, loss_mask 0.5, loss_dice 3" in capsys.readouterr().out
    assert dict(train.load_training_checkpoint(tmp_path)["args"]["loss_weights"]) == {"loss_dice": 3.0,
                                                                                       "loss_mask": 0.5}
    capsys.readouterr()
    run(data_dir, tmp_path, "--steps", 2, "--resume", "--loss-weight", "loss_dice=1")
    assert built[-1]["loss_dice"] == 3.0 and train.load_training_checkpoint(tmp_path)["step"] == 2
    assert ("resuming with the checkpoint's --loss-weight loss_dice=3 --loss-weight loss_mask=0.5 "
            "(not --loss-weight loss_dice=1)") in capsys.readouterr().err
    # A checkpoint written before the option existed ran with the official weights: so does its resume.
    old = train.load_training_checkpoint(tmp_path)
    del old["args"]["loss_weights"]
    torch.save(old, tmp_path / "checkpoint.pth")
    run(data_dir, tmp_path, "--steps", 3, "--resume", "--loss-weight", "loss_dice=7")
    assert built[-1] == de.losses.LOSS_WEIGHTS
    assert "the official loss weights (not --loss-weight loss_dice=7)" in capsys.readouterr().err
    run(data_dir, tmp_path / "plain", "--steps", 1)
    assert built[-1] == de.losses.LOSS_WEIGHTS


def test_eos_coef_weighs_no_object_and_resume_keeps_it(data_dir, tmp_path, capsys, monkeypatch):
    """--eos-coef 0.5: the criterion the run builds gives "no object" the weight 0.5 (by default
    the model config's: 1 for detr-tiny-synthetic, the official 0.1 for the other presets), the
    checkpoint and the model's config remember it, --resume uses it, and a checkpoint written
    before the option existed resumes with the official 0.1."""
    built = []
    real = train.SetCriterion

    def recording(*args, **kwargs):
        criterion = real(*args, **kwargs)
        built.append(float(criterion.class_weight[-1]))
        return criterion

    monkeypatch.setattr(train, "SetCriterion", recording)
    run(data_dir, tmp_path / "plain", "--steps", 1)
    assert built[-1] == 1.0 == de.get_config("detr-tiny-synthetic").eos_coef
    saved = train.load_training_checkpoint(tmp_path / "plain")
    assert saved["args"]["eos_coef"] == 1.0 and saved["args"]["eval_threshold"] == 0.4
    run(data_dir, tmp_path / "official", "--steps", 1, "--config", "detr-tiny")
    assert built[-1] == pytest.approx(de.losses.EOS_COEF)
    run(data_dir, tmp_path, "--steps", 1, "--eos-coef", 0.5)
    assert built[-1] == 0.5
    assert '"no object" weight 0.5' in capsys.readouterr().out
    assert train.load_training_checkpoint(tmp_path)["args"]["eos_coef"] == 0.5
    assert load_trained_model(tmp_path / "model.pth").config.eos_coef == 0.5
    run(data_dir, tmp_path, "--steps", 2, "--resume", "--eos-coef", 0.25)
    assert built[-1] == 0.5 and train.load_training_checkpoint(tmp_path)["step"] == 2
    assert "resuming with the checkpoint's --eos-coef 0.5 (not --eos-coef 0.25)" in capsys.readouterr().err
    run(data_dir, tmp_path, "--steps", 3, "--resume")          # not given: the saved one, no note
    assert built[-1] == 0.5 and "--eos-coef" not in capsys.readouterr().err
    old = train.load_training_checkpoint(tmp_path)
    del old["args"]["eos_coef"]
    torch.save(old, tmp_path / "checkpoint.pth")
    run(data_dir, tmp_path, "--steps", 4, "--resume", "--eos-coef", 0.25)
    assert built[-1] == pytest.approx(de.losses.EOS_COEF)


@pytest.mark.parametrize("assignment, message", [
    ("keep_threshold=1.5", "from 0 up to"), ("keep_threshold=high", "keep_threshold takes a number"),
    ("eos_coef=1", "set with --eos-coef 1")])
def test_set_refuses_a_bad_keep_threshold_and_the_no_object_weight(data_dir, tmp_path, capsys, assignment, message):
    with pytest.raises(SystemExit) as exit_info:
        run(data_dir, tmp_path / "run", "--steps", 1, "--set", assignment)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run")


def test_set_keep_threshold_is_saved_and_used_by_evaluation(data_dir, tmp_path, capsys):
    """--set keep_threshold=0.7: the model's config carries it into model.pth, the run's
    periodic evaluation uses it, and --init-from may change it (the architecture it may not)."""
    train.main(["--data", data_dir, "--val-size", "2", "--out", str(tmp_path / "a"), "--batch-size", "4",
                "--threads", "1", "--steps", "1", "--set", "keep_threshold=0.7"])
    assert train.load_training_checkpoint(tmp_path / "a")["args"]["eval_threshold"] == 0.7
    assert "PQ with queries kept above 0.7" in capsys.readouterr().out
    assert load_trained_model(tmp_path / "a" / "model.pth").config.keep_threshold == 0.7
    run(data_dir, tmp_path / "b", "--steps", 1, "--init-from", tmp_path / "a" / "model.pth",
        "--set", "keep_threshold=0.6")
    assert load_trained_model(tmp_path / "b" / "model.pth").config.keep_threshold == 0.6
    with pytest.raises(SystemExit):
        run(data_dir, tmp_path / "c", "--steps", 1, "--init-from", tmp_path / "a" / "model.pth",
            "--set", "num_queries=5")
    assert "only --set keep_threshold" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "nan", "one"])
def test_eos_coef_refuses_what_is_not_a_positive_weight(data_dir, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        run(data_dir, tmp_path / "run", "--steps", 1, "--eos-coef", value)
    assert exit_info.value.code == 2
    assert "--eos-coef" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run")


def logged_rates(out) -> dict[int, float]:
    with open(os.path.join(out, "log.jsonl")) as f:
        return {r["step"]: r["lr"] for r in map(json.loads, f) if "lr" in r}


def test_lr_drop_minutes_drops_at_the_step_the_clock_says_and_resume_keeps_it(data_dir, tmp_path, capsys):
    """--lr-drop-minutes: once process 0's training clock passes it, the rate is x 0.1 from the
    next step on, and that step is saved as lr_drop, so --resume continues with the dropped rate
    (and does not call it a change of the command line). 0.0001 minutes pass during step 1."""
    run(data_dir, tmp_path, "--steps", 2, "--log-every", 1, "--lr", 1e-3, "--lr-drop-minutes", 0.0001)
    out = capsys.readouterr()
    assert "step 1: learning rate x 0.1 from here on (--lr-drop-minutes 0.0001" in out.out
    assert "x 0.1 after 0.0001 min of training" in out.out
    saved = train.load_training_checkpoint(tmp_path)["args"]
    assert saved["lr_drop"] == 1 and saved["lr_drop_minutes"] == 0.0001
    assert logged_rates(tmp_path) == {1: pytest.approx(1e-3), 2: pytest.approx(1e-4)}
    run(data_dir, tmp_path, "--steps", 3, "--log-every", 1, "--resume")
    assert logged_rates(tmp_path)[3] == pytest.approx(1e-4)
    assert "--lr-drop 1 " not in capsys.readouterr().err   # the clock's drop is not a changed option
    # a long drop time: the rate stays as given, and nothing is saved as lr_drop
    run(data_dir, tmp_path / "late", "--steps", 2, "--log-every", 1, "--lr", 1e-3, "--lr-drop-minutes", 60)
    assert list(logged_rates(tmp_path / "late").values()) == pytest.approx([1e-3, 1e-3])
    assert train.load_training_checkpoint(tmp_path / "late")["args"]["lr_drop"] is None


def test_lr_drop_minutes_after_the_guard_is_noted_and_both_drops_refused(data_dir, tmp_path, capsys):
    run(data_dir, tmp_path / "never", "--steps", 1, "--lr-drop-minutes", 5, "--max-minutes", 5)
    assert ("--lr-drop-minutes 5 is not before --max-minutes 5: the learning rate never drops"
            in capsys.readouterr().err)
    with pytest.raises(SystemExit) as exit_info:
        run(data_dir, tmp_path / "both", "--steps", 1, "--lr-drop", 1, "--lr-drop-minutes", 5)
    assert exit_info.value.code == 2
    assert "not allowed with argument --lr-drop" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "both")


def test_loss_weights_scale_the_total_as_asked():
    """The total is the weighted sum of the named losses: doubling DICE's weight adds one more
    DICE loss to it, whatever the other losses are."""
    torch.manual_seed(0)
    outputs = {"pred_logits": torch.randn(1, 3, NUM_CLASSES + 1), "pred_boxes": torch.rand(1, 3, 4) * 0.5 + 0.25,
               "pred_masks": torch.randn(1, 3, 8, 8)}
    masks = torch.zeros(1, 32, 32, dtype=torch.bool)
    masks[0, 4:20, 6:18] = True
    targets = [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.375, 0.375, 0.375, 0.5]]), "masks": masks}]
    plain = SetCriterion(NUM_CLASSES)(outputs, targets)
    weights = de.recipes.stage_loss_weights("both", {"loss_dice": 2.0})
    doubled = SetCriterion(NUM_CLASSES, weights=weights)(outputs, targets)
    torch.testing.assert_close(doubled["loss"], plain["loss"] + plain["loss_dice"])


@pytest.mark.parametrize("argv, message", [
    (["--loss-weight", "loss_dice"], "give LOSS=WEIGHT"),
    (["--loss-weight", "dice=2"], "'dice' is not one of the losses; choose from loss_ce, loss_bbox"),
    (["--loss-weight", "loss_dice=two"], "the weight must be a number"),
    (["--loss-weight", "loss_dice=-1"], "a finite number of 0 or more"),
    (["--loss-weight", "loss_dice=nan"], "a finite number of 0 or more"),
    (["--stage", "masks", "--init-from", "detr-tiny-synthetic", "--loss-weight", "loss_ce=2"],
     "loss_ce has no effect in the masks stage"),
])
def test_loss_weight_refuses_what_is_not_a_loss_and_a_weight(data_dir, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        run(data_dir, tmp_path / "run", "--steps", 1, *argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run")


def test_ema_averages_the_weights_and_ships_the_average(data_dir, tmp_path):
    """--ema 0.5 over two steps: the average is 0.5 * (weights after step 1) + 0.5 * (after step 2)
    (torch's AveragedModel copies the first step's weights, then averages), it is what model.pth
    holds, and it resumes exactly."""
    run(data_dir, tmp_path / "split", "--steps", 1, "--ema", 0.5)
    first = train.load_training_checkpoint(tmp_path / "split")
    assert int(first["ema"]["n_averaged"]) == 1
    run(data_dir, tmp_path / "split", "--steps", 2, "--resume")
    run(data_dir, tmp_path / "whole", "--steps", 2, "--ema", 0.5)
    resumed = train.load_training_checkpoint(tmp_path / "split")
    whole = train.load_training_checkpoint(tmp_path / "whole")
    key = "detr.class_embed.weight"
    expected = 0.5 * first["model"][key] + 0.5 * whole["model"][key]
    assert torch.allclose(whole["ema"]["model"][key], expected, atol=1e-7)
    assert not torch.equal(whole["ema"]["model"][key], whole["model"][key])
    for name, value in whole["ema"]["model"].items():  # resumed bit for bit, batch-norm statistics too
        assert torch.equal(resumed["ema"]["model"][name], value), name
    shipped = de.read_checkpoint(tmp_path / "whole" / "model.pth")
    assert torch.equal(shipped[key], whole["ema"]["model"][key].half())
