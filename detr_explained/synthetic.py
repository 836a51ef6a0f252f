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

A scene is made in two steps: :func:`scene_layout` draws its layout, a :class:`SceneLayout` (the
stuff map and textures, and the things as :class:`Shape` values, back to front), and
:meth:`SceneLayout.render` paints it; :func:`make_scene` is the two in one. A scene editor changes
a layout (``moved``, ``resized``, ``removed``, ``added``, each a new layout) and renders it again.

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
import math
import numbers
import os
import re
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from pycocotools import mask as mask_utils

from . import cli
from .checks import whole_number
from .coco_panoptic import (PanopticPaths, default_paths, id2rgb, VOID_ID, ID_BASE,
                            MAX_SEGMENT_ID)
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
# A shape's centre and size in a SceneLayout are at most this many pixels: the mask arithmetic
# (squares and products of distances) then stays far from overflow, and no image is this large.
LARGEST_COORDINATE = 1e9

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


def _draw_thing_look(rng, height: int, width: int) -> tuple[tuple, float, np.ndarray]:
    """Draw what :func:`_thing_texture` paints with: a random saturated colour, a shading direction
    and faint noise, ``(colour, shade_angle, (H, W) noise)``."""
    hue = rng.random()
    colour = tuple(float(c) for c in _hsv_to_rgb(hue, rng.uniform(0.5, 1.0), rng.uniform(0.55, 1.0)))
    shade_angle = rng.uniform(0, 2 * np.pi)
    noise = rng.normal(0, 0.03, (height, width))                                 # (H, W)
    return colour, shade_angle, noise


def _thing_texture(yy, xx, cy, cx, size, colour, shade_angle, noise) -> np.ndarray:
    """A colour with a linear shading across the object (along ``shade_angle``) and faint noise."""
    rgb = np.array(colour)
    shade = ((xx - cx) * np.cos(shade_angle) + (yy - cy) * np.sin(shade_angle)) / (2 * size)  # (H, W)
    return rgb * (1 + 0.35 * np.clip(shade, -1, 1))[..., None] + noise[..., None]


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def _draw_thing_outline(rng, category: int) -> tuple[float, tuple]:
    """Draw what :func:`_thing_mask` needs besides centre and size: ``(aspect, angles)``, a
    rectangle's width / height ratio and a triangle's three vertex angles."""
    if category == RECTANGLE:
        return rng.uniform(0.5, 2.0), ()
    if category == TRIANGLE:
        start = rng.uniform(0, 2 * np.pi)
        angles = start + np.arange(3) * 2 * np.pi / 3 + rng.uniform(-0.3, 0.3, 3)
        return 1.0, tuple(float(a) for a in angles)
    return 1.0, ()


def _thing_mask(category: int, yy, xx, cy, cx, size, aspect=1.0, angles=()) -> np.ndarray:
    """(H, W) bool mask of one shape centred at (cy, cx) with radius ``size``: a circle; a rectangle
    of half sides ``size * sqrt(aspect)`` (across) and ``size / sqrt(aspect)`` (down); a triangle
    with vertices ``1.3 * size`` from the centre at ``angles``."""
    if category == CIRCLE:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= size**2
    if category == RECTANGLE:
        half_w, half_h = size * np.sqrt(aspect), size / np.sqrt(aspect)
        return (np.abs(xx - cx) <= half_w) & (np.abs(yy - cy) <= half_h)
    if category == TRIANGLE:
        angles = np.asarray(angles, dtype=np.float64)                            # (3,)
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


def _unique_ids(rng, count: int, taken=()) -> list[int]:
    """Distinct random segment ids in [1, 256**3), none of them in ``taken``: ids carry no meaning,
    only identity, and random ones make every byte of the PNG colour matter."""
    ids: list[int] = []
    while len(ids) < count:
        candidate = int(rng.integers(1, ID_BASE**3))
        if candidate not in ids and candidate not in taken and candidate != VOID_ID:
            ids.append(candidate)
    return ids


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates of every pixel: (H, W) float each."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)                      # (H, W) each
    return yy, xx


