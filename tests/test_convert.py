"""detr_explained.convert: a labelling tool's COCO instances export -> COCO panoptic.

Every input is tiny (32 x 48 pixels) and made here; every output is read back with the package's
own loader, open_dataset, so "converted" means "trainable".
"""
import json
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from detr_explained import convert as convert_module
from detr_explained.coco_panoptic import open_dataset, rgb2id
from detr_explained.convert import build_parser, convert, main

H, W = 32, 48
PERSON, CAR, SKY, GRASS = 1, 2, 10, 11
CATEGORIES = [
    {"id": PERSON, "name": "person", "isthing": 1, "supercategory": "human"},
    {"id": CAR, "name": "car", "isthing": 1},
    {"id": SKY, "name": "sky", "isthing": 0, "supercategory": "background"},
    {"id": GRASS, "name": "grass", "isthing": 0},
]


def box(x, y, w, h=None):
    """A rectangle as COCO polygons: corners (x, y) and (x + w, y + h), pixel edges."""
    h = w if h is None else h
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def mask_of(x, y, w, h=None):
    """The pixels a ``box`` covers: columns x..x+w-1, rows y..y+h-1."""
    h = w if h is None else h
    mask = np.zeros((H, W), dtype=bool)
    mask[y:y + h, x:x + w] = True
    return mask


def rle(mask, compressed=True):
    """A mask as a COCO RLE, compressed (counts a str) or uncompressed (counts a list)."""
    if compressed:
        encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [H, W], "counts": encoded["counts"].decode("ascii")}
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    return {"size": [H, W], "counts": counts}


