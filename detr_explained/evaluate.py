"""Evaluating a trained model: panoptic quality on a held-out dataset.

Explained in ``book/07_train_it_yourself.ipynb``. Each image goes through the fast inference
path (:func:`detr_explained.inference.segment`); its panoptic result is compared with the ground
truth by :mod:`detr_explained.pq`, and the counts over the whole dataset give PQ, SQ and RQ for
all categories, things and stuff. The training command (:mod:`detr_explained.train`) calls
:func:`evaluate` periodically; this module's command line evaluates any checkpoint::

    python -m detr_explained.evaluate --data DIR --checkpoint RUN_DIR/model.pth \\
        [--config detr-tiny-synthetic] [--threshold T (default: the model's keep_threshold)] [--num-images N] [--per-class]
"""
from __future__ import annotations

import argparse
import copy
import math
import os
from typing import Optional, Sequence

import torch
from torch.utils.data import Subset

from . import cli
from .coco_panoptic import VOID_ID, CocoPanoptic, open_dataset
from .config import CONFIGS, keep_threshold, saved_config_fields
from .detr import DETRPanoptic
from .hub import build_model, load_checkpoint, read_checkpoint_file
from .inference import segment
from .merge import KEEP_THRESHOLD
from .pq import PQResult, format_pq_table, pq_compute

# The preset the training command uses by default; a checkpoint without a saved config
# (model.pth) is loaded into it.
DEFAULT_CONFIG = "detr-tiny-synthetic"

# Images per forward pass during evaluation: memory, not results, depends on it.
EVAL_BATCH_SIZE = 8


def is_thing_of(dataset: CocoPanoptic):
    """The dataset's own thing/stuff split, for ``segment(..., is_thing=...)``
    (``book/07_train_it_yourself.ipynb``).

    A category id the dataset does not know (the model can predict id 0, unused by COCO-style
    numberings) counts as a thing, so it is never merged; :func:`evaluate` then drops it.
    """
    categories = dataset.categories
    return lambda category_id: bool(categories.get(category_id, {}).get("isthing", 1))


def _drop_unknown_categories(id_map: torch.Tensor, segments: list[dict], categories: dict):
    """Pixels of segments with a category the dataset does not have become VOID (no prediction)."""
    unknown = [s["id"] for s in segments if s["category_id"] not in categories]
    if not unknown:
        return id_map, segments
    id_map = id_map.clone()
    id_map[torch.isin(id_map, torch.tensor(unknown))] = VOID_ID
    return id_map, [s for s in segments if s["category_id"] in categories]


