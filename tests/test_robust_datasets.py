"""Nothing lost, nothing silently wrong: broken datasets fail with the file and the entry named, and
the generator deletes only what it wrote.

Hand-written cases, one per way a COCO panoptic dataset can be broken, and property tests
(hypothesis) that mutate a valid dataset's JSON and the generator's command options and accept
only two outcomes: the right answer, or a clear error.
"""
import contextlib
import copy
import hashlib
import io
import itertools
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from detr_explained import synthetic
from detr_explained.coco_panoptic import CocoPanoptic, collate, default_paths, open_dataset

NUM_IMAGES = 3
SIDE = 48  # every image 48 x 48: swapping two images' files is then invisible to a size check
GENERATED = ["000001.jpg", "000002.jpg", "000003.jpg"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A valid dataset, written once: (root, its JSON)."""
    root = tmp_path_factory.mktemp("base") / "ds"
    synthetic.write_dataset(root, num_images=NUM_IMAGES, seed=0, min_side=SIDE, max_side=SIDE)
    with open(root / "panoptic.json") as f:
        return root, json.load(f)


def load_all(dataset):
    return [dataset[i] for i in range(len(dataset))]


def assert_clear(err, annotation_file, words):
    """The message names the annotation file and every word (the entry, the value)."""
    message = str(err.value)
    assert str(annotation_file) in message, message
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"


def open_with_json(base, tmp_path, data=None, text=None):
    """The base dataset's images and PNGs with another annotation file."""
    root, _ = base
    annotation = tmp_path / "panoptic.json"
    annotation.write_text(text if text is not None else json.dumps(data))
    return CocoPanoptic(root / "images", root / "panoptic", annotation), annotation


def copied(base, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(base[0], root)
    return root


# ---- the JSON, checked when the dataset is built ---------------------------------------------

def _set(data, path, value):
    obj = data
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _delete(data, path):
    obj = data
    for key in path[:-1]:
        obj = obj[key]
    del obj[path[-1]]


def dup_image_id(d):
    # Two datasets merged without renumbering: 000001.png would be trained against 000002.jpg.
    d["images"][1]["id"] = 1
    d["annotations"][1]["image_id"] = 1


def renumber_all(d, key, convert):
    """Change every image id (key='image') or category id (key='category') with ``convert``."""
    if key == "image":
        for image in d["images"]:
            image["id"] = convert(image["id"])
        for ann in d["annotations"]:
            ann["image_id"] = convert(ann["image_id"])
    else:
        for category in d["categories"]:
            category["id"] = convert(category["id"])
        for ann in d["annotations"]:
            for seg in ann["segments_info"]:
                seg["category_id"] = convert(seg["category_id"])


def seg_id(d, k=0, j=0):
    return d["annotations"][k]["segments_info"][j]["id"]


def instances_json(d):
    d["annotations"] = [{"id": k + 1, "image_id": a["image_id"], "category_id": 1, "iscrowd": 0,
                         "segmentation": [[0, 0, 5, 0, 5, 5]], "area": 12.5, "bbox": [0, 0, 5, 5]}
                        for k, a in enumerate(d["annotations"])]


# (case, mutation of the JSON, words the message must hold besides the annotation file)
BAD_JSON = [
    ("duplicate image id", dup_image_id, ["000002.jpg", "000001.jpg", "image id 1 is used twice"]),
    ("duplicate segment id", lambda d: _set(d, ["annotations", 0, "segments_info", 1, "id"], seg_id(d)),
     ["000001.png", "appears twice"]),
    ("category listed twice",
     lambda d: d["categories"].append({"id": 1, "name": "disc", "isthing": 0, "supercategory": "x"}),
     ["'disc'", "'circle'", "id 1", "listed twice"]),
    ("annotation for an unknown image", lambda d: _set(d, ["annotations", 0, "image_id"], 99),
     ["000001.png", "image_id 99"]),
    ("two annotations for one image", lambda d: _set(d, ["annotations", 1, "image_id"], 1),
     ["000002.png", "000001.jpg", "already has an annotation"]),
    ("image without annotation", lambda d: d["annotations"].pop() and None, ["000003.jpg", "no annotation"]),
    ("image without id", lambda d: _delete(d, ["images", 0, "id"]), ["000001.jpg", "'id'"]),
    ("image without file_name", lambda d: _delete(d, ["images", 0, "file_name"]), ["images[0]", "'file_name'"]),
    ("image without height", lambda d: _delete(d, ["images", 0, "height"]), ["000001.jpg", "'height'"]),
    ("image without width", lambda d: _delete(d, ["images", 0, "width"]), ["000001.jpg", "'width'"]),
    ("annotation without image_id", lambda d: _delete(d, ["annotations", 0, "image_id"]),
     ["000001.png", "'image_id'"]),
    ("annotation without file_name", lambda d: _delete(d, ["annotations", 0, "file_name"]),
     ["annotations[0]", "'file_name'"]),
    ("annotation without segments_info", lambda d: _delete(d, ["annotations", 0, "segments_info"]),
     ["000001.png", "'segments_info'"]),
    ("segment without id", lambda d: _delete(d, ["annotations", 0, "segments_info", 0, "id"]),
     ["000001.png", "segments_info[0]", "'id'"]),
    ("segment without category_id", lambda d: _delete(d, ["annotations", 0, "segments_info", 0, "category_id"]),
     ["000001.png", "segments_info[0]", "'category_id'"]),
    ("category without id", lambda d: _delete(d, ["categories", 0, "id"]), ["categories[0]", "'id'"]),
    ("image ids as strings", lambda d: renumber_all(d, "image", str), ["000001.jpg", "'1'", "without quotes"]),
    ("segment id as a string", lambda d: _set(d, ["annotations", 0, "segments_info", 0, "id"], str(seg_id(d))),
     ["000001.png", "segments_info[0]", "without quotes"]),
    ("category ids as strings", lambda d: renumber_all(d, "category", str), ["categories[0]", "'1'"]),
    ("category_id as a string", lambda d: _set(d, ["annotations", 0, "segments_info", 0, "category_id"], "4"),
     ["000001.png", "category_id", "'4'"]),
    ("image ids as floats", lambda d: renumber_all(d, "image", float), ["000001.jpg", "1.0"]),
    ("segment id as a float", lambda d: _set(d, ["annotations", 0, "segments_info", 0, "id"], float(seg_id(d))),
     ["000001.png", "segments_info[0]", ".0"]),
    ("category ids as floats", lambda d: renumber_all(d, "category", float), ["categories[0]", "1.0"]),
    ("image ids as booleans", lambda d: renumber_all(d, "image", lambda v: v == 1), ["000001.jpg", "true"]),
    ("category ids as booleans", lambda d: renumber_all(d, "category", lambda v: v == 1),
     ["categories[0]", "true"]),
    ("negative image ids", lambda d: renumber_all(d, "image", lambda v: -v), ["000001.jpg", "-1"]),
    ("negative segment id", lambda d: _set(d, ["annotations", 0, "segments_info", 0, "id"], -5),
     ["000001.png", "-5", "from 1 to 16777215"]),
    ("segment id too large for a PNG", lambda d: _set(d, ["annotations", 0, "segments_info", 0, "id"], 256**3),
     ["000001.png", "16777216"]),
    ("segment id 0 (VOID)", lambda d: _set(d, ["annotations", 0, "segments_info", 0, "id"], 0),
     ["000001.png", "VOID"]),
    ("negative category ids", lambda d: renumber_all(d, "category", lambda v: -v), ["categories[0]", "-1"]),
    ("category id too large", lambda d: renumber_all(d, "category", lambda v: v + 10**6), ["categories[0]", "1000001"]),
    ("isthing 2", lambda d: _set(d, ["categories", 0, "isthing"], 2), ["'circle'", "isthing is 2"]),
    ("isthing 'no'", lambda d: _set(d, ["categories", 3, "isthing"], "no"), ["'sky'", "isthing is 'no'"]),
    ("categories empty", lambda d: _set(d, ["categories"], []), ["'categories' is empty"]),
    ("categories not a list", lambda d: _set(d, ["categories"], {"1": "circle"}), ["'categories' is an object"]),
    ("width as a string", lambda d: _set(d, ["images", 0, "width"], str(SIDE)), ["000001.jpg", "width", f"'{SIDE}'"]),
    ("height 0", lambda d: _set(d, ["images", 0, "height"], 0), ["000001.jpg", "height is 0"]),
    ("file_name a number", lambda d: _set(d, ["images", 0, "file_name"], 5), ["images[0]", "file_name"]),
    ("two images, one file", lambda d: _set(d, ["images", 1, "file_name"], "000001.jpg"),
     ["000001.jpg", "listed twice"]),
    ("two annotations, one PNG", lambda d: _set(d, ["annotations", 1, "file_name"], "000001.png"),
     ["000001.png", "annotations[1]", "also the PNG"]),
    ("annotations empty", lambda d: _set(d, ["annotations"], []), ["000001.jpg", "no annotation"]),
    ("images and annotations empty", lambda d: d.update(images=[], annotations=[]), ["'images' is empty"]),
    ("segments_info an object", lambda d: _set(d, ["annotations", 0, "segments_info"], {"id": 1}),
     ["000001.png", "segments_info is an object"]),
    ("segments_info null", lambda d: _set(d, ["annotations", 0, "segments_info"], None),
     ["000001.png", "segments_info is null"]),
    ("segments_info empty", lambda d: _set(d, ["annotations", 0, "segments_info"], []),
     ["000001.png", "no segments"]),
    ("segment a number", lambda d: _set(d, ["annotations", 0, "segments_info", 0], 5),
     ["000001.png", "segments_info[0] is the number 5"]),
    ("iscrowd 2", lambda d: _set(d, ["annotations", 0, "segments_info", 0, "iscrowd"], 2),
     ["000001.png", "iscrowd is 2"]),
    ("iscrowd 'yes'", lambda d: _set(d, ["annotations", 0, "segments_info", 0, "iscrowd"], "yes"),
     ["000001.png", "iscrowd is 'yes'"]),
    ("image a number", lambda d: _set(d, ["images", 0], 7), ["images[0] is the number 7"]),
    ("annotation a string", lambda d: _set(d, ["annotations", 0], "x"), ["annotations[0] is the string 'x'"]),
    ("image id NaN", lambda d: _set(d, ["images", 0, "id"], math.nan), ["000001.jpg", "nan"]),
    ("no 'images'", lambda d: _delete(d, ["images"]), ["no 'images' list"]),
    ("COCO instances (detection) JSON", instances_json,
     ["COCO instances (detection) file", "segments_info", "PNGs"]),
]


@pytest.mark.parametrize("case, mutate, words", BAD_JSON, ids=[c[0] for c in BAD_JSON])
def test_bad_json_is_a_clear_error_when_built(base, tmp_path, case, mutate, words):
    data = copy.deepcopy(base[1])
    mutate(data)
    with pytest.raises(ValueError) as err:
        open_with_json(base, tmp_path, data)
    assert_clear(err, tmp_path / "panoptic.json", words)


@pytest.mark.parametrize("case, text, words", [
    ("detection results", json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9}]),
     ["detection results"]),
    ("a list of numbers", "[1, 2]", ["holds a list, not an object"]),
    ("a string", '"hello"', ["holds the string 'hello'"]),
    ("not JSON", "this is not json {", ["not valid JSON"]),
    ("an empty file", "", ["not valid JSON"]),
])
def test_a_file_that_is_not_a_panoptic_json_is_named(base, tmp_path, case, text, words):
    with pytest.raises(ValueError) as err:
        open_with_json(base, tmp_path, text=text)
    assert_clear(err, tmp_path / "panoptic.json", words + ["'images', 'annotations'"])


