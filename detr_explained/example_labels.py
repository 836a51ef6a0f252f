"""A small labelled dataset in the form labelling tools export, for ``book/09_your_own_dataset.ipynb``.

The chapter needs what a student brings: a folder of photos and the labels a labelling tool
exported, in classes the shipped model never saw. :func:`write_example_labels` makes one:

- ``images/000001.jpg``, ...: scenes of a sky over sand with stars and diamonds on them;
- ``instances.json``: the things as a COCO instances JSON, each outline a **polygon** in pixel
  coordinates (x, y), as CVAT or Label Studio export them;
- ``semantic/000001.png``, ...: the stuff as one 8-bit PNG per image, pixel value = stuff
  category id (sky 3, sand 4), 0 where nobody labelled (a thin band at the horizon);
- ``categories.json``: the four categories and which of them are things.

``python -m detr_explained.convert`` turns the folder into the COCO panoptic format. Each image
is painted from the same polygons (rasterised by pycocotools, as the converter does) with the
larger objects first, so where two overlap the smaller one is on top, as the converter's rule
assumes: the image and the labels agree.
"""
from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .checks import whole_number

STAR, DIAMOND, SKY, SAND = 1, 2, 3, 4
EXAMPLE_CATEGORIES = [
    {"id": STAR, "name": "star", "isthing": 1, "supercategory": "shape"},
    {"id": DIAMOND, "name": "diamond", "isthing": 1, "supercategory": "shape"},
    {"id": SKY, "name": "sky", "isthing": 0, "supercategory": "background"},
    {"id": SAND, "name": "sand", "isthing": 0, "supercategory": "background"},
]
# Image sides in pixels (height, width), drawn per image.
SIDES = (96, 144)
MAX_THINGS = 4
# Rows left unlabelled (0) on each side of the horizon: real labels have such gaps.
VOID_BAND = 1


def _star(cx: float, cy: float, radius: float, angle: float) -> list[float]:
    """A five-pointed star: 10 vertices, alternately on the outer and the inner radius."""
    points = []
    for k in range(10):
        r = radius if k % 2 == 0 else 0.45 * radius
        a = angle + k * np.pi / 5
        points += [cx + r * np.sin(a), cy - r * np.cos(a)]
    return points


def _diamond(cx: float, cy: float, radius: float, angle: float) -> list[float]:
    """A rhombus, taller than wide, tilted by ``angle``."""
    points = []
    for a, r in ((0, radius), (np.pi / 2, 0.6 * radius), (np.pi, radius), (3 * np.pi / 2, 0.6 * radius)):
        points += [cx + r * np.sin(a + angle), cy - r * np.cos(a + angle)]
    return points


def _clip(points: list[float], height: int, width: int) -> list[float]:
    xs = np.clip(points[0::2], 0, width)
    ys = np.clip(points[1::2], 0, height)
    return [round(float(v), 1) for pair in zip(xs, ys) for v in pair]


def _scene(rng: np.random.Generator, image_id: int):
    height, width = (int(v) for v in rng.integers(SIDES[0], SIDES[1] + 1, 2))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = height * rng.uniform(0.35, 0.6) + 4 * np.sin(2 * np.pi * xx[0] / rng.uniform(30, 80))  # (W,)
    below = yy >= horizon[None, :]                                                     # (H, W)
    semantic = np.where(below, SAND, SKY).astype(np.uint8)
    semantic[np.abs(yy - horizon[None, :]) < VOID_BAND] = 0
    sky = np.array([0.35, 0.55, 0.9]) + rng.uniform(-0.08, 0.08, 3)
    sand = np.array([0.85, 0.72, 0.45]) + rng.uniform(-0.06, 0.06, 3)
    grain = rng.normal(0, 0.04, (height, width, 1))
    image = np.where(below[..., None], sand + grain, sky + 0.3 * (yy / height)[..., None] * (1 - sky))

    annotations = []
    for _ in range(int(rng.integers(1, MAX_THINGS + 1))):
        category = int(rng.choice([STAR, DIAMOND]))
        radius = rng.uniform(10, 26)
        cx, cy = rng.uniform(radius * 0.6, width - radius * 0.6), rng.uniform(radius * 0.6, height - radius * 0.6)
        outline = (_star if category == STAR else _diamond)(cx, cy, radius, rng.uniform(0, np.pi / 2))
        polygon = _clip(outline, height, width)
        mask = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([polygon], height, width))).astype(bool)
        colour = rng.uniform(0.1, 1.0, 3)
        colour[rng.integers(3)] = rng.uniform(0.0, 0.2)       # saturated: one channel low
        annotations.append({"category_id": category, "segmentation": [polygon], "iscrowd": 0,
                            "mask": mask, "colour": colour})
    for ann in sorted(annotations, key=lambda a: -a["mask"].sum()):      # larger first, smaller on top
        shade = 1 + 0.25 * ((xx - xx[ann["mask"]].mean()) / 30)
        image[ann["mask"]] = (ann["colour"][None, :] * shade[ann["mask"]][:, None])
    pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    for ann in annotations:
        area = int(ann.pop("mask").sum())
        ann.pop("colour")
        ann["area"] = area
    return pixels, semantic, annotations, height, width


