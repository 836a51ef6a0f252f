"""From what a labelling tool exports to the COCO panoptic format the package reads.

Explained in ``book/09_your_own_dataset.ipynb``. Labelling tools (CVAT, Label Studio, ...)
export objects as a COCO *instances* JSON: one annotation per object, its outline a polygon or
an RLE mask. Panoptic segmentation wants one label per pixel instead: a PNG per image whose
colours are segment ids, and a JSON listing the segments. :func:`convert` turns the first into
the second, in the layout :func:`detr_explained.coco_panoptic.open_dataset` reads::

    python -m detr_explained.convert --images DIR --instances FILE --categories FILE \\
        [--semantic DIR] --out OUT [--overwrite]

What it reads:

- ``--images DIR``: the image files, named as the instances JSON's ``images`` name them;
- ``--instances FILE``: the COCO instances JSON: ``images`` (``id``, ``file_name``, ``height``,
  ``width``), ``annotations`` (``id``, ``image_id``, ``category_id``, ``segmentation``,
  ``iscrowd``, missing = 0) and, optionally, ``categories`` (checked against the categories
  file by name). Its ``images`` list *is* the dataset: an image with stuff only is listed there
  with no annotation. ``segmentation`` is a list of polygons ``[[x1, y1, x2, y2, ...], ...]``
  or an RLE ``{"size": [height, width], "counts": ...}``, ``counts`` a compressed string or an
  uncompressed list of run lengths; pycocotools decodes them all;
- ``--semantic DIR`` (optional): the stuff, one 8-bit single-channel PNG per image, named like
  the image with ``.png`` (``000001.jpg`` -> ``000001.png``), pixel value = stuff category id,
  0 = unlabelled (mode ``L``, or ``P`` where the palette index is the value);
- ``--categories FILE``: the panoptic category list, a JSON list of ``{"id", "name", "isthing"}``
  (``supercategory`` optional), or an object with such a ``"categories"`` list.

What it writes in ``OUT``: ``images/`` (copies of the images, same file names),
``panoptic/<name>.png`` (segment ids as colours, ``id = R + 256 G + 256**2 B``) and
``panoptic.json``.

The rules (part of the contract):

- Segment ids are 1, 2, 3, ... in each image; 0 is VOID (pixels nobody labelled). The stuff
  segments come first, by category id, then the instances, in the order of the instances file.
- Stuff: one segment per stuff category present in the image, as COCO panoptic does, even if its
  region is in several pieces. Things: one segment per instance annotation.
- Overlapping instances: the smaller instance (by the area of its own mask) is drawn on top, so a
  small object in front of a big one keeps its pixels; of two of the same area, the one later in
  the instances file is on top. Instances are drawn over stuff. An instance left with no pixel
  (hidden by smaller ones, or a mask with no pixel at all) is dropped and reported: its id is in
  the summary's ``dropped``, why in ``dropped_details``, and the command prints a warning line.
  A stuff region that instances cover completely simply has no segment.
- A crowd annotation (``iscrowd`` 1, usually an RLE) stays one segment with ``iscrowd`` 1.
- Polygon vertices may lie on the image's edge: 0 <= x <= width and 0 <= y <= height, with half a
  pixel of tolerance for rounding. A polygon needs at least 3 points, an even number of numbers.
- Everything is read and checked before anything is written (the id maps are kept in memory as
  PNG bytes, a few kB per image). Then the images and PNGs are written, and ``panoptic.json`` last,
  under a temporary name renamed into place (``os.replace``): a run that fails leaves no
  ``panoptic.json``. A failure while writing removes the files this run wrote.
- Nothing written earlier is overwritten without ``overwrite`` (``--overwrite``): if
  ``OUT/panoptic.json`` or any file the run would write exists, a ``FileExistsError`` names it
  and nothing is written. ``overwrite`` replaces exactly those files (the old ``panoptic.json``
  first, so that no ``panoptic.json`` ever lists files that changed); other files in ``OUT``
  stay. A run with ``overwrite`` that fails leaves no ``panoptic.json``.
- ``OUT`` must not be the images folder or inside it, and no file the run writes may be one of
  its inputs.

Bad labels are refused, the first one found, with a ``ValueError`` (``FileNotFoundError`` for a
missing file) naming the file, the annotation (its id, its index in ``annotations`` and its
image's ``file_name``) and what to do: a polygon outside the image, too short or with an odd
number of coordinates; an RLE of another size than its image, or whose run lengths do not add up
to it; an unknown category id, or an instance of a stuff category; an ``image_id`` not in
``images``; a semantic PNG missing, of the wrong size or mode, or with a value that is not a stuff
category; an image with no label at all; a missing image file; a duplicate image id or
``file_name``, a duplicate annotation id; malformed JSON or a missing key.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import numbers
import os
import shutil
from typing import Optional, Sequence

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from . import cli
from .checks import path_argument as _path_argument
from .checks import is_json_whole as _is_whole, json_kind as _kind, json_whole_number as _whole
from .coco_panoptic import MAX_CATEGORY_ID, PanopticPaths, default_paths
from .merge import id2rgb
from .synthetic import segment_annotation

__all__ = ["convert", "build_parser", "main", "SEMANTIC_MODES", "EDGE_TOLERANCE"]

# PIL modes of a semantic PNG whose array is the stuff category id: grey values, or palette
# indices (np.asarray of a "P" image gives the indices, not the colours).
SEMANTIC_MODES = ("L", "P")

# How far (in pixels) a polygon vertex may lie beyond the image's edge before it is refused:
# labelling tools round, and a vertex at x = width + 0.3 is the edge, not a mistake.
EDGE_TOLERANCE = 0.5

# Image ids as the loader accepts them (other tools store them as 64-bit integers).
_MAX_IMAGE_ID = 2**63 - 1

# The EXIF tag that says a photo is displayed rotated (a tool may have labelled it rotated).
_EXIF_ORIENTATION = 0x0112

_DESCRIPTION = "COCO panoptic dataset converted by detr_explained.convert"


# ---- reading and checking the inputs -----------------------------------------------------------

def _is_number(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def _zero_or_one(value, what: str, where: str, meaning: str) -> int:
    if isinstance(value, bool) or (_is_whole(value) and value in (0, 1)):
        return int(value)
    raise ValueError(f"{where}: {what} is {_kind(value)}; give 0 (or false) or 1 (or true): {meaning}")


def _require(entry, keys: tuple, where: str, expected: str) -> None:
    """``entry`` is a JSON object with all ``keys``; else a ValueError naming the missing key."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is {_kind(entry)}; give {expected}")
    missing = [key for key in keys if key not in entry]
    if missing:
        raise ValueError(f"{where} has no {' or '.join(repr(k) for k in missing)}: "
                         f"every entry there is {expected}")