def _number(value, name: str, meaning: str) -> float:
    """``value`` as a float if it is a finite real number (not a bool); else a TypeError or
    ValueError naming ``name`` and what it ``meaning``s."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number ({meaning}), got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} is {value!r}; give a finite number ({meaning})")
    return number


def _coordinate(value, name: str, meaning: str) -> float:
    """A shape's centre row or column: a finite number, inside the image or not."""
    number = _number(value, name, meaning)
    if abs(number) > LARGEST_COORDINATE:
        raise ValueError(f"{name} is {value!r}; give {meaning}, at most {LARGEST_COORDINATE:g} pixels "
                         "from the image's corner")
    return number


def _shape_size(value) -> float:
    meaning = "the shape's radius in pixels, above 0, e.g. 12.5"
    number = _number(value, "size", meaning)
    if not 0 < number <= LARGEST_COORDINATE:
        limit = f", at most {LARGEST_COORDINATE:g}" if number > 0 else ""
        raise ValueError(f"size is {value!r}; give {meaning}{limit}")
    return number


def _thing_category(value) -> int:
    meaning = "CIRCLE (1), RECTANGLE (2) or TRIANGLE (3)"
    category = whole_number(value, "category", 1, meaning)
    if category not in THING_IDS:
        stuff = (f" ({CATEGORY_NAMES[category]}, a stuff class: stuff is the background, not a shape)"
                 if category in CATEGORY_NAMES else "")
        raise ValueError(f"category is {category}{stuff}; give {meaning}")
    return category


def _segment_id(value, name: str) -> int:
    meaning = f"a segment id from 1 to {MAX_SEGMENT_ID}"
    segment_id = whole_number(value, name, 1, meaning)
    if segment_id > MAX_SEGMENT_ID:
        raise ValueError(f"{name} is {segment_id}; give {meaning} (ids are stored as 24-bit RGB)")
    return segment_id


def _colour(value) -> tuple:
    meaning = "three numbers (red, green, blue) from 0 to 1, e.g. (0.8, 0.3, 0.2)"
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 3:
        raise TypeError(f"color must be {meaning}, got {value!r}")
    colour = tuple(_number(v, "color", meaning) for v in value)
    if not all(0.0 <= v <= 1.0 for v in colour):
        raise ValueError(f"color is {value!r}; give {meaning}")
    return colour


def _read_only(array: np.ndarray) -> np.ndarray:
    """A view of ``array`` that cannot be written: layouts share arrays, and the history of an
    editor must not change under it."""
    view = array.view()
    view.flags.writeable = False
    return view


def _fresh_id(used, salt: int) -> int:
    """A segment id in none of ``used``: random like the generator's, and a function of ``used``
    and ``salt`` only, so an edit made twice gives the same id."""
    used = {int(i) for i in used}
    rng = np.random.default_rng([salt, *sorted(used)])
    return _unique_ids(rng, 1, taken=used)[0]


def _paint(masks: list, height: int, width: int) -> tuple[list, np.ndarray]:
    """Paint shape masks back to front; drop the shapes that end up (almost) hidden, and repaint
    until stable. Returns ``(kept, layer)``: the positions of the shapes left in, and the (H, W)
    index into ``kept`` of the front shape at each pixel, -1 where no shape is (stuff)."""
    kept = list(range(len(masks)))
    while True:
        layer = np.full((height, width), -1, dtype=np.int64)                     # (H, W) index into kept
        for k, i in enumerate(kept):
            layer[masks[i]] = k
        visible = np.bincount(layer[layer >= 0], minlength=len(kept))            # (num_kept,)
        keep = visible >= MIN_VISIBLE_PIXELS
        if keep.all():
            return kept, layer
        kept = [i for i, k in zip(kept, keep) if k]


_STUFF_TEXTURES = {SKY: _sky_texture, GROUND: _ground_texture, WATER: _water_texture}


