"""A tiny panoptic world to train on: textured stuff, overlapping shapes, real COCO files.

Explained in ``book/07_train_it_yourself.ipynb``. COCO is 18 GB and DETR needs days on 8 GPUs to
learn it; to watch the losses, the matcher and PQ at work on two CPU cores we need a dataset that
is small, quick to learn, and still has everything that makes panoptic segmentation panoptic:

- STUFF: amorphous regions without instances: sky (smooth gradient with soft clouds), ground
  (diagonal furrows and grain), water (wavy ripples). Textured, so that colour alone is not enough.
- THINGS: countable objects with instances: circles, rectangles, triangles, of random size and
  colour and shading, several of one class in a scene, overlapping and hiding each other.

:func:`write_dataset` writes the real COCO panoptic format (``images/*.jpg``, ``panoptic/*.png``
id maps, ``panoptic.json`` with areas and boxes from ``pycocotools``), so everything that reads it
reads COCO too, and :class:`detr_explained.coco_panoptic.CocoPanoptic` loads it.

Every scene is a function of ``(seed, index)`` only: image 5 of seed 0 is the same whether you
write 10 images or 1000.

Command line::

    python -m detr_explained.synthetic OUT_DIR --num-images 200 --seed 0 [--overwrite]

``--overwrite`` replaces a dataset this generator wrote: it deletes only the files it wrote (those
its ``panoptic.json`` lists), never another file in ``images/`` or ``panoptic/``, and it refuses,
before writing anything, to replace a file it did not write. The JSON is written last, so a run
that fails or is interrupted leaves no ``panoptic.json`` that lists missing files.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from pycocotools import mask as mask_utils

from . import cli
from .checks import whole_number
from .coco_panoptic import PanopticPaths, default_paths, id2rgb, VOID_ID, ID_BASE
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD

# Category ids follow COCO's convention of being arbitrary integers, used directly as class
# indices by DETR: with ids 1..6 the model needs num_classes = 7 (id 0 unused).
THING_CATEGORIES = [
    {"id": 1, "name": "circle", "isthing": 1, "supercategory": "shape"},
    {"id": 2, "name": "rectangle", "isthing": 1, "supercategory": "shape"},
    {"id": 3, "name": "triangle", "isthing": 1, "supercategory": "shape"},
]
STUFF_CATEGORIES = [
    {"id": 4, "name": "sky", "isthing": 0, "supercategory": "background"},
    {"id": 5, "name": "ground", "isthing": 0, "supercategory": "background"},
    {"id": 6, "name": "water", "isthing": 0, "supercategory": "background"},
]
CATEGORIES = THING_CATEGORIES + STUFF_CATEGORIES
CIRCLE, RECTANGLE, TRIANGLE = 1, 2, 3
SKY, GROUND, WATER = 4, 5, 6
NUM_CLASSES = max(c["id"] for c in CATEGORIES) + 1
CATEGORY_NAMES = {c["id"]: c["name"] for c in CATEGORIES}
THING_IDS = frozenset(c["id"] for c in THING_CATEGORIES)

# The book's scenes: the shipped model was trained on seed 0 at 128 x 128 pixels; seed 1 is the
# held-out set it is evaluated on and the chapters draw from (see held_out_scene).
TRAIN_SEED = 0
HELD_OUT_SEED = 1
BOOK_SIDE = 128
# The held-out scene chapters 2 to 5 draw the trained model on: all three stuff classes, two
# rectangles, two circles (one partly hidden) and a triangle.
BOOK_SCENE = 2

# Image sides are drawn in [MIN_SIDE, MAX_SIDE]: sizes differ, so batches need padding, as in COCO.
MIN_SIDE = 128
MAX_SIDE = 192

# Things per scene, before occlusion removes any. One class always has at least two instances.
MIN_THINGS = 3
MAX_THINGS = 7
# A thing's radius (half side for rectangles) as a fraction of the image's shorter side.
MIN_THING_SCALE = 0.07
MAX_THING_SCALE = 0.22
# Chance that a thing is placed overlapping the previous one, so occlusion is common.
OVERLAP_PROBABILITY = 0.4
# A thing hidden by others until fewer pixels than this are visible is dropped from the scene:
# a handful of pixels is not an object anyone could label.
MIN_VISIBLE_PIXELS = 24

# Chance that a scene has no water (ground only below the horizon): not every stuff class is in
# every image, as in real data.
NO_WATER_PROBABILITY = 0.2

# COCO ships JPEGs; quality 95 keeps compression artefacts faint.
JPEG_QUALITY = 95

# write_dataset's bounds on the image side: 32 pixels is the smallest size the ResNet backbone
# (stride 32) maps to at least one feature pixel; above 2048 a scene's float arrays take gigabytes.
SMALLEST_SIDE = 32
LARGEST_SIDE = 2048

# How the generator names what it writes, and how it recognises its own files when it overwrites:
# image id 7 is images/000007.jpg and panoptic/000007.png; its JSON's info.description starts with
# GENERATOR_DESCRIPTION. While a run writes, IN_PROGRESS_FILE (in OUT_DIR) lists the files it may
# leave behind, so that an interrupted run can be cleaned up by the next run with overwrite.
GENERATOR_DESCRIPTION = "detr_explained synthetic panoptic scenes"
IN_PROGRESS_FILE = ".synthetic-writing.json"
_OWN_NAME = re.compile(r"(images/\d{6,}\.jpg|panoptic/\d{6,}\.png|panoptic\.json(\.tmp)?)")


@dataclass
class Scene:
    """One synthetic image and its panoptic ground truth.

    image:    (H, W, 3) uint8.
    ids:      (H, W) int64 segment ids (0 would be VOID; every pixel here is labelled).
    segments: ``[{"id", "category_id"}]``, stuff first, then things in drawing order (back to
              front); things also carry ``drawn_area``, their pixel count before occlusion.

    Explained in ``book/07_train_it_yourself.ipynb``.
    """

    image: np.ndarray
    ids: np.ndarray
    segments: list[dict]

    def tensor(self) -> torch.Tensor:
        """The image as a model input: (3, H, W) float, ImageNet-normalised, like the loader's
        images (which have been through JPEG, so they differ from this by a little noise)."""
        return TF.normalize(TF.to_tensor(self.image), IMAGENET_MEAN, IMAGENET_STD)  # (3, H, W)

    def masks(self) -> torch.Tensor:
        """One boolean (H, W) mask per segment, in the order of ``segments``: (S, H, W)."""
        ids = torch.tensor([s["id"] for s in self.segments])                     # (S,)
        return torch.from_numpy(self.ids)[None] == ids[:, None, None]             # (S, H, W)

    def segments_info(self) -> list[dict]:
        """The ground truth as ``segments_info``: id, category_id, isthing and area per segment,
        what ``figures.show_panoptic`` and ``pq`` read."""
        return [{"id": s["id"], "category_id": s["category_id"],
                 "isthing": int(s["category_id"] in THING_IDS), "area": int((self.ids == s["id"]).sum())}
                for s in self.segments]


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Noise in [0, 1] that varies over about ``cell`` pixels (bicubic upsampling of a coarse grid)."""
    coarse = rng.random((height // cell + 2, width // cell + 2)).astype(np.float32)  # (H/cell+2, W/cell+2)
    big = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
    return np.clip(np.asarray(big), 0.0, 1.0)                                    # (H, W)


def _sky_texture(rng, yy, xx) -> np.ndarray:
    height, width = yy.shape
    top = np.array([0.25, 0.45, 0.85]) + rng.uniform(-0.08, 0.08, 3)
    bottom = np.array([0.70, 0.82, 0.95]) + rng.uniform(-0.05, 0.05, 3)
    t = (yy / height)[..., None]                                                 # (H, W, 1)
    base = (1 - t) * top + t * bottom                                            # (H, W, 3)
    clouds = _smooth_noise(rng, height, width, cell=24)[..., None] ** 3          # (H, W, 1)
    return base + 0.6 * clouds * (1.0 - base)


def _ground_texture(rng, yy, xx) -> np.ndarray:
    base = np.array([0.45, 0.35, 0.20]) + rng.uniform(-0.1, 0.1, 3)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(5, 10)
    furrows = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)  # (H, W)
    grain = rng.normal(0, 0.05, yy.shape)                                        # (H, W)
    return base + (0.08 * furrows + grain)[..., None]                           # (H, W, 3)


def _water_texture(rng, yy, xx) -> np.ndarray:
    base = np.array([0.10, 0.35, 0.55]) + rng.uniform(-0.08, 0.08, 3)
    period = rng.uniform(4, 8)
    ripples = np.sin(2 * np.pi * yy / period + 1.5 * np.sin(2 * np.pi * xx / rng.uniform(20, 40)))
    glints = (rng.random(yy.shape) > 0.985) * 0.4                               # (H, W)
    return base + (0.1 * ripples + glints)[..., None]                           # (H, W, 3)


def _thing_texture(rng, yy, xx, cy, cx, size) -> np.ndarray:
    """A random saturated colour with a linear shading across the object and faint noise."""
    hue = rng.random()
    rgb = np.array(_hsv_to_rgb(hue, rng.uniform(0.5, 1.0), rng.uniform(0.55, 1.0)))
    angle = rng.uniform(0, 2 * np.pi)
    shade = ((xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)) / (2 * size)  # (H, W)
    noise = rng.normal(0, 0.03, yy.shape)                                        # (H, W)
    return rgb * (1 + 0.35 * np.clip(shade, -1, 1))[..., None] + noise[..., None]


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def _thing_mask(rng, category: int, yy, xx, cy, cx, size) -> np.ndarray:
    """(H, W) bool mask of one shape centred at (cy, cx) with radius ``size``."""
    if category == CIRCLE:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= size**2
    if category == RECTANGLE:
        aspect = rng.uniform(0.5, 2.0)
        half_w, half_h = size * np.sqrt(aspect), size / np.sqrt(aspect)
        return (np.abs(xx - cx) <= half_w) & (np.abs(yy - cy) <= half_h)
    if category == TRIANGLE:
        start = rng.uniform(0, 2 * np.pi)
        angles = start + np.arange(3) * 2 * np.pi / 3 + rng.uniform(-0.3, 0.3, 3)
        vx, vy = cx + 1.3 * size * np.cos(angles), cy + 1.3 * size * np.sin(angles)
        # A point is inside when it is on the same side of all three edges.
        sides = [
            (vx[(k + 1) % 3] - vx[k]) * (yy - vy[k]) - (vy[(k + 1) % 3] - vy[k]) * (xx - vx[k])
            for k in range(3)
        ]
        return ((sides[0] >= 0) & (sides[1] >= 0) & (sides[2] >= 0)) | (
            (sides[0] <= 0) & (sides[1] <= 0) & (sides[2] <= 0))
    raise ValueError(f"unknown thing category {category}")


def _stuff_map(rng, yy, xx) -> np.ndarray:
    """(H, W) stuff category per pixel: sky above a hilly horizon, ground and water below it,
    split by a wavy shore."""
    height, width = yy.shape
    horizon = height * rng.uniform(0.3, 0.6) + height * 0.06 * np.sin(
        2 * np.pi * xx / rng.uniform(0.5, 1.5) / width + rng.uniform(0, 2 * np.pi))  # (H, W)
    stuff = np.where(yy < horizon, SKY, GROUND)
    if rng.random() >= NO_WATER_PROBABILITY:
        shore = width * rng.uniform(0.25, 0.75) + width * 0.08 * np.sin(
            2 * np.pi * yy / (height * rng.uniform(0.3, 0.8)) + rng.uniform(0, 2 * np.pi))
        water_side = (xx < shore) if rng.random() < 0.5 else (xx >= shore)
        stuff = np.where((yy >= horizon) & water_side, WATER, stuff)
    return stuff.astype(np.int64)


def _unique_ids(rng, count: int) -> list[int]:
    """Distinct random segment ids in [1, 256**3): ids carry no meaning, only identity, and
    random ones make every byte of the PNG colour matter."""
    ids: list[int] = []
    while len(ids) < count:
        candidate = int(rng.integers(1, ID_BASE**3))
        if candidate not in ids and candidate != VOID_ID:
            ids.append(candidate)
    return ids


def make_scene(seed: int, index: int = 0, size: Optional[tuple[int, int]] = None,
               min_side: int = MIN_SIDE, max_side: int = MAX_SIDE) -> Scene:
    """Scene ``index`` of ``seed`` (``book/07_train_it_yourself.ipynb``).

    ``size=(H, W)`` fixes the image size; otherwise both sides are drawn in [min_side, max_side].
    ``seed`` and ``index`` are whole numbers of at least 0, sides at least 1.
    """
    seed = whole_number(seed, "seed", 0, "any whole number from 0, e.g. 0")
    index = whole_number(index, "index", 0, "the scene's number, from 0")
    if size is None:
        min_side = whole_number(min_side, "min_side", 1, "the smallest image side in pixels")
        max_side = whole_number(max_side, "max_side", 1, "the largest image side in pixels")
        if min_side > max_side:
            raise ValueError(f"min_side {min_side} is above max_side {max_side}: give "
                             "min_side <= max_side")
    else:
        if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
            raise TypeError(f"size must be (height, width), two whole numbers, got {size!r}")
        size = tuple(whole_number(v, name, 1, "pixels") for v, name in zip(size, ("height", "width")))
    rng = np.random.default_rng([seed, index])
    if size is None:
        height, width = (int(v) for v in rng.integers(min_side, max_side + 1, 2))
    else:
        height, width = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)                      # (H, W) each

    # 1. Stuff: one segment per stuff class present.
    stuff = _stuff_map(rng, yy, xx)                                              # (H, W)
    textures = {SKY: _sky_texture, GROUND: _ground_texture, WATER: _water_texture}

    # 2. Things: shapes with positions, sizes and colours; one class repeated at least twice.
    num_things = int(rng.integers(MIN_THINGS, MAX_THINGS + 1))
    repeated = int(rng.choice([CIRCLE, RECTANGLE, TRIANGLE]))
    classes = [repeated, repeated] + [int(c) for c in rng.choice([CIRCLE, RECTANGLE, TRIANGLE],
                                                                 num_things - 2)]
    rng.shuffle(classes)
    shorter = min(height, width)
    things = []  # (category, mask, texture), back to front
    for category in classes:
        size_px = shorter * rng.uniform(MIN_THING_SCALE, MAX_THING_SCALE)
        if things and rng.random() < OVERLAP_PROBABILITY:
            # Near the previous thing: it will partly hide it.
            cy, cx = prev_center + rng.uniform(-1.2, 1.2, 2) * prev_size
        else:
            cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
        mask = _thing_mask(rng, category, yy, xx, cy, cx, size_px)               # (H, W)
        texture = _thing_texture(rng, yy, xx, cy, cx, size_px)                  # (H, W, 3)
        things.append((category, mask, texture))
        prev_center, prev_size = np.array([cy, cx]), size_px

    # 3. Paint back to front; drop things that end up (almost) hidden, and repaint until stable.
    while True:
        layer = np.full((height, width), -1, dtype=np.int64)                     # (H, W) thing index
        for k, (_, mask, _) in enumerate(things):
            layer[mask] = k
        visible = np.bincount(layer[layer >= 0], minlength=len(things))          # (num_things,)
        keep = visible >= MIN_VISIBLE_PIXELS
        if keep.all():
            break
        things = [t for t, k in zip(things, keep) if k]

    stuff_present = [c for c in (SKY, GROUND, WATER) if ((stuff == c) & (layer < 0)).any()]
    segment_ids = _unique_ids(rng, len(stuff_present) + len(things))
    ids = np.zeros((height, width), dtype=np.int64)                              # (H, W)
    image = np.zeros((height, width, 3))                                         # (H, W, 3)
    segments = []
    for seg_id, category in zip(segment_ids, stuff_present):
        region = (stuff == category) & (layer < 0)
        ids[region] = seg_id
        image[region] = textures[category](rng, yy, xx)[region]
        segments.append({"id": seg_id, "category_id": category})
    for k, (seg_id, (category, mask, texture)) in enumerate(zip(segment_ids[len(stuff_present):], things)):
        region = layer == k
        ids[region] = seg_id
        image[region] = texture[region]
        # drawn_area: pixels of the whole shape inside the image; more than ``area`` if occluded.
        segments.append({"id": seg_id, "category_id": category, "drawn_area": int(mask.sum())})
    image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return Scene(image=image, ids=ids, segments=segments)