def test_annotation_file_not_utf8(base, tmp_path):
    annotation = tmp_path / "panoptic.json"
    annotation.write_bytes(b"\xff\xfe\x00{")
    with pytest.raises(ValueError) as err:
        CocoPanoptic(base[0] / "images", base[0] / "panoptic", annotation)
    assert_clear(err, annotation, ["not valid JSON"])


def test_valid_variants_of_the_format_are_accepted(base, tmp_path):
    """What real and third-party COCO panoptic files do must keep working: extra keys, no
    ``isthing`` (a thing), no ``iscrowd`` (0), no ``name``, booleans for flags, category id 0."""
    data = copy.deepcopy(base[1])
    data["info"] = {"description": "someone else's", "year": 2017}
    for category in data["categories"]:
        category["color"] = [220, 20, 60]
    del data["categories"][0]["isthing"]          # circle: counted as a thing
    del data["categories"][1]["name"]
    data["categories"][3]["isthing"] = False      # sky: stuff, as a boolean
    data["images"][0].update(license=1, coco_url="http://x", date_captured="2013")
    first = data["annotations"][0]["segments_info"]
    del first[0]["iscrowd"]
    first[1]["iscrowd"] = True
    renumber_all(data, "category", lambda v: 0 if v == 5 else v)   # ground: category 0
    dataset, _ = open_with_json(base, tmp_path, data)
    assert dataset.thing_ids == [1, 2, 3] and dataset.stuff_ids == [0, 4, 6]
    assert dataset.num_classes == 7
    for (_, target), ann in zip(load_all(dataset), data["annotations"]):
        assert target["labels"].tolist() == [s["category_id"] for s in ann["segments_info"]]
    _, target = dataset[0]
    assert target["iscrowd"][:2].tolist() == [0, 1]