@dataclass(frozen=True)
class Shape:
    """One thing of a scene, what a scene editor can change (``book/07_train_it_yourself.ipynb``).

    category:    CIRCLE, RECTANGLE or TRIANGLE.
    cy, cx:      the centre's row and column in pixels; any finite number up to
                 ``LARGEST_COORDINATE`` in size, also outside the image (the generator itself puts
                 some centres just outside; a shape wholly outside has no pixel and is hidden).
    size:        the radius in pixels, above 0: a circle's radius, a rectangle's half side of a
                 square of the same area, a triangle's vertices at ``1.3 * size`` from the centre.
    segment_id:  its id in the id map, 1 to ``MAX_SEGMENT_ID``.
    aspect:      a rectangle's width / height ratio (above 0; other shapes ignore it).
    angles:      a triangle's three vertex angles in radians (other shapes ignore them); a
                 triangle given ``()`` gets an upright equilateral one.
    color:       base RGB, three numbers from 0 to 1.
    shade_angle: the direction, in radians, along which the colour brightens across the shape.
    noise:       (H, W) texture noise, fixed to the image (``SceneLayout.moved`` rolls it along);
                 ``None`` draws it from a generator seeded by ``segment_id``. Not compared by ``==``.

    Bad values raise a TypeError or ValueError naming the field. Everything is a pure function of
    the fields: :meth:`mask` and :meth:`texture` draw nothing at random (except ``noise=None``,
    seeded by the id).
    """

    category: int
    cy: float
    cx: float
    size: float
    segment_id: int
    aspect: float = 1.0
    angles: tuple = ()
    color: tuple = (0.8, 0.3, 0.2)
    shade_angle: float = 0.0
    noise: Optional[np.ndarray] = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        store = object.__setattr__.__get__(self)
        category = _thing_category(self.category)
        store("category", category)
        store("cy", _coordinate(self.cy, "cy", "the centre's row in pixels"))
        store("cx", _coordinate(self.cx, "cx", "the centre's column in pixels"))
        store("size", _shape_size(self.size))
        store("segment_id", _segment_id(self.segment_id, "segment_id"))
        aspect = _number(self.aspect, "aspect", "a rectangle's width / height, above 0, e.g. 1.5")
        if aspect <= 0:
            raise ValueError(f"aspect is {self.aspect!r}; give a rectangle's width / height, above 0, "
                             "e.g. 1.5")
        store("aspect", aspect)
        angles = self.angles
        meaning = "a triangle's three vertex angles in radians, or () for an upright one"
        if isinstance(angles, (str, bytes)) or not hasattr(angles, "__len__") or len(angles) not in (0, 3):
            raise TypeError(f"angles must be {meaning}, got {angles!r}")
        angles = tuple(_number(a, "angles", meaning) for a in angles)
        if category == TRIANGLE and not angles:
            angles = tuple(float(a) for a in -np.pi / 2 + np.arange(3) * 2 * np.pi / 3)
        store("angles", angles)
        store("color", _colour(self.color))
        store("shade_angle", _number(self.shade_angle, "shade_angle", "an angle in radians"))
        if self.noise is not None:
            noise = self.noise
            if (not isinstance(noise, np.ndarray) or noise.ndim != 2
                    or not np.issubdtype(noise.dtype, np.floating)):
                raise TypeError("noise must be None or an (H, W) float array of the image's size, got "
                                f"{type(noise).__name__} {getattr(noise, 'shape', '')}")
            noise = noise.astype(np.float64, copy=False)
            if not np.isfinite(noise).all():
                raise ValueError("noise has values that are not finite numbers (nan or inf)")
            store("noise", _read_only(noise))

    def mask(self, height: int, width: int) -> np.ndarray:
        """(H, W) bool: the pixels the shape covers in an image of ``height`` x ``width``."""
        height = whole_number(height, "height", 1, "the image's height in pixels")
        width = whole_number(width, "width", 1, "the image's width in pixels")
        return self._mask_on(*_grid(height, width))

    def texture(self, height: int, width: int) -> np.ndarray:
        """(H, W, 3) float: the shape's colour, shading and noise at every pixel of an image of
        ``height`` x ``width`` (not yet clipped to [0, 1])."""
        height = whole_number(height, "height", 1, "the image's height in pixels")
        width = whole_number(width, "width", 1, "the image's width in pixels")
        return self._texture_on(*_grid(height, width))

    def _mask_on(self, yy, xx) -> np.ndarray:
        return _thing_mask(self.category, yy, xx, self.cy, self.cx, self.size, self.aspect, self.angles)

    def _noise(self, height: int, width: int) -> np.ndarray:
        if self.noise is None:
            return np.random.default_rng(self.segment_id).normal(0, 0.03, (height, width))  # (H, W)
        if self.noise.shape != (height, width):
            raise ValueError(f"shape {self.segment_id}'s noise is {self.noise.shape[0]} x "
                             f"{self.noise.shape[1]} pixels, the image {height} x {width}: give noise "
                             "of the image's size, or None")
        return self.noise

    def _texture_on(self, yy, xx) -> np.ndarray:
        return _thing_texture(yy, xx, self.cy, self.cx, self.size, self.color, self.shade_angle,
                              self._noise(*yy.shape))