def held_out_scene(index: int = 0) -> Scene:
    """Held-out scene ``index``: never trained on, the same as image ``index + 1`` of the dataset
    ``python -m detr_explained.synthetic DIR --seed 1 --min-side 128 --max-side 128`` writes
    (``book/07_train_it_yourself.ipynb``; chapters 2 to 5 draw the trained model on one)."""
    index = whole_number(index, "index", 0, "the held-out scene's number, from 0")
    return make_scene(HELD_OUT_SEED, index, min_side=BOOK_SIDE, max_side=BOOK_SIDE)


def is_thing(category_id: int) -> bool:
    """Whether a synthetic category is a thing (circle, rectangle, triangle) rather than stuff;
    the ``is_thing`` for ``merge_panoptic`` and ``segment`` (``book/07_train_it_yourself.ipynb``)."""
    return int(category_id) in THING_IDS


def segment_annotation(ids: np.ndarray, segment: dict, iscrowd: int = 0) -> dict:
    """A COCO ``segments_info`` entry, with ``area`` and ``bbox`` [x, y, w, h] from pycocotools.

    ``ids`` is an (H, W) id map, ``segment`` a dict with ``id`` and ``category_id``, ``iscrowd`` 0 or 1.

    Explained in ``book/07_train_it_yourself.ipynb``.
    """
    if np.ndim(ids) != 2:
        raise ValueError(f"ids must be an (H, W) id map, got an array of shape {np.shape(ids)}")
    if not isinstance(segment, dict) or "id" not in segment or "category_id" not in segment:
        raise ValueError(f"segment must be a dict with 'id' and 'category_id', got {segment!r}")
    if isinstance(iscrowd, bool) or iscrowd not in (0, 1):
        raise ValueError(f"iscrowd must be 0 or 1, got {iscrowd!r}")
    mask = np.asfortranarray((ids == segment["id"]).astype(np.uint8))           # (H, W)
    rle = mask_utils.encode(mask)
    return {
        "id": int(segment["id"]),
        "category_id": int(segment["category_id"]),
        "iscrowd": int(iscrowd),
        "bbox": [int(round(v)) for v in mask_utils.toBbox(rle)],
        "area": int(mask_utils.area(rle)),
    }


