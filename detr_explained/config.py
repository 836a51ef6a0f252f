"""Model configurations: the official panoptic models and a tiny one for CPU work.

Explained in ``book/01_backbone.ipynb`` (which backbone) and ``book/02_transformer.ipynb``
(the transformer sizes). Every number that shapes a tensor lives here, with a name.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

# COCO panoptic category ids run up to 250 in DETR's numbering; one more logit is "no object".
COCO_PANOPTIC_NUM_CLASSES = 250

# The official torch.hub entry points mark category ids <= 90 as things, the rest as stuff.
COCO_LAST_THING_ID = 90

# The official PostProcessPanoptic keeps a query whose best class score is above 0.85
# (detr_explained.merge.KEEP_THRESHOLD is the same number).
OFFICIAL_KEEP_THRESHOLD = 0.85
# ... for a model trained with "no object" weighted 0.1 in the class loss (eos_coef in main.py;
# detr_explained.losses.EOS_COEF is the same number).
OFFICIAL_EOS_COEF = 0.1


@dataclass(frozen=True)
class DETRConfig:
    """Every size in a DETR panoptic model.

    Fields
    ------
    backbone: torchvision ResNet name ("resnet50", "resnet101", "resnet18", ...).
    dilation: DC5 variant: layer4 drops its stride (its first block keeps dilation 1, the later
              blocks are dilated by 2), so Res5 is H/16, not H/32 (``book/appendix_side_topics.ipynb``).
    hidden_dim: d, the transformer width (256 in the official models).
    nheads: attention heads in the transformer and in the box-embedding attention maps (M = 8).
    enc_layers / dec_layers: encoder and decoder depth (6 / 6).
    dim_feedforward: width of each layer's feed-forward block (2048).
    dropout: used only in training (0.1).
    num_queries: N, the object queries (100).
    num_classes: C, category ids 0..C-1; the classifier has C + 1 outputs, the last one "no object".
    mask_groups: GroupNorm groups in the mask head (8).
    pos_temperature: temperature of the sine positional encoding (10000).
    frozen_batchnorm: the official models freeze the backbone's batch norm (statistics from
        ImageNet); a backbone trained from scratch needs ordinary BatchNorm2d instead.
    res5_channels: width of layer4 (Res5), or None for torchvision's own (2048 for ResNet-50,
        512 for ResNet-18). A narrower layer4 is where a small model saves most parameters.
    keep_threshold: the class score a query needs to be kept by the merge (0.85 in the official
        post-processing). Not a size: it belongs to how the model was trained, since the
        "no object" weight of its loss sets how sure a query sounds (``book/07_train_it_yourself.ipynb``).
        Every function that merges a model's output uses it unless given another threshold.
    eos_coef: the cross-entropy weight of "no object" the model is trained with (the official 0.1;
        the training command's default for ``--eos-coef``). It decides what a class score means,
        so it travels with ``keep_threshold``.

    Explained in ``book/01_backbone.ipynb``.
    """

    backbone: str = "resnet50"
    dilation: bool = False
    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 6
    dec_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1
    num_queries: int = 100
    num_classes: int = COCO_PANOPTIC_NUM_CLASSES
    mask_groups: int = 8
    pos_temperature: float = 10000.0
    frozen_batchnorm: bool = True
    res5_channels: Optional[int] = None
    keep_threshold: float = OFFICIAL_KEEP_THRESHOLD
    eos_coef: float = OFFICIAL_EOS_COEF

    def with_overrides(self, **changes) -> "DETRConfig":
        """A copy with some fields changed, e.g. ``num_classes=7`` for your own dataset."""
        unknown = sorted(set(changes) - set(self.__dataclass_fields__))
        if unknown:
            raise TypeError(
                f"unknown config field(s) {unknown}; valid fields: {sorted(self.__dataclass_fields__)}"
            )
        return replace(self, **changes)


# Small enough to train and trace on two CPU cores: ResNet-18 and a 2+2 layer transformer of
# width 128. hidden_dim + nheads = 136 channels enter the mask head, divisible by the 8 GroupNorm
# groups; its later widths 64, 32, 16, 8 are too.
_TINY = DETRConfig(backbone="resnet18", hidden_dim=128, nheads=8, enc_layers=2, dec_layers=2,
                   dim_feedforward=512, num_queries=20)

CONFIGS: dict[str, DETRConfig] = {
    "detr-r50-panoptic": DETRConfig(backbone="resnet50"),
    "detr-r50-dc5-panoptic": DETRConfig(backbone="resnet50", dilation=True),
    "detr-r101-panoptic": DETRConfig(backbone="resnet101"),
    "detr-tiny": _TINY,
    # Trained from scratch on the synthetic scenes of book/07_train_it_yourself.ipynb
    # (detr_explained.synthetic: category ids 1..6, so 7 classes) on two CPU cores; its trained
    # weights ship with the package (build_model("detr-tiny-synthetic", pretrained=True)).
    # - frozen_batchnorm=False: there are no ImageNet weights offline, and frozen batch norm with
    #   identity statistics would leave a random ResNet unnormalised, so the backbone uses
    #   ordinary, trained BatchNorm2d.
    # - resnet10 with res5_channels=256: ResNet-18's stages with one block each, and a layer4 of
    #   256 channels instead of 512 (1.3 M parameters instead of 3.7 M): 3.7 M in all, 7.5 MB in
    #   float16, small enough to keep in the repository.
    # - dilation=True (DC5, as detr-r50-dc5-panoptic): Res5 keeps stride 16, so a 128 x 128 scene
    #   gives the transformer an 8 x 8 grid of 16-pixel cells instead of 4 x 4 cells of 32 pixels.
    #   On ResNet-10 it only removes layer4's stride (its single block has no dilated conv after it).
    # - num_queries=12: a scene has at most 7 shapes and 3 stuff regions.
    # - eos_coef=1, keep_threshold=0.4: "no object" weighs as much as a class in the loss (the
    #   official 0.1 suits 100 queries of which ~93 match nothing; here about half do), so a
    #   query states its odds without the official tenfold discount, and the merge keeps a query
    #   above 0.4 (the official 0.85 at weight 0.1 is a true probability of ~0.36).
    # All were chosen by the ablations of benchmarks/stronger_model.md (issue 9).
    "detr-tiny-synthetic": _TINY.with_overrides(backbone="resnet10", num_classes=7, frozen_batchnorm=False,
                                                res5_channels=256, dilation=True, num_queries=12,
                                                eos_coef=1.0, keep_threshold=0.4),
}


def get_config(name: str, **overrides) -> DETRConfig:
    """The named preset, with optional field overrides.

    Explained in ``book/01_backbone.ipynb``.
    """
    if name not in CONFIGS:
        raise KeyError(f"unknown model {name!r}; choose one of {sorted(CONFIGS)}")
    config = CONFIGS[name]
    return config.with_overrides(**overrides) if overrides else config


def saved_config_fields(saved: dict) -> dict:
    """The DETRConfig fields of a config saved in a file (a checkpoint's or model.pth's
    ``config``): unknown keys dropped, and ``keep_threshold`` / ``eos_coef`` the official values
    when the file was written before they existed (its model was trained with the official
    weight) (``book/07_train_it_yourself.ipynb``)."""
    fields = {k: v for k, v in saved.items() if k in DETRConfig.__dataclass_fields__}
    fields.setdefault("keep_threshold", OFFICIAL_KEEP_THRESHOLD)
    fields.setdefault("eos_coef", OFFICIAL_EOS_COEF)
    return fields


def keep_threshold(model) -> float:
    """The class-score threshold ``model`` was trained to be kept at: its config's
    ``keep_threshold`` (0.85, the official value, for a model or file that does not say)
    (``book/07_train_it_yourself.ipynb``). Takes a model, a DDP-wrapped model or a DETRConfig."""
    config = model if isinstance(model, DETRConfig) else getattr(getattr(model, "module", model), "config", None)
    return float(getattr(config, "keep_threshold", OFFICIAL_KEEP_THRESHOLD))