def _read_json(path: str, what: str, example: str):
    """The JSON value in the file at ``path`` (``what`` it is, for messages)."""
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a folder: pass the {what} itself, {example}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {what} at {path!r}: pass the path of {example}")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{path!r} is not valid JSON ({type(err).__name__}: {err}); the {what} "
                         f"is {example}") from None


def _read_categories(path: str) -> dict:
    """category id -> ``{"id", "name", "isthing", "supercategory"?}``, in the file's order."""
    example = ('a JSON list of categories {"id": 1, "name": "person", "isthing": 1} (or an object '
               'with such a "categories" list)')
    data = _read_json(path, "categories file", example)
    if isinstance(data, dict):
        if "categories" not in data:
            raise ValueError(f"{path!r} is an object without a 'categories' key: the categories "
                             f"file is {example}")
        data = data["categories"]
    if not isinstance(data, list):
        raise ValueError(f"{path!r}: the categories are {_kind(data)}, not a list: the categories "
                         f"file is {example}")
    if not data:
        raise ValueError(f"{path!r} lists no category: list every thing and stuff category, "
                         f"{example}")
    categories: dict = {}
    position: dict = {}
    for k, category in enumerate(data):
        where = f"{path!r}, categories[{k}]"
        _require(category, ("id", "name", "isthing"), where,
                 'a category {"id": 1, "name": "person", "isthing": 1} (isthing 0 for stuff)')
        category_id = _whole(category["id"], "its id", where, 0, MAX_CATEGORY_ID,
                             "category ids are class indices, e.g. 1, 2, ...")
        name = category["name"]
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}: its name is {_kind(name)}; give the category's name, e.g. 'person'")
        where = f"{path!r}, category {name!r} (categories[{k}], id {category_id})"
        isthing = _zero_or_one(category["isthing"], "isthing", where,
                               "1 for a thing (countable objects, labelled as instances), "
                               "0 for stuff (sky, road: labelled in the semantic PNGs)")
        if category_id in categories:
            raise ValueError(f"{where}: id {category_id} is listed twice, also as categories"
                             f"[{position[category_id]}] {categories[category_id]['name']!r}; give "
                             "each category its own id")
        if not isthing and category_id == 0:
            raise ValueError(f"{where}: a stuff category cannot have id 0, which a semantic PNG uses "
                             "for unlabelled pixels; give it another id")
        entry = {"id": category_id, "name": name, "isthing": isthing}
        if "supercategory" in category:
            entry["supercategory"] = category["supercategory"]
        categories[category_id] = entry
        position[category_id] = k
    return categories