@torch.no_grad()
def evaluate(model: DETRPanoptic, dataset: CocoPanoptic | Subset, batch_size: int = EVAL_BATCH_SIZE,
             threshold: Optional[float] = None, num_images: Optional[int] = None) -> PQResult:
    """PQ of ``model`` on ``dataset`` (``book/07_train_it_yourself.ipynb``).

    ``threshold``: the class score above which a query is kept; default the model's own
    (``model.config.keep_threshold``: 0.85, the official value, or 0.4 for detr-tiny-synthetic).

    ``dataset``: a CocoPanoptic, or a Subset of one (the held-out images of a training set).
    Runs on the CPU in eval mode (batch norm uses its running statistics) and leaves the model
    as it found it. ``num_images`` evaluates only the first images, for a quick look.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    threshold = keep_threshold(model) if threshold is None else threshold
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and 0 <= threshold < 1):
        raise ValueError(f"threshold must be a class score from 0 up to (not including) 1, e.g. "
                         f"{KEEP_THRESHOLD}; got {threshold!r}")
    if num_images is not None and (not isinstance(num_images, int) or num_images < 1):
        raise ValueError(f"num_images must be a whole number of at least 1 (or None for all), got {num_images!r}")
    if isinstance(dataset, Subset):
        dataset, positions = dataset.dataset, list(dataset.indices)
    elif isinstance(dataset, CocoPanoptic):
        positions = list(range(len(dataset)))
    else:
        raise TypeError(f"dataset must be a CocoPanoptic (detr_explained.coco_panoptic.open_dataset) or "
                        f"a Subset of one, got {type(dataset).__name__}")
    if num_images is not None:
        positions = positions[:num_images]
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()  # the merge indexes CPU tensors
    was_training = model.training
    model.eval()
    is_thing = is_thing_of(dataset)
    pairs = []
    try:
        for start in range(0, len(positions), batch_size):
            indices = positions[start:start + batch_size]
            images = [dataset[i][0] for i in indices]
            for i, result in zip(indices, segment(model, images, threshold=threshold, is_thing=is_thing)):
                pred_ids, pred_segments = _drop_unknown_categories(result.id_map, result.segments_info,
                                                                   dataset.categories)
                pairs.append((dataset.read_panoptic(i), (pred_ids.numpy(), pred_segments)))
    finally:
        model.train(was_training)
    return pq_compute(pairs, dataset.categories)


def category_list(categories) -> list[dict]:
    """Categories as a model file stores them and as they are compared: ``{id, name, isthing}``
    in id order, isthing 0 or 1 (missing: a thing) (``book/07_train_it_yourself.ipynb``)."""
    return [{"id": int(c["id"]), "name": str(c.get("name", c["id"])), "isthing": int(bool(c.get("isthing", 1)))}
            for c in sorted(categories, key=lambda c: c["id"])]


def _describe_categories(categories: Sequence[dict]) -> str:
    return "[" + ", ".join(f"{c['id']}: {c.get('name', '?')}" for c in categories) + "]"


def check_categories(saved: Optional[Sequence[dict]], saved_num_classes: Optional[int],
                     dataset: CocoPanoptic, source: str, what: str = "the checkpoint") -> None:
    """Refuse a model (or training set) whose classes are not the dataset's
    (``book/07_train_it_yourself.ipynb``).

    ``saved``: the categories stored with the weights (id, name, isthing; files written by the
    training command carry them), or None for an older file, which is then compared by its
    number of classes only. A mismatch raises ValueError naming both class lists: evaluating it
    would print a PQ that means nothing, and resuming it would train the classes under other names.
    """
    theirs = category_list(dataset.categories.values())
    where = getattr(dataset, "annotation_file", "the dataset")
    if saved is not None:
        mine = category_list(saved)
        if mine != theirs:
            raise ValueError(
                f"{source}: {what} was trained on the categories {_describe_categories(mine)}, but {where} "
                f"has {_describe_categories(theirs)}. A model can only be evaluated on (or go on training "
                "on) the classes it was trained on: use the dataset it was made for, or train a new model")
    elif saved_num_classes is not None and saved_num_classes != dataset.num_classes:
        raise ValueError(
            f"{source}: {what} predicts {saved_num_classes} classes (ids 0..{saved_num_classes - 1}), but the "
            f"categories of {where}, {_describe_categories(theirs)}, need {dataset.num_classes} "
            f"(largest id + 1). Use the dataset it was made for, or train a new model")


def load_trained_model(checkpoint: str | os.PathLike, config: Optional[str] = None,
                       num_classes: Optional[int] = None,
                       dataset: Optional[CocoPanoptic] = None) -> DETRPanoptic:
    """A model from a file the training command wrote, ``checkpoint.pth`` or ``model.pth``
    (``book/07_train_it_yourself.ipynb``).

    Both files carry their config (``model.pth`` since ``--set`` and ``--ema`` came), which is
    used unless ``config`` names a preset; a file with weights only is loaded into ``config``
    (default ``detr-tiny-synthetic``) with ``num_classes`` if given (the dataset's, from the command).
    With ``dataset``, the file's classes are checked against the dataset's first
    (:func:`check_categories`), and ``num_classes`` comes from it.
    """
    loaded = read_checkpoint_file(checkpoint)  # clear errors for missing, empty or pickled files
    source = os.fspath(checkpoint)
    saved = loaded.get("config") if isinstance(loaded, dict) else None
    if dataset is not None:
        state = loaded.get("model") if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict) else loaded
        class_weight = state.get("detr.class_embed.weight") if isinstance(state, dict) else None
        saved_classes = class_weight.shape[0] - 1 if isinstance(class_weight, torch.Tensor) else None
        check_categories(loaded.get("categories") if isinstance(loaded, dict) else None, saved_classes,
                         dataset, source)
        num_classes = dataset.num_classes if num_classes is None else num_classes
    if config is None and isinstance(saved, dict):
        # Every field from the file: the preset name only provides the dataclass.
        fields = saved_config_fields(saved)
        model = build_model(DEFAULT_CONFIG, **fields)
    else:
        overrides = {} if num_classes is None else {"num_classes": num_classes}
        model = build_model(config or DEFAULT_CONFIG, **overrides)
    return load_checkpoint(model, loaded, source=source).eval()  # NaN refused, DDP prefix removed


def build_parser() -> argparse.ArgumentParser:
    """The options of ``python -m detr_explained.evaluate`` (``book/07_train_it_yourself.ipynb``)."""
    parser = cli.CommandParser(
        prog="python -m detr_explained.evaluate",
        description="Panoptic quality (PQ, SQ, RQ for all categories, things and stuff) of a "
                    "trained checkpoint on a COCO panoptic dataset (book/07_train_it_yourself.ipynb).")
    parser.add_argument("--data", required=True,
                        help="dataset folder with images/, panoptic/ and panoptic.json")
    parser.add_argument("--checkpoint", required=True, help="RUN_DIR/model.pth or RUN_DIR/checkpoint.pth")
    parser.add_argument("--config", default=None, choices=sorted(CONFIGS), metavar="CONFIG",
                        help="model preset (default: the config saved in the checkpoint, else "
                             f"{DEFAULT_CONFIG} with the dataset's number of classes; one of "
                             f"{', '.join(sorted(CONFIGS))})")
    parser.add_argument("--threshold", type=cli.score_threshold, default=None,
                        help="keep queries whose class score is above this, from 0 up to 1 (default: the "
                             f"model's keep_threshold, {KEEP_THRESHOLD} unless its config says otherwise)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=EVAL_BATCH_SIZE)
    parser.add_argument("--num-images", type=cli.positive_int, default=None, help="evaluate only the first N images")
    parser.add_argument("--per-class", action="store_true", help="also print one row per category")
    cli.add_traceback_option(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> PQResult:
    """``python -m detr_explained.evaluate``: print the PQ table of a checkpoint
    (``book/07_train_it_yourself.ipynb``). A mistake in the options, the dataset or the
    checkpoint ends it with one ``error:`` line and exit status 2."""

    def body(args: argparse.Namespace) -> PQResult:
        dataset = open_dataset(args.data)
        model = load_trained_model(args.checkpoint, args.config, dataset=dataset)
        result = evaluate(model, dataset, args.batch_size, args.threshold, args.num_images)
        count = len(dataset) if args.num_images is None else min(args.num_images, len(dataset))
        kept = keep_threshold(model) if args.threshold is None else args.threshold
        print(f"{args.checkpoint} on {count} images of {args.data} (queries kept above {kept:g}):")
        print(format_pq_table(result, dataset.categories if args.per_class else None))
        return result

    return cli.run_command(build_parser(), body, argv)


if __name__ == "__main__":
    main()
