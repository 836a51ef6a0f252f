"""Reading a dataset in the COCO panoptic format, the one DETR trains on.

Explained in ``book/07_train_it_yourself.ipynb``. A COCO panoptic dataset is three things:

- a folder of images (``000000000139.jpg``);
- a folder of PNGs, one per image, whose colours are segment ids: ``id = R + 256 * G + 256**2 * B``,
  with id 0 (black) meaning VOID, "not labelled";
- a JSON file with ``images`` (``{id, file_name, height, width}``), ``annotations`` (one per
  image: its ``image_id``, its PNG's ``file_name`` and a ``segments_info`` list of
  ``{id, category_id, iscrowd, bbox, area}``) and ``categories`` (``{id, name, isthing,
  supercategory}``).

:class:`CocoPanoptic` reads any dataset in that format, yours included, and returns what the
training losses of ``detr_explained.losses`` expect: for each image a normalised 3xHxW tensor and
a target with one class label, one box and one mask per segment. Things and stuff are treated
alike, as DETR does: a stuff region ("sky") is one segment with one box around all its pixels.

Nothing is silently wrong: every check that can fail on a student's own data fails with a
``ValueError`` (``FileNotFoundError`` for a missing file) that names the annotation file and the
entry (image, PNG, segment or category) and says what to do. What the JSON alone can tell is
checked when the dataset is built; each image and PNG is checked when its item is read.
"""
from __future__ import annotations

import json
import operator
import os
from typing import NamedTuple, Union

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset
from torchvision.ops import box_convert, masks_to_boxes

from .checks import path_argument as _path_argument
from .checks import is_json_whole as _is_whole, json_kind as _kind, json_whole_number as _whole_number
from .merge import VOID_ID, id2rgb, rgb2id
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, to_rgb

PathLike = Union[str, os.PathLike]

# The PNG colour of a segment id is id = R + 256 * G + 256**2 * B (``merge.id2rgb`` / ``merge.rgb2id``,
# re-exported here), so three 8-bit channels hold ids up to 256**3 - 1. Id 0 (black) is VOID:
# pixels nobody labelled, ignored by the losses and by PQ.
ID_BASE = 256
MAX_SEGMENT_ID = ID_BASE**3 - 1

# Category ids are class indices (the classifier has max id + 1 outputs, plus "no object"), so a
# huge id would ask for a huge classifier. COCO's largest is 200; this bound is far above any
# real dataset's and refuses only a typo or an id that was meant as something else.
MAX_CATEGORY_ID = 65535

# Image ids are only names, but other tools store them as 64-bit integers.
MAX_IMAGE_ID = 2**63 - 1

# PNG modes whose colours PIL converts to 8-bit RGB exactly (a lossless PNG optimiser may store an
# id map with few colours as a palette or grey image; the alpha channel, if any, is ignored).
EXACT_PNG_MODES = ("RGB", "RGBA", "P", "PA", "L", "LA", "1")