def _safe_file_name(value, where: str) -> str:
    """A relative file name that stays inside its folder (no absolute path, no '..')."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: file_name is {_kind(value)}; give the image's file name, "
                         "e.g. '000001.jpg'")
    parts = value.replace("\\", "/").split("/")
    if os.path.isabs(value) or value.startswith(("/", "\\")) or ".." in parts or parts[-1] == "":
        raise ValueError(f"{where}: file_name {value!r} is not a file name inside the images folder; "
                         "give the name relative to --images, e.g. '000001.jpg', without '..' or a "
                         "leading '/'")
    return value


class _Instances:
    """The instances JSON, checked: images in order and each image's annotations in file order."""

    def __init__(self, path: str, categories: dict, categories_path: str):
        self.path = path
        example = ("a COCO instances JSON, one object with 'images', 'annotations' (one per object, "
                   "with 'segmentation') and 'categories'")
        data = _read_json(path, "instances file", example)
        if not isinstance(data, dict):
            raise ValueError(f"{path!r} holds {_kind(data)}, not an object: the instances file is "
                             f"{example}")
        annotations = data.get("annotations")
        if isinstance(annotations, list) and any(
                isinstance(a, dict) and "segments_info" in a for a in annotations):
            raise ValueError(f"{path!r} is already a COCO panoptic JSON (its annotations have "
                             "'segments_info'): it needs no conversion; open it with "
                             "detr_explained.coco_panoptic.CocoPanoptic")
        for key in ("images", "annotations"):
            if key not in data:
                raise ValueError(f"{path!r} has no {key!r} key: the instances file is {example}")
            if not isinstance(data[key], list):
                raise ValueError(f"{path!r}: {key!r} is {_kind(data[key])}, not a list: the "
                                 f"instances file is {example}")
        self.names = self._check_category_names(data.get("categories"), categories, categories_path)
        self.images: list[tuple[int, dict]] = []   # (index in "images", entry)
        by_id: dict = {}
        by_name: dict = {}
        for k, image in enumerate(data["images"]):
            where = f"{path!r}, images[{k}]"
            _require(image, ("id", "file_name", "height", "width"), where,
                     'an image {"id", "file_name", "height", "width"}')
            name = _safe_file_name(image["file_name"], where)
            where = f"{path!r}, image {name!r} (images[{k}])"
            image_id = _whole(image["id"], "its id", where, 0, _MAX_IMAGE_ID,
                              "image ids are whole numbers, e.g. 1")
            where = f"{path!r}, image {name!r} (images[{k}], id {image_id})"
            for key in ("height", "width"):
                _whole(image[key], f"its {key}", where, 1, None, f"the image's {key} in pixels")
            if image_id in by_id:
                other = by_id[image_id]
                raise ValueError(f"{where}: image id {image_id} is used twice, also by "
                                 f"{data['images'][other]['file_name']!r} (images[{other}]): "
                                 "annotations find their image by id; give every image its own id")
            if name in by_name:
                raise ValueError(f"{where}: file_name {name!r} is listed twice, also as "
                                 f"images[{by_name[name]}]: list every image once")
            by_id[image_id] = k
            by_name[name] = k
            self.images.append((k, image))
        if not self.images:
            raise ValueError(f"{path!r}: 'images' is empty: list the images to convert, each "
                             '{"id", "file_name", "height", "width"}')
        self.annotations: dict = {image["id"]: [] for _, image in self.images}  # image id -> [(k, ann)]
        seen: dict = {}
        for k, ann in enumerate(data["annotations"]):
            self._check_annotation(k, ann, by_id, data["images"], categories, categories_path, seen)
            self.annotations[ann["image_id"]].append((k, ann))

    def _check_category_names(self, listed, categories: dict, categories_path: str) -> dict:
        """category id -> its name in the instances file; a name that differs from the categories
        file's is refused (the two files would mean different things by one id)."""
        names: dict = {}
        if not isinstance(listed, list):
            return names
        for k, category in enumerate(listed):
            if not (isinstance(category, dict) and _is_whole(category.get("id"))
                    and isinstance(category.get("name"), str)):
                continue
            category_id, name = category["id"], category["name"]
            names[category_id] = name
            known = categories.get(category_id)
            if known is not None and known["name"].strip().lower() != name.strip().lower():
                raise ValueError(
                    f"{self.path!r}, categories[{k}]: category id {category_id} is {name!r} here but "
                    f"{known['name']!r} in the categories file {categories_path!r}: the two files must "
                    "give each id the same category; fix the ids in one of them")
        return names

    def _check_annotation(self, k: int, ann, by_id: dict, images: list, categories: dict,
                          categories_path: str, seen: dict) -> None:
        path = self.path
        where = f"{path!r}, annotations[{k}]"
        if isinstance(ann, dict) and _is_whole(ann.get("id")):
            where = f"{path!r}, annotation id {ann['id']} (annotations[{k}])"
        _require(ann, ("id", "image_id", "category_id", "segmentation"), where,
                 'an annotation {"id", "image_id", "category_id", "segmentation", "iscrowd"} '
                 "(a box alone is not a mask: panoptic labels need the object's outline)")
        ann_id = _whole(ann["id"], "its id", where, 0, None, "annotation ids are whole numbers")
        image_id = ann["image_id"]
        if not _is_whole(image_id) or image_id not in by_id:
            some = sorted(by_id)[:5]
            raise ValueError(
                f"{where}: image_id {image_id!r} is not the id of any image in 'images' (ids there: "
                f"{some}{' ...' if len(by_id) > 5 else ''}); give the id of the image the object is "
                "in, or add that image to 'images'")
        where = f"{where} of image {images[by_id[image_id]]['file_name']!r}"
        if ann_id in seen:
            raise ValueError(f"{where}: annotation id {ann_id} is used twice, also by "
                             f"annotations[{seen[ann_id]}]; give every annotation its own id")
        seen[ann_id] = k
        category_id = ann["category_id"]
        if not _is_whole(category_id) or category_id not in categories:
            named = self.names.get(category_id) if _is_whole(category_id) else None
            things = sorted(c for c, entry in categories.items() if entry["isthing"])
            raise ValueError(
                f"{where}: category_id {category_id!r}{f' ({named!r} in this file)' if named else ''} "
                f"is not a category of the categories file {categories_path!r} (thing ids there: "
                f"{things}); add it there with isthing 1, or give the annotation one of those ids")
        if not categories[category_id]["isthing"]:
            raise ValueError(
                f"{where}: category_id {category_id} ({categories[category_id]['name']!r}) is stuff "
                f"(isthing 0) in the categories file {categories_path!r}, but instance annotations are "
                "things: paint stuff into the semantic PNGs (--semantic), or mark the category "
                "isthing 1 if it has countable instances")
        if "iscrowd" in ann:
            _zero_or_one(ann["iscrowd"], "iscrowd", where,
                         "0 for one object, 1 for a crowd of objects labelled as one region")


