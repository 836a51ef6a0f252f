"""Stand-ins for training, so an untrained model has something to merge.

Explained in ``book/appendix_side_topics.ipynb``. A randomly initialised DETR is of little use to
the argmax merge, in two ways:

* it is unsure of every class, so no query passes the 0.85 threshold and nothing is kept.
  ``plant_classes`` rewrites only the final class layer (``detr.class_embed``), by least
  squares, so that chosen queries predict chosen classes confidently on given images and all
  other queries predict "no object";
* its N masks are nearly the same: the frozen batch norm of a random backbone holds no real
  statistics, so activations grow layer after layer and the 8 attention-map channels are a tiny
  part of the mask head's input. ``calibrate_batchnorm`` gives the frozen batch norms the
  statistics of the given images (as ImageNet training gives them real ones), and
  ``emphasize_attention`` sharpens the attention maps and lets them, not the shared skips, drive
  the mask head, so each query's mask follows its own map, as in a trained model.

None of this is training: the masks mean nothing. The benchmark and the tests use these
functions to exercise the merge with a realistic number of distinct kept queries.
"""
from __future__ import annotations

import random
from typing import Optional, Sequence

import torch
from torchvision.ops import FrozenBatchNorm2d

from .config import COCO_LAST_THING_ID
from .detr import DETRPanoptic

# Target logit of the planted class (the others get 0): softmax probability e^12 / (e^12 + 250), about 0.998 among 251.
PLANTED_LOGIT = 12.0
# emphasize_attention: query projection gain (sharper maps), gain of the attention channels in
# the mask head's first convolution, and of the Res4..Res2 skip adapters (weaker shared content).
QUERY_GAIN = 10.0
ATTENTION_CHANNEL_GAIN = 1e3
SKIP_GAIN = 1e-3


@torch.no_grad()
def calibrate_batchnorm(model: DETRPanoptic, images: Sequence[torch.Tensor]) -> DETRPanoptic:
    """Set every frozen batch norm's running mean and variance to those of its input on ``images``,
    layer by layer, so that each normalises its output as a trained network's does.

    Explained in ``book/appendix_side_topics.ipynb``.
    """
    def set_statistics(module, inputs):
        x = inputs[0]                                                  # (B, C, h, w)
        module.running_mean.copy_(x.mean((0, 2, 3)))
        module.running_var.copy_(x.var((0, 2, 3)))

    norms = [m for m in model.detr.backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
    hooks = [norm.register_forward_pre_hook(set_statistics) for norm in norms]
    try:
        model.detr.backbone.resnet(model.detr.batch(images).tensors)
    finally:
        for hook in hooks:
            hook.remove()
    return model


@torch.no_grad()
def emphasize_attention(model: DETRPanoptic) -> DETRPanoptic:
    """Let each query's attention maps, not the content shared by all queries, shape its mask.

    Explained in ``book/appendix_side_topics.ipynb``.
    """
    d = model.config.hidden_dim
    model.bbox_attention.q_linear.weight.mul_(QUERY_GAIN)
    model.mask_head.lay1.weight[:, d:].mul_(ATTENTION_CHANNEL_GAIN)
    for adapter in (model.mask_head.adapter1, model.mask_head.adapter2, model.mask_head.adapter3):
        adapter.weight.mul_(SKIP_GAIN)
    return model


@torch.no_grad()
def plant_classes(model: DETRPanoptic, images: Sequence[torch.Tensor],
                  classes: dict[int, int]) -> DETRPanoptic:
    """Make query q predict class ``classes[q]`` on ``images``, every other query "no object".

    Solves class_embed's weights by minimum-norm least squares on the box embeddings of these
    images (exact while B*N <= d + 1). Returns the model, changed in place.

    Explained in ``book/appendix_side_topics.ipynb``.
    """
    state = model.detr.encode_decode(model.detr.batch(images))
    hs = state["hs"][-1]                                               # (B, N, d)
    batch, n, d = hs.shape
    if batch * n > d + 1:
        raise ValueError(f"{batch} images x {n} queries is more than {d + 1} unknowns per class can fit")
    num_outputs = model.detr.class_embed.out_features
    targets = torch.zeros(batch, n, num_outputs)                       # (B, N, C+1)
    targets[:, :, -1] = PLANTED_LOGIT                                  # no object by default
    for query, category in classes.items():
        targets[:, query, -1] = 0
        targets[:, query, category] = PLANTED_LOGIT
    inputs = torch.cat([hs.reshape(-1, d), torch.ones(batch * n, 1)], dim=1)  # (B*N, d+1)
    solution = torch.linalg.pinv(inputs.double()) @ targets.reshape(-1, num_outputs).double()  # (d+1, C+1)
    model.detr.class_embed.weight.copy_(solution[:d].T)
    model.detr.class_embed.bias.copy_(solution[d])
    return model


def realistic_assignment(num_queries: int = 100, num_things: int = 14, num_stuff: int = 6,
                         seed: int = 0, num_classes: int = 250) -> dict[int, int]:
    """About 20 of 100 queries with COCO-like classes: things, stuff, and one stuff class
    predicted by two queries (so the stuff merge has work to do).

    Explained in ``book/appendix_side_topics.ipynb``.
    """
    rng = random.Random(seed)
    queries = rng.sample(range(num_queries), num_things + num_stuff)
    things = [rng.randint(1, COCO_LAST_THING_ID) for _ in range(num_things)]
    stuff = [rng.randint(COCO_LAST_THING_ID + 1, num_classes - 1) for _ in range(num_stuff - 1)]
    stuff.append(stuff[0])  # a duplicate stuff class
    return dict(zip(queries, things + stuff))


def planted_model(name: str = "detr-r50-panoptic", images: Optional[Sequence[torch.Tensor]] = None,
                  seed: int = 0, **assignment) -> DETRPanoptic:
    """A seeded random model, calibrated and emphasised as above, whose class head keeps a
    realistic set of queries on ``images``.

    Explained in ``book/appendix_side_topics.ipynb``.
    """
    from .hub import build_model

    torch.manual_seed(seed)
    model = build_model(name)
    calibrate_batchnorm(model, images)
    emphasize_attention(model)
    classes = realistic_assignment(model.config.num_queries, seed=seed,
                                   num_classes=model.config.num_classes, **assignment)
    return plant_classes(model, images, classes)
