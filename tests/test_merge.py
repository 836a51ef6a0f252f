"""Stage 5: the argmax merge on hand-made outputs, and the COCO panoptic encoding."""
import io

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as coco_mask

import detr_explained as de
from detr_explained.merge import MAX_REMOVED_AREA, _resize_nearest, segment_boxes

NO_OBJECT = 5  # 5 classes (0..4) + no object


def outputs(masks, classes, confident=True):
    """Hand-made outputs: query i predicts classes[i] (None: no object) with the given masks."""
    n = len(classes)
    logits = torch.full((1, n, NO_OBJECT + 1), -10.0)
    for i, c in enumerate(classes):
        logits[0, i, NO_OBJECT if c is None else c] = 10.0 if confident else -9.0
    return {"pred_logits": logits, "pred_masks": torch.as_tensor(masks, dtype=torch.float32)[None]}


THING = {0: True, 1: True, 2: False, 3: False, 4: False}


def blobs(h=8, w=8):
    """Query 0 wins the left half, query 1 the right half, query 2 (no object) everywhere."""
    left = torch.zeros(h, w)
    left[:, : w // 2] = 5
    return torch.stack([left, 5 - left, torch.full((h, w), 99.0)])


def test_argmax_over_kept_queries_only():
    result = de.merge_panoptic(outputs(blobs(), [0, 1, None]), [(8, 8)], is_thing=THING)[0]
    assert result.id_map[:, :4].eq(1).all() and result.id_map[:, 4:].eq(2).all()
    assert [(s["id"], s["category_id"], s["isthing"], s["area"]) for s in result.segments_info] == [
        (1, 0, True, 32), (2, 1, True, 32)]
    assert result.segments_info[0]["bbox"] == [0, 0, 4, 8]
    assert result.segments_info[1]["queries"] == [1]


def test_nothing_kept_is_all_void():
    result = de.merge_panoptic(outputs(blobs(), [0, 1, 2], confident=False), [(8, 8)])[0]
    assert result.segments_info == [] and result.id_map.eq(0).all() and result.id_map.shape == (8, 8)


def test_small_segments_are_removed_and_reassigned():
    masks = blobs()
    masks[1] = 0
    masks[1, 0, 7] = 20           # query 1 wins a single pixel: area 1 <= 4
    result = de.merge_panoptic(outputs(masks, [0, 1, None]), [(8, 8)], is_thing=THING)[0]
    assert MAX_REMOVED_AREA == 4
    assert [s["category_id"] for s in result.segments_info] == [0]
    assert result.id_map.eq(1).all()


def test_the_small_segment_rule_can_be_changed_or_turned_off():
    masks = blobs()
    masks[1] = 0
    masks[1, 0, 6:] = 20          # query 1 wins two pixels
    kept = outputs(masks, [0, 1, None])
    off = de.merge_panoptic(kept, [(8, 8)], is_thing=THING, max_removed_area=0)[0]
    assert [(s["category_id"], s["area"]) for s in off.segments_info] == [(0, 62), (1, 2)]
    strict = de.merge_panoptic(kept, [(8, 8)], is_thing=THING, max_removed_area=1)[0]
    assert [s["area"] for s in strict.segments_info] == [62, 2]      # 2 pixels > 1: kept
    default = de.merge_panoptic(kept, [(8, 8)], is_thing=THING)[0]
    assert [s["area"] for s in default.segments_info] == [64]        # 2 <= 4: removed
    for bad, error in [(-1, ValueError), (2.5, TypeError), (True, TypeError)]:
        with pytest.raises(error, match="max_removed_area"):
            de.merge_panoptic(kept, [(8, 8)], is_thing=THING, max_removed_area=bad)


def stuff_case():
    """Queries 0 and 1 predict the same stuff class 2, query 2 a thing; query 1's region is
    where query 2 is second best."""
    masks = torch.zeros(3, 8, 8)
    masks[0, :, :3] = 10
    masks[1, :, 3:6] = 10
    masks[2, :, 6:] = 10
    masks[2, :, 3:6] = 5
    return outputs(masks, [2, 2, 0])


def test_union_merges_stuff_of_one_class():
    result = de.merge_panoptic(stuff_case(), [(8, 8)], is_thing=THING)[0]
    info = [(s["category_id"], s["area"], s["queries"]) for s in result.segments_info]
    assert info == [(2, 48, [0, 1]), (0, 16, [2])]


def test_official_mode_undoes_the_merge():
    result = de.merge_panoptic(stuff_case(), [(8, 8)], is_thing=THING, stuff_merge="official")[0]
    info = [(s["category_id"], s["area"]) for s in result.segments_info]
    assert info == [(2, 24), (0, 40)]  # query 1's pixels went to the thing


def test_unknown_stuff_merge():
    with pytest.raises(ValueError, match="stuff_merge"):
        de.merge_panoptic(stuff_case(), [(8, 8)], stuff_merge="both")


def test_batch_padding_is_cropped():
    """The padded image of a batch gets the same result as alone (the official code stretches)."""
    torch.manual_seed(0)
    masks = torch.randn(2, 3, 6, 6).repeat_interleave(2, 2).repeat_interleave(2, 3)  # (B, N, 12, 12)
    logits = torch.full((2, 3, NO_OBJECT + 1), -10.0)
    logits[:, 0, 0] = logits[:, 1, 3] = logits[:, 2, 1] = 10.0
    batch = de.merge_panoptic({"pred_logits": logits, "pred_masks": masks}, [(48, 48), (24, 40)], is_thing=THING)
    alone = de.merge_panoptic({"pred_logits": logits[1:], "pred_masks": masks[1:, :, :6, :10]}, [(24, 40)],
                              is_thing=THING)
    # the same up to bilinear blending across the crop edge, on the last row and column of cells
    agreement = batch[1].id_map.eq(alone[0].id_map).float().mean().item()
    assert agreement > 0.9
    # what the official post-processor does: resize the padded masks to the image size
    stretched = {"pred_logits": logits[1:], "pred_masks": masks[1:]}
    stretched_result = de.merge_panoptic(stretched, [(48, 48)], [(24, 40)], is_thing=THING)[0]
    assert stretched_result.id_map.eq(alone[0].id_map).float().mean().item() < agreement - 0.2


def test_png_is_coco_panoptic():
    result = de.merge_panoptic(outputs(blobs(), [0, 1, None]), [(8, 8)], is_thing=THING)[0]
    decoded = de.rgb2id(np.array(Image.open(io.BytesIO(result.png))))
    assert np.array_equal(decoded, result.id_map.numpy())
    assert de.rgb2id(de.id2rgb(np.array([[0, 1, 256, 65536 + 7]]))).tolist() == [[0, 1, 256, 65543]]


def test_category_map():
    result = de.merge_panoptic(outputs(blobs(), [3, 1, None]), [(8, 8)], is_thing=THING)[0]
    assert result.category_map()[0].tolist() == [3] * 4 + [1] * 4


def test_target_size_resizes_like_pil():
    ids = torch.randint(0, 7, (15, 20))
    resized = _resize_nearest(ids, (11, 37))
    reference = Image.fromarray(ids.numpy().astype(np.uint8)).resize((37, 11), Image.NEAREST)
    assert np.array_equal(resized.numpy(), np.asarray(reference))


def test_boxes_match_pycocotools():
    ids = torch.zeros(30, 40, dtype=torch.long)
    ids[3:9, 5:20] = 1
    ids[10:30, 0:3] = 2
    ids[0, 39] = 3
    boxes = segment_boxes(ids, 3)
    for segment_id in (1, 2, 3):
        rle = coco_mask.encode(np.asfortranarray((ids == segment_id).numpy().astype(np.uint8)))
        assert boxes[segment_id].tolist() == coco_mask.toBbox(rle).astype(int).tolist()


def test_sizes_must_match_batch():
    with pytest.raises(ValueError, match="sizes"):
        de.merge_panoptic(outputs(blobs(), [0, 1, None]), [(8, 8), (8, 8)])