def _rle_string_runs(counts: str) -> Optional[list]:
    """The run lengths of a compressed COCO RLE string, or None if it is not one. Only to check
    that the runs fill the image (pycocotools decodes a short RLE into uninitialised memory); the
    mask itself is decoded by pycocotools."""
    runs: list = []
    p = 0
    while p < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if p >= len(counts):
                return None
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return None
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            p += 1
            shift += 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def _instance_mask(ann: dict, height: int, width: int, where: str) -> np.ndarray:
    """The annotation's (H, W) bool mask, decoded by pycocotools after its shape is checked."""
    segmentation = ann["segmentation"]
    what_to_do = "fix it in the labelling tool and export again"
    if isinstance(segmentation, list):
        if not segmentation:
            raise ValueError(f"{where}: its segmentation is an empty list (a box-only label?): a "
                             "panoptic label needs the object's outline; draw a polygon or mask, or "
                             "delete the annotation")
        if all(_is_number(v) for v in segmentation):
            raise ValueError(f"{where}: its segmentation is one flat list of numbers; COCO polygons "
                             "are a list of polygons, [[x1, y1, x2, y2, ...]]: wrap it in another list")
        for j, polygon in enumerate(segmentation):
            if not isinstance(polygon, list):
                raise ValueError(f"{where}: polygon {j} of its segmentation is {_kind(polygon)}, not "
                                 "a list of numbers [x1, y1, x2, y2, ...]; " + what_to_do)
            odd = [v for v in polygon if not _is_number(v)]
            if odd:
                raise ValueError(f"{where}: polygon {j} holds {_kind(odd[0])}; a polygon is finite "
                                 "numbers [x1, y1, x2, y2, ...]; " + what_to_do)
            if len(polygon) % 2:
                raise ValueError(f"{where}: polygon {j} has {len(polygon)} coordinates, an odd number: "
                                 f"a polygon is x, y pairs [x1, y1, x2, y2, ...]; {what_to_do}")
            if len(polygon) < 6:
                raise ValueError(f"{where}: polygon {j} has {len(polygon) // 2} point(s); a polygon "
                                 f"needs at least 3 (6 numbers); {what_to_do}, or delete it")
            for v in range(len(polygon) // 2):
                x, y = float(polygon[2 * v]), float(polygon[2 * v + 1])
                if not (-EDGE_TOLERANCE <= x <= width + EDGE_TOLERANCE
                        and -EDGE_TOLERANCE <= y <= height + EDGE_TOLERANCE):
                    raise ValueError(
                        f"{where}: vertex {v} of polygon {j}, (x, y) = ({x:g}, {y:g}), is outside the "
                        f"image, which is {width}x{height} (WxH; x from 0 to {width}, y from 0 to "
                        f"{height}): {what_to_do}, or check the image's width and height in 'images'")
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict):
        if "size" not in segmentation or "counts" not in segmentation:
            missing = [k for k in ("size", "counts") if k not in segmentation]
            raise ValueError(f"{where}: its RLE segmentation has no {' or '.join(map(repr, missing))}: "
                             'an RLE is {"size": [height, width], "counts": ...}; ' + what_to_do)
        size, counts = segmentation["size"], segmentation["counts"]
        if not (isinstance(size, list) and len(size) == 2 and all(_is_whole(s) for s in size)):
            raise ValueError(f"{where}: its RLE size is {size!r}; give [height, width] in pixels")
        if list(size) != [height, width]:
            raise ValueError(
                f"{where}: its RLE size is {size} ([height, width]) but the image is [{height}, "
                f"{width}] (height {height}, width {width}): the mask was made for another image or "
                "size; export the mask at the image's size, or fix the image's height and width")
        if isinstance(counts, list):
            if not all(_is_whole(c) and c >= 0 for c in counts):
                raise ValueError(f"{where}: its RLE counts are not all whole numbers of at least 0: an "
                                 "uncompressed RLE lists run lengths; " + what_to_do)
            total = sum(counts)
            rle = mask_utils.frPyObjects(segmentation, height, width) if total == height * width else None
        elif isinstance(counts, str):
            runs = _rle_string_runs(counts)
            if runs is None or any(r < 0 for r in runs):
                raise ValueError(f"{where}: its RLE counts string is not a valid compressed COCO RLE; "
                                 + what_to_do)
            total = sum(runs)
            rle = {"size": [height, width], "counts": counts.encode("ascii")}
        else:
            raise ValueError(f"{where}: its RLE counts are {_kind(counts)}; give a compressed string "
                             "or a list of run lengths")
        if total != height * width:
            raise ValueError(
                f"{where}: its RLE run lengths add up to {total} pixels, but the image has "
                f"{height} x {width} = {height * width}: the mask is cut short or too long; "
                + what_to_do)
    else:
        raise ValueError(f"{where}: its segmentation is {_kind(segmentation)}; give polygons "
                         '[[x1, y1, x2, y2, ...]] or an RLE {"size": [height, width], "counts": ...}')
    return mask_utils.decode(rle).astype(bool)                                   # (H, W)