# ---- the files, checked when an item is read -------------------------------------------------

def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def png_as(path, mode):
    rgb = Image.open(path).convert("RGB")
    if mode == "I;16":
        Image.fromarray(np.asarray(rgb)[..., 0].astype(np.uint16) * 200).save(path)
    elif mode == "crop":
        rgb.crop((0, 0, 40, 40)).save(path)
    elif mode == "P":  # an adaptive palette of the id map's few colours: exact, as PNG optimisers do
        rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(path)
    else:
        rgb.convert(mode).save(path)


BAD_FILES = [
    ("truncated JPEG", lambda r: truncate(r / "images/000001.jpg"), ValueError,
     ["could not read image", "images/000001.jpg", "truncated or not an image"]),
    ("JPEG that is text", lambda r: (r / "images/000001.jpg").write_text("hello"), ValueError,
     ["could not read image", "images/000001.jpg"]),
    ("empty JPEG", lambda r: truncate(r / "images/000001.jpg", 0), ValueError, ["images/000001.jpg"]),
    ("truncated PNG", lambda r: truncate(r / "panoptic/000001.png"), ValueError,
     ["could not read panoptic PNG", "panoptic/000001.png", "truncated"]),
    ("PNG that is text", lambda r: (r / "panoptic/000001.png").write_text("hello"), ValueError,
     ["panoptic/000001.png", "truncated or not an image"]),
    ("16-bit PNG", lambda r: png_as(r / "panoptic/000001.png", "I;16"), ValueError,
     ["panoptic/000001.png", "'I;16'", "8-bit"]),
    ("grey PNG", lambda r: png_as(r / "panoptic/000001.png", "L"), ValueError,
     ["panoptic/000001.png", "grey", "id2rgb"]),
    ("PNG of the wrong size", lambda r: png_as(r / "panoptic/000001.png", "crop"), ValueError,
     ["panoptic/000001.png", "40x40", f"{SIDE}x{SIDE}"]),
    ("JPEG of the wrong size", lambda r: Image.new("RGB", (10, 12)).save(r / "images/000001.jpg"), ValueError,
     ["images/000001.jpg", "10x12", "same size"]),
    ("image file missing", lambda r: os.remove(r / "images/000002.jpg"), FileNotFoundError,
     ["000002.jpg", "missing"]),
    ("PNG missing", lambda r: os.remove(r / "panoptic/000002.png"), FileNotFoundError,
     ["000002.png", "missing PNG"]),
    ("images folder missing", lambda r: shutil.rmtree(r / "images"), FileNotFoundError,
     ["no folder", "images"]),
    ("panoptic folder missing", lambda r: shutil.rmtree(r / "panoptic"), FileNotFoundError,
     ["no folder", "panoptic"]),
]