def make(tmp_path, annotations=(), images=1, semantic=None, categories=CATEGORIES,
         instance_categories=None):
    """Write an export as a labelling tool would: an image folder, an instances JSON, the
    categories file and (optionally) semantic PNGs. ``annotations`` default to image 1,
    category person, ids 1, 2, ...; ``semantic`` maps a file name to an array or PIL image."""
    root = tmp_path / "export"
    image_dir = root / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(images, int):
        images = [{"id": i + 1, "file_name": f"{i + 1:06d}.jpg", "height": H, "width": W}
                  for i in range(images)]
    rng = np.random.default_rng(0)
    for image in images:
        path = image_dir / image["file_name"]
        if not path.exists():
            pixels = rng.integers(0, 256, (image["height"], image["width"], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path)
    anns = []
    for k, ann in enumerate(annotations):
        full = {"id": k + 1, "image_id": 1, "category_id": PERSON, "iscrowd": 0}
        full.update(ann)
        anns.append(full)
    if instance_categories is None:
        instance_categories = [{"id": c["id"], "name": c["name"]} for c in categories
                               if isinstance(c, dict) and c.get("isthing")]
    instances = root / "instances.json"
    instances.write_text(json.dumps({"images": images, "annotations": anns,
                                     "categories": instance_categories}))
    categories_file = root / "categories.json"
    categories_file.write_text(json.dumps(categories))
    semantic_dir = None
    if semantic is not None:
        semantic_dir = root / "semantic"
        semantic_dir.mkdir(exist_ok=True)
        for name, values in semantic.items():
            picture = values if isinstance(values, Image.Image) else Image.fromarray(
                np.asarray(values, dtype=np.uint8), mode="L")
            picture.save(semantic_dir / name)
    return {"images": str(image_dir), "instances": str(instances),
            "categories": str(categories_file),
            "semantic": None if semantic_dir is None else str(semantic_dir),
            "out": str(tmp_path / "out")}


def read_all(out):
    """Open the converted dataset with the package's loader and read every item."""
    dataset = open_dataset(out)
    return dataset, [dataset[i] for i in range(len(dataset))]


def snapshot(folder):
    """Every file under ``folder`` and its bytes."""
    files = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


def panoptic_json(out):
    with open(os.path.join(out, "panoptic.json")) as f:
        return json.load(f)


# ---- what is drawn -------------------------------------------------------------------------

def test_polygon_square_gives_a_mask_of_area_100_where_it_was_drawn(tmp_path):
    inputs = make(tmp_path, [{"segmentation": box(2, 3, 10), "category_id": CAR}])
    summary = convert(**inputs)
    assert (summary["images"], summary["segments"], summary["things"], summary["stuff"]) == (1, 1, 1, 0)
    assert summary["dropped"] == [] and summary["overlap_pixels"] == 0
    dataset, [(image, target)] = read_all(inputs["out"])
    assert image.shape == (3, H, W)
    assert target["labels"].tolist() == [CAR]
    assert target["masks"].shape == (1, H, W)
    assert np.array_equal(target["masks"][0].numpy(), mask_of(2, 3, 10))
    assert target["area"].tolist() == [100]
    [segment] = panoptic_json(inputs["out"])["annotations"][0]["segments_info"]
    assert segment == {"id": 1, "category_id": CAR, "iscrowd": 0, "bbox": [2, 3, 10, 10], "area": 100}
    # the images are copies, byte for byte; the categories are the categories file's
    assert (open(os.path.join(inputs["images"], "000001.jpg"), "rb").read()
            == open(os.path.join(inputs["out"], "images", "000001.jpg"), "rb").read())
    assert panoptic_json(inputs["out"])["categories"] == CATEGORIES
    assert dataset.thing_ids == [PERSON, CAR] and dataset.stuff_ids == [SKY, GRASS]


def test_polygon_with_several_parts_is_one_segment(tmp_path):
    inputs = make(tmp_path, [{"segmentation": box(0, 0, 4) + box(40, 20, 5)}])
    convert(**inputs)
    _, [(_, target)] = read_all(inputs["out"])
    assert np.array_equal(target["masks"][0].numpy(), mask_of(0, 0, 4) | mask_of(40, 20, 5))


def test_vertices_on_the_edge_of_the_image_are_accepted(tmp_path):
    inputs = make(tmp_path, [{"segmentation": [[0, 0, W, 0, W + 0.4, H, 0, H]]}])
    convert(**inputs)
    _, [(_, target)] = read_all(inputs["out"])
    assert target["area"].tolist() == [H * W]


@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "uncompressed"])
def test_rle_masks_are_decoded_exactly(tmp_path, compressed):
    ring = mask_of(5, 5, 20) & ~mask_of(10, 10, 10)
    dot = mask_of(40, 2, 3, 25)
    inputs = make(tmp_path, [{"segmentation": rle(ring, compressed), "category_id": CAR},
                             {"segmentation": rle(dot, compressed)}])
    convert(**inputs)
    _, [(_, target)] = read_all(inputs["out"])
    assert target["labels"].tolist() == [CAR, PERSON]
    assert np.array_equal(target["masks"][0].numpy(), ring)
    assert np.array_equal(target["masks"][1].numpy(), dot)


def test_the_smaller_instance_is_drawn_on_top(tmp_path):
    # the small one first in the file: it is its area, not its place in the file, that wins
    inputs = make(tmp_path, [{"segmentation": box(10, 10, 6), "category_id": PERSON},
                             {"segmentation": box(5, 5, 20), "category_id": CAR}])
    summary = convert(**inputs)
    assert summary["overlap_pixels"] == 36 and summary["dropped"] == []
    _, [(_, target)] = read_all(inputs["out"])
    assert target["labels"].tolist() == [PERSON, CAR]
    assert np.array_equal(target["masks"][0].numpy(), mask_of(10, 10, 6))
    assert np.array_equal(target["masks"][1].numpy(), mask_of(5, 5, 20) & ~mask_of(10, 10, 6))
    assert target["area"].tolist() == [36, 400 - 36]


def test_of_two_instances_of_one_area_the_later_one_is_on_top(tmp_path):
    inputs = make(tmp_path, [{"segmentation": box(0, 0, 10)}, {"segmentation": box(5, 0, 10)}])
    summary = convert(**inputs)
    assert summary["overlap_pixels"] == 50
    _, [(_, target)] = read_all(inputs["out"])
    assert target["area"].tolist() == [50, 100]
    assert target["masks"][1].numpy()[:10, 5:10].all()


