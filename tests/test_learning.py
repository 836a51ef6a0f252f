"""The official second stage, run for seconds (detr_explained.learning, book/07_train_it_yourself.ipynb):
a new panoptic head on the shipped detector, trained alone, comes to fit the segments' masks
while the detector does not change by a single bit."""
import pytest
import torch

from detr_explained import build_model, learning, synthetic
from detr_explained.coco_panoptic import collate, open_dataset

NAME = "detr-tiny-synthetic"
HEAD = tuple(f"{part}." for part in learning.MASK_PARTS)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Two training scenes at the shipped model's size, 128 x 128."""
    root = tmp_path_factory.mktemp("scenes128")
    synthetic.write_dataset(str(root), num_images=2, seed=0, min_side=128, max_side=128)
    dataset = open_dataset(root)
    return [dataset[i] for i in range(len(dataset))]


@pytest.fixture
def one_thread():
    """One thread, so that the short runs take their few seconds on a busy machine too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_mask_parts_are_the_masks_stage_parts():
    assert learning.MASK_PARTS == ("bbox_attention", "mask_head")


def test_with_new_mask_head_replaces_the_panoptic_head_only():
    shipped = build_model(NAME, pretrained=True).state_dict()
    new = learning.with_new_mask_head(build_model(NAME, pretrained=True), seed=0).state_dict()
    again = learning.with_new_mask_head(build_model(NAME, pretrained=True), seed=0).state_dict()
    other = learning.with_new_mask_head(build_model(NAME, pretrained=True), seed=1).state_dict()
    for key, value in new.items():
        if key.startswith(HEAD):
            assert torch.equal(value, again[key]), key           # the seed decides the new weights
        else:
            assert torch.equal(value, shipped[key]), key         # the detector is the shipped one
    for part in HEAD:
        weights = [k for k in new if k.startswith(part) and k.endswith("weight")]
        assert not any(torch.equal(new[k], shipped[k].to(new[k].dtype)) for k in weights if "gn" not in k), part
        assert not all(torch.equal(new[k], other[k]) for k in weights), part


def test_with_new_mask_head_leaves_the_random_state_alone():
    model = build_model(NAME, pretrained=True)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    learning.with_new_mask_head(model)
    assert torch.equal(torch.rand(3), expected)


def test_the_iou_of_matched_masks_tells_a_trained_head_from_a_new_one(scenes):
    images, targets = collate(scenes)
    shipped = build_model(NAME, pretrained=True)
    trained = learning.matched_mask_iou(shipped, images, targets)
    assert [len(t) for t in trained] == [len(t["labels"]) for t in targets]
    assert torch.cat(trained).mean() > 0.7
    new = learning.matched_mask_iou(learning.with_new_mask_head(shipped), images, targets)
    assert torch.cat(new).mean() < 0.3
    assert not shipped.training                                   # left in the mode it had


def test_kept_query_masks_are_the_kept_queries_with_their_segments(scenes):
    image, target = scenes[0]
    shipped = build_model(NAME, pretrained=True)
    masks = learning.kept_query_masks(shipped, image, target)
    assert masks.queries and masks.probabilities.shape == (len(masks.queries), 32, 32)
    matched = [k for k, j in enumerate(masks.segments) if j is not None]
    assert matched and all(int(target["labels"][masks.segments[k]]) == masks.labels[k] for k in matched)
    assert sum(masks.iou[k] for k in matched) / len(matched) > 0.7


def test_the_second_stage_fits_the_masks_and_leaves_the_detector(scenes, one_thread):
    model = learning.with_new_mask_head(build_model(NAME, pretrained=True))
    detector = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(HEAD)}
    head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(HEAD)}
    scene = scenes[:1]   # one scene, learnt by heart: the quickest check that the head learns
    run = learning.train_mask_stage(model, scene, steps=150, batch_size=1, lr=1e-3, eval_items=scene,
                                    eval_every=75, hflip=0.0)
    assert run.iou_steps == [0, 75, 150] and len(run.losses) == 150
    iou = run.mean_iou()
    assert iou[-1] > 2 * iou[0] and iou[-1] > iou[0] + 0.1, iou
    state = model.state_dict()
    for key, value in detector.items():   # weights and batch-norm statistics, bit for bit
        assert torch.equal(state[key], value), key
    assert any(not torch.equal(state[k], v) for k, v in head.items())
    assert all(r["loss"] == pytest.approx(r["loss_mask"] + r["loss_dice"], rel=1e-5) for r in run.losses)
    assert not model.training


def test_train_mask_stage_refuses_a_batch_larger_than_the_data(scenes):
    model = build_model(NAME, pretrained=True)
    with pytest.raises(ValueError, match="batch_size"):
        learning.train_mask_stage(model, scenes, steps=1, batch_size=3)
