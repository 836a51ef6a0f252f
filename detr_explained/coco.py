"""The 133 COCO panoptic categories: what the published DETR's class indices mean.

Explained in ``book/08_published_model.ipynb``. The official panoptic models have
``num_classes=250``: class index ``c`` of their 251 logits *is* COCO category id ``c`` (the last
logit is "no object"). COCO panoptic uses 133 of those ids: 80 things (ids 1 to 90, with gaps)
and 53 stuff classes (ids 92 to 200, with gaps); the others were never trained on.

The table ships with the package (``detr_explained/data/coco_panoptic_categories.json``, copied
from cocodataset/panopticapi; ``detr_explained/data/README.md`` says where from and under which
terms). It is read once and checked: 133 entries, unique ids and names, ``isthing`` 0 or 1.
"""
from __future__ import annotations

import copy
import functools
import json
import os

from .config import COCO_LAST_THING_ID

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
CATEGORIES_FILE = os.path.join(DATA_DIR, "coco_panoptic_categories.json")

# What the table holds (COCO panoptic 2017).
NUM_CATEGORIES = 133
NUM_THINGS = 80
NUM_STUFF = 53

# The fields every entry has.
_FIELDS = ("id", "name", "isthing", "supercategory")


@functools.lru_cache(maxsize=None)
def _read_table() -> tuple:
    """The table as read from the package, checked; cached, so the file is read once."""
    if not os.path.isfile(CATEGORIES_FILE):
        raise FileNotFoundError(
            f"the COCO panoptic category table {CATEGORIES_FILE} is missing: this install of "
            "detr_explained is incomplete. In a clone of the repository restore it with "
            "'git checkout -- detr_explained/data'; otherwise reinstall detr_explained")
    with open(CATEGORIES_FILE, encoding="utf-8") as handle:
        table = json.load(handle)
    where = os.path.basename(CATEGORIES_FILE)
    if not isinstance(table, list) or len(table) != NUM_CATEGORIES:
        size = len(table) if isinstance(table, list) else type(table).__name__
        raise ValueError(f"{where} must list the {NUM_CATEGORIES} COCO panoptic categories, it holds {size}")
    for k, entry in enumerate(table):
        missing = [f for f in _FIELDS if not isinstance(entry, dict) or f not in entry]
        if missing:
            raise ValueError(f"{where}: entry {k} has no {missing}")
        if entry["isthing"] not in (0, 1) or isinstance(entry["isthing"], bool):
            raise ValueError(f"{where}: entry {k} ({entry['name']!r}) has isthing={entry['isthing']!r}, not 0 or 1")
    for field in ("id", "name"):
        values = [entry[field] for entry in table]
        repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
        if repeated:
            raise ValueError(f"{where}: the {field}(s) {repeated} appear more than once")
    return tuple(table)


def coco_panoptic_categories() -> list[dict]:
    """The 133 COCO panoptic categories, in the order of COCO's table (things first, by id):
    ``[{"id", "name", "isthing", "supercategory", "color"}, ...]``; a fresh copy on each call, so
    changing it changes nothing else (``book/08_published_model.ipynb``).

    The file is read once and checked (133 entries, unique ids and names, isthing 0 or 1).
    """
    return copy.deepcopy(list(_read_table()))


def category_names() -> dict[int, str]:
    """COCO panoptic category id -> name, e.g. 1 -> "person", 17 -> "cat", 184 -> "tree-merged":
    the names of the published DETR's class indices (``book/08_published_model.ipynb``)."""
    return {entry["id"]: entry["name"] for entry in _read_table()}


def is_thing_map() -> dict[int, bool]:
    """COCO panoptic category id -> True for a thing, False for stuff, from the table's
    ``isthing`` (``book/08_published_model.ipynb``).

    It agrees with the rule the official code gives the merge, ``is_thing = id <= 90``, on every
    id of the table (the tests check it); the ids outside the table are never trained on, so the
    merge should not meet them. Pass it as ``merge_panoptic(..., is_thing=is_thing_map())`` or to
    ``explore.trace_image``. A dict: an id outside the table gives a clear error in the merge.
    """
    return {entry["id"]: bool(entry["isthing"]) for entry in _read_table()}


def is_thing(category_id: int) -> bool:
    """Whether a COCO panoptic category id is a thing: the table's ``isthing``; for an id the
    table lacks (one the published model was never trained on), the official rule ``id <= 90``
    (``book/08_published_model.ipynb``).

    A function, so that everything that asks "is this a thing?" gets an answer, e.g.
    ``explore.trace_image(..., is_thing=coco.is_thing)``.
    """
    table = _thing_lookup()
    category_id = int(category_id)
    if category_id in table:
        return table[category_id]
    return category_id <= COCO_LAST_THING_ID


@functools.lru_cache(maxsize=None)
def _thing_lookup() -> dict:
    return is_thing_map()