def _check_image_file(path: str, image: dict, where: str) -> None:
    """The image file exists, is an image, and has the JSON's width and height."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}: missing image file {path!r}; put the image there, pass the "
                                "folder it is in as --images, or remove it from 'images'")
    try:
        with Image.open(path) as opened:
            size = opened.size
            rotated = opened.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{where}: could not read the image {path!r} ({type(err).__name__}: {err}); "
                         "replace it with a complete image file") from None
    if size != (image["width"], image["height"]):
        hint = (" (it has an EXIF orientation tag: the tool may have labelled it rotated; save it "
                "with its pixels upright, e.g. PIL.ImageOps.exif_transpose, and label that)"
                if rotated else "")
        raise ValueError(f"{where}: the image {path!r} is {size[0]}x{size[1]} (WxH) but the JSON says "
                         f"{image['width']}x{image['height']}{hint}; fix 'width'/'height' or the image")


def _read_semantic(path: str, image: dict, where: str, categories: dict) -> np.ndarray:
    """The (H, W) uint8 stuff map of one image; every non-zero value a stuff category."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"missing semantic PNG {path!r} for {where}: with --semantic every image needs one, "
            "named like the image with .png, pixel value = stuff category id (0 = unlabelled); an "
            "image without stuff needs one that is all 0")
    try:
        with Image.open(path) as opened:
            mode = opened.mode
            if mode not in SEMANTIC_MODES:
                raise ValueError(
                    f"the semantic PNG {path!r} of {where} is mode {mode!r}; a semantic PNG is one "
                    "8-bit channel whose value is the stuff category id: save a single-channel PNG "
                    "(mode 'L', e.g. Image.fromarray(values.astype(np.uint8)).save(path)), not "
                    "colours")
            values = np.asarray(opened)                                          # (H, W) uint8
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"could not read the semantic PNG {path!r} of {where} ({type(err).__name__}: "
                         f"{err}); replace it with a complete PNG") from None
    height, width = image["height"], image["width"]
    if values.shape != (height, width):
        raise ValueError(
            f"the semantic PNG {path!r} of {where} is {values.shape[1]}x{values.shape[0]} (WxH) but "
            f"the image is {width}x{height}: the semantic PNG must have the image's size")
    found, pixels = np.unique(values, return_counts=True)
    for value, count in zip(found.tolist(), pixels.tolist()):
        if value == 0:
            continue
        category = categories.get(value)
        if category is None:
            stuff = sorted(c for c, e in categories.items() if not e["isthing"])
            raise ValueError(
                f"the semantic PNG {path!r} of {where} has value {value} on {count} pixel(s), which "
                f"is not a category of the categories file (stuff ids there: {stuff}); paint those "
                "pixels with a stuff id, or 0 for unlabelled")
        if category["isthing"]:
            raise ValueError(
                f"the semantic PNG {path!r} of {where} has value {value} on {count} pixel(s), the id "
                f"of the thing {category['name']!r}: things belong in the instances file, one "
                "annotation per object; paint those pixels 0 (or with a stuff id) in the PNG")
    return values