def test_an_instance_hidden_entirely_is_dropped_and_reported(tmp_path):
    inputs = make(tmp_path, [{"id": 7, "segmentation": box(0, 0, 10)},            # hidden by the two halves
                             {"id": 8, "segmentation": box(0, 0, 5, 10), "category_id": CAR},
                             {"id": 9, "segmentation": box(5, 0, 5, 10), "category_id": CAR},
                             {"id": 12, "segmentation": [[20, 20, 25, 25, 30, 30]]}])  # a line: no pixel
    summary = convert(**inputs)
    assert summary["dropped"] == [7, 12]
    details = " | ".join(summary["dropped_details"])
    assert "annotation id 7 (annotations[0])" in details and "[8, 9]" in details
    assert "annotation id 12 (annotations[3])" in details and "no pixel" in details
    assert summary["segments"] == summary["things"] == 2
    _, [(_, target)] = read_all(inputs["out"])
    assert target["labels"].tolist() == [CAR, CAR]
    assert sorted(s["id"] for s in panoptic_json(inputs["out"])["annotations"][0]["segments_info"]) == [1, 2]


def test_a_crowd_stays_one_segment_with_iscrowd_1(tmp_path):
    crowd = mask_of(0, 0, 6) | mask_of(30, 20, 8)                                # two pieces
    inputs = make(tmp_path, [{"segmentation": rle(crowd), "iscrowd": 1},
                             {"segmentation": box(12, 12, 4), "category_id": CAR}])
    summary = convert(**inputs)
    assert (summary["crowd"], summary["things"]) == (1, 2)
    _, [(_, target)] = read_all(inputs["out"])
    assert target["iscrowd"].tolist() == [1, 0]
    assert np.array_equal(target["masks"][0].numpy(), crowd)
    segments = panoptic_json(inputs["out"])["annotations"][0]["segments_info"]
    assert [s["iscrowd"] for s in segments] == [1, 0]


def test_stuff_from_semantic_pngs_one_segment_per_class(tmp_path):
    stuff = np.zeros((H, W), np.uint8)
    stuff[:8] = SKY
    stuff[-4:] = SKY                      # sky in two pieces: still one segment
    stuff[8:20] = GRASS                   # rows 20..27 stay unlabelled (VOID)
    inputs = make(tmp_path, [{"segmentation": box(0, 0, 4)}], semantic={"000001.png": stuff})
    summary = convert(**inputs)
    assert (summary["segments"], summary["things"], summary["stuff"]) == (3, 1, 2)
    dataset, [(_, target)] = read_all(inputs["out"])
    assert target["labels"].tolist() == [SKY, GRASS, PERSON]  # stuff first, by category id
    sky = (stuff == SKY) & ~mask_of(0, 0, 4)                 # instances are drawn over stuff
    assert np.array_equal(target["masks"][0].numpy(), sky)
    assert np.array_equal(target["masks"][1].numpy(), stuff == GRASS)
    ids, _ = dataset.read_panoptic(0)
    assert (ids[20:28] == 0).all() and (ids[:20] != 0).all()


def test_images_with_stuff_only_and_palette_pngs(tmp_path):
    grass = np.full((H, W), GRASS, np.uint8)
    palette = Image.fromarray(np.full((H, W), SKY, np.uint8), mode="P")
    palette.putpalette([0, 0, 0] * 10 + [200, 220, 255] + [0, 0, 0] * 245)  # index 10 looks blue
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}], images=3,
                  semantic={"000001.png": np.zeros((H, W)), "000002.png": grass,
                            "000003.png": palette})
    summary = convert(**inputs)
    assert (summary["images"], summary["segments"], summary["stuff"]) == (3, 3, 2)
    _, items = read_all(inputs["out"])
    assert [t["labels"].tolist() for _, t in items] == [[PERSON], [GRASS], [SKY]]
    assert items[1][1]["area"].tolist() == [H * W]