@pytest.mark.parametrize("case, break_it, error, words", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_files_are_named(base, tmp_path, case, break_it, error, words):
    root = copied(base, tmp_path)
    break_it(root)
    with pytest.raises(error) as err:
        load_all(open_dataset(root))
    assert_clear(err, root / "panoptic.json", words)


def test_json_size_that_does_not_match_the_files(base, tmp_path):
    data = copy.deepcopy(base[1])
    data["images"][1]["height"] = SIDE + 10
    dataset, annotation = open_with_json(base, tmp_path, data)
    dataset[0]  # the others are fine
    with pytest.raises(ValueError) as err:
        dataset[1]
    assert_clear(err, annotation, ["000002.jpg", "000002.png", f"{SIDE}x{SIDE + 10}"])


def test_annotation_file_name_is_the_image_name(base, tmp_path):
    data = copy.deepcopy(base[1])
    data["annotations"][0]["file_name"] = "000001.jpg"
    with pytest.raises(FileNotFoundError) as err:
        open_with_json(base, tmp_path, data)
    assert_clear(err, tmp_path / "panoptic.json", ["000001.jpg", "'000001.png'", "name of its PNG"])


@pytest.mark.parametrize("mode", ["RGBA", "P"])
def test_png_stored_losslessly_in_another_mode_reads_the_same(base, tmp_path, mode):
    root = copied(base, tmp_path)
    expected = open_dataset(base[0])[0][1]
    png_as(root / "panoptic/000001.png", mode)
    assert Image.open(root / "panoptic/000001.png").mode == mode
    target = open_dataset(root)[0][1]
    assert torch.equal(target["masks"], expected["masks"])
    assert torch.equal(target["labels"], expected["labels"])


def test_missing_places_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no dataset folder"):
        open_dataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no annotation file"):
        open_dataset(tmp_path)
    (tmp_path / "panoptic.json").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        open_dataset(tmp_path)


def test_arguments_are_checked(base):
    root = base[0]
    with pytest.raises(TypeError, match="annotation_file must be a path"):
        CocoPanoptic(root / "images", root / "panoptic", 5)
    with pytest.raises(TypeError, match="normalize must be True or False"):
        CocoPanoptic(*default_paths(root), normalize="yes")
    with pytest.raises(ValueError, match="root is empty"):
        open_dataset("")
    dataset = open_dataset(root)
    with pytest.raises(IndexError, match="has 3 images"):
        dataset[3]
    with pytest.raises(TypeError, match="whole number"):
        dataset.read_panoptic(1.5)
    assert dataset[np.int64(-1)][1]["image_id"] == 3
    assert len(list(dataset)) == 3, "iteration stops at the IndexError"
    with pytest.raises(TypeError, match="item 1 is Tensor"):
        collate([dataset[0], dataset[1][0]])


# ---- property: any mutation of the JSON gives the right answer or a clear error ---------------

WEIRD = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 8), st.integers(2**24 - 2, 2**24 + 1),
    st.sampled_from([2**63, -(2**63), 1.0, 1.5, -0.0, math.nan, math.inf, "", "1", "000001.jpg",
                     "000002.png", "../images/000001.jpg", [], {}, [1], {"id": 1}]),
    st.text(max_size=4))