def write_dataset(out_dir: str, num_images: int, seed: int, overwrite: bool = False,
                  min_side: int = MIN_SIDE, max_side: int = MAX_SIDE) -> PanopticPaths:
    """Write ``num_images`` scenes in the COCO panoptic format (``book/07_train_it_yourself.ipynb``).

    Layout: ``out_dir/images/000001.jpg``, ``out_dir/panoptic/000001.png`` and
    ``out_dir/panoptic.json``; image ``k`` is scene ``k - 1`` of ``seed``. Returns the three paths.

    The arguments are checked before anything is written: ``num_images`` at least 1, ``seed`` at
    least 0 (numpy's generator takes no negative seed), ``32 <= min_side <= max_side <= 2048``.

    If any of the three paths already exists, nothing is written and a ``FileExistsError`` is
    raised, unless ``overwrite=True``, which replaces a dataset this generator wrote. It deletes
    only what the generator wrote: the old ``panoptic.json`` and the images and PNGs it lists under
    the generator's names (``000001.jpg``, ``000001.png``, ...); any other file in ``images/``,
    ``panoptic/`` or ``out_dir`` stays. It refuses, with nothing written or deleted, when a
    ``panoptic.json`` there was not written by the generator, or when a file it would write
    already exists and is not one the old JSON lists (someone else's file).

    The JSON is written last, under a temporary name that is then renamed, so a run that fails
    midway leaves no ``panoptic.json``; it deletes the files it had written before re-raising. A
    run that is killed leaves a note (``.synthetic-writing.json``) of the files it may have
    written, which the next run with ``overwrite=True`` deletes.
    """
    out_dir = _path_argument(out_dir, "out_dir")
    num_images = whole_number(num_images, "num_images", 1, "how many images to write, e.g. 200")
    seed = whole_number(seed, "seed", 0, "any whole number from 0 (numpy's generator takes no negative "
                                   "seed), e.g. 0")
    min_side = whole_number(min_side, "min_side", SMALLEST_SIDE, f"the smallest image side in pixels, "
                                                           f"{SMALLEST_SIDE} to {LARGEST_SIDE}")
    max_side = whole_number(max_side, "max_side", SMALLEST_SIDE, f"the largest image side in pixels, "
                                                           f"{SMALLEST_SIDE} to {LARGEST_SIDE}")
    if min_side > max_side:
        raise ValueError(f"min_side (--min-side) {min_side} is above max_side (--max-side) {max_side}: "
                         f"give {SMALLEST_SIDE} <= min_side <= max_side, e.g. 128 and 192")
    if max_side > LARGEST_SIDE:
        raise ValueError(f"max_side is {max_side}: give at most {LARGEST_SIDE} pixels (a scene's "
                         "arrays grow with the square of the side)")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")

    paths = default_paths(out_dir)
    in_progress = os.path.join(out_dir, IN_PROGRESS_FILE)
    for folder in (out_dir, paths.image_dir, paths.panoptic_dir):
        if os.path.lexists(folder) and not os.path.isdir(folder):
            raise NotADirectoryError(f"{folder!r} is a file, not a folder: the dataset is written "
                                     f"into {out_dir}/images and {out_dir}/panoptic; pass another out_dir")
    existing = [p for p in (*paths, in_progress) if os.path.lexists(p)]
    if existing and not overwrite:
        interrupted = (" (an interrupted run left files behind; overwrite deletes them)"
                       if in_progress in existing else "")
        raise FileExistsError(
            f"{existing} already exist(s){interrupted}: pass overwrite=True (or --overwrite) to "
            "replace the dataset the generator wrote there, or choose another folder"
        )
    owned = _files_written_before(out_dir, paths, in_progress)
    temp_json = paths.annotation_file + ".tmp"
    stems = [_stem(image_id) for image_id in range(1, num_images + 1)]
    planned = ([os.path.join(paths.image_dir, stem + ".jpg") for stem in stems]
               + [os.path.join(paths.panoptic_dir, stem + ".png") for stem in stems] + [temp_json])
    foreign = [p for p in planned if os.path.lexists(p)
               and (p not in owned or (os.path.isdir(p) and not os.path.islink(p)))]
    if foreign:
        listed_by = ("the panoptic.json there does not list it" if os.path.lexists(paths.annotation_file)
                     else "there is no panoptic.json of the generator listing it")
        more = f" (and {len(foreign) - 1} more such file(s))" if len(foreign) > 1 else ""
        raise FileExistsError(
            f"{foreign[0]!r}{more} already exists and is not a file this generator wrote "
            f"({listed_by}), so writing the dataset would replace it. Nothing was written or "
            "deleted: move it away, or write the dataset to another folder"
        )

    # From here on files change; the note lists everything this run deletes or writes.
    created = [d for d in (out_dir, paths.image_dir, paths.panoptic_dir) if not os.path.lexists(d)]
    os.makedirs(out_dir, exist_ok=True)
    touched = sorted((owned | set(planned)) - {in_progress})
    _write_note(in_progress, out_dir, touched)
    try:
        # The old JSON first: from then on no panoptic.json lists files that are gone.
        for path in sorted(owned - {in_progress}, key=lambda p: p != paths.annotation_file):
            if os.path.lexists(path):
                os.remove(path)
        os.makedirs(paths.image_dir, exist_ok=True)
        os.makedirs(paths.panoptic_dir, exist_ok=True)
        images, annotations = [], []
        for index, stem in enumerate(stems):
            scene = make_scene(seed, index, min_side=min_side, max_side=max_side)
            image_id = index + 1
            height, width = scene.ids.shape
            Image.fromarray(scene.image).save(
                os.path.join(paths.image_dir, stem + ".jpg"), quality=JPEG_QUALITY)
            Image.fromarray(id2rgb(scene.ids)).save(os.path.join(paths.panoptic_dir, stem + ".png"))
            images.append({"id": image_id, "file_name": stem + ".jpg", "width": width, "height": height})
            annotations.append({
                "image_id": image_id,
                "file_name": stem + ".png",
                "segments_info": [segment_annotation(scene.ids, s) for s in scene.segments],
            })
        data = {
            "info": {"description": f"{GENERATOR_DESCRIPTION}, seed {seed}", "version": "1.0"},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": CATEGORIES,
        }
        with open(temp_json, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp_json, paths.annotation_file)
    except BaseException:
        # Undo what this run wrote; what is left (a file that could not be deleted) stays noted.
        for path in planned:
            if os.path.lexists(path) and not os.path.isdir(path):
                os.remove(path)
        left = [p for p in touched if os.path.lexists(p) and p != paths.annotation_file]
        if left:
            _write_note(in_progress, out_dir, left)
        else:
            os.remove(in_progress)
        for folder in reversed(created):  # folders this run made, if nothing else is in them
            if os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
        raise
    os.remove(in_progress)
    return paths