class _Converted:
    """One image, converted in memory: its panoptic PNG bytes and segments, what was dropped."""

    def __init__(self, image: dict, source: str, image_out: str, png_name: str, png_out: str):
        self.image, self.source, self.image_out = image, source, image_out
        self.png_name, self.png_out = png_name, png_out
        self.png_bytes = b""
        self.segments: list = []
        self.dropped: list = []          # annotation ids
        self.dropped_details: list = []  # why, one line each
        self.overlap_pixels = 0


def _draw(item: _Converted, stuff: Optional[np.ndarray], instances: list, where_of) -> None:
    """Paint the stuff, then the instances (largest first, so the smaller is on top), number the
    segments that kept pixels 1, 2, ... and encode the id map as PNG bytes."""
    height, width = item.image["height"], item.image["width"]
    ids = np.zeros((height, width), dtype=np.int64)                              # (H, W), 0 = VOID
    planned = []  # (provisional id, category_id, iscrowd, annotation or None)
    if stuff is not None:
        for category_id in sorted(set(np.unique(stuff).tolist()) - {0}):
            planned.append((len(planned) + 1, category_id, 0, None))
            ids[stuff == category_id] = len(planned)
    first_thing = len(planned) + 1
    for k, ann, mask in instances:
        planned.append((len(planned) + 1, ann["category_id"], int(ann.get("iscrowd", 0)), (k, ann)))
    areas = [int(mask.sum()) for _, _, mask in instances]
    order = sorted(range(len(instances)), key=lambda i: (-areas[i], i))  # drawn first = bottom
    claims = np.zeros((height, width), dtype=np.int32)                           # (H, W)
    for i in order:
        mask = instances[i][2]
        ids[mask] = first_thing + i
        claims += mask
    item.overlap_pixels = int((claims > 1).sum())

    present = set(np.unique(ids).tolist())
    lookup = np.zeros(len(planned) + 1, dtype=np.int64)  # provisional id -> final id (0 if dropped)
    for provisional, category_id, iscrowd, source in planned:
        if provisional in present:
            lookup[provisional] = len(item.segments) + 1
            item.segments.append(({"id": len(item.segments) + 1, "category_id": category_id}, iscrowd))
        elif source is not None:
            k, ann = source
            i = provisional - first_thing
            if areas[i] == 0:
                why = "its mask has no pixel (a degenerate polygon or an empty mask)"
            else:
                above = [instances[j][1]["id"] for j in order[order.index(i) + 1:]
                         if (instances[j][2] & instances[i][2]).any()]
                why = (f"all its {areas[i]} pixels are covered by smaller instances drawn on top "
                       f"(annotation id(s) {above})")
            item.dropped.append(ann["id"])
            item.dropped_details.append(f"{where_of(k, ann)}: dropped, {why}")
    ids = lookup[ids]                                                            # (H, W)
    item.segments = [segment_annotation(ids, segment, iscrowd) for segment, iscrowd in item.segments]
    buffer = io.BytesIO()
    Image.fromarray(id2rgb(ids)).save(buffer, format="PNG")
    item.png_bytes = buffer.getvalue()


def _inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or inside it (both resolved)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives
        return False


# ---- the conversion ----------------------------------------------------------------------------