def _paths(value, prefix=()):
    """Every place in a JSON value, as a tuple of keys and indices."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            yield from _paths(item, prefix + (k,))


def _get(data, path):
    for key in path:
        data = data[key]
    return data


@st.composite
def mutated_json(draw, original):
    data = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        # Most mutations hit the entries (ids, names, sizes), not the big lists as a whole.
        path = draw(st.sampled_from(paths))
        parent, key = _get(data, path[:-1]), path[-1]
        value = parent[key]
        operation = draw(st.sampled_from(["delete", "replace", "retype", "duplicate", "shift", "swap"]))
        if operation == "delete":
            del parent[key]
        elif operation == "replace":
            parent[key] = draw(WEIRD)
        elif operation == "retype":
            converters = [str, lambda v: [v], lambda v: {"value": v}]
            if isinstance(value, (int, float)):
                converters.append(float)
            parent[key] = draw(st.sampled_from(converters))(value)
        elif operation == "duplicate":
            if isinstance(parent, list):
                parent.append(copy.deepcopy(value))
            elif isinstance(value, list) and value:
                value.append(copy.deepcopy(value[draw(st.integers(0, len(value) - 1))]))
        elif operation == "shift" and isinstance(value, int) and not isinstance(value, bool):
            parent[key] = value + draw(st.sampled_from([-2, -1, 1, 2, 256, 65536]))
        elif operation == "swap":
            # Another value of the same key elsewhere: another image's id, file, size...
            same_key = [p for p in paths if p[-1] == key and p != path]
            if same_key:
                parent[key] = copy.deepcopy(_get(data, draw(st.sampled_from(same_key))))
    return data


_counter = itertools.count()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("mutations")


def check_right_answer(dataset, data):
    """What the dataset returns agrees with the JSON it was built from."""
    annotations = data["annotations"]
    assert len(dataset) == len(annotations)
    images = {image["id"]: image for image in data["images"]}
    for k, ann in enumerate(annotations):
        image, target = dataset[k]
        segments = ann["segments_info"]
        info = images[ann["image_id"]]
        assert target["image_id"] == ann["image_id"]
        assert image.shape == (3, info["height"], info["width"])
        assert target["labels"].tolist() == [s["category_id"] for s in segments]
        assert target["masks"].shape == (len(segments), info["height"], info["width"])
        assert (target["masks"].sum(0) <= 1).all(), "masks overlap"
        assert (target["area"] > 0).all(), "a segment without pixels"
        assert target["iscrowd"].tolist() == [int(s.get("iscrowd", 0)) for s in segments]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_any_json_mutation_is_right_or_a_clear_error(base, scratch, data):
    root, original = base
    mutated = data.draw(mutated_json(original))
    annotation = scratch / f"mutated{next(_counter)}.json"
    annotation.write_text(json.dumps(mutated))
    round_trip = json.loads(annotation.read_text())  # what the loader sees (NaN stays NaN)
    try:
        dataset = CocoPanoptic(root / "images", root / "panoptic", annotation)
        check_right_answer(dataset, round_trip)
    except (ValueError, FileNotFoundError) as err:
        assert str(annotation) in str(err), f"the annotation file is not named: {err}"
    finally:
        annotation.unlink()


def test_property_finds_the_errors_it_should(base, tmp_path):
    """The mutation strategy is not toothless: a known bad mutation (an id as a string) is an
    error, and the unmutated JSON loads."""
    data = copy.deepcopy(base[1])
    dataset, _ = open_with_json(base, tmp_path, data)
    check_right_answer(dataset, data)
    data["images"][2]["id"] = "3"
    with pytest.raises(ValueError):
        open_with_json(base, tmp_path, data)


# ---- the generator: deletes only what it wrote ------------------------------------------------

def tree(root):
    """Every file under root with a hash of its bytes: to see that nothing changed."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, root)] = hashlib.sha1(f.read()).hexdigest()
    return found