@dataclass(eq=False)
class SceneLayout:
    """Stuff background + editable shapes (back to front) of one scene; :meth:`render` paints it
    into a :class:`Scene` (``book/07_train_it_yourself.ipynb``).

    stuff:       (H, W) int64 stuff category (SKY, GROUND, WATER) per pixel, also under shapes.
    stuff_image: (H, W, 3) float: each pixel's stuff texture (before clipping to [0, 1]).
    stuff_ids:   stuff category -> segment id. A stuff class that has pixels but no id here gets a
                 fresh one when it shows (:func:`scene_layout` gives every class of ``stuff`` one).
    shapes:      list of :class:`Shape`, back to front, hidden ones included.

    The edits :meth:`moved`, :meth:`resized`, :meth:`removed` and :meth:`added` return a new
    layout and leave this one as it was (arrays are shared, read-only). Segment ids must be
    distinct; bad input raises a TypeError, ValueError or IndexError that says what to give.
    Layouts compare by identity (``==`` is ``is``).
    """

    stuff: np.ndarray
    stuff_image: np.ndarray
    stuff_ids: dict
    shapes: list

    def __post_init__(self):
        stuff = self.stuff
        if not isinstance(stuff, np.ndarray) or stuff.ndim != 2 or not np.issubdtype(stuff.dtype, np.integer):
            raise TypeError("stuff must be an (H, W) integer array of stuff categories, got "
                            f"{type(stuff).__name__} {getattr(stuff, 'shape', '')}")
        if stuff.size == 0:
            raise ValueError(f"stuff is {stuff.shape[0]} x {stuff.shape[1]} pixels: give an image of at "
                             "least 1 x 1")
        if not np.isin(stuff, list(_STUFF_TEXTURES)).all():
            unknown = sorted(set(np.unique(stuff).tolist()) - set(_STUFF_TEXTURES))
            raise ValueError(f"stuff has categories {unknown}: give SKY ({SKY}), GROUND ({GROUND}) or "
                             f"WATER ({WATER}) per pixel")
        self.stuff = _read_only(stuff.astype(np.int64, copy=False))
        height, width = stuff.shape
        image = self.stuff_image
        if not isinstance(image, np.ndarray) or image.shape != (height, width, 3):
            raise TypeError(f"stuff_image must be an ({height}, {width}, 3) float array like stuff, got "
                            f"{type(image).__name__} {getattr(image, 'shape', '')}")
        image = image.astype(np.float64, copy=False)
        if not np.isfinite(image).all():
            raise ValueError("stuff_image has values that are not finite numbers (nan or inf)")
        self.stuff_image = _read_only(image)
        if not isinstance(self.stuff_ids, dict):
            raise TypeError(f"stuff_ids must be a dict stuff category -> segment id, got "
                            f"{type(self.stuff_ids).__name__}")
        stuff_ids = {}
        for category, segment_id in self.stuff_ids.items():
            if isinstance(category, bool) or not isinstance(category, numbers.Integral) \
                    or int(category) not in _STUFF_TEXTURES:
                raise ValueError(f"stuff_ids has key {category!r}: give SKY ({SKY}), GROUND ({GROUND}) "
                                 f"or WATER ({WATER})")
            stuff_ids[int(category)] = _segment_id(segment_id, f"stuff_ids[{category}]")
        self.stuff_ids = {c: stuff_ids[c] for c in _STUFF_TEXTURES if c in stuff_ids}
        if isinstance(self.shapes, (str, bytes)) or not hasattr(self.shapes, "__iter__"):
            raise TypeError(f"shapes must be a list of Shape, got {type(self.shapes).__name__}")
        shapes = list(self.shapes)
        for k, shape in enumerate(shapes):
            if not isinstance(shape, Shape):
                raise TypeError(f"shapes[{k}] must be a Shape, got {type(shape).__name__}")
            if shape.noise is not None and shape.noise.shape != (height, width):
                raise ValueError(f"shapes[{k}]'s noise is {shape.noise.shape[0]} x {shape.noise.shape[1]}"
                                 f" pixels, the image {height} x {width}: give noise of the image's size")
        self.shapes = shapes
        ids = list(self.stuff_ids.values()) + [s.segment_id for s in shapes]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"segment ids {twice} are used more than once: every stuff class and "
                             "shape needs its own id")

    @property
    def height(self) -> int:
        """The image's height in pixels."""
        return int(self.stuff.shape[0])

    @property
    def width(self) -> int:
        """The image's width in pixels."""
        return int(self.stuff.shape[1])

    def render(self) -> Scene:
        """Paint the layout: stuff, then the shapes back to front. A shape left with fewer than
        ``MIN_VISIBLE_PIXELS`` visible pixels is left out, and the rest repainted until none is
        (as :func:`make_scene` does). Segments: the stuff classes that show, in the order SKY,
        GROUND, WATER, then the shapes shown, back to front, with ``drawn_area``."""
        height, width = self.height, self.width
        yy, xx = _grid(height, width)
        masks = [shape._mask_on(yy, xx) for shape in self.shapes]                # (H, W) each
        kept, layer = _paint(masks, height, width)
        ids = np.zeros((height, width), dtype=np.int64)                          # (H, W)
        image = np.zeros((height, width, 3))                                     # (H, W, 3)
        segments = []
        used = set(self.stuff_ids.values()) | {s.segment_id for s in self.shapes}
        for category in _STUFF_TEXTURES:
            region = (self.stuff == category) & (layer < 0)
            if not region.any():
                continue
            segment_id = self.stuff_ids.get(category)
            if segment_id is None:  # a layout made without this class's id
                segment_id = _fresh_id(used, category)
                used.add(segment_id)
            ids[region] = segment_id
            image[region] = self.stuff_image[region]
            segments.append({"id": segment_id, "category_id": category})
        for k, i in enumerate(kept):
            shape = self.shapes[i]
            region = layer == k
            ids[region] = shape.segment_id
            image[region] = shape._texture_on(yy, xx)[region]
            # drawn_area: pixels of the whole shape inside the image; more than ``area`` if occluded.
            segments.append({"id": shape.segment_id, "category_id": shape.category,
                             "drawn_area": int(masks[i].sum())})
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        return Scene(image=image, ids=ids, segments=segments)

    def hidden(self) -> list[int]:
        """The positions in ``shapes`` that :meth:`render` leaves out (hidden by shapes in front of
        them, or outside the image), in order."""
        yy, xx = _grid(self.height, self.width)
        kept, _ = _paint([shape._mask_on(yy, xx) for shape in self.shapes], self.height, self.width)
        kept = set(kept)
        return [k for k in range(len(self.shapes)) if k not in kept]

    def moved(self, k: int, cy: float, cx: float) -> "SceneLayout":
        """A new layout with shape ``k`` centred at ``(cy, cx)`` (any finite numbers, see
        :class:`Shape`); its noise is rolled by the rounded shift, so its texture moves along."""
        shape = self.shapes[self._position(k)]
        cy = _coordinate(cy, "cy", "the centre's row in pixels")
        cx = _coordinate(cx, "cx", "the centre's column in pixels")
        noise = shape._noise(self.height, self.width)
        shift = (round(cy - shape.cy) % self.height, round(cx - shape.cx) % self.width)
        moved = replace(shape, cy=cy, cx=cx, noise=np.roll(noise, shift, axis=(0, 1)))
        return self._with(k, moved)

    def resized(self, k: int, size: float) -> "SceneLayout":
        """A new layout with shape ``k`` of radius ``size`` (pixels, above 0), centre unchanged."""
        shape = self.shapes[self._position(k)]
        return self._with(k, replace(shape, size=_shape_size(size)))

    def removed(self, k: int) -> "SceneLayout":
        """A new layout without shape ``k``: what it covered shows what is behind it."""
        k = self._position(k)
        shapes = self.shapes[:k] + self.shapes[k + 1:]
        return SceneLayout(self.stuff, self.stuff_image, self.stuff_ids, shapes)

    def added(self, category: int, cy: float, cx: float, size: float, color=None) -> "SceneLayout":
        """A new layout with a new shape on top (last in ``shapes``) of ``category`` (CIRCLE,
        RECTANGLE or TRIANGLE), centred at ``(cy, cx)`` with radius ``size`` (see :class:`Shape`).

        Its segment id is one no other segment of the layout has, drawn from a generator seeded
        by the layout's ids (the same edit gives the same id). A rectangle is a square, a
        triangle upright and equilateral; ``color`` (RGB from 0 to 1) and the shading direction,
        if not given, are drawn as the generator draws them, seeded by the new id, and so is the
        noise (``noise=None``).
        """
        category = _thing_category(category)
        cy = _coordinate(cy, "cy", "the centre's row in pixels")
        cx = _coordinate(cx, "cx", "the centre's column in pixels")
        size = _shape_size(size)
        segment_id = _fresh_id(list(self.stuff_ids.values()) + [s.segment_id for s in self.shapes], 0)
        rng = np.random.default_rng([segment_id, 1])
        colour = tuple(float(c) for c in _hsv_to_rgb(rng.random(), rng.uniform(0.5, 1.0),
                                                     rng.uniform(0.55, 1.0)))
        shade_angle = rng.uniform(0, 2 * np.pi)
        shape = Shape(category, cy, cx, size, segment_id,
                      color=colour if color is None else _colour(color), shade_angle=shade_angle)
        return SceneLayout(self.stuff, self.stuff_image, self.stuff_ids, self.shapes + [shape])

    def _position(self, k) -> int:
        count = len(self.shapes)
        numbered = f"numbered 0 to {count - 1}" if count else "none to choose from"
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"k must be a whole number, a shape's position in shapes ({numbered}), got "
                            f"{type(k).__name__} {k!r}")
        if not 0 <= k < count:
            raise IndexError(f"there is no shape {k}: the layout has {count} shape(s), {numbered}")
        return int(k)

    def _with(self, k: int, shape: Shape) -> "SceneLayout":
        shapes = list(self.shapes)
        shapes[k] = shape
        return SceneLayout(self.stuff, self.stuff_image, self.stuff_ids, shapes)