def convert(images, instances, categories, out, semantic=None, overwrite: bool = False) -> dict:
    """Convert a labelling tool's COCO instances export (and optional semantic PNGs for stuff) to
    a COCO panoptic dataset in ``out`` (``book/09_your_own_dataset.ipynb``).

    ``images``: the folder of image files; ``instances``: the COCO instances JSON; ``categories``:
    the panoptic category list (which are things); ``out``: the folder to write ``images/``,
    ``panoptic/`` and ``panoptic.json`` in; ``semantic``: a folder of single-channel PNGs of stuff
    ids, one per image (optional); ``overwrite``: replace files an earlier run wrote there.

    The rules (overlaps, stuff, crowds, what is refused, how files are written) are in the
    module's docstring. Returns a summary: ``images``, ``segments``, ``things`` (crowds
    included), ``stuff``, ``crowd`` (counts), ``dropped`` (ids of the instances left with no
    pixel), ``dropped_details`` (why, one line each), ``overlap_pixels`` (pixels claimed by more
    than one instance) and ``paths`` (a :class:`~detr_explained.coco_panoptic.PanopticPaths`;
    ``open_dataset(out)`` reads the dataset).
    """
    image_dir = _path_argument(images, "images")
    instances_path = _path_argument(instances, "instances")
    categories_path = _path_argument(categories, "categories")
    out_dir = _path_argument(out, "out")
    semantic_dir = None if semantic is None else _path_argument(semantic, "semantic")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    for name, folder in (("images", image_dir), ("semantic", semantic_dir)):
        if folder is not None and not os.path.isdir(folder):
            raise FileNotFoundError(f"no folder {folder!r} (--{name}): pass the folder that holds the "
                                    f"{'image files' if name == 'images' else 'semantic PNGs'}")
    if _inside(out_dir, image_dir):
        raise ValueError(f"the output folder {out_dir!r} is the images folder {image_dir!r} or inside "
                         "it: the converted dataset would mix with its own input; choose a folder "
                         "outside it")

    category_of = _read_categories(categories_path)
    labels = _Instances(instances_path, category_of, categories_path)
    paths = default_paths(out_dir)

    # What would be written, where: refuse clashes and (without overwrite) existing files now.
    items: list = []
    png_of: dict = {}
    for k, image in labels.images:
        name = image["file_name"]
        png_name = os.path.splitext(name)[0] + ".png"
        where = f"{instances_path!r}, image {name!r} (images[{k}], id {image['id']})"
        if png_name in png_of:
            raise ValueError(f"{where}: its panoptic PNG would be {png_name!r}, as that of "
                             f"{png_of[png_name]!r}: two images differ only in their extension; "
                             "rename one of them")
        png_of[png_name] = name
        items.append((k, where, _Converted(image, os.path.join(image_dir, name),
                                           os.path.join(paths.image_dir, name), png_name,
                                           os.path.join(paths.panoptic_dir, png_name))))
    outputs = [paths.annotation_file] + [p for _, _, item in items for p in (item.image_out, item.png_out)]
    inputs = {os.path.realpath(p): p for p in [instances_path, categories_path]
              + [item.source for _, _, item in items]}
    if semantic_dir is not None:
        for _, _, item in items:
            inputs.setdefault(os.path.realpath(os.path.join(semantic_dir, item.png_name)),
                              os.path.join(semantic_dir, item.png_name))
    for path in outputs:
        if os.path.realpath(path) in inputs:
            raise ValueError(f"writing {path!r} would replace the input {inputs[os.path.realpath(path)]!r}: "
                             "choose an output folder apart from the inputs")
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f"{out_dir!r} exists and is not a folder: choose another output folder")
    for folder in (paths.image_dir, paths.panoptic_dir):
        if os.path.lexists(folder) and not os.path.isdir(folder):
            raise FileExistsError(f"{folder!r} exists and is not a folder, so the dataset cannot be "
                                  "written there: move it away or choose another output folder")
    existing = [p for p in outputs if os.path.lexists(p)]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more file(s) this run would write)" if len(existing) > 1 else ""
        raise FileExistsError(f"{existing[0]!r}{more} already exists: converting would replace it. "
                              "Nothing was written: pass --overwrite (overwrite=True) to replace those "
                              "files, or choose another output folder")
    for path in existing:
        if os.path.isdir(path) and not os.path.islink(path):
            raise FileExistsError(f"{path!r} is a folder where the conversion writes a file: move it "
                                  "away or choose another output folder")

    # Read and check every label, draw every id map: all in memory before anything is written.
    for k, where, item in items:
        image = item.image
        _check_image_file(item.source, image, where)
        stuff = None
        if semantic_dir is not None:
            semantic_path = os.path.join(semantic_dir, item.png_name)
            if os.path.realpath(semantic_path) == os.path.realpath(item.source):
                raise ValueError(f"{where}: its semantic PNG {semantic_path!r} is the image itself: "
                                 "keep the semantic PNGs in a folder of their own")
            stuff = _read_semantic(semantic_path, image, where, category_of)

        def where_of(j, ann, name=image["file_name"]):
            return (f"{instances_path!r}, annotation id {ann['id']} (annotations[{j}]) of image "
                    f"{name!r}")

        masks = [(j, ann, _instance_mask(ann, image["height"], image["width"], where_of(j, ann)))
                 for j, ann in labels.annotations[image["id"]]]
        if not masks and (stuff is None or not stuff.any()):
            source = ("no --semantic folder was given" if stuff is None
                      else "its semantic PNG is all 0 (unlabelled)")
            raise ValueError(f"{where}: the image has no labels: no instance annotation in "
                             f"{instances_path!r} and no stuff pixel ({source}); label it, or "
                             "remove it from 'images'")
        _draw(item, stuff, masks, where_of)
        if not item.segments:
            raise ValueError(f"{where}: the image has no labelled pixel left: "
                             f"{'; '.join(item.dropped_details)}; label it, or remove it from 'images'")

    data = {
        "info": {"description": _DESCRIPTION, "version": "1.0"},
        "licenses": [],
        "images": [dict(item.image) for _, _, item in items],
        "annotations": [{"image_id": item.image["id"], "file_name": item.png_name,
                         "segments_info": item.segments} for _, _, item in items],
        "categories": list(category_of.values()),
    }
    _write(out_dir, paths, [item for _, _, item in items], data, existing)

    converted = [item for _, _, item in items]
    segments = [(s, category_of[s["category_id"]]) for item in converted for s in item.segments]
    return {
        "images": len(converted),
        "segments": len(segments),
        "things": sum(1 for _, c in segments if c["isthing"]),
        "stuff": sum(1 for _, c in segments if not c["isthing"]),
        "crowd": sum(1 for s, _ in segments if s["iscrowd"]),
        "dropped": [i for item in converted for i in item.dropped],
        "dropped_details": [d for item in converted for d in item.dropped_details],
        "overlap_pixels": sum(item.overlap_pixels for item in converted),
        "paths": paths,
    }