def write(root, num_images=2, **kwargs):
    return synthetic.write_dataset(root, num_images=num_images, seed=kwargs.pop("seed", 0),
                                   min_side=kwargs.pop("min_side", SIDE),
                                   max_side=kwargs.pop("max_side", SIDE), **kwargs)


def test_overwrite_keeps_files_it_did_not_write(tmp_path):
    write(tmp_path, num_images=3)
    (tmp_path / "images" / "my_photo.jpg").write_text("keep me")
    (tmp_path / "panoptic" / "notes.png").write_text("keep me too")
    (tmp_path / "README").write_text("mine")
    write(tmp_path, num_images=1, overwrite=True)
    assert sorted(os.listdir(tmp_path / "images")) == ["000001.jpg", "my_photo.jpg"]
    assert sorted(os.listdir(tmp_path / "panoptic")) == ["000001.png", "notes.png"]
    assert (tmp_path / "images" / "my_photo.jpg").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["README", "images", "panoptic", "panoptic.json"]
    assert len(open_dataset(tmp_path)) == 1


def test_cli_overwrite_keeps_files_it_did_not_write(tmp_path, capsys):
    args = [str(tmp_path), "--num-images", "2", "--min-side", "40", "--max-side", "40"]
    synthetic.main(args)
    (tmp_path / "images" / "mine.txt").write_text("keep me")
    synthetic.main(args[:2] + ["1"] + args[3:] + ["--overwrite"])
    assert sorted(os.listdir(tmp_path / "images")) == ["000001.jpg", "mine.txt"]
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"wrote 1 images to {tmp_path / 'images'}, {tmp_path / 'panoptic'} and {tmp_path / 'panoptic.json'}")


def test_overwrite_refuses_to_replace_a_file_it_did_not_write(tmp_path):
    write(tmp_path, num_images=1)
    (tmp_path / "images" / "000002.jpg").write_text("my photo, not yours")
    before = tree(tmp_path)
    with pytest.raises(FileExistsError) as err:
        write(tmp_path, num_images=3, overwrite=True)
    assert "000002.jpg" in str(err.value) and "Nothing was written or deleted" in str(err.value)
    assert tree(tmp_path) == before


def test_overwrite_refuses_a_panoptic_json_it_did_not_write(tmp_path, base):
    # Someone's COCO-style dataset: names like the generator's would be deleted without this check.
    root = copied(base, tmp_path)
    data = json.loads((root / "panoptic.json").read_text())
    data["info"]["description"] = "COCO 2017 Panoptic"
    (root / "panoptic.json").write_text(json.dumps(data))
    before = tree(root)
    with pytest.raises(FileExistsError) as err:
        write(root, num_images=1, overwrite=True)
    assert "panoptic.json" in str(err.value) and "not written by this generator" in str(err.value)
    (root / "panoptic.json").write_text("{not json")
    with pytest.raises(FileExistsError, match="not readable JSON"):
        write(root, num_images=1, overwrite=True)
    assert {k: v for k, v in tree(root).items() if k != "panoptic.json"} == {
        k: v for k, v in before.items() if k != "panoptic.json"}


