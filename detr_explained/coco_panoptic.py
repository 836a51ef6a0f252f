"""Reading a dataset in the COCO panoptic format, the one DETR trains on.

Explained in ``book/07_train_it_yourself.ipynb``. A COCO panoptic dataset is three things:

- a folder of images (``000000000139.jpg``);
- a folder of PNGs, one per image, whose colours are segment ids: ``id = R + 256 * G + 256**2 * B``,
  with id 0 (black) meaning VOID, "not labelled";
- a JSON file with ``images``, ``annotations`` (one per image: its PNG's ``file_name`` and a
  ``segments_info`` list of ``{id, category_id, iscrowd, bbox, area}``) and ``categories``
  (``{id, name, isthing, supercategory}``).

:class:`CocoPanoptic` reads any dataset in that format, yours included, and returns what the
training losses of ``detr_explained.losses`` expect: for each image a normalised 3xHxW tensor and
a target with one class label, one box and one mask per segment. Things and stuff are treated
alike, as DETR does: a stuff region ("sky") is one segment with one box around all its pixels.

Every check that can fail on a student's own data fails with the file and the segment named.
"""
from __future__ import annotations

import json
import os
from typing import NamedTuple, Union

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset
from torchvision.ops import box_convert, masks_to_boxes

from .merge import VOID_ID, id2rgb, rgb2id
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD

PathLike = Union[str, os.PathLike]

# The PNG colour of a segment id is id = R + 256 * G + 256**2 * B (``merge.id2rgb`` / ``merge.rgb2id``,
# re-exported here), so three 8-bit channels hold ids up to 256**3 - 1. Id 0 (black) is VOID:
# pixels nobody labelled, ignored by the losses and by PQ.
ID_BASE = 256

__all__ = ["CocoPanoptic", "PanopticPaths", "collate", "open_dataset", "default_paths",
           "id2rgb", "rgb2id", "VOID_ID", "ID_BASE"]


class PanopticPaths(NamedTuple):
    """Where a COCO panoptic dataset lives: ``CocoPanoptic(*paths)`` opens it.

    Explained in ``book/07_train_it_yourself.ipynb``.
    """

    image_dir: str
    panoptic_dir: str
    annotation_file: str