def _stem(image_id: int) -> str:
    """The generator's file name for an image, without extension: 7 -> '000007'."""
    return f"{image_id:06d}"


def _path_argument(value, name: str) -> str:
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a folder path (a str or pathlib.Path), got {value!r}")
    path = os.fspath(value)
    if not isinstance(path, str) or path == "":
        raise ValueError(f"{name} is empty: give the folder to write the dataset in, e.g. data/train")
    return path


def _files_written_before(out_dir: str, paths: PanopticPaths, in_progress: str) -> set:
    """The files in ``out_dir`` an earlier run of the generator wrote: the JSON, the images and PNGs
    it lists under the generator's names, and what an interrupted run noted. Raises
    FileExistsError if a ``panoptic.json`` there is not the generator's."""
    owned = set()
    if os.path.lexists(in_progress):
        owned.add(in_progress)
        try:
            with open(in_progress) as f:
                note = json.load(f)
        except (OSError, ValueError):
            note = {}  # cut short while it was written: only the note itself is known to be ours
        files = note.get("files") if isinstance(note, dict) else None
        for rel in files if isinstance(files, list) else []:
            if isinstance(rel, str) and _OWN_NAME.fullmatch(rel):
                owned.add(os.path.join(out_dir, *rel.split("/")))
    if not os.path.lexists(paths.annotation_file) or paths.annotation_file in owned:
        return owned
    try:
        with open(paths.annotation_file) as f:
            data = json.load(f)
    except (OSError, ValueError):
        raise FileExistsError(
            f"{paths.annotation_file!r} exists but is not readable JSON, so which files in images/ "
            "and panoptic/ the generator wrote cannot be told. Nothing was written or deleted: move "
            "it away (with the files that belong to it), or write the dataset to another folder"
        ) from None
    info = data.get("info") if isinstance(data, dict) else None
    description = info.get("description") if isinstance(info, dict) else None
    if not (isinstance(description, str) and description.startswith(GENERATOR_DESCRIPTION)):
        raise FileExistsError(
            f"{paths.annotation_file!r} was not written by this generator (its info.description "
            f"is {description!r}), and overwrite only replaces the generator's own datasets. "
            "Nothing was written or deleted: move that dataset away, or write to another folder"
        )
    owned.add(paths.annotation_file)
    for key, id_key, folder, extension in (("images", "id", paths.image_dir, ".jpg"),
                                           ("annotations", "image_id", paths.panoptic_dir, ".png")):
        entries = data.get(key)
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            image_id, name = entry.get(id_key), entry.get("file_name")
            if (isinstance(image_id, int) and not isinstance(image_id, bool) and image_id >= 1
                    and name == _stem(image_id) + extension):
                owned.add(os.path.join(folder, name))
    return owned