def test_without_overwrite_nothing_changes(tmp_path):
    write(tmp_path, num_images=2)
    before = tree(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite"):
        write(tmp_path, num_images=1)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("interruption", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failure_midway_leaves_no_json_and_nothing_it_wrote(tmp_path, monkeypatch, interruption):
    make_scene = synthetic.make_scene

    def failing(seed, index, **kwargs):
        if index == 2:
            raise interruption
        return make_scene(seed, index, **kwargs)

    write(tmp_path / "old", num_images=4)
    (tmp_path / "old" / "images" / "mine.txt").write_text("keep me")
    monkeypatch.setattr(synthetic, "make_scene", failing)
    for root, overwrite in ((tmp_path / "new", False), (tmp_path / "old", True)):
        with pytest.raises(type(interruption)):
            write(root, num_images=4, overwrite=overwrite)
        assert not (root / "panoptic.json").exists() and not (root / "panoptic.json.tmp").exists()
        assert not (root / synthetic.IN_PROGRESS_FILE).exists()
    assert not (tmp_path / "new").exists(), "the folders it made are removed too"
    assert tree(tmp_path / "old") == {os.path.join("images", "mine.txt"): hashlib.sha1(b"keep me").hexdigest()}
    monkeypatch.setattr(synthetic, "make_scene", make_scene)
    write(tmp_path / "new", num_images=2)
    assert len(open_dataset(tmp_path / "new")) == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork to kill a run midway")
def test_a_killed_run_is_cleaned_up_by_the_next_overwrite(tmp_path):
    root = tmp_path / "ds"
    write(root, num_images=2)
    (root / "images" / "mine.txt").write_text("keep me")
    make_scene = synthetic.make_scene

    def dying(seed, index, **kwargs):
        if index == 3:
            os._exit(9)  # like a kill: no except, no finally, no cleanup
        return make_scene(seed, index, **kwargs)

    pid = os.fork()
    if pid == 0:  # the child writes and dies; it never returns to pytest
        try:
            synthetic.make_scene = dying
            write(root, num_images=5, overwrite=True)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 9, status
    assert not (root / "panoptic.json").exists(), "no JSON that lists missing files"
    assert (root / "images" / "000003.jpg").exists() and (root / synthetic.IN_PROGRESS_FILE).exists()
    with pytest.raises(FileExistsError, match="interrupted"):
        write(root, num_images=1)
    write(root, num_images=1, overwrite=True)
    assert sorted(os.listdir(root / "images")) == ["000001.jpg", "mine.txt"]
    assert sorted(os.listdir(root / "panoptic")) == ["000001.png"]
    assert not (root / synthetic.IN_PROGRESS_FILE).exists()


@pytest.mark.parametrize("kwargs, error, words", [
    ({"num_images": 0}, ValueError, ["num_images is 0"]),
    ({"num_images": 2.5}, TypeError, ["num_images", "2.5"]),
    ({"num_images": True}, TypeError, ["num_images", "True"]),
    ({"num_images": "3"}, TypeError, ["num_images", "'3'"]),
    ({"seed": -1}, ValueError, ["seed is -1", "negative"]),
    ({"seed": 1.5}, TypeError, ["seed", "1.5"]),
    ({"min_side": 31}, ValueError, ["min_side is 31", "32"]),
    ({"min_side": 80, "max_side": 64}, ValueError, ["min_side", "80", "max_side", "64"]),
    ({"min_side": 64.5, "max_side": 80}, TypeError, ["min_side", "64.5"]),
    ({"max_side": 4096}, ValueError, ["max_side is 4096", "2048"]),
    ({"overwrite": "yes"}, TypeError, ["overwrite"]),
])
def test_generator_arguments_are_checked_before_writing(tmp_path, kwargs, error, words):
    args = dict(out_dir=tmp_path / "ds", num_images=1, seed=0, min_side=SIDE, max_side=SIDE)
    args.update(kwargs)
    with pytest.raises(error) as err:
        synthetic.write_dataset(**args)
    for word in words:
        assert word in str(err.value), str(err.value)
    assert not (tmp_path / "ds").exists()


def test_generator_refuses_an_empty_out_dir_and_a_file(tmp_path):
    with pytest.raises(ValueError, match="out_dir is empty"):
        synthetic.write_dataset("", 1, 0)
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        write(tmp_path / "f", num_images=1)


@pytest.mark.parametrize("call, error, word", [
    (lambda: synthetic.make_scene(-1), ValueError, "seed"),
    (lambda: synthetic.make_scene(0, index=-2), ValueError, "index"),
    (lambda: synthetic.make_scene(0, size=(0, 5)), ValueError, "height"),
    (lambda: synthetic.make_scene(0, size="big"), TypeError, "size"),
    (lambda: synthetic.make_scene(0, min_side=90, max_side=80), ValueError, "min_side"),
    (lambda: synthetic.held_out_scene(1.0), TypeError, "index"),
    (lambda: synthetic.segment_annotation(np.zeros(3), {"id": 1, "category_id": 1}), ValueError, "(H, W)"),
    (lambda: synthetic.segment_annotation(np.zeros((3, 3)), {"id": 1}), ValueError, "category_id"),
    (lambda: synthetic.segment_annotation(np.zeros((3, 3)), {"id": 1, "category_id": 1}, 2), ValueError,
     "iscrowd"),
])
def test_scene_functions_check_their_arguments(call, error, word):
    with pytest.raises(error, match=word.replace("(", r"\(").replace(")", r"\)")):
        call()


def run_main(args):
    """(exit status, stderr) of the command."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            synthetic.main(args)
        except SystemExit as exit_info:
            return exit_info.code, stderr.getvalue()
    return 0, stderr.getvalue()


def error_lines(stderr):
    return [line for line in stderr.splitlines() if "error:" in line]


@pytest.mark.parametrize("options, words", [
    (["--num-images", "0"], ["--num-images", "0"]),
    (["--num-images", "abc"], ["--num-images", "'abc'"]),
    (["--num-images", "1", "--seed", "-1"], ["--seed", "-1"]),
    (["--num-images", "1", "--min-side", "10"], ["--min-side", "10", "32"]),
    (["--num-images", "1", "--min-side", "100", "--max-side", "64"], ["--min-side", "100", "64"]),
])
def test_cli_bad_options_are_one_error_line_and_exit_2(tmp_path, options, words):
    status, stderr = run_main([str(tmp_path / "ds")] + options)
    assert status == 2
    assert len(error_lines(stderr)) == 1, stderr
    for word in words:
        assert word in error_lines(stderr)[0], stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "ds").exists()


def test_cli_errors_of_the_folder_are_one_line_and_traceback_shows_more(tmp_path):
    (tmp_path / "f").write_text("x")
    status, stderr = run_main([str(tmp_path / "f"), "--num-images", "1"])
    assert status == 2 and len(error_lines(stderr)) == 1 and "is a file" in stderr
    with pytest.raises(NotADirectoryError):
        run_main([str(tmp_path / "f"), "--num-images", "1", "--traceback"])


# ---- property: any command line either writes the dataset or is one error and changes nothing ----

NUMBER_TEXT = st.one_of(st.integers(-2, 3).map(str), st.sampled_from(["abc", "1.5", "", "1e2", "0x10"]))
SIDE_TEXT = st.one_of(st.sampled_from(["32", "40", "48", "56", "31", "0", "-40", "3000", "x", "40.0"]))


def _valid_int(text, low, high=None):
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= low and (high is None or value <= high) else None


@pytest.fixture(scope="module")
def previous_run(tmp_path_factory):
    """A folder the generator wrote before, with someone else's file in images/."""
    root = tmp_path_factory.mktemp("previous") / "ds"
    write(root, num_images=2, min_side=32, max_side=32)
    (root / "images" / "mine.txt").write_text("keep me")
    return root


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(num_images=NUMBER_TEXT, seed=NUMBER_TEXT, min_side=SIDE_TEXT, max_side=SIDE_TEXT,
       overwrite=st.booleans(), start=st.sampled_from(["nothing", "previous run"]))
def test_property_cli_writes_the_dataset_or_is_one_error_and_changes_nothing(
        scratch, previous_run, num_images, seed, min_side, max_side, overwrite, start):
    root = scratch / f"cli{next(_counter)}"
    if start == "previous run":
        shutil.copytree(previous_run, root)
    before = tree(root)
    args = [str(root), "--num-images", num_images, "--seed", seed, "--min-side", min_side,
            "--max-side", max_side] + (["--overwrite"] if overwrite else [])
    status, stderr = run_main(args)
    n, s = _valid_int(num_images, 1), _valid_int(seed, 0)
    low, high = _valid_int(min_side, 32, 2048), _valid_int(max_side, 32, 2048)
    should_work = (None not in (n, s, low, high) and low <= high
                   and (start == "nothing" or overwrite))
    if status == 0:
        assert should_work, f"{args} should have failed"
        data = json.loads((root / "panoptic.json").read_text())
        assert len(data["images"]) == n
        written = sorted(os.listdir(root / "images"))
        assert written == sorted([f"{k:06d}.jpg" for k in range(1, n + 1)]
                                 + (["mine.txt"] if start == "previous run" else []))
        assert len(open_dataset(root)) == n
    else:
        assert not should_work, f"{args} failed: {stderr}"
        assert status == 2
        assert len(error_lines(stderr)) == 1, stderr
        assert "Traceback" not in stderr
        assert tree(root) == before, "an error changed files"
    shutil.rmtree(root, ignore_errors=True)


def test_a_16_bit_grey_photo_in_a_dataset_loads_at_its_grey_level(base, tmp_path):
    """Dataset photos follow load_image's rules for each mode (a 16-bit grey PNG is not clipped
    to white), without the EXIF turn: COCO labels the pixels as stored."""
    root = copied(base, tmp_path)
    data = json.loads((root / "panoptic.json").read_text())
    image = data["images"][0]
    grey = np.full((image["height"], image["width"]), 32768, dtype=np.uint16)  # half of 65535
    Image.fromarray(grey).save(root / "images" / "grey16.png")
    assert Image.open(root / "images" / "grey16.png").mode.startswith("I")
    image["file_name"] = "grey16.png"
    (root / "panoptic.json").write_text(json.dumps(data))
    loaded, _ = CocoPanoptic(root / "images", root / "panoptic", root / "panoptic.json", normalize=False)[0]
    assert torch.allclose(loaded, torch.full_like(loaded, 128 / 255), atol=1e-6)
