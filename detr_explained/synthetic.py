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
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from pycocotools import mask as mask_utils

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
    """
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
    return make_scene(HELD_OUT_SEED, index, min_side=BOOK_SIDE, max_side=BOOK_SIDE)


def is_thing(category_id: int) -> bool:
    """Whether a synthetic category is a thing (circle, rectangle, triangle) rather than stuff;
    the ``is_thing`` for ``merge_panoptic`` and ``segment`` (``book/07_train_it_yourself.ipynb``)."""
    return int(category_id) in THING_IDS


def segment_annotation(ids: np.ndarray, segment: dict, iscrowd: int = 0) -> dict:
    """A COCO ``segments_info`` entry, with ``area`` and ``bbox`` [x, y, w, h] from pycocotools.

    Explained in ``book/07_train_it_yourself.ipynb``.
    """
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
    ``out_dir/panoptic.json``. If any of these three already exists, nothing is written and a
    ``FileExistsError`` is raised, unless ``overwrite=True``, which deletes those two folders and
    the JSON first (nothing else in ``out_dir`` is touched). Returns the three paths.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}")
    if min_side < 32 or min_side > max_side:
        raise ValueError(f"need 32 <= min_side <= max_side, got {min_side}, {max_side}")
    paths = default_paths(out_dir)
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing} already exist(s): pass overwrite=True (or --overwrite) to replace them"
        )
    for path in existing:
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    os.makedirs(paths.image_dir)
    os.makedirs(paths.panoptic_dir)

    images, annotations = [], []
    for index in range(num_images):
        scene = make_scene(seed, index, min_side=min_side, max_side=max_side)
        image_id = index + 1
        stem = f"{image_id:06d}"
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
        "info": {"description": f"detr_explained synthetic panoptic scenes, seed {seed}",
                 "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    with open(paths.annotation_file, "w") as f:
        json.dump(data, f)
    return paths


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m detr_explained.synthetic OUT_DIR --num-images N --seed S``
    (``book/07_train_it_yourself.ipynb``)."""
    parser = argparse.ArgumentParser(
        prog="python -m detr_explained.synthetic",
        description="Write a synthetic panoptic dataset in the COCO panoptic format.")
    parser.add_argument("out_dir")
    parser.add_argument("--num-images", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace out_dir/images, out_dir/panoptic and out_dir/panoptic.json")
    parser.add_argument("--min-side", type=int, default=MIN_SIDE)
    parser.add_argument("--max-side", type=int, default=MAX_SIDE)
    args = parser.parse_args(argv)
    try:
        paths = write_dataset(args.out_dir, args.num_images, args.seed, args.overwrite,
                              args.min_side, args.max_side)
    except (FileExistsError, ValueError) as err:
        parser.exit(2, f"error: {err}\n")
    print(f"wrote {args.num_images} images to {paths.image_dir}, "
          f"{paths.panoptic_dir} and {paths.annotation_file}")


if __name__ == "__main__":
    main()