__all__ = ["CocoPanoptic", "PanopticPaths", "collate", "open_dataset", "default_paths",
           "id2rgb", "rgb2id", "VOID_ID", "ID_BASE", "MAX_SEGMENT_ID", "MAX_CATEGORY_ID"]


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
    - ``target["iscrowd"]``: (K,) from the JSON; ``target["area"]``: (K,) counted in the PNG;
    - ``target["image_id"]``: int, the JSON image id; ``target["size"]``: (2,) int64 tensor (H, W).

    What is checked when the dataset is built, each failure a ``ValueError`` naming the
    annotation file and the entry (a missing file: ``FileNotFoundError``):

    - the file is one JSON object with the lists ``images``, ``annotations``, ``categories`` (a
      COCO instances/detection JSON or a list of detection results is recognised and named);
    - every image has a whole-number ``id`` (0 or more, no two alike), a ``file_name`` (no two
      alike) and ``height`` and ``width`` of at least 1;
    - every category has a whole-number ``id`` from 0 to :data:`MAX_CATEGORY_ID`, listed once.
      ``isthing`` is 0, 1, true or false; **a category without ``isthing`` counts as a thing**
      (``isthing = 1``), as some third-party files leave it out; ``name`` is optional;
    - every image has exactly one annotation, whose ``image_id`` is in ``images``, whose PNG
      ``file_name`` no other annotation uses, and whose ``segments_info`` is a non-empty list of
      segments with a whole-number ``id`` from 1 to :data:`MAX_SEGMENT_ID` (0 is VOID), no two
      alike, a ``category_id`` listed in ``categories``, and ``iscrowd`` 0, 1, true or false
      (missing: 0). ``bbox`` and ``area`` are not read: boxes and areas come from the PNG;
    - the image and PNG files exist.

    When item ``i`` is read: the image and the PNG can be decoded (a truncated file is named), the
    PNG is 8-bit (RGB, or a palette/grey PNG with the same colours), its size is the JSON's
    ``height`` and ``width`` and the image's, and its ids are exactly those of ``segments_info``.
    """

    def __init__(self, image_dir: PathLike, panoptic_dir: PathLike, annotation_file: PathLike,
                 normalize: bool = True):
        self.image_dir = _path_argument(image_dir, "image_dir")
        self.panoptic_dir = _path_argument(panoptic_dir, "panoptic_dir")
        self.annotation_file = _path_argument(annotation_file, "annotation_file")
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be True or False, got {normalize!r}")
        self.normalize = normalize
        data = _read_panoptic_json(self.annotation_file)
        self.categories: dict[int, dict] = self._check_categories(data["categories"])
        images = self._check_images(data["images"])
        self.items: list[tuple[dict, dict]] = []  # (image entry, annotation entry), in the order of "annotations"
        annotation_of: dict = {}  # image id -> index in "annotations"
        png_of: dict = {}         # PNG file_name -> index in "annotations"
        for k, ann in enumerate(data["annotations"]):
            image = self._check_annotation(k, ann, images, annotation_of, png_of)
            self.items.append((image, ann))
        for image_id, (k, image) in images.items():
            if image_id not in annotation_of:
                raise ValueError(
                    f"{self.annotation_file!r}: image {image['file_name']!r} (images[{k}], id {image_id}) "
                    "has no annotation: every image needs one, with at least one segment; add its "
                    "annotation or remove the image from 'images'"
                )
        for name, folder in (("image_dir", self.image_dir), ("panoptic_dir", self.panoptic_dir)):
            if not os.path.isdir(folder):
                raise FileNotFoundError(
                    f"no folder {folder!r} ({name}, the "
                    f"{'images' if name == 'image_dir' else 'panoptic PNGs'} of {self.annotation_file!r}): "
                    "pass the folder that holds them"
                )
        for image, ann in self.items:
            self._check_files(image, ann)

    # ---- checks of the JSON, when the dataset is built -------------------------------------

    def _check_categories(self, categories: list) -> dict[int, dict]:
        path = self.annotation_file
        if not categories:
            raise ValueError(
                f"{path!r}: 'categories' is empty: list every category a segment can have, as "
                "{\"id\": 1, \"name\": \"person\", \"isthing\": 1}"
            )
        known: dict[int, dict] = {}
        position: dict[int, int] = {}
        for k, category in enumerate(categories):
            where = f"{path!r}, categories[{k}]"
            _check_object(category, where, "a category {\"id\", \"name\", \"isthing\"}")
            _check_keys(category, ("id",), where, "every category needs an 'id'")
            category_id = _whole_number(category["id"], "its id", where, 0, MAX_CATEGORY_ID,
                                        "category ids are class indices, e.g. 1, 2, ...")
            where = f"{path!r}, category {category.get('name', '')!r} (categories[{k}], id {category_id})"
            if "isthing" in category and not _is_zero_or_one(category["isthing"]):
                raise ValueError(
                    f"{where}: isthing is {category['isthing']!r}; give 1 (or true) for a thing "
                    "(countable objects) or 0 (or false) for stuff (sky, road)"
                )
            if category_id in known:
                first = known[category_id]
                raise ValueError(
                    f"{where}: category id {category_id} is listed twice, also as categories"
                    f"[{position[category_id]}] {first.get('name', '')!r}: a segment's category_id "
                    "must name one category; give each category its own id"
                )
            known[category_id] = category
            position[category_id] = k
        return known

    def _check_images(self, images: list) -> dict:
        path = self.annotation_file
        checked: dict = {}   # id -> (index in "images", entry)
        by_name: dict = {}   # file_name -> index
        for k, image in enumerate(images):
            where = f"{path!r}, images[{k}]"
            _check_object(image, where, "an image {\"id\", \"file_name\", \"height\", \"width\"}")
            if isinstance(image.get("file_name"), str):
                where = f"{path!r}, image {image['file_name']!r} (images[{k}])"
            _check_keys(image, ("id", "file_name", "height", "width"), where,
                        "every image needs 'id', 'file_name', 'height' and 'width'")
            image_id = _whole_number(image["id"], "its id", where, 0, MAX_IMAGE_ID,
                                     "image ids are whole numbers, e.g. 139")
            name = _file_name(image["file_name"], where, "000000000139.jpg")
            where = f"{path!r}, image {name!r} (images[{k}], id {image_id})"
            for key in ("height", "width"):
                _whole_number(image[key], f"its {key}", where, 1, None,
                              f"the image's {key} in pixels")
            if image_id in checked:
                other_k, other = checked[image_id]
                raise ValueError(
                    f"{where}: image id {image_id} is used twice, also by {other['file_name']!r} "
                    f"(images[{other_k}]): annotations find their image by id, so one image would "
                    "be trained against the other's segments; give every image its own id"
                )
            if name in by_name:
                raise ValueError(
                    f"{where}: file {name!r} is listed twice, also as images[{by_name[name]}]: "
                    "list every image once"
                )
            checked[image_id] = (k, image)
            by_name[name] = k
        if not checked:
            raise ValueError(
                f"{path!r}: 'images' is empty: a dataset needs at least one image, with its "
                "annotation and PNG"
            )
        return checked

    def _check_annotation(self, k: int, ann, images: dict, annotation_of: dict, png_of: dict) -> dict:
        path = self.annotation_file
        where = f"{path!r}, annotations[{k}]"
        _check_object(ann, where, "an annotation {\"image_id\", \"file_name\", \"segments_info\"}")
        if isinstance(ann.get("file_name"), str):
            where = f"{path!r}, annotation {ann['file_name']!r} (annotations[{k}])"
        _check_keys(ann, ("image_id", "file_name", "segments_info"), where,
                    "every annotation needs 'image_id', 'file_name' (its PNG) and 'segments_info'")
        image_id = _whole_number(ann["image_id"], "its image_id", where, 0, MAX_IMAGE_ID,
                                 "the 'id' of its image in 'images'")
        png = _file_name(ann["file_name"], where, "000000000139.png")
        where = f"{path!r}, annotation {png!r} (annotations[{k}], image_id {image_id})"
        if image_id not in images:
            some = sorted(images)[:5]
            raise ValueError(
                f"{where}: image_id {image_id} is not the id of any image in 'images' (ids there: "
                f"{some}{' ...' if len(images) > 5 else ''}); give the id of the image this PNG "
                "belongs to, or add that image to 'images'"
            )
        image_k, image = images[image_id]
        if image_id in annotation_of:
            other = annotation_of[image_id]
            raise ValueError(
                f"{where}: image {image['file_name']!r} (id {image_id}) already has an annotation, "
                f"annotations[{other}]: every image has exactly one annotation, holding all its "
                "segments; merge the two or remove one"
            )
        if png in png_of:
            raise ValueError(
                f"{where}: PNG {png!r} is also the PNG of annotations[{png_of[png]}]: every image "
                "needs its own PNG"
            )
        annotation_of[image_id] = k
        png_of[png] = k
        segments = ann["segments_info"]
        if not isinstance(segments, list):
            raise ValueError(
                f"{where}: segments_info is {_kind(segments)}, not a list: give a list of segments "
                "{\"id\", \"category_id\", \"iscrowd\", \"bbox\", \"area\"}"
            )
        if len(segments) == 0:
            raise ValueError(
                f"{where}: image {image['file_name']!r} has no segments: an empty image gives the "
                "matcher nothing to match; remove it or label it"
            )
        seen: dict = {}
        for j, seg in enumerate(segments):
            seg_where = f"{where}, segments_info[{j}]"
            _check_object(seg, seg_where, "a segment {\"id\", \"category_id\", \"iscrowd\"}")
            _check_keys(seg, ("id", "category_id"), seg_where,
                        "every segment needs 'id' (its colour in the PNG) and 'category_id'")
            if seg["id"] == VOID_ID and not isinstance(seg["id"], bool):
                raise ValueError(f"{seg_where}: segment id 0 is reserved for VOID (unlabelled) pixels; "
                                 "number segments from 1")
            seg_id = _whole_number(seg["id"], "its id", seg_where, 1, MAX_SEGMENT_ID,
                                   "the segment's colour in the PNG, R + 256 G + 256**2 B")
            seg_where = f"{where}, segment id {seg_id} (segments_info[{j}])"
            category_id = seg["category_id"]
            if not _is_whole(category_id):
                _whole_number(category_id, "its category_id", seg_where, 0, None,
                              "the id of one of the 'categories'")
            if category_id not in self.categories:
                raise ValueError(
                    f"{seg_where}: segment id {seg_id} has category_id {category_id!r}, which is not "
                    f"in 'categories' (known ids: {sorted(self.categories)}); give one of those ids"
                )
            if "iscrowd" in seg and not _is_zero_or_one(seg["iscrowd"]):
                raise ValueError(
                    f"{seg_where}: iscrowd is {seg['iscrowd']!r}; give 0 (one object or region) or 1 "
                    "(a crowd of objects labelled as one segment)"
                )
            if seg_id in seen:
                raise ValueError(f"{seg_where}: segment id {seg_id} appears twice, also as "
                                 f"segments_info[{seen[seg_id]}]; give every segment its own id")
            seen[seg_id] = j
        return image

    def _check_files(self, image: dict, ann: dict) -> None:
        where = f"{self.annotation_file!r}, image {image['file_name']!r} (id {image['id']})"
        image_path = os.path.join(self.image_dir, image["file_name"])
        if not os.path.isfile(image_path):
            raise FileNotFoundError(f"{where}: missing file {image_path!r}; put the image there or "
                                    "pass the image folder it is in")
        png_path = os.path.join(self.panoptic_dir, ann["file_name"])
        if not os.path.isfile(png_path):
            hint = ""
            if not ann["file_name"].lower().endswith(".png"):
                hint = (" (an annotation's 'file_name' is the name of its PNG, e.g. "
                        f"{os.path.splitext(ann['file_name'])[0] + '.png'!r}, not of the image)")
            raise FileNotFoundError(f"{where}: missing PNG {png_path!r}{hint}; put the panoptic PNG "
                                    "there or pass the folder it is in")

    # ---- what the model needs ----------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """C for the model: category ids are class indices, so the largest id + 1."""
        return max(self.categories) + 1

    @property
    def thing_ids(self) -> list[int]:
        """Ids of the categories with ``isthing`` 1 (or no ``isthing``)."""
        return sorted(i for i, c in self.categories.items() if c.get("isthing", 1))

    @property
    def stuff_ids(self) -> list[int]:
        """Ids of the categories with ``isthing`` 0."""
        return sorted(i for i, c in self.categories.items() if not c.get("isthing", 1))

    def __len__(self) -> int:
        return len(self.items)

    def _position(self, index) -> int:
        try:
            position = operator.index(index)
        except TypeError:
            raise TypeError(f"a dataset index is a whole number from 0 to {len(self) - 1}, "
                            f"got {index!r}") from None
        if not -len(self) <= position < len(self):
            raise IndexError(f"index {position} is out of range: this dataset has {len(self)} images "
                             f"(indices 0 to {len(self) - 1})")
        return position

    def _where(self, image: dict) -> str:
        return f"{self.annotation_file!r}, image {image['file_name']!r} (id {image['id']})"

    def ground_truth(self, index: int) -> tuple[np.ndarray, list[dict]]:
        """:meth:`read_panoptic` with each segment's ``isthing`` from its category, as
        ``figures.show_panoptic`` and the merge's results have it (``book/07_train_it_yourself.ipynb``,
        ``book/09_your_own_dataset.ipynb``)."""
        ids, segments = self.read_panoptic(index)
        # a category without isthing counts as a thing (see the class docstring)
        return ids, [{**s, "isthing": int(bool(self.categories[s["category_id"]].get("isthing", 1)))}
                     for s in segments]

    def read_panoptic(self, index: int) -> tuple[np.ndarray, list[dict]]:
        """The raw ground truth of one image: the (H, W) id map and its ``segments_info``
        (``book/07_train_it_yourself.ipynb``)."""
        image, ann = self.items[self._position(index)]
        where = self._where(image)
        png_path = os.path.join(self.panoptic_dir, ann["file_name"])
        rgb, mode = _decode(png_path, where, "panoptic PNG", png=True)
        ids = rgb2id(np.asarray(rgb))                                            # (H, W)
        if ids.shape != (image["height"], image["width"]):
            raise ValueError(
                f"{where}: the PNG {png_path!r} is {ids.shape[1]}x{ids.shape[0]} (WxH) but the JSON "
                f"says the image is {image['width']}x{image['height']}; fix 'width'/'height' or the PNG"
            )
        json_ids = {seg["id"] for seg in ann["segments_info"]}
        png_ids = set(np.unique(ids).tolist()) - {VOID_ID}
        hint = ""
        if mode not in ("RGB", "RGBA", "P", "PA"):
            hint = (f" (the PNG is a mode {mode!r} grey image: a grey value v reads as id "
                    "v + 256 v + 256**2 v. A COCO panoptic PNG is RGB with id = R + 256 G + 256**2 B; "
                    "write it with coco_panoptic.id2rgb)")
        extra = sorted(png_ids - json_ids)
        if extra:
            shown = f"{extra[:10]}{' ...' if len(extra) > 10 else ''}"
            raise ValueError(
                f"{where}: segment id(s) {shown} appear in the PNG {png_path!r} but not in the "
                f"segments_info of {ann['file_name']!r}{hint}; list them there or paint those pixels "
                "black (VOID)"
            )
        absent = sorted(json_ids - png_ids)
        if absent:
            raise ValueError(
                f"{where}: segment id(s) {absent} of {ann['file_name']!r} are in segments_info but "
                f"have no pixel in {png_path!r}{hint}; remove them from segments_info"
            )
        return ids, ann["segments_info"]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        position = self._position(index)
        image_info, ann = self.items[position]
        ids, segments = self.read_panoptic(position)                             # (H, W)
        image_path = os.path.join(self.image_dir, image_info["file_name"])
        pil, _ = _decode(image_path, self._where(image_info), "image", png=False)
        if (pil.height, pil.width) != ids.shape:
            raise ValueError(
                f"{self._where(image_info)}: the image {image_path!r} is {pil.width}x{pil.height} "
                f"(WxH) but its panoptic PNG {ann['file_name']!r} and the JSON say "
                f"{ids.shape[1]}x{ids.shape[0]}; the image and its PNG must have the same size"
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
            "iscrowd": torch.tensor([int(seg.get("iscrowd", 0)) for seg in segments], dtype=torch.int64),
            "area": masks.flatten(1).sum(1),                                     # (K,)
            "image_id": image_info["id"],
            "size": torch.tensor([height, width]),
        }
        return image, target


# ---- the checks, one place for their messages ------------------------------------------------

def _read_panoptic_json(path: str) -> dict:
    """The JSON object of a COCO panoptic annotation file, with its three lists checked."""
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a folder: pass the panoptic JSON file itself "
                         "(for a dataset written by detr_explained.synthetic, ROOT/panoptic.json)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no annotation file at {path!r}: pass the path of the COCO "
                                "panoptic JSON (e.g. annotations/panoptic_val2017.json)")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{path!r} is not valid JSON ({type(err).__name__}: {err}); a COCO panoptic "
                         "annotation file is one JSON object with 'images', 'annotations' and "
                         "'categories'") from None
    panoptic = ("a COCO panoptic JSON is one object with the lists 'images', 'annotations' (one per "
                "image, each with a 'segments_info' list) and 'categories', beside a folder of PNGs "
                "whose colours are segment ids")
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data) and any(
            "image_id" in x and ("bbox" in x or "segmentation" in x or "score" in x) for x in data):
        raise ValueError(f"{path!r} is a list of COCO detection results (image_id, category_id, "
                         f"bbox or segmentation, score), not a panoptic dataset: {panoptic}")
    if not isinstance(data, dict):
        raise ValueError(f"{path!r} holds {_kind(data)}, not an object: {panoptic}")
    annotations = data.get("annotations")
    if isinstance(annotations, list) and any(
            isinstance(a, dict) and "segments_info" not in a and ("segmentation" in a or "bbox" in a)
            for a in annotations):
        raise ValueError(
            f"{path!r} is a COCO instances (detection) file: its annotations are one per object, "
            "with 'segmentation' and 'bbox', and have no 'segments_info'. CocoPanoptic reads a COCO "
            "panoptic JSON, which has one annotation per image with a 'segments_info' list of its "
            "segments, plus a folder of PNGs whose colours are segment ids (for COCO 2017: "
            "annotations/panoptic_val2017.json and the folder panoptic_val2017/)")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            hint = ""
            if key == "images" and "annotations" in data and "categories" not in data:
                hint = (" (a predictions file, as pq.pq_compute_files reads, has only 'annotations': "
                        "the dataset needs the ground-truth JSON)")
            raise ValueError(f"{path!r} has no {key!r} list{hint}: {panoptic}")
        if not isinstance(data[key], list):
            raise ValueError(f"{path!r}: {key!r} is {_kind(data[key])}, not a list: {panoptic}")
    return data


def _check_object(entry, where: str, expected: str) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is {_kind(entry)}; give {expected}")


def _check_keys(entry: dict, keys: tuple, where: str, rule: str) -> None:
    missing = [key for key in keys if key not in entry]
    if missing:
        raise ValueError(f"{where} has no {' or '.join(repr(k) for k in missing)}: {rule}")


def _is_zero_or_one(value) -> bool:
    return isinstance(value, bool) or (_is_whole(value) and value in (0, 1))


def _file_name(value, where: str, example: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: file_name is {_kind(value)}; give the file's name, e.g. {example!r}")
    return value


def _decode(path: str, where: str, what: str, png: bool) -> tuple[Image.Image, str]:
    """The file decoded as 8-bit RGB, and its mode; an unreadable file is a ValueError naming it."""
    def unreadable(err: BaseException) -> ValueError:
        return ValueError(f"{where}: could not read {what} {path!r} (truncated or not an image): "
                          f"{type(err).__name__}: {err}; replace it with a complete "
                          f"{'PNG' if png else 'image file'}")

    try:
        opened = Image.open(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: missing {what} {path!r}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise unreadable(err) from err
    with opened:
        mode = opened.mode
        if png and mode not in EXACT_PNG_MODES:
            raise ValueError(
                f"{where}: the PNG {path!r} is mode {mode!r}, not 8-bit colour; a COCO panoptic PNG "
                "is 8-bit RGB whose colour is the segment id, id = R + 256 G + 256**2 B: write it "
                "with Image.fromarray(coco_panoptic.id2rgb(ids)).save(path)")
        try:
            opened.load()  # decodes the whole file
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise unreadable(err) from err
        if png:
            rgb = opened.convert("RGB")
        else:  # a photo of any mode, as load_image reads it (16-bit and float scaled), EXIF not applied
            try:
                rgb = to_rgb(opened)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{where}: the image {path!r} cannot be used: {err}") from err
    return rgb, mode


def collate(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """For a DataLoader: a list of images (sizes may differ) and a list of targets.

    The images are padded into one batch later, by ``preprocessing.ImageBatch.from_images``.

    Explained in ``book/07_train_it_yourself.ipynb``.
    """
    for k, item in enumerate(batch):
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], dict)):
            raise TypeError(f"collate takes a list of (image, target) pairs as CocoPanoptic returns "
                            f"them; item {k} is {type(item).__name__}")
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    return images, targets


def open_dataset(root: PathLike, normalize: bool = True) -> CocoPanoptic:
    """A dataset laid out as ``detr_explained.synthetic.write_dataset`` writes it:
    ``root/images``, ``root/panoptic``, ``root/panoptic.json``.

    Explained in ``book/07_train_it_yourself.ipynb``.
    """
    folder = _path_argument(root, "root")
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"no dataset folder at {folder!r}: pass a folder holding images/, panoptic/ and "
            f"panoptic.json, e.g. one written by python -m detr_explained.synthetic {folder} "
            "--num-images 200")
    return CocoPanoptic(*default_paths(folder), normalize=normalize)


def default_paths(root: PathLike) -> PanopticPaths:
    """The layout ``synthetic.write_dataset`` writes: ROOT/images, ROOT/panoptic,
    ROOT/panoptic.json (``book/07_train_it_yourself.ipynb``)."""
    root = _path_argument(root, "root")
    return PanopticPaths(os.path.join(root, "images"), os.path.join(root, "panoptic"),
                         os.path.join(root, "panoptic.json"))
