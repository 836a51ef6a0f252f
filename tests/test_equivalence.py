"""detr_explained against the official implementation (detr==0.1.4), same weights.

The official model is built by the oracle helper and given our state dict with strict=True, so
these tests also prove the checkpoint layout. Max abs differences are printed (pytest -s).
"""
import io

import numpy as np
import pytest
import torch
from PIL import Image

import detr_explained as de
from detr_explained.demo import planted_model

import oracle
from conftest import random_image

TOLERANCE = 1e-4  # the bound; in practice the outputs agree bit for bit (0.0)


@pytest.fixture(scope="module")
def official(r50):
    model = oracle.build_official()
    model.load_state_dict(r50.state_dict(), strict=True)
    return model


def max_differences(ours, theirs):
    return {key: (ours[key] - theirs[key]).abs().max().item()
            for key in ("pred_logits", "pred_boxes", "pred_masks")}


@pytest.mark.parametrize("sizes", [
    [(128, 160)],               # divisible by 32
    [(100, 150)],               # not divisible by 32
    [(97, 131)],                # odd sizes
    [(96, 130), (120, 100)],    # a batch of two different sizes: padding and masks
], ids=["128x160", "100x150", "97x131", "batch-of-two"])
def test_outputs_equal_official(r50, official, sizes):
    images = [random_image(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    with torch.no_grad():
        ours, theirs = r50(images), official(images)
    for key in ("pred_logits", "pred_boxes", "pred_masks"):
        assert ours[key].shape == theirs[key].shape
    differences = max_differences(ours, theirs)
    print(sizes, differences)
    assert max(differences.values()) <= TOLERANCE


def test_dc5_equals_official():
    torch.manual_seed(1)
    ours = de.build_model("detr-r50-dc5-panoptic")
    official = oracle.build_official(dilation=True)
    official.load_state_dict(ours.state_dict(), strict=True)
    images = [random_image(96, 128)]
    with torch.no_grad():
        a, b = ours(images), official(images)
    assert a["pred_masks"].shape == (1, 100, 24, 32)
    assert max(max_differences(a, b).values()) <= TOLERANCE


def test_r101_layout_loads_into_official():
    torch.manual_seed(2)
    ours = de.build_model("detr-r101-panoptic")
    official = oracle.build_official("resnet101")
    assert len(ours.state_dict()) == len(official.state_dict()) == 745
    official.load_state_dict(ours.state_dict(), strict=True)


def planted_pair(height, width, image_seed, model_seed):
    """An image, a planted stand-in model that keeps about 20 queries on it, and the official
    model with the same weights."""
    image = random_image(height, width, seed=image_seed)
    ours = planted_model("detr-r50-panoptic", [image], seed=model_seed)
    official = oracle.build_official()
    official.load_state_dict(ours.state_dict(), strict=True)
    return image, ours, official


def test_bit_for_bit_on_trained_like_weights():
    """With realistic kept queries the whole forward still matches exactly, not just closely."""
    image, ours, official = planted_pair(160, 224, image_seed=3, model_seed=0)
    with torch.no_grad():
        a, b = ours([image]), official([image])
    assert all(torch.equal(a[k], b[k]) for k in ("pred_logits", "pred_boxes", "pred_masks"))


def assert_same_segments(ours, official):
    """Pixel for pixel and segment for segment; our ids are the official ones + 1 (0 is VOID)."""
    official_ids = de.rgb2id(np.array(Image.open(io.BytesIO(official["png_string"]))))
    assert np.array_equal(ours.id_map.numpy(), official_ids + 1)
    theirs = [(s["id"] + 1, s["category_id"], s["isthing"], s["area"]) for s in official["segments_info"]]
    assert [(s["id"], s["category_id"], s["isthing"], s["area"]) for s in ours.segments_info] == theirs
    return len(theirs)


@pytest.mark.parametrize("size,target", [((160, 224), (160, 224)), ((150, 200), (300, 400)),
                                         ((150, 200), (111, 170))],
                         ids=["same-size", "upscaled-target", "odd-target"])
def test_merge_equals_official_postprocessor(size, target):
    image = random_image(*size, seed=4)
    model = planted_model("detr-r50-panoptic", [image], seed=1)
    with torch.no_grad():
        outputs = model([image])
    theirs = oracle.official_postprocessor()(outputs, torch.as_tensor([size]), torch.as_tensor([target]))[0]
    ours = de.merge_panoptic(outputs, [size], [target], stuff_merge="official")[0]
    assert assert_same_segments(ours, theirs) >= 10


def test_official_merge_crashes_where_ours_returns_void(r50):
    """detr==0.1.4 fails when no query passes the threshold (random weights keep none): its
    util.misc.interpolate for empty tensors calls a helper that no longer exists."""
    image = random_image(96, 128)
    with torch.no_grad():
        outputs = r50([image])
    with pytest.raises(NameError, match="_output_size"):
        oracle.official_postprocessor()(outputs, torch.as_tensor([[96, 128]]))
    result = de.merge_panoptic(outputs, [(96, 128)])[0]
    assert result.segments_info == [] and int(result.id_map.max()) == 0


def test_fast_segment_equals_official_end_to_end():
    image, model, official = planted_pair(192, 256, image_seed=5, model_seed=2)
    with torch.no_grad():
        theirs = oracle.official_postprocessor()(official([image]), torch.as_tensor([[192, 256]]))[0]
    ours = de.segment(model, [image], stuff_merge="official")[0]
    assert assert_same_segments(ours, theirs) >= 10


def test_position_encoding_equals_official():
    official = oracle.load().position_encoding.PositionEmbeddingSine(128, normalize=True)
    mask = torch.zeros(2, 9, 13, dtype=torch.bool)
    mask[1, 6:, :] = True
    mask[1, :, 10:] = True
    images = oracle.load().misc.NestedTensor(torch.zeros(2, 3, 9, 13), mask)
    ours = de.backbone.SinePositionEncoding(128)(mask)
    assert torch.equal(ours, official(images))


def test_prepare_image_equals_official_transform():
    import matplotlib.cbook
    transforms = oracle.load_transforms()
    photo = de.load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg"))
    official = transforms.Compose([
        transforms.RandomResize([800], max_size=1333), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    theirs, _ = official(photo, None)
    ours = de.prepare_image(photo)
    assert ours.shape == theirs.shape == (3, 937, 800)
    assert torch.allclose(ours, theirs, atol=1e-6)