class CocoPanoptic(Dataset):
    """A torch Dataset over any COCO panoptic dataset (``book/07_train_it_yourself.ipynb``).

    ``dataset[i]`` returns ``(image, target)``:

    - ``image``: (3, H, W) float, normalised with the ImageNet mean and std the backbone expects;
    - ``target["labels"]``: (K,) int64, the ``category_id`` of each of the K segments. As in DETR,
      category ids are used as class indices directly, so the model needs
      ``num_classes = max category id + 1`` (:attr:`num_classes`);
    - ``target["boxes"]``: (K, 4) float, (cx, cy, w, h) divided by the image width and height;
      computed from the masks (``torchvision.ops.masks_to_boxes``), stuff included. Boxes use pixel
      edges: a segment covering columns 3..5 spans x from 3 to 6, the same box as COCO's ``bbox``;
    - ``target["masks"]``: (K, H, W) bool, one binary mask per segment;
    - ``target["iscrowd"]``, ``target["area"]``: (K,) from the JSON (``area`` counted in the PNG);
    - ``target["image_id"]``: int, the JSON image id; ``target["size"]``: (2,) int64 tensor (H, W).

    The JSON is checked when the dataset is built (categories, files, empty images); each PNG is
    checked against its ``segments_info`` when its item is read.
    """

    def __init__(self, image_dir: PathLike, panoptic_dir: PathLike, annotation_file: PathLike,
                 normalize: bool = True):
        self.image_dir = os.fspath(image_dir)
        self.panoptic_dir = os.fspath(panoptic_dir)
        self.annotation_file = os.fspath(annotation_file)
        self.normalize = normalize
        if not os.path.isfile(self.annotation_file):
            raise FileNotFoundError(f"no annotation file at {self.annotation_file!r}")
        with open(self.annotation_file) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f"{self.annotation_file!r} is not valid JSON: {err}") from err
        for key in ("images", "annotations", "categories"):
            if key not in data:
                raise ValueError(
                    f"{self.annotation_file!r} has no {key!r} list: a COCO panoptic JSON needs "
                    "'images', 'annotations' and 'categories'"
                )
        self.categories = {c["id"]: c for c in data["categories"]}
        images = {img["id"]: img for img in data["images"]}
        self.items = []  # (image entry, annotation entry), in the order of "annotations"
        for ann in data["annotations"]:
            where = f"{self.annotation_file!r}, annotation for {ann.get('file_name')!r}"
            if ann.get("image_id") not in images:
                raise ValueError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
            image = images[ann["image_id"]]
            self._check_annotation(ann, image, where)
            self.items.append((image, ann))
        annotated = {ann["image_id"] for _, ann in self.items}
        for image_id, image in images.items():
            if image_id not in annotated:
                raise ValueError(
                    f"{self.annotation_file!r}: image {image['file_name']!r} (id {image_id}) has no "
                    "annotation: every image needs one with at least one segment"
                )

    def _check_annotation(self, ann: dict, image: dict, where: str) -> None:
        segments = ann.get("segments_info", [])
        if len(segments) == 0:
            raise ValueError(
                f"{where}: image {image['file_name']!r} has no segments: an empty image gives the "
                "matcher nothing to match; remove it or label it"
            )
        seen = set()
        for seg in segments:
            if seg["category_id"] not in self.categories:
                raise ValueError(
                    f"{where}: segment id {seg['id']} has category_id {seg['category_id']}, which is "
                    f"not in 'categories' (known ids: {sorted(self.categories)})"
                )
            if seg["id"] == VOID_ID:
                raise ValueError(f"{where}: segment id 0 is reserved for VOID (unlabelled) pixels")
            if seg["id"] in seen:
                raise ValueError(f"{where}: segment id {seg['id']} appears twice")
            seen.add(seg["id"])
        for folder, name in ((self.image_dir, image["file_name"]), (self.panoptic_dir, ann["file_name"])):
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{where}: missing file {path!r}")

    @property
    def num_classes(self) -> int:
        """C for the model: category ids are class indices, so the largest id + 1."""
        return max(self.categories) + 1

    @property
    def thing_ids(self) -> list[int]:
        return sorted(i for i, c in self.categories.items() if c.get("isthing", 1))

    @property
    def stuff_ids(self) -> list[int]:
        return sorted(i for i, c in self.categories.items() if not c.get("isthing", 1))

    def __len__(self) -> int:
        return len(self.items)

    def read_panoptic(self, index: int) -> tuple[np.ndarray, list[dict]]:
        """The raw ground truth of one image: the (H, W) id map and its ``segments_info``."""
        image, ann = self.items[index]
        png_path = os.path.join(self.panoptic_dir, ann["file_name"])
        with Image.open(png_path) as png:
            ids = rgb2id(np.asarray(png.convert("RGB")))                         # (H, W)
        if ids.shape != (image["height"], image["width"]):
            raise ValueError(
                f"{png_path!r} is {ids.shape[1]}x{ids.shape[0]} (WxH) but the JSON says image "
                f"{image['file_name']!r} is {image['width']}x{image['height']}"
            )
        json_ids = {seg["id"] for seg in ann["segments_info"]}
        png_ids = set(np.unique(ids).tolist()) - {VOID_ID}
        extra = sorted(png_ids - json_ids)
        if extra:
            raise ValueError(
                f"{png_path!r}: segment id(s) {extra} appear in the PNG but not in the "
                f"segments_info of {ann['file_name']!r} in {self.annotation_file!r}"
            )
        absent = sorted(json_ids - png_ids)
        if absent:
            raise ValueError(
                f"{self.annotation_file!r}: segment id(s) {absent} of {ann['file_name']!r} are in "
                f"segments_info but have no pixel in {png_path!r}"
            )
        return ids, ann["segments_info"]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        image_info, ann = self.items[index]
        ids, segments = self.read_panoptic(index)                                # (H, W)
        image_path = os.path.join(self.image_dir, image_info["file_name"])
        with Image.open(image_path) as opened:
            pil = opened.convert("RGB")
        if (pil.height, pil.width) != ids.shape:
            raise ValueError(
                f"{image_path!r} is {pil.width}x{pil.height} (WxH) but its panoptic PNG "
                f"{ann['file_name']!r} is {ids.shape[1]}x{ids.shape[0]}"
            )
        image = TF.to_tensor(pil)                                                # (3, H, W) in [0, 1]
        if self.normalize:
            image = TF.normalize(image, IMAGENET_MEAN, IMAGENET_STD)
        height, width = ids.shape

        seg_ids = torch.tensor([seg["id"] for seg in segments])                  # (K,)
        masks = torch.from_numpy(ids)[None] == seg_ids[:, None, None]            # (K, H, W)
        boxes = masks_to_boxes(masks)                                            # (K, 4) xyxy, inclusive
        boxes[:, 2:] += 1  # last pixel index -> right/bottom pixel edge
        boxes = box_convert(boxes, "xyxy", "cxcywh")                            # (K, 4) pixels
        boxes = boxes / torch.tensor([width, height, width, height], dtype=boxes.dtype)
        target = {
            "labels": torch.tensor([seg["category_id"] for seg in segments], dtype=torch.int64),
            "boxes": boxes,
            "masks": masks,
            "iscrowd": torch.tensor([seg.get("iscrowd", 0) for seg in segments], dtype=torch.int64),
            "area": masks.flatten(1).sum(1),                                     # (K,)
            "image_id": image_info["id"],
            "size": torch.tensor([height, width]),
        }
        return image, target


def collate(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """For a DataLoader: a list of images (sizes may differ) and a list of targets.

    The images are padded into one batch later, by ``preprocessing.ImageBatch.from_images``.

    Explained in ``book/07_train_it_yourself.ipynb``.
    """
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    return images, targets


def open_dataset(root: PathLike, normalize: bool = True) -> CocoPanoptic:
    """A dataset laid out as ``detr_explained.synthetic.write_dataset`` writes it:
    ``root/images``, ``root/panoptic``, ``root/panoptic.json``.

    Explained in ``book/07_train_it_yourself.ipynb``.
    """
    return CocoPanoptic(*default_paths(root), normalize=normalize)


def default_paths(root: PathLike) -> PanopticPaths:
    """The layout ``synthetic.write_dataset`` writes: ROOT/images, ROOT/panoptic,
    ROOT/panoptic.json (``book/07_train_it_yourself.ipynb``)."""
    root = os.fspath(root)
    return PanopticPaths(os.path.join(root, "images"), os.path.join(root, "panoptic"),
                         os.path.join(root, "panoptic.json"))

