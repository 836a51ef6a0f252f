"""DETR's losses: zero for a perfect prediction, growing with the error, and each term equal to
its formula worked out by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from detr_explained.losses import (EOS_COEF, FOCAL_ALPHA, FOCAL_GAMMA, LOSS_WEIGHTS, SetCriterion,
                                   dice_loss, focal_loss)

C = 3          # classes; logits have C + 1 entries
N = 6          # queries
BIG = 100.0    # a logit this large is certainty


def block_masks(height, width, blocks):
    """(K, H, W) masks made of whole 4x4 blocks, so a (H/4, W/4) prediction can be exact."""
    masks = torch.zeros(len(blocks), height, width, dtype=torch.bool)
    for k, (y0, y1, x0, x1) in enumerate(blocks):
        masks[k, 4 * y0:4 * y1, 4 * x0:4 * x1] = True
    return masks


def make_batch():
    """Two images of different sizes (so the batch is padded), 2 and 1 segments."""
    targets = [
        {"labels": torch.tensor([0, 2]),
         "boxes": torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.75, 0.625, 0.5, 0.75]]),
         "masks": block_masks(16, 24, [(0, 2, 0, 3), (1, 4, 3, 6)])},
        {"labels": torch.tensor([1]),
         "boxes": torch.tensor([[0.5, 0.5, 0.5, 0.5]]),
         "masks": block_masks(12, 16, [(1, 2, 1, 3)])},
    ]
    return targets


def perfect_outputs(targets, queries=((4, 1), (0,)), stride=1):
    """Outputs in which query queries[b][k] predicts segment k of image b exactly.

    Masks are given at 1/stride of the padded batch size. At stride 4 (the model's) they are exact
    only up to bilinear upsampling, which rounds each corner of a block by a pixel.
    """
    height = max(t["masks"].shape[1] for t in targets)
    width = max(t["masks"].shape[2] for t in targets)
    logits = torch.full((len(targets), N, C + 1), -BIG)
    logits[..., C] = BIG                                       # no object, unless matched below
    boxes = torch.full((len(targets), N, 4), 0.1)
    masks = torch.full((len(targets), N, height // stride, width // stride), -BIG)
    for b, (t, qs) in enumerate(zip(targets, queries)):
        for k, q in enumerate(qs):
            logits[b, q] = -BIG
            logits[b, q, t["labels"][k]] = BIG
            boxes[b, q] = t["boxes"][k]
            small = t["masks"][k, ::stride, ::stride]         # (H/stride, W/stride)
            masks[b, q, :small.shape[0], :small.shape[1]] = torch.where(small, BIG, -BIG)
    return {"pred_logits": logits, "pred_boxes": boxes, "pred_masks": masks}


def test_perfect_prediction_costs_nothing():
    targets = make_batch()
    outputs = perfect_outputs(targets)
    outputs["aux_outputs"] = [{"pred_logits": outputs["pred_logits"], "pred_boxes": outputs["pred_boxes"]}]
    losses = SetCriterion(num_classes=C)(outputs, targets)
    for name in ("loss_ce", "loss_bbox", "loss_giou", "loss_mask", "loss_dice", "loss_ce_0",
                 "loss_bbox_0", "loss_giou_0", "loss"):
        assert losses[name].item() == pytest.approx(0.0, abs=1e-4), name


def test_each_loss_grows_with_its_error():
    targets = make_batch()
    criterion = SetCriterion(num_classes=C)
    previous = None
    for shift in (0.0, 0.02, 0.05, 0.1):
        outputs = perfect_outputs(targets)
        outputs["pred_boxes"][0, 4, :2] += shift              # move one box
        losses = criterion(outputs, targets)
        if previous is not None:
            assert losses["loss_bbox"] > previous["loss_bbox"]
            assert losses["loss_giou"] > previous["loss_giou"]
        previous = losses
    # L1 is summed over the 4 coordinates and divided by the 3 boxes of the batch.
    assert previous["loss_bbox"].item() == pytest.approx(2 * 0.1 / 3, abs=1e-5)

    outputs = perfect_outputs(targets)
    outputs["pred_logits"][0, 4] = 0.0                        # unsure about one class
    unsure = criterion(outputs, targets)["loss_ce"]
    outputs["pred_logits"][0, 4, 1] = BIG                     # sure of the wrong class (1, not 0)
    wrong = criterion(outputs, targets)["loss_ce"]
    assert 0.0 < unsure < wrong

    outputs = perfect_outputs(targets)
    outputs["pred_masks"][1, 0] = 0.0                         # a mask of p = 0.5 everywhere
    losses = criterion(outputs, targets)
    assert losses["loss_mask"] > 1e-3 and losses["loss_dice"] > 1e-2


def test_cross_entropy_weights_no_object_by_eos_coef():
    """One image, one segment matched to query 0: weighted mean of per-query cross-entropies."""
    torch.manual_seed(0)
    logits = torch.randn(1, N, C + 1)
    target = {"labels": torch.tensor([2]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}
    boxes = torch.full((1, N, 4), 0.9)
    boxes[0, 0] = target["boxes"][0]                           # query 0 is the obvious match
    boxes[0, :, 2:] = 0.1
    boxes[0, 0, 2:] = 0.2
    criterion = SetCriterion(num_classes=C)
    loss = criterion({"pred_logits": logits, "pred_boxes": boxes}, [target])["loss_ce"]
    assert criterion.last_indices[0][0].tolist() == [0]
    log_prob = logits[0].log_softmax(-1)                      # (N, C+1)
    per_query = [-log_prob[0, 2]] + [-log_prob[q, C] for q in range(1, N)]
    weights = [1.0] + [EOS_COEF] * (N - 1)
    expected = sum(w * l for w, l in zip(weights, per_query)) / sum(weights)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_focal_loss_by_hand():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    total = 0.0
    for row in range(2):
        row_sum = 0.0
        for x, t in zip(logits[row].tolist(), targets[row].tolist()):
            p = 1 / (1 + math.exp(-x))
            if t == 1:
                row_sum += FOCAL_ALPHA * (1 - p) ** FOCAL_GAMMA * -math.log(p)
            else:
                row_sum += (1 - FOCAL_ALPHA) * p ** FOCAL_GAMMA * -math.log(1 - p)
        total += row_sum / 2                                   # mean over the 2 pixels
    num_boxes = 4.0
    assert focal_loss(logits, targets, num_boxes).item() == pytest.approx(total / num_boxes, rel=1e-5)


def test_dice_loss_by_hand():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0]])             # p = 0.5 everywhere
    targets = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    # 1 - (2 * (0.5 + 0.5) + 1) / ((4 * 0.5 + 2) + 1) = 1 - 3/5
    assert dice_loss(logits, targets, 1.0).item() == pytest.approx(0.4, abs=1e-6)
    assert dice_loss(logits, targets, 2.0).item() == pytest.approx(0.2, abs=1e-6)


def test_masks_are_upsampled_to_the_padded_batch():
    """(B, N, H/4, W/4) mask logits are upsampled bilinearly to the padded (H, W) and compared
    with the zero-padded true masks."""
    targets = make_batch()
    outputs = perfect_outputs(targets, stride=4)
    losses = SetCriterion(num_classes=C)(outputs, targets)
    # By hand: image 0 queries 4, 1 -> segments 0, 1; image 1 query 0 -> segment 0.
    small = torch.stack([outputs["pred_masks"][0, 4], outputs["pred_masks"][0, 1],
                         outputs["pred_masks"][1, 0]])                  # (3, 4, 6)
    up = F.interpolate(small[:, None], size=(16, 24), mode="bilinear", align_corners=False)[:, 0]
    padded = torch.zeros(3, 16, 24)
    padded[0], padded[1] = targets[0]["masks"].float()
    padded[2, :12, :16] = targets[1]["masks"][0].float()
    assert losses["loss_mask"].item() == pytest.approx(
        focal_loss(up.flatten(1), padded.flatten(1), 3.0).item(), rel=1e-5)
    assert losses["loss_dice"].item() == pytest.approx(
        dice_loss(up.flatten(1), padded.flatten(1), 3.0).item(), rel=1e-5)
    # Near zero: only the corner pixels of each block are rounded off.
    assert losses["loss_dice"] < 0.05
    # Predicting the small image's mask over its padding too is an error the loss must see.
    outputs["pred_masks"][1, 0, :, 4:] = BIG                  # columns 16..23: all padding
    assert SetCriterion(num_classes=C)(outputs, targets)["loss_dice"] > losses["loss_dice"] + 0.05


def test_total_is_the_weighted_sum_and_gradients_flow():
    torch.manual_seed(1)
    targets = make_batch()
    outputs = {"pred_logits": torch.randn(2, N, C + 1, requires_grad=True),
               "pred_boxes": torch.rand(2, N, 4).mul(0.5).add(0.2).requires_grad_(),
               "pred_masks": torch.randn(2, N, 4, 6, requires_grad=True)}
    outputs["aux_outputs"] = [{"pred_logits": torch.randn(2, N, C + 1), "pred_boxes": torch.rand(2, N, 4)}
                              for _ in range(2)]
    losses = SetCriterion(num_classes=C)(outputs, targets)
    assert {"loss_ce_1", "loss_bbox_1", "loss_giou_1"} <= set(losses)
    assert "loss_mask_0" not in losses, "no mask losses on intermediate layers"
    expected = sum(LOSS_WEIGHTS[name.rstrip("_01")] * value
                   for name, value in losses.items() if name != "loss")
    assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    losses["loss"].backward()
    for name in ("pred_logits", "pred_boxes", "pred_masks"):
        assert outputs[name].grad is not None and outputs[name].grad.abs().sum() > 0, name


def test_wrong_number_of_classes_is_explained():
    targets = make_batch()
    outputs = perfect_outputs(targets)
    with pytest.raises(ValueError, match="num_classes"):
        SetCriterion(num_classes=C + 2)(outputs, targets)


def test_batch_without_segments():
    targets = [{"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4),
                "masks": torch.zeros(0, 8, 8, dtype=torch.bool)}]
    outputs = {"pred_logits": torch.randn(1, N, C + 1), "pred_boxes": torch.rand(1, N, 4),
               "pred_masks": torch.randn(1, N, 2, 2)}
    losses = SetCriterion(num_classes=C)(outputs, targets)
    expected_ce = F.cross_entropy(outputs["pred_logits"][0], torch.full((N,), C))
    assert losses["loss_ce"].item() == pytest.approx(expected_ce.item(), rel=1e-5)
    assert losses["loss_bbox"].item() == 0 and losses["loss_dice"].item() == 0