def write_example_labels(folder: str, num_images: int = 48, seed: int = 0,
                         overwrite: bool = False) -> dict:
    """Write the example export into ``folder`` (``book/09_your_own_dataset.ipynb``) and return
    the paths to give ``detr_explained.convert.convert``: ``images``, ``instances``,
    ``semantic``, ``categories``.

    Refuses (FileExistsError) to write into a folder that already holds an ``instances.json``
    unless ``overwrite``; the files it writes are its own names only.
    """
    num_images = whole_number(num_images, "num_images", 1, "how many images, e.g. 48")
    seed = whole_number(seed, "seed", 0, "a whole number from 0, e.g. 0")
    paths = {"images": os.path.join(folder, "images"), "instances": os.path.join(folder, "instances.json"),
             "semantic": os.path.join(folder, "semantic"), "categories": os.path.join(folder, "categories.json")}
    if os.path.exists(paths["instances"]) and not overwrite:
        raise FileExistsError(f"{paths['instances']} already exists: pass overwrite=True to write the example "
                              "again, or choose another folder")
    os.makedirs(paths["images"], exist_ok=True)
    os.makedirs(paths["semantic"], exist_ok=True)
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        pixels, semantic, anns, height, width = _scene(rng, image_id)
        stem = f"{image_id:06d}"
        Image.fromarray(pixels).save(os.path.join(paths["images"], stem + ".jpg"), quality=95)
        Image.fromarray(semantic, mode="L").save(os.path.join(paths["semantic"], stem + ".png"))
        images.append({"id": image_id, "file_name": stem + ".jpg", "height": height, "width": width})
        for ann in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann,
                                "bbox": _bbox(ann["segmentation"][0])})
    things = [c for c in EXAMPLE_CATEGORIES if c["isthing"]]
    with open(paths["instances"], "w") as handle:
        json.dump({"images": images, "annotations": annotations,
                   "categories": [{"id": c["id"], "name": c["name"]} for c in things]}, handle)
    with open(paths["categories"], "w") as handle:
        json.dump(EXAMPLE_CATEGORIES, handle, indent=1)
    return paths


def _bbox(polygon: list[float]) -> list[float]:
    xs, ys = polygon[0::2], polygon[1::2]
    return [min(xs), min(ys), round(max(xs) - min(xs), 1), round(max(ys) - min(ys), 1)]


def polygons_of(instances: str, image_id: int) -> list[dict]:
    """The annotations of one image in an instances JSON: ``{category_id, segmentation, ...}``
    (``book/09_your_own_dataset.ipynb``)."""
    with open(instances) as handle:
        data = json.load(handle)
    return [a for a in data["annotations"] if a["image_id"] == image_id]


def category_names(categories: Optional[list[dict]] = None) -> dict[int, str]:
    """id -> name of the example's categories, or of ``categories`` (``book/09_your_own_dataset.ipynb``)."""
    return {c["id"]: c["name"] for c in (categories or EXAMPLE_CATEGORIES)}


# The record benchmarks/fine_tuning.py writes: PQ of each recipe on a larger export of this kind.
FINE_TUNING_RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "fine_tuning.json")

RECIPE_NAMES = {
    "scratch": "from scratch",
    "fine-tune": "fine-tuned (--init-from)",
    "two-stage": "two stages, from the shipped weights",
    "two-stage-scratch": "two stages, from scratch",
}


def fine_tuning_record(path: str = FINE_TUNING_RECORD) -> dict:
    """The measured comparison of recipes that ships with the package
    (``book/09_your_own_dataset.ipynb``; written by ``benchmarks/fine_tuning.py``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no recipe record at {path}: run python benchmarks/fine_tuning.py to make it "
                                "(in a clone of the repository)")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def print_recipe_table(record: dict) -> None:
    """The record's rows as a table: recipe, steps, PQ all / things / stuff, minutes, steps per
    second (``book/09_your_own_dataset.ipynb``)."""
    print(f"{'recipe':<38} {'steps':>5} {'PQ':>6} {'things':>7} {'stuff':>6} {'minutes':>8} {'steps/s':>8}")
    for row in record["rows"]:
        print(f"{RECIPE_NAMES.get(row['recipe'], row['recipe']):<38} {row['steps']:>5} "
              f"{100 * row['pq_all']:>6.1f} {100 * row['pq_things']:>7.1f} {100 * row['pq_stuff']:>6.1f} "
              f"{row['train_minutes']:>8.2f} {row['steps_per_second']:>8.2f}")
