"""The COCO panoptic category table shipped with the package (detr_explained.coco)."""
import re
from pathlib import Path

import pytest
import torch

import detr_explained as de
from detr_explained import coco

ROOT = Path(__file__).resolve().parents[1]
ORACLE_DETR = ROOT / ".oracle" / "models" / "detr.py"


def test_133_categories_80_things_53_stuff():
    table = coco.coco_panoptic_categories()
    assert len(table) == 133
    things = [c["id"] for c in table if c["isthing"] == 1]
    stuff = [c["id"] for c in table if c["isthing"] == 0]
    assert len(things) == 80 and len(stuff) == 53
    assert min(things) == 1 and max(things) == 90
    assert min(stuff) == 92 and max(stuff) == 200
    ids = [c["id"] for c in table]
    names = [c["name"] for c in table]
    assert len(set(ids)) == 133 and len(set(names)) == 133
    assert all(set(c) >= {"id", "name", "isthing", "supercategory"} for c in table)


def test_every_id_is_a_class_index_of_the_official_model():
    num_classes = de.get_config("detr-r50-panoptic").num_classes   # 250: logits 0..249 + no object
    assert all(0 < c["id"] < num_classes for c in coco.coco_panoptic_categories())


def test_isthing_agrees_with_the_official_rule():
    """The official code's postprocessor marks ids <= 90 as things: read the constant from its
    source, where the oracle is installed (make oracle)."""
    if not ORACLE_DETR.is_file():
        pytest.skip("the official code (.oracle, make oracle) is not installed")
    rule = re.search(r"is_thing_map\s*=\s*\{\s*i\s*:\s*i\s*<=\s*(\d+)\s+for\s+i\s+in\s+range\((\d+)\)\s*\}",
                     ORACLE_DETR.read_text())
    assert rule, f"no is_thing_map = {{i: i <= ...}} in {ORACLE_DETR}"
    last_thing, count = int(rule.group(1)), int(rule.group(2))
    assert last_thing == 90
    for c in coco.coco_panoptic_categories():
        assert c["id"] < count
        assert bool(c["isthing"]) == (c["id"] <= last_thing), c
    assert coco.is_thing_map() == {c["id"]: c["id"] <= last_thing for c in coco.coco_panoptic_categories()}


def test_known_names():
    names = coco.category_names()
    assert names[1] == "person" and names[17] == "cat" and names[63] == "couch"
    assert names[75] == "remote" and names[90] == "toothbrush"
    assert names[92] == "banner" and names[184] == "tree-merged" and names[200] == "rug-merged"
    assert 12 not in names and 91 not in names   # COCO detection ids left out of panoptic


def test_the_table_is_read_once_and_copies_are_independent():
    first = coco.coco_panoptic_categories()
    first[0]["name"] = "changed"
    first.pop()
    again = coco.coco_panoptic_categories()
    assert len(again) == 133 and again[0]["name"] == "person"
    assert coco.category_names()[1] == "person"


def test_is_thing_function_outside_the_table():
    assert coco.is_thing(17) is True and coco.is_thing(184) is False
    assert coco.is_thing(12) is True      # not in the table: the official rule, id <= 90
    assert coco.is_thing(201) is False


def test_the_merge_treats_things_and_stuff_by_the_table():
    """Two cats (thing, id 17) stay two segments; two tree queries (stuff, id 184) become one."""
    h = w = 8
    classes = [17, 17, 184, 184]
    logits = torch.full((1, len(classes), 251), -10.0)
    for q, c in enumerate(classes):
        logits[0, q, c] = 10.0
    masks = torch.zeros(1, len(classes), h, w)
    for q in range(len(classes)):          # query q wins columns 2q, 2q+1
        masks[0, q, :, 2 * q:2 * q + 2] = 10.0
    result = de.merge_panoptic({"pred_logits": logits, "pred_masks": masks}, [(h, w)],
                               is_thing=coco.is_thing_map())[0]
    segments = [(s["category_id"], s["isthing"], s["queries"]) for s in result.segments_info]
    assert segments == [(17, True, [0]), (17, True, [1]), (184, False, [2, 3])]


def test_the_table_is_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["detr_explained"]
    assert "data/*.json" in patterns and "data/*.md" in patterns
    assert Path(coco.CATEGORIES_FILE).is_file()
    assert (Path(coco.DATA_DIR) / "README.md").is_file()
