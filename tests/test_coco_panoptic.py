"""The COCO panoptic loader: what the generator wrote comes back exactly, and broken datasets
fail with the file and the segment named."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.ops import box_convert

from detr_explained import synthetic
from detr_explained.coco_panoptic import CocoPanoptic, collate, id2rgb, open_dataset, rgb2id
from detr_explained.preprocessing import IMAGENET_MEAN, IMAGENET_STD

NUM_IMAGES = 4


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    synthetic.write_dataset(root, num_images=NUM_IMAGES, seed=0)
    return root


@pytest.fixture(scope="module")
def dataset(dataset_dir):
    return open_dataset(dataset_dir)


def test_round_trip_recovers_masks_labels_areas_boxes(dataset, dataset_dir):
    data = json.load(open(dataset_dir / "panoptic.json"))
    assert len(dataset) == NUM_IMAGES
    assert dataset.num_classes == synthetic.NUM_CLASSES
    assert dataset.thing_ids == [1, 2, 3] and dataset.stuff_ids == [4, 5, 6]
    for index in range(NUM_IMAGES):
        image, target = dataset[index]
        scene = synthetic.make_scene(0, index)
        ann = data["annotations"][index]
        h, w = scene.ids.shape
        k = len(scene.segments)
        assert image.shape == (3, h, w) and image.dtype == torch.float32
        assert target["labels"].shape == (k,) and target["labels"].dtype == torch.int64
        assert target["boxes"].shape == (k, 4) and target["masks"].shape == (k, h, w)
        assert target["masks"].dtype == torch.bool
        assert target["image_id"] == ann["image_id"]
        assert target["size"].tolist() == [h, w]
        assert target["labels"].tolist() == [s["category_id"] for s in scene.segments]
        for mask, seg, info in zip(target["masks"], scene.segments, ann["segments_info"]):
            assert torch.equal(mask, torch.from_numpy(scene.ids == seg["id"]))
            assert int(mask.sum()) == info["area"]
        assert target["area"].tolist() == [info["area"] for info in ann["segments_info"]]
        # Normalised cxcywh boxes, scaled back to pixels, are COCO's [x, y, w, h] boxes.
        assert target["boxes"].min() >= 0 and target["boxes"].max() <= 1
        pixels = box_convert(target["boxes"] * torch.tensor([w, h, w, h]), "cxcywh", "xywh")
        expected = torch.tensor([info["bbox"] for info in ann["segments_info"]], dtype=torch.float32)
        assert torch.allclose(pixels, expected, atol=1e-3)
        # Panoptic: every pixel belongs to exactly one mask.
        assert (target["masks"].sum(0) == 1).all()


def test_image_is_imagenet_normalised(dataset):
    image, _ = dataset[0]
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    restored = (image * std + mean) * 255                                        # (3, H, W)
    jpeg = np.array(Image.open(os.path.join(dataset.image_dir, "000001.jpg")).convert("RGB"))
    assert torch.allclose(restored, torch.from_numpy(jpeg).permute(2, 0, 1).float(), atol=1e-3)
    original = torch.from_numpy(synthetic.make_scene(0, 0).image).permute(2, 0, 1).float()
    assert (restored - original).abs().mean() < 6, "only JPEG noise separates them"
    raw = CocoPanoptic(*[dataset.image_dir, dataset.panoptic_dir, dataset.annotation_file],
                       normalize=False)[0][0]
    assert 0 <= raw.min() and raw.max() <= 1


def test_collate_gives_lists(dataset):
    loader = DataLoader(dataset, batch_size=3, collate_fn=collate)
    images, targets = next(iter(loader))
    assert isinstance(images, list) and isinstance(targets, list)
    assert len(images) == len(targets) == 3
    assert all(img.shape[1:] == tuple(t["size"].tolist()) for img, t in zip(images, targets))


def test_id_colour_round_trip():
    ids = np.array([[0, 1, 255], [256, 65535, 256**3 - 1]])
    assert np.array_equal(rgb2id(id2rgb(ids)), ids)
    assert id2rgb(np.array([[1 + 2 * 256 + 3 * 256**2]]))[0, 0].tolist() == [1, 2, 3]


# ---- hand-made datasets, broken on purpose ---------------------------------------------------

CATEGORIES = [{"id": 1, "name": "dot", "isthing": 1, "supercategory": "x"},
              {"id": 7, "name": "floor", "isthing": 0, "supercategory": "x"}]


def write_tiny(root, ids, segments, categories=CATEGORIES, image=True, png=True):
    """One 6x8 image whose PNG holds ``ids``, with ``segments`` as its segments_info."""
    os.makedirs(root / "images", exist_ok=True)
    os.makedirs(root / "panoptic", exist_ok=True)
    h, w = ids.shape
    if image:
        Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(root / "images" / "a.jpg")
    if png:
        Image.fromarray(id2rgb(ids)).save(root / "panoptic" / "a.png")
    data = {"images": [{"id": 9, "file_name": "a.jpg", "height": h, "width": w}],
            "annotations": [{"image_id": 9, "file_name": "a.png", "segments_info": segments}],
            "categories": categories}
    json.dump(data, open(root / "panoptic.json", "w"))
    return open_dataset


def tiny_ids():
    ids = np.full((6, 8), 300, np.int64)   # floor
    ids[1:3, 2:5] = 70000                  # a dot: rows 1-2, columns 2-4
    ids[5, 7] = 0                          # one VOID pixel
    return ids


def seg(seg_id, category_id):
    return {"id": seg_id, "category_id": category_id, "iscrowd": 0, "bbox": [0, 0, 1, 1], "area": 1}


def test_tiny_dataset_loads_and_void_is_in_no_mask(tmp_path):
    write_tiny(tmp_path, tiny_ids(), [seg(300, 7), seg(70000, 1)])
    _, target = open_dataset(tmp_path)[0]
    assert target["labels"].tolist() == [7, 1]
    assert not target["masks"][:, 5, 7].any(), "VOID belongs to no segment"
    assert target["masks"][1].sum() == 6
    # The dot covers columns 2..4 and rows 1..2: pixel edges 2..5 and 1..3 of an 8x6 image.
    assert torch.allclose(target["boxes"][1], torch.tensor([3.5 / 8, 2 / 6, 3 / 8, 2 / 6]))


@pytest.mark.parametrize("case, error, words", [
    ("missing image", FileNotFoundError, ["a.jpg"]),
    ("missing png", FileNotFoundError, ["a.png"]),
    ("png id not in json", ValueError, ["a.png", "70000", "segments_info"]),
    ("json segment not in png", ValueError, ["a.png", "555"]),
    ("unknown category", ValueError, ["a.png", "70000", "category_id 3"]),
    ("empty image", ValueError, ["a.jpg", "no segments"]),
])
def test_bad_input_is_named(tmp_path, case, error, words):
    ids = tiny_ids()
    segments = [seg(300, 7), seg(70000, 1)]
    kwargs = {}
    if case == "missing image":
        kwargs["image"] = False
    elif case == "missing png":
        kwargs["png"] = False
    elif case == "png id not in json":
        segments = [seg(300, 7)]
    elif case == "json segment not in png":
        segments.append(seg(555, 1))
    elif case == "unknown category":
        segments = [seg(300, 7), seg(70000, 3)]
    elif case == "empty image":
        segments = []
    write_tiny(tmp_path, ids, segments, **kwargs)
    with pytest.raises(error) as info:
        open_dataset(tmp_path)[0]
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"


def test_size_mismatch_is_named(tmp_path):
    write_tiny(tmp_path, tiny_ids(), [seg(300, 7), seg(70000, 1)])
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(tmp_path / "images" / "a.jpg")
    with pytest.raises(ValueError, match="a.jpg"):
        open_dataset(tmp_path)[0]