def test_the_categories_file_may_be_an_object_with_a_categories_list(tmp_path):
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}])
    with open(inputs["categories"], "w") as f:
        json.dump({"categories": CATEGORIES}, f)
    convert(**inputs)
    assert panoptic_json(inputs["out"])["categories"][0]["supercategory"] == "human"


# ---- bad labels: the error names the file and the annotation, and nothing is written -------

ANNOTATION_ERRORS = {
    "vertex outside": ({"segmentation": [[2, 2, 60, 2, 30, 20]]}, "outside the image"),
    "vertex above": ({"segmentation": [[2, -3, 10, 2, 5, 10]]}, "outside the image"),
    "two points": ({"segmentation": [[2, 2, 10, 10]]}, "at least 3"),
    "odd coordinates": ({"segmentation": [[2, 2, 10, 10, 5, 8, 1]]}, "odd number"),
    "not a number": ({"segmentation": [[2, 2, 10, "10", 5, 8]]}, "the string '10'"),
    "flat list": ({"segmentation": [2, 2, 10, 10, 5, 8]}, "wrap it in another list"),
    "empty segmentation": ({"segmentation": []}, "outline"),
    "rle of another size": ({"segmentation": {"size": [H + 1, W], "counts": [H * W + W]}},
                            f"[{H + 1}, {W}]"),
    "rle runs too short": ({"segmentation": {"size": [H, W], "counts": [10, 5]}}, "add up to 15"),
    "rle string too short": ({"segmentation": {"size": [H, W], "counts": "0"}}, "add up to 0"),
    "rle string not rle": ({"segmentation": {"size": [H, W], "counts": "\u00ff"}}, "not a valid"),
    "unknown category": ({"segmentation": box(1, 1, 5), "category_id": 99}, "99"),
    "stuff category": ({"segmentation": box(1, 1, 5), "category_id": SKY}, "is stuff"),
    "bad iscrowd": ({"segmentation": box(1, 1, 5), "iscrowd": 2}, "iscrowd"),
}


@pytest.mark.parametrize("name", list(ANNOTATION_ERRORS))
def test_a_bad_annotation_is_named_with_its_file_and_image(tmp_path, name):
    ann, expected = ANNOTATION_ERRORS[name]
    good = {"id": 4, "segmentation": box(30, 20, 5)}
    inputs = make(tmp_path, [good, dict(ann, id=5)])
    with pytest.raises(ValueError) as info:
        convert(**inputs)
    message = str(info.value)
    assert inputs["instances"] in message
    assert "annotation id 5 (annotations[1])" in message
    assert "'000001.jpg'" in message
    assert expected in message
    assert "\n" not in message
    assert not os.path.exists(inputs["out"])


def test_an_annotation_of_an_unknown_image_is_named(tmp_path):
    inputs = make(tmp_path, [{"id": 3, "segmentation": box(1, 1, 5), "image_id": 42}])
    with pytest.raises(ValueError, match=r"annotation id 3 \(annotations\[0\]\): image_id 42 is not") as info:
        convert(**inputs)
    assert inputs["instances"] in str(info.value)
    assert not os.path.exists(inputs["out"])


def test_an_annotation_without_a_key_names_the_key(tmp_path):
    inputs = make(tmp_path, [{"id": 3, "segmentation": box(1, 1, 5)}])
    data = json.load(open(inputs["instances"]))
    del data["annotations"][0]["segmentation"]
    json.dump(data, open(inputs["instances"], "w"))
    with pytest.raises(ValueError, match=r"annotation id 3 \(annotations\[0\]\) has no 'segmentation'"):
        convert(**inputs)


def test_category_names_that_disagree_between_the_files_are_refused(tmp_path):
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}],
                  instance_categories=[{"id": PERSON, "name": "dog"}])
    with pytest.raises(ValueError, match="'dog' here but 'person'"):
        convert(**inputs)


