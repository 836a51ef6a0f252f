"""book/at_a_glance.ipynb: the names in its table of the three codebases exist.

The page maps names between the official code (facebookresearch/detr), HuggingFace transformers
and detr_explained. These tests read the table from the notebook itself, so a renamed function,
a removed field or a typo in the table fails here:

- every `detr_explained.X` of the package column resolves (a module, an attribute, or a field of
  a dataclass such as DETRTrace);
- every `model.X` of the package column is an attribute of a built model;
- a bare name in a package cell (`mask` in "`detr_explained.ImageBatch` (`tensors`, `mask`, ...)")
  is an attribute or field of the first `detr_explained.X` of that cell;
- the page's own check cell lists exactly the table's names;
- the identifiers of the official column occur in the official source (.oracle/, when present).

HuggingFace transformers is not installed: the page says which commits its column was read from.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import os
import re

import pytest

import detr_explained as de

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "book", "at_a_glance.ipynb")
ORACLE = os.path.join(ROOT, ".oracle")

# torch.hub entry points live in the repository's hubconf.py, which the PyPI copy does not ship
NOT_IN_PYPI_COPY = {"detr_resnet50_panoptic"}


def _cells():
    with open(NOTEBOOK, encoding="utf-8") as f:
        return json.load(f)["cells"]


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def read_table() -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the names table (the markdown table with a detr_explained column)."""
    for cell in _cells():
        if cell["cell_type"] != "markdown":
            continue
        lines = [line.strip() for line in _source(cell).splitlines() if line.strip().startswith("|")]
        if not lines or "detr_explained" not in lines[0]:
            continue
        split = [[part.strip() for part in line.strip("|").split("|")] for line in lines]
        header, rows = split[0], [row for row in split[1:] if not set("".join(row)) <= set("-: ")]
        assert all(len(row) == len(header) for row in rows), "a row of the names table has a stray |"
        return header, rows
    raise AssertionError("book/at_a_glance.ipynb has no markdown table with a detr_explained column")


def column(name: str) -> list[str]:
    header, rows = read_table()
    index = next(i for i, title in enumerate(header) if name in title)
    return [row[index] for row in rows]


def tokens(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def resolves(dotted: str) -> bool:
    """Whether a dotted name exists: modules, attributes, and dataclass fields (DETRTrace.memory)."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
        elif dataclasses.is_dataclass(obj) and part in {f.name for f in dataclasses.fields(obj)}:
            return i == len(parts) - 1  # a field is the last part
        else:
            try:
                obj = importlib.import_module(".".join(parts[:i + 1]))
            except ModuleNotFoundError:
                return False
    return True


def has_member(obj, name: str) -> bool:
    return hasattr(obj, name) or (dataclasses.is_dataclass(obj)
                                  and name in {f.name for f in dataclasses.fields(obj)})


def on_model(path: str, model) -> bool:
    obj = model
    for part in path.split(".")[1:]:
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def package_names() -> list[str]:
    return [t for cell in column("detr_explained") for t in tokens(cell) if t.startswith("detr_explained.")]


def model_paths() -> list[str]:
    return [t for cell in column("detr_explained") for t in tokens(cell) if t.startswith("model.")]


def test_table_has_the_promised_rows():
    official = " ".join(column("official"))
    huggingface = " ".join(column("HuggingFace"))
    for name in ("DETRsegm", "DETR", "FrozenBatchNorm2d", "PositionEmbeddingSine", "Transformer",
                 "TransformerEncoder", "TransformerDecoder", "MHAttentionMap", "MaskHeadSmallConv",
                 "NestedTensor", "bbox_mask", "memory", "hs", "PostProcessPanoptic", "HungarianMatcher",
                 "SetCriterion", "rgb2id", "id2rgb"):
        assert f"`{name}`" in official, name
    for name in ("DetrForSegmentation", "DetrMHAttentionMap", "DetrMaskHeadSmallConv", "DetrConvEncoder",
                 "DetrSinePositionEmbedding", "DetrFrozenBatchNorm2d",
                 "DetrImageProcessor.post_process_panoptic_segmentation"):
        assert f"`{name}`" in huggingface, name
    assert len(package_names()) >= 30


def test_package_names_exist():
    missing = [name for name in package_names() if not resolves(name)]
    assert not missing, f"names in the table that detr_explained does not have: {missing}"


def test_model_attributes_exist():
    model = de.build_model("detr-tiny")  # the same module tree as every preset, and fast
    missing = [path for path in model_paths() if not on_model(path, model)]
    assert not missing, f"attributes in the table that the model does not have: {missing}"


def test_bare_names_belong_to_their_cell_object():
    wrong = []
    for cell in column("detr_explained"):
        found = tokens(cell)
        owners = [t for t in found if t.startswith("detr_explained.")]
        for bare in (t for t in found if re.fullmatch(r"[A-Za-z_]\w*", t)):
            owner = owners[0] if owners else None
            if owner is None or not resolves(owner):
                wrong.append((bare, owner))
                continue
            obj = importlib.import_module("detr_explained")
            for part in owner.split(".")[1:]:
                obj = getattr(obj, part)
            if not has_member(obj, bare):
                wrong.append((bare, owner))
    assert not wrong, f"bare names that are not members of their cell's object: {wrong}"


def test_check_cell_lists_exactly_the_table():
    cell = next(c for c in _cells() if c["cell_type"] == "code" and "PACKAGE_NAMES = [" in _source(c))
    assert "hide-input" in cell["metadata"].get("tags", [])
    assigned = {}
    for node in ast.parse(_source(cell)).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("PACKAGE_NAMES", "MODEL_ATTRIBUTES"):
                assigned[node.targets[0].id] = ast.literal_eval(node.value)
    assert set(assigned["PACKAGE_NAMES"]) == set(package_names())
    assert set(assigned["MODEL_ATTRIBUTES"]) == set(model_paths())


def test_the_checks_can_fail():
    assert resolves("detr_explained.DETRTrace.memory")
    assert resolves("detr_explained.attention_maps.BoxAttentionMaps")
    assert not resolves("detr_explained.MHAttentionMap")              # the official name
    assert not resolves("detr_explained.DETRTrace.bbox_mask")         # not a field of the trace
    assert not resolves("detr_explained.DETRTrace.memory.shape")      # a field is the last part
    assert not resolves("detr_explained.no_such_module.Thing")
    assert not has_member(de.ImageBatch, "pixel_mask")                # HuggingFace's name
    model = de.build_model("detr-tiny")
    assert on_model("model.detr.query_embed", model)
    assert not on_model("model.detr.query_position_embeddings", model)


@pytest.mark.skipif(not os.path.isdir(os.path.join(ORACLE, "models")),
                    reason="the official code (.oracle/, `make oracle`) is not installed")
def test_official_names_occur_in_the_official_code():
    sources = []
    for folder in ("models", "util", "datasets"):
        for name in sorted(os.listdir(os.path.join(ORACLE, folder))):
            if name.endswith(".py"):
                with open(os.path.join(ORACLE, folder, name), encoding="utf-8") as f:
                    sources.append(f.read())
    text = "\n".join(sources)
    words = set(re.findall(r"[A-Za-z_]\w*", text))
    absent = []
    for cell in column("official"):
        for token in tokens(cell):
            parts = token.split(".")
            if token.startswith("model."):
                parts = parts[1:]
            elif not re.fullmatch(r"[A-Za-z_]\w*", token):
                continue  # code such as hs[-1]
            absent += [part for part in parts if part not in words and part not in NOT_IN_PYPI_COPY]
    assert not absent, f"names in the official column that the official code does not have: {absent}"