def scene_layout(seed: int, index: int = 0, size: Optional[tuple[int, int]] = None,
                 min_side: int = MIN_SIDE, max_side: int = MAX_SIDE) -> SceneLayout:
    """The layout of scene ``index`` of ``seed``, to edit and render (``book/07_train_it_yourself.ipynb``).

    ``scene_layout(seed, index).render()`` is ``make_scene(seed, index)``, pixel for pixel and id
    for id; the arguments are those of :func:`make_scene`. The layout also holds what the scene
    does not show, for edits that uncover it: the shapes hidden behind others (with ids of their
    own) and the texture and id of a stuff class that shapes cover entirely. Those are drawn
    after everything the scene draws, so the scene is unchanged by them.
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
    # Every draw below happens in the order it always has: the scenes (and the shipped model's
    # training data) depend on it.
    rng = np.random.default_rng([seed, index])
    if size is None:
        height, width = (int(v) for v in rng.integers(min_side, max_side + 1, 2))
    else:
        height, width = size
    yy, xx = _grid(height, width)                                                # (H, W) each

    # 1. Stuff: one segment per stuff class present.
    stuff = _stuff_map(rng, yy, xx)                                              # (H, W)

    # 2. Things: shapes with positions, sizes and colours; one class repeated at least twice.
    num_things = int(rng.integers(MIN_THINGS, MAX_THINGS + 1))
    repeated = int(rng.choice([CIRCLE, RECTANGLE, TRIANGLE]))
    classes = [repeated, repeated] + [int(c) for c in rng.choice([CIRCLE, RECTANGLE, TRIANGLE],
                                                                 num_things - 2)]
    rng.shuffle(classes)
    shorter = min(height, width)
    things = []  # Shape fields but the id, back to front
    for category in classes:
        size_px = shorter * rng.uniform(MIN_THING_SCALE, MAX_THING_SCALE)
        if things and rng.random() < OVERLAP_PROBABILITY:
            # Near the previous thing: it will partly hide it.
            cy, cx = prev_center + rng.uniform(-1.2, 1.2, 2) * prev_size
        else:
            cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
        aspect, angles = _draw_thing_outline(rng, category)
        colour, shade_angle, noise = _draw_thing_look(rng, height, width)
        things.append({"category": category, "cy": float(cy), "cx": float(cx), "size": size_px,
                       "aspect": aspect, "angles": angles, "color": colour,
                       "shade_angle": shade_angle, "noise": noise})
        prev_center, prev_size = np.array([cy, cx]), size_px

    # 3. Which things show (the rule render applies); ids for the stuff and things that show.
    masks = [_thing_mask(t["category"], yy, xx, t["cy"], t["cx"], t["size"], t["aspect"], t["angles"])
             for t in things]                                                    # (H, W) each
    kept, layer = _paint(masks, height, width)
    stuff_present = [c for c in (SKY, GROUND, WATER) if ((stuff == c) & (layer < 0)).any()]
    segment_ids = _unique_ids(rng, len(stuff_present) + len(kept))
    stuff_image = np.zeros((height, width, 3))                                   # (H, W, 3)
    for category in stuff_present:
        region = stuff == category
        stuff_image[region] = _STUFF_TEXTURES[category](rng, yy, xx)[region]

    # 4. Beyond what the scene shows, drawn last so the scene stays as it was: textures of the
    # stuff classes shapes cover entirely, and ids for them and for the hidden things.
    covered = [c for c in (SKY, GROUND, WATER) if c not in stuff_present and (stuff == c).any()]
    for category in covered:
        region = stuff == category
        stuff_image[region] = _STUFF_TEXTURES[category](rng, yy, xx)[region]
    hidden = sorted(set(range(len(things))) - set(kept))
    extra_ids = _unique_ids(rng, len(covered) + len(hidden), taken=segment_ids)

    stuff_ids = dict(zip(stuff_present + covered,
                         segment_ids[:len(stuff_present)] + extra_ids[:len(covered)]))
    thing_ids = dict(zip(kept + hidden, segment_ids[len(stuff_present):] + extra_ids[len(covered):]))
    shapes = [Shape(segment_id=thing_ids[k], **t) for k, t in enumerate(things)]
    return SceneLayout(stuff, stuff_image, stuff_ids, shapes)


def make_scene(seed: int, index: int = 0, size: Optional[tuple[int, int]] = None,
               min_side: int = MIN_SIDE, max_side: int = MAX_SIDE) -> Scene:
    """Scene ``index`` of ``seed`` (``book/07_train_it_yourself.ipynb``).

    ``size=(H, W)`` fixes the image size; otherwise both sides are drawn in [min_side, max_side].
    ``seed`` and ``index`` are whole numbers of at least 0, sides at least 1.
    It is ``scene_layout(seed, index, size, min_side, max_side).render()``.
    """
    return scene_layout(seed, index, size, min_side, max_side).render()


def held_out_layout(index: int = 0) -> SceneLayout:
    """The layout of :func:`held_out_scene` ``index``, to edit and render
    (``book/07_train_it_yourself.ipynb``)."""
    index = whole_number(index, "index", 0, "the held-out scene's number, from 0")
    return scene_layout(HELD_OUT_SEED, index, min_side=BOOK_SIDE, max_side=BOOK_SIDE)


def held_out_scene(index: int = 0) -> Scene:
    """Held-out scene ``index``: never trained on, the same as image ``index + 1`` of the dataset
    ``python -m detr_explained.synthetic DIR --seed 1 --min-side 128 --max-side 128`` writes
    (``book/07_train_it_yourself.ipynb``; chapters 2 to 5 draw the trained model on one)."""
    return held_out_layout(index).render()


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
