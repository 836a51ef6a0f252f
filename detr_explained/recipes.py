"""Training recipes: fine-tuning from trained weights, and the official two-stage panoptic recipe.

Explained in ``book/09_your_own_dataset.ipynb``. Two options of ``python -m detr_explained.train``:

``--init-from SOURCE`` (fine-tuning). Start from trained weights instead of random ones: the
shipped ``detr-tiny-synthetic``, or a ``model.pth`` / ``checkpoint.pth`` the training command
wrote. The model takes the file's config. If the new dataset has the same categories as the file
(ids, names and isthing), every weight is kept. Otherwise the class head, ``detr.class_embed``
(hidden_dim -> C + 1), cannot mean anything for the new classes: it is re-initialised for the new
C, and everything else is kept: the backbone, the transformer, the query
embeddings, the box head, the attention maps and the mask head. They have learned what an object
and a region look like, which the new classes share.

``--stage`` (the recipe). DETR's paper trains panoptic segmentation in two stages: first the box
detector alone (``boxes``: backbone, transformer, class and box heads, with the class and box
losses), then, with that detector frozen, the attention maps and the mask head on top of it
(``masks``: only ``bbox_attention`` and ``mask_head`` learn, from the mask losses). This
project's default is ``both``: everything from the start, all losses at once, which on small
scenes and a small budget gets further in the same time (``book/07_train_it_yourself.ipynb``).

=========  ======================================  ===============================  ==============
stage      what learns                             losses that count                 needs
=========  ======================================  ===============================  ==============
both       everything                              class, box (+ aux), mask, DICE   --
boxes      ``detr.*`` (no mask is computed)         class, box (+ aux)               --
masks      ``bbox_attention.*``, ``mask_head.*``    mask, DICE                       --init-from a
                                                                                     box model
=========  ======================================  ===============================  ==============
"""
from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple, Optional

import torch

from .config import get_config, saved_config_fields
from .evaluate import DEFAULT_CONFIG, category_list
from .hub import SHIPPED, build_model, load_checkpoint, read_checkpoint_file, shipped_checkpoint, strip_ddp_prefix
from .losses import LOSS_WEIGHTS

STAGES = ("both", "boxes", "masks")

# The class head: the only weights that depend on the category set.
CLASS_HEAD = "detr.class_embed."

# The parts each stage trains (prefixes of parameter names); the rest is frozen.
TRAINED_PARTS = {
    "both": ("",),
    "boxes": ("detr.",),
    "masks": ("bbox_attention.", "mask_head."),
}

# The losses that count in each stage's total (the others are still computed and logged).
MASK_LOSSES = ("loss_mask", "loss_dice")


class InitialWeights(NamedTuple):
    """What ``--init-from`` read (``book/09_your_own_dataset.ipynb``): the state dict, the config
    fields it was trained with, its categories (None when the file does not say), and where it
    came from."""

    state_dict: dict
    config: dict
    categories: Optional[list[dict]]
    source: str