def stuff_map(value=SKY, shape=(H, W)):
    return np.full(shape, value, np.uint8)


SEMANTIC_ERRORS = {
    "wrong size": ({"000001.png": stuff_map(shape=(30, 40))}, ValueError, ["40x30", f"{W}x{H}"]),
    "missing": ({}, FileNotFoundError, ["missing semantic PNG", "000001.png"]),
    "unknown value": ({"000001.png": np.where(mask_of(0, 0, 5), 77, SKY)}, ValueError,
                      ["value 77 on 25 pixel(s)", "not a category"]),
    "thing value": ({"000001.png": np.where(mask_of(0, 0, 4), PERSON, 0)}, ValueError,
                    [f"value {PERSON} on 16 pixel(s)", "things belong in the instances file"]),
    "rgb": ({"000001.png": Image.new("RGB", (W, H), (SKY, 0, 0))}, ValueError,
            ["mode 'RGB'", "single-channel"]),
}


@pytest.mark.parametrize("name", list(SEMANTIC_ERRORS))
def test_a_bad_semantic_png_is_named(tmp_path, name):
    semantic, error, expected = SEMANTIC_ERRORS[name]
    inputs = make(tmp_path, [{"segmentation": box(30, 20, 5)}],
                  semantic=dict(semantic, **{"000002.png": stuff_map()}), images=2)
    if name == "missing":
        os.makedirs(inputs["semantic"], exist_ok=True)
    with pytest.raises(error) as info:
        convert(**inputs)
    message = str(info.value)
    assert os.path.join(inputs["semantic"], "000001.png") in message
    assert "'000001.jpg'" in message
    for part in expected:
        assert part in message
    assert not os.path.exists(inputs["out"])


def test_an_image_without_labels_is_refused(tmp_path):
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}], images=2)
    with pytest.raises(ValueError, match=r"'000002.jpg' \(images\[1\], id 2\): the image has no labels") as info:
        convert(**inputs)
    assert "remove it from 'images'" in str(info.value)
    assert not os.path.exists(inputs["out"])
    # all-zero semantic PNG: still no label
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}], images=2,
                  semantic={"000001.png": stuff_map(0), "000002.png": stuff_map(0)})
    with pytest.raises(ValueError, match="semantic PNG is all 0"):
        convert(**inputs)


def image_list(**changes):
    images = [{"id": 1, "file_name": "000001.jpg", "height": H, "width": W},
              {"id": 2, "file_name": "000002.jpg", "height": H, "width": W}]
    images[1].update(changes)
    return images


@pytest.mark.parametrize("images, error, expected", [
    (image_list(id=1), ValueError, "image id 1 is used twice"),
    (image_list(file_name="000001.jpg"), ValueError, "listed twice"),
    (image_list(height=H + 2), ValueError, f"is {W}x{H} (WxH) but the JSON says {W}x{H + 2}"),
    (image_list(file_name="../elsewhere.jpg"), ValueError, "without '..'"),
], ids=["duplicate id", "duplicate file_name", "wrong size", "outside the folder"])
def test_bad_image_entries_are_named(tmp_path, images, error, expected):
    make(tmp_path, images=2)  # the image files, at their true size
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}, {"image_id": 2, "segmentation": box(9, 9, 5)}],
                  images=images)
    with pytest.raises(error) as info:
        convert(**inputs)
    assert inputs["instances"] in str(info.value) and expected in str(info.value)
    assert not os.path.exists(inputs["out"])


def test_a_missing_image_file_is_named(tmp_path):
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}])
    os.remove(os.path.join(inputs["images"], "000001.jpg"))
    with pytest.raises(FileNotFoundError, match="missing image file") as info:
        convert(**inputs)
    assert os.path.join(inputs["images"], "000001.jpg") in str(info.value)
    assert inputs["instances"] in str(info.value)