def _make_folder(folder: str, created: list) -> None:
    """Make ``folder`` and any missing parent, noting each one made in ``created``."""
    missing = []
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    for path in reversed(missing):
        os.mkdir(path)
        created.append(path)


def _write(out_dir: str, paths: PanopticPaths, items: list, data: dict, existing: list) -> None:
    """Write the images, the PNGs, then panoptic.json under a temporary name renamed into place;
    on any failure remove what this run wrote (and the folders it made, if left empty).
    ``existing``: the files to replace (only with overwrite; checked by the caller)."""
    replace = set(existing)
    created: list = []
    written: list = []
    try:
        if paths.annotation_file in replace:
            os.remove(paths.annotation_file)  # from here on no panoptic.json lists changed files
        for folder in (out_dir, paths.image_dir, paths.panoptic_dir):
            _make_folder(folder, created)
        for item in items:
            for path in (item.image_out, item.png_out):
                _make_folder(os.path.dirname(path), created)
                if path in replace:
                    os.remove(path)  # a link is replaced, never written through
                elif os.path.lexists(path):
                    raise FileExistsError(f"{path!r} appeared while the dataset was written (another "
                                          "program writing there?); nothing of this run was kept")
            written.append(item.image_out)
            shutil.copyfile(item.source, item.image_out)
            written.append(item.png_out)
            with open(item.png_out, "wb") as f:
                f.write(item.png_bytes)
        temp = f"{paths.annotation_file}.{os.getpid()}.tmp"
        with open(temp, "x") as f:
            written.append(temp)
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, paths.annotation_file)
    except BaseException:
        for path in written:
            try:
                if os.path.lexists(path) and not os.path.isdir(path):
                    os.remove(path)
            except OSError:
                pass
        for folder in reversed(created):
            try:
                os.rmdir(folder)  # only if empty
            except OSError:
                pass
        raise


# ---- the command -------------------------------------------------------------------------------

def _summary_line(summary: dict) -> str:
    dropped = summary["dropped"]
    line = (f"wrote {summary['images']} images, {summary['segments']} segments ({summary['things']} "
            f"things incl. {summary['crowd']} crowd, {summary['stuff']} stuff) to "
            f"{os.path.dirname(summary['paths'].annotation_file) or '.'}")
    if summary["overlap_pixels"]:
        line += (f"; {summary['overlap_pixels']} pixels claimed by more than one instance went to "
                 "the smaller one")
    if dropped:
        shown = ", ".join(str(i) for i in dropped[:10]) + (" ..." if len(dropped) > 10 else "")
        line += (f"; {len(dropped)} instance{'s' if len(dropped) > 1 else ''} dropped (no pixel "
                 f"left): annotation id(s) {shown}")
    else:
        line += "; no instance dropped"
    return line


def build_parser() -> cli.CommandParser:
    """The command line of ``python -m detr_explained.convert`` (``book/09_your_own_dataset.ipynb``)."""
    parser = cli.CommandParser(
        prog="python -m detr_explained.convert",
        description="Convert a labelling tool's COCO instances export (plus optional semantic PNGs "
                    "for stuff) to the COCO panoptic format that detr_explained reads.")
    parser.add_argument("--images", required=True, help="folder of the image files")
    parser.add_argument("--instances", required=True,
                        help="the COCO instances JSON the labelling tool exported")
    parser.add_argument("--categories", required=True,
                        help='JSON list of {"id", "name", "isthing"}: which categories are things')
    parser.add_argument("--semantic", default=None,
                        help="folder of single-channel PNGs, one per image (000001.jpg -> "
                             "000001.png), pixel value = stuff category id, 0 = unlabelled")
    parser.add_argument("--out", required=True,
                        help="folder to write images/, panoptic/ and panoptic.json in")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files of an earlier conversion there (only those this run "
                             "writes; other files stay)")
    cli.add_traceback_option(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m detr_explained.convert --images DIR --instances FILE --categories FILE --out OUT``
    (``book/09_your_own_dataset.ipynb``). Prints one summary line, and a ``warning:`` line on
    stderr per dropped instance; a bad label ends the command with one ``error: ...`` line and
    exit status 2 (``--traceback`` for more)."""
    parser = build_parser()

    def body(args: argparse.Namespace) -> dict:
        summary = convert(args.images, args.instances, args.categories, args.out,
                          semantic=args.semantic, overwrite=args.overwrite)
        for detail in summary["dropped_details"]:
            cli.print_error(f"warning: {detail}")
        print(_summary_line(summary), flush=True)
        return summary

    cli.run_command(parser, body, argv)


if __name__ == "__main__":
    main()