def read_initial_weights(source: str, config_name: Optional[str] = None) -> InitialWeights:
    """The weights ``--init-from SOURCE`` starts from (``book/09_your_own_dataset.ipynb``).

    ``source``: the name of shipped weights ("detr-tiny-synthetic": its preset and its synthetic
    categories), or the path of a ``model.pth`` or ``checkpoint.pth`` of the training command
    (which carry their config and categories). A file with weights only is read with
    ``config_name``'s preset (default ``detr-tiny-synthetic``) and unknown categories.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"--init-from takes a shipped name or a file path, got {source!r}")
    source = os.fspath(source)
    if source in SHIPPED and not os.path.exists(source):
        from .synthetic import CATEGORIES  # the shipped model's classes
        state = read_checkpoint_file(shipped_checkpoint(source))["model"]
        config = dataclasses.asdict(get_config(source))
        return InitialWeights(strip_ddp_prefix(state), config, category_list(CATEGORIES), source)
    if not os.path.exists(source):
        raise FileNotFoundError(
            f"--init-from {source}: no such file, and not the name of shipped weights ({', '.join(SHIPPED)}). "
            "Give a model.pth or checkpoint.pth the training command wrote, or detr-tiny-synthetic")
    loaded = read_checkpoint_file(source)   # clear errors for a folder, an empty or pickled file
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        state = loaded["model"]
    elif isinstance(loaded, dict) and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        state = loaded
    else:
        raise ValueError(f"--init-from {source}: this file holds no state dict (no 'model' entry); "
                         "give a model.pth or checkpoint.pth the training command wrote")
    saved = loaded.get("config") if isinstance(loaded.get("config"), dict) else None
    config = (saved_config_fields(saved) if saved
              else dataclasses.asdict(get_config(config_name or DEFAULT_CONFIG)))
    categories = loaded.get("categories")
    return InitialWeights(strip_ddp_prefix(state), config,
                          category_list(categories) if categories else None, source)


def same_categories(initial: InitialWeights, categories: list[dict]) -> bool:
    """Whether the weights were trained on exactly these categories (ids, names and isthing)
    (``book/09_your_own_dataset.ipynb``)."""
    return initial.categories is not None and initial.categories == category_list(categories)


def build_from_initial(initial: InitialWeights, categories: list[dict], num_classes: int,
                       **overrides) -> tuple[torch.nn.Module, bool]:
    """A model with ``initial``'s config and weights for a dataset of ``categories``
    (``book/09_your_own_dataset.ipynb``). Returns ``(model, kept_class_head)``.

    Same categories: every weight is loaded (strictly). Other categories: the class head
    ``detr.class_embed`` is freshly initialised for ``num_classes`` (as a new model's would be,
    from torch's current random state) and every other weight is loaded; a weight of another
    shape anywhere else is an error (the file is another architecture).
    ``overrides``: config fields that must not change the architecture (e.g. ``dropout``).
    """
    fields = dict(initial.config, **overrides, num_classes=num_classes)
    model = build_model(DEFAULT_CONFIG, **fields)
    if same_categories(initial, categories):
        load_checkpoint(model, initial.state_dict, source=initial.source)
        return model, True
    kept = {k: v for k, v in initial.state_dict.items() if not k.startswith(CLASS_HEAD)}
    fresh = {k: v for k, v in model.state_dict().items() if k.startswith(CLASS_HEAD)}
    load_checkpoint(model, {**kept, **fresh}, source=initial.source)   # everything else strictly
    return model, False


# The official BackboneBase trains only layer2..layer4 of a pretrained ResNet: the stem (conv1,
# bn1) and layer1 keep their ImageNet weights (requires_grad False).
TRAINED_BACKBONE_LAYERS = ("layer2", "layer3", "layer4")


def freeze_pretrained_stem(model: torch.nn.Module) -> int:
    """Freeze the ResNet's stem and layer1, as the official code does for a pretrained backbone
    (``book/09_your_own_dataset.ipynb``). The training command does this for configs with frozen
    batch norm (the official ones, meant for ImageNet or COCO weights); a backbone trained from
    scratch (``detr-tiny-synthetic``, ordinary batch norm) learns in all its layers. Returns how
    many parameters it froze."""
    frozen = 0
    for name, parameter in model.named_parameters():
        if ".backbone." in f".{name}" and not any(f".{layer}." in name for layer in TRAINED_BACKBONE_LAYERS):
            parameter.requires_grad_(False)
            frozen += parameter.numel()
    return frozen


def check_stage(stage: str) -> str:
    """``stage`` if it is one of :data:`STAGES`, else a ValueError saying which there are
    (``book/09_your_own_dataset.ipynb``)."""
    if stage not in STAGES:
        raise ValueError(f"--stage {stage!r}: choose one of {', '.join(STAGES)}")
    return stage


def freeze_for_stage(model: torch.nn.Module, stage: str) -> int:
    """Let only the stage's parts learn: ``requires_grad`` False for the rest
    (``book/09_your_own_dataset.ipynb``). Returns how many parameters learn."""
    trained = TRAINED_PARTS[check_stage(stage)]
    count = 0
    for name, parameter in model.named_parameters():
        learns = name.startswith(trained)
        parameter.requires_grad_(learns)
        count += parameter.numel() if learns else 0
    return count


def set_train_mode(model: torch.nn.Module, stage: str) -> torch.nn.Module:
    """Training mode for the parts that learn. In the ``masks`` stage the frozen detector stays
    in eval mode: no dropout, and its batch norm keeps the statistics the box model learned
    (training mode would keep updating them, changing the frozen detector under the mask head)
    (``book/09_your_own_dataset.ipynb``)."""
    model.train()
    if check_stage(stage) == "masks":
        model.detr.eval()
    return model


def stage_loss_weights(stage: str, changes: Optional[dict[str, float]] = None) -> dict[str, float]:
    """The weight of each loss in the total for ``stage`` (``book/09_your_own_dataset.ipynb``):
    the official weights, with the class and box losses at 0 in the ``masks`` stage (the
    frozen detector could not learn from them anyway), then ``changes`` (``train --loss-weight``),
    e.g. ``{"loss_dice": 2.0}``. Raises ValueError for a name that is not a loss, a negative
    weight, or a class or box weight in the ``masks`` stage."""
    stage = check_stage(stage)
    if stage == "masks":
        weights = {name: (weight if name in MASK_LOSSES else 0.0) for name, weight in LOSS_WEIGHTS.items()}
    else:
        weights = dict(LOSS_WEIGHTS)
    for name, weight in (changes or {}).items():
        if name not in LOSS_WEIGHTS:
            raise ValueError(f"{name!r} is not one of the losses; choose from {', '.join(LOSS_WEIGHTS)}")
        if not weight >= 0:
            raise ValueError(f"the weight of {name} must be 0 or more, not {weight}")
        if stage == "masks" and name not in MASK_LOSSES:
            raise ValueError(f"{name} has no effect in the masks stage (the detector is frozen); "
                             f"only {' and '.join(MASK_LOSSES)} can be weighted there")
        weights[name] = float(weight)
    return weights