@pytest.mark.parametrize("which, text, expected", [
    ("instances", "{\"images\": [", "is not valid JSON"),
    ("instances", "{\"annotations\": []}", "has no 'images' key"),
    ("categories", "[{\"id\": 1, \"name\": \"person\"}]", "has no 'isthing'"),
    ("categories", "{\"things\": []}", "without a 'categories' key"),
    ("categories", "[{\"id\": 1, \"name\": \"a\", \"isthing\": 1}, {\"id\": 1, \"name\": \"b\", \"isthing\": 0}]",
     "listed twice"),
])
def test_malformed_json_is_named(tmp_path, which, text, expected):
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}])
    with open(inputs[which], "w") as f:
        f.write(text)
    with pytest.raises(ValueError) as info:
        convert(**inputs)
    assert inputs[which] in str(info.value) and expected in str(info.value)


def test_missing_input_files_are_file_not_found(tmp_path):
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}])
    with pytest.raises(FileNotFoundError, match="instances file"):
        convert(**dict(inputs, instances=str(tmp_path / "nope.json")))
    with pytest.raises(FileNotFoundError, match="--images"):
        convert(**dict(inputs, images=str(tmp_path / "nope")))


# ---- writing safely ----------------------------------------------------------------------------

def test_nothing_written_earlier_is_overwritten_without_overwrite(tmp_path):
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}])
    convert(**inputs)
    before = snapshot(inputs["out"])
    make(tmp_path, [{"segmentation": box(20, 10, 8)}])                          # relabelled
    with pytest.raises(FileExistsError) as info:
        convert(**inputs)
    assert "panoptic.json" in str(info.value) and "--overwrite" in str(info.value)
    assert snapshot(inputs["out"]) == before
    # without panoptic.json, any single file the run would write is still refused
    os.remove(os.path.join(inputs["out"], "panoptic.json"))
    os.remove(os.path.join(inputs["out"], "images", "000001.jpg"))
    before = snapshot(inputs["out"])
    with pytest.raises(FileExistsError, match=r"000001\.png'? already exists"):
        convert(**inputs)
    assert snapshot(inputs["out"]) == before


def test_overwrite_replaces_only_the_files_of_the_conversion(tmp_path):
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}])
    convert(**inputs)
    notes = os.path.join(inputs["out"], "notes.txt")
    other = os.path.join(inputs["out"], "images", "other.jpg")
    for path in (notes, other):
        with open(path, "w") as f:
            f.write("mine")
    make(tmp_path, [{"segmentation": box(20, 10, 8), "category_id": CAR}])
    summary = convert(**inputs, overwrite=True)
    assert summary["things"] == 1
    _, [(_, target)] = read_all(inputs["out"])
    assert target["labels"].tolist() == [CAR] and target["area"].tolist() == [64]
    assert open(notes).read() == "mine" and open(other).read() == "mine"
    assert sorted(os.listdir(inputs["out"])) == ["images", "notes.txt", "panoptic", "panoptic.json"]


def fail_on_call(n, real):
    calls = []

    def copy(*args, **kwargs):
        calls.append(args)
        if len(calls) == n:
            raise OSError(28, "No space left on device (simulated)")
        return real(*args, **kwargs)
    return copy


def test_a_failure_midway_leaves_no_panoptic_json_and_no_files(tmp_path, monkeypatch):
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}, {"image_id": 2, "segmentation": box(3, 3, 5)},
                             {"image_id": 3, "segmentation": box(3, 3, 5)}], images=3)
    monkeypatch.setattr(convert_module.shutil, "copyfile",
                        fail_on_call(2, convert_module.shutil.copyfile))
    with pytest.raises(OSError, match="simulated"):
        convert(**inputs)
    assert not os.path.exists(inputs["out"])  # its files removed, and the folders it made