def _write_note(note_path: str, out_dir: str, files: list) -> None:
    """The in-progress note: the files (relative to out_dir) a run may leave behind."""
    relative = sorted(os.path.relpath(p, out_dir).replace(os.sep, "/") for p in files)
    with open(note_path, "w") as f:
        json.dump({"description": f"{GENERATOR_DESCRIPTION}: files of a run in progress",
                   "files": relative}, f)


def _side(text: str) -> int:
    """An argparse type: an image side from SMALLEST_SIDE to LARGEST_SIDE pixels."""
    value = cli.positive_int(text)
    if not SMALLEST_SIDE <= value <= LARGEST_SIDE:
        raise argparse.ArgumentTypeError(
            f"{text} is not an image side from {SMALLEST_SIDE} to {LARGEST_SIDE} pixels")
    return value


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m detr_explained.synthetic OUT_DIR --num-images N --seed S``
    (``book/07_train_it_yourself.ipynb``). A wrong option or a folder that cannot be written
    ends the command with one ``error: ...`` line and exit status 2 (``--traceback`` for more)."""
    parser = cli.CommandParser(
        prog="python -m detr_explained.synthetic",
        description="Write a synthetic panoptic dataset in the COCO panoptic format.")
    parser.add_argument("out_dir", help="folder to write images/, panoptic/ and panoptic.json in")
    parser.add_argument("--num-images", type=cli.positive_int, required=True,
                        help="how many images to write (1 or more)")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0,
                        help="which scenes (0 or more; default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the dataset this generator wrote in out_dir: deletes only the "
                             "files its panoptic.json lists; other files stay")
    parser.add_argument("--min-side", type=_side, default=MIN_SIDE,
                        help=f"smallest image side in pixels ({SMALLEST_SIDE} to {LARGEST_SIDE}; "
                             f"default {MIN_SIDE})")
    parser.add_argument("--max-side", type=_side, default=MAX_SIDE,
                        help=f"largest image side in pixels, at least --min-side (default {MAX_SIDE})")
    cli.add_traceback_option(parser)

    def body(args: argparse.Namespace) -> None:
        paths = write_dataset(args.out_dir, args.num_images, args.seed, args.overwrite,
                              args.min_side, args.max_side)
        print(f"wrote {args.num_images} images to {paths.image_dir}, "
              f"{paths.panoptic_dir} and {paths.annotation_file}")

    cli.run_command(parser, body, argv)


if __name__ == "__main__":
    main()