def test_a_failed_overwrite_leaves_no_panoptic_json(tmp_path, monkeypatch):
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}, {"image_id": 2, "segmentation": box(3, 3, 5)}],
                  images=2)
    convert(**inputs)
    notes = os.path.join(inputs["out"], "notes.txt")
    with open(notes, "w") as f:
        f.write("mine")

    def broken_dump(*args, **kwargs):
        raise OSError(28, "No space left on device (simulated)")
    monkeypatch.setattr(convert_module.json, "dump", broken_dump)
    with pytest.raises(OSError, match="simulated"):
        convert(**inputs, overwrite=True)
    assert sorted(os.listdir(inputs["out"])) == ["images", "notes.txt", "panoptic"]  # no temp file either
    assert os.listdir(os.path.join(inputs["out"], "panoptic")) == []
    with pytest.raises(FileNotFoundError):
        open_dataset(inputs["out"])


def test_out_inside_the_images_folder_is_refused(tmp_path):
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}])
    for out in (inputs["images"], os.path.join(inputs["images"], "converted")):
        with pytest.raises(ValueError, match="choose a folder outside it"):
            convert(**dict(inputs, out=out))
    assert sorted(os.listdir(inputs["images"])) == ["000001.jpg"]


def test_an_output_that_would_replace_an_input_is_refused(tmp_path):
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}])
    export = os.path.dirname(inputs["images"])  # OUT/images would be the input images
    with pytest.raises(ValueError, match="would replace the input"):
        convert(**dict(inputs, out=export), overwrite=True)
    assert not os.path.exists(os.path.join(export, "panoptic"))


# ---- the command -------------------------------------------------------------------------------

def argv(inputs, *extra):
    args = ["--images", inputs["images"], "--instances", inputs["instances"],
            "--categories", inputs["categories"], "--out", inputs["out"]]
    if inputs["semantic"]:
        args += ["--semantic", inputs["semantic"]]
    return args + list(extra)


def test_the_command_prints_one_summary_line(tmp_path, capsys):
    inputs = make(tmp_path, [{"id": 1, "segmentation": rle(mask_of(0, 0, 10)), "iscrowd": 1},
                             {"id": 2, "segmentation": box(0, 0, 10, 5), "category_id": CAR},
                             {"id": 3, "segmentation": box(0, 5, 10, 5), "category_id": CAR},
                             {"id": 4, "segmentation": box(30, 20, 4)}],
                  images=2, semantic={"000001.png": stuff_map(GRASS), "000002.png": stuff_map(SKY)})
    main(argv(inputs))
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"wrote 2 images, 5 segments (3 things incl. 0 crowd, 2 stuff) to {inputs['out']}")
    assert "100 pixels claimed by more than one instance" in lines[0]
    assert "1 instance dropped" in lines[0] and "annotation id(s) 1" in lines[0]
    [warning] = captured.err.splitlines()
    assert warning.startswith("warning: ") and "annotation id 1 (annotations[0])" in warning


def test_the_command_ends_a_bad_label_with_one_error_line_and_status_2(tmp_path, capsys):
    inputs = make(tmp_path, [{"id": 6, "segmentation": [[2, 2, 99, 2, 30, 20]]}])
    with pytest.raises(SystemExit) as info:
        main(argv(inputs))
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert errors[0].startswith("python -m detr_explained.convert: error: ")
    assert inputs["instances"] in errors[0] and "annotation id 6 (annotations[0])" in errors[0]
    assert not os.path.exists(inputs["out"])


def test_the_command_refuses_to_overwrite_unless_told(tmp_path, capsys):
    inputs = make(tmp_path, [{"segmentation": box(1, 1, 5)}])
    main(argv(inputs))
    with pytest.raises(SystemExit) as info:
        main(argv(inputs))
    assert info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    main(argv(inputs, "--overwrite"))
    assert capsys.readouterr().out.startswith("wrote 1 images, 1 segments")


def test_the_parser_and_docstrings():
    args = build_parser().parse_args(["--images", "i", "--instances", "a.json", "--categories", "c.json",
                                      "--out", "o"])
    assert (args.semantic, args.overwrite, args.traceback) == (None, False, False)
    for member in (convert, build_parser, main):
        assert "book/09_your_own_dataset.ipynb" in member.__doc__
