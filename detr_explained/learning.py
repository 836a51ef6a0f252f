"""Learning that a reader can watch: the official second stage, run for seconds on the shipped detector.

Explained in ``book/07_train_it_yourself.ipynb``. Trained from scratch, the whole model needs
thousands of steps before it segments a single thing (the shipped run's record), so a short run
from scratch shows falling losses and little else. The second stage of the official recipe
shows learning within seconds: DETR's panoptic head is trained on a box detector that is
already trained, and frozen (official ``DETRsegm(detr, freeze_detr=True)``). Here the detector
is the shipped ``detr-tiny-synthetic`` one, and the panoptic head, the attention maps
``bbox_attention`` and the FPN mask head ``mask_head``, starts again from random weights
(:func:`with_new_mask_head`). :func:`train_mask_stage` trains it and measures, as it goes, how
well each ground-truth segment's mask fits (:func:`matched_mask_iou`); :func:`kept_query_masks`
and :func:`show_query_masks` draw the kept queries' masks before and after.

The step is the training command's own (``loop.train_step``, with ``recipes.freeze_for_stage``,
``recipes.set_train_mode`` and ``recipes.stage_loss_weights`` for the ``masks`` stage), so
``python -m detr_explained.train --stage masks --init-from BOX_MODEL.pth`` (the ``model.pth`` of
a ``--stage boxes`` run, whose panoptic head never learned) does the same on a dataset folder;
this module keeps the scenes in memory and measures the masks between steps.

The chapter's other figures that no chapter shares are here too: the ground truth of a few
scenes (:func:`show_ground_truths`), matching costs (:func:`show_matching_costs`) and curves over
training steps (:func:`show_curves`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from matplotlib.patches import Rectangle

from . import figures
from .coco_panoptic import collate
from .detr import DETRPanoptic
from .loop import CLIP_MAX_NORM, WEIGHT_DECAY, build_optimizer, train_step
from .losses import SetCriterion
from .mask_analysis import masks_at
from .config import keep_threshold
from .merge import select_queries
from .pq import mask_iou
from .recipes import TRAINED_PARTS, freeze_for_stage, set_train_mode, stage_loss_weights
from .training_data import HFLIP_PROBABILITY, random_hflip

# The parts the second stage trains: the attention maps and the mask head (recipes.TRAINED_PARTS).
MASK_PARTS = tuple(prefix.rstrip(".") for prefix in TRAINED_PARTS["masks"])

# A mask pixel is "in" where its probability, sigmoid(logit), is above one half: where the logit,
# resized to the image as the merge does, is above 0 (mask_analysis.masks_at).


def with_new_mask_head(model: DETRPanoptic, seed: int = 0) -> DETRPanoptic:
    """``model`` with its attention maps and mask head (:data:`MASK_PARTS`) replaced by freshly
    initialised ones, as a new model of its config has them, drawn with ``seed``; every other
    weight (the detector) is kept (``book/07_train_it_yourself.ipynb``).

    This is where the official second stage starts: ``DETRsegm`` puts a new ``bbox_attention``
    and ``mask_head`` on a trained detector. Changes ``model`` in place and returns it; torch's
    global random state is left as it was.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        fresh = DETRPanoptic(model.config)
    for part in MASK_PARTS:
        getattr(model, part).load_state_dict(getattr(fresh, part).state_dict())
    return model


def _forward(model: DETRPanoptic, images: Sequence[torch.Tensor]) -> dict:
    """The model's outputs in eval mode, without gradients; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(list(images))
    finally:
        model.train(was_training)


def matched_mask_iou(model: DETRPanoptic, images: Sequence[torch.Tensor], targets: Sequence[dict],
                     criterion: Optional[SetCriterion] = None) -> list[torch.Tensor]:
    """For each image, the IoU of each ground-truth segment with the mask of the query the
    Hungarian matcher pairs it with (``book/07_train_it_yourself.ipynb``).

    A mask is the query's mask logits resized to the image (bilinear), ``sigmoid > 0.5``. The
    matching uses the class and box predictions only, as in training, so with a frozen detector
    every segment keeps its query while the masks learn. Returns one (K,) tensor per image, in
    the order of ``targets[b]["labels"]``. The model is run in eval mode and left as it was.
    """
    return [torch.diag(mask_iou(predicted, truth)) for predicted, truth in
            _matched_masks(model, images, targets, criterion)]


def _matched_masks(model, images, targets, criterion=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image: (K, H, W) the mask of the query matched with each segment, and (K, H, W) the
    segments' masks, in the order of the target's labels."""
    criterion = criterion if criterion is not None else SetCriterion(model.config.num_classes)
    outputs = _forward(model, images)
    indices = criterion.matcher(outputs, list(targets))
    pairs = []
    for b, (query_idx, segment_idx) in enumerate(indices):
        truth = targets[b]["masks"]                                              # (K, H, W)
        query_of = torch.empty(len(truth), dtype=torch.long)
        query_of[segment_idx] = query_idx                                        # every segment has one
        predicted = masks_at(outputs["pred_masks"][b, query_of], truth.shape[-2:])  # (K, H, W)
        pairs.append((predicted, truth.bool()))
    return pairs


@dataclass
class QueryMasks:
    """The masks of the queries the merge keeps, on one image (``book/07_train_it_yourself.ipynb``).

    queries:       the kept queries (class score above the threshold), in query order;
    labels:        each one's most likely class;
    probabilities: (Q, H/4, W/4) each one's mask probability, sigmoid of its logits;
    segments:      the ground-truth segment (its index in the target) the Hungarian matcher pairs
                   each kept query with, or None for a query that it pairs with none;
    iou:           the IoU of the query's mask (``sigmoid > 0.5`` at image size) with that
                   segment, or None.
    """

    queries: list
    labels: list
    probabilities: torch.Tensor
    segments: list
    iou: list


def kept_query_masks(model: DETRPanoptic, image: torch.Tensor, target: dict,
                     threshold: Optional[float] = None) -> QueryMasks:
    """The kept queries' masks on one image (class score above ``threshold``, default the model's
    keep threshold), each with the IoU of its matched segment
    (``book/07_train_it_yourself.ipynb``). ``target`` as ``CocoPanoptic`` gives it."""
    threshold = keep_threshold(model) if threshold is None else threshold
    outputs = _forward(model, [image])
    scores, labels, kept = select_queries(outputs["pred_logits"][0], threshold)
    query_idx, segment_idx = SetCriterion(model.config.num_classes).matcher(outputs, [target])[0]
    segment_of = dict(zip(query_idx.tolist(), segment_idx.tolist()))
    logits = outputs["pred_masks"][0, kept]                                      # (Q, H/4, W/4)
    predicted = masks_at(logits, target["masks"].shape[-2:])                    # (Q, H, W)
    segments, ious = [], []
    for k, query in enumerate(kept.tolist()):
        j = segment_of.get(query)
        segments.append(j)
        ious.append(None if j is None else float(mask_iou(predicted[k:k + 1], target["masks"][j:j + 1])[0, 0]))
    return QueryMasks(kept.tolist(), labels[kept].tolist(), logits.sigmoid(), segments, ious)


@dataclass
class MaskStageRun:
    """What :func:`train_mask_stage` did (``book/07_train_it_yourself.ipynb``).

    losses:         per step, the losses as ``train_step`` returns them;
    iou_steps:      the steps after which the masks were measured (0: before the first);
    segment_iou:    per measurement, the (S,) IoU of every segment of the evaluation scenes;
    segment_labels: (S,) the class of each of those segments;
    mask_area:      per measurement, the pixels of those segments' masks over the pixels of the
                    segments (0: every mask empty; 1: as many pixels as the segments have);
    seconds:        the time the steps took (the measurements not counted).
    """

    losses: list = field(default_factory=list)
    iou_steps: list = field(default_factory=list)
    segment_iou: list = field(default_factory=list)
    segment_labels: Optional[torch.Tensor] = None
    mask_area: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def steps_per_second(self) -> float:
        """Training steps per second of the run."""
        return len(self.losses) / self.seconds if self.seconds > 0 else float("nan")

    def mean_iou(self, classes: Optional[Sequence[int]] = None) -> list[float]:
        """The mean IoU at each measurement, over all segments or over those of ``classes``."""
        if classes is None:
            chosen = torch.ones(len(self.segment_labels), dtype=torch.bool)
        else:
            chosen = torch.isin(self.segment_labels, torch.as_tensor(list(classes)))
        return [iou[chosen].mean().item() for iou in self.segment_iou]


def train_mask_stage(model: DETRPanoptic, items: Sequence[tuple], steps: int, batch_size: int = 8,
                     lr: float = 1e-3, seed: int = 0, eval_items: Sequence[tuple] = (),
                     eval_every: int = 25, hflip: float = HFLIP_PROBABILITY,
                     clip: float = CLIP_MAX_NORM) -> MaskStageRun:
    """The second stage of the official recipe, for ``steps`` steps: only the attention maps and
    the mask head learn, from the mask losses, on the frozen detector of ``model``
    (``book/07_train_it_yourself.ipynb``).

    ``items``: (image, target) pairs as ``CocoPanoptic`` returns them (a CocoPanoptic itself
    will do); each step draws ``batch_size`` different ones at random (with ``seed``) and
    mirrors each with probability ``hflip``. The step is ``loop.train_step`` with the ``masks``
    stage's frozen parts, train mode and loss weights, and AdamW at ``lr`` with the official
    weight decay and gradient clipping. ``eval_items``: scenes on which :func:`matched_mask_iou`
    is measured before the first step, every ``eval_every`` steps and after the last.
    Changes ``model`` in place (and leaves it in eval mode); torch's global random state is
    left as it was.
    """
    if steps < 1 or batch_size < 1 or eval_every < 1 or batch_size > len(items):
        raise ValueError(f"need steps >= 1, eval_every >= 1 and 1 <= batch_size <= len(items); got steps "
                         f"{steps}, eval_every {eval_every}, batch_size {batch_size}, {len(items)} items")
    stage = "masks"
    freeze_for_stage(model, stage)
    criterion = SetCriterion(model.config.num_classes, weights=stage_loss_weights(stage))
    optimizer = build_optimizer(model, lr, lr, WEIGHT_DECAY)
    model.detr.aux_loss = False   # the frozen detector has nothing to learn from its layers' losses
    eval_images, eval_targets = collate(list(eval_items)) if len(eval_items) else ([], [])
    run = MaskStageRun()
    if eval_targets:
        run.segment_labels = torch.cat([t["labels"] for t in eval_targets])     # (S,)

    def measure(step: int) -> None:
        if eval_targets:
            pairs = _matched_masks(model, eval_images, eval_targets, criterion)
            run.iou_steps.append(step)
            run.segment_iou.append(torch.cat([torch.diag(mask_iou(p, t)) for p, t in pairs]))
            run.mask_area.append(sum(p.sum().item() for p, _ in pairs) / sum(t.sum().item() for _, t in pairs))

    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)     # the mirroring draws (and dropout, where a part has any)
        measure(0)
        for step in range(1, steps + 1):
            start = time.perf_counter()
            set_train_mode(model, stage)
            chosen = torch.randperm(len(items), generator=generator)[:batch_size].tolist()
            images, targets = collate([items[i] for i in chosen])
            images, targets = random_hflip(images, targets, hflip)
            run.losses.append(train_step(model, criterion, optimizer, images, targets, clip))
            run.seconds += time.perf_counter() - start
            if step % eval_every == 0 or step == steps:
                measure(step)
    model.eval()
    return run


# --------------------------------------------------------------------------------------------
# Figures of book/07_train_it_yourself.ipynb
# --------------------------------------------------------------------------------------------

def show_query_masks(rows: Sequence[tuple[str, QueryMasks]], target: dict,
                     category_names: Mapping[int, str], size: float = 2.0):
    """The kept queries' mask probabilities, one row per model (``rows``: (name, QueryMasks) with
    the same queries), on one colour scale from 0 to 1 with one colour bar
    (``book/07_train_it_yourself.ipynb``). Each panel outlines the ground-truth segment the
    query is matched with (blue, :data:`figures.TRUTH_COLOR`) and gives the IoU of the query's
    mask with it. Returns the figure."""
    first = rows[0][1]
    if any(masks.queries != first.queries for _, masks in rows):
        raise ValueError("every row must show the same queries (a frozen detector keeps the same ones)")
    maps, titles = [], []
    for name, masks in rows:
        for k, query in enumerate(masks.queries):
            maps.append(masks.probabilities[k])
            iou = "no segment" if masks.iou[k] is None else f"IoU {masks.iou[k]:.2f}"
            titles.append(f"{name}\nquery {query}: {category_names.get(masks.labels[k], masks.labels[k])}\n{iou}")
    fig = figures.show_maps(maps, titles=titles, ncols=len(first.queries), vmin=0.0, vmax=1.0,
                            label="mask probability", size=size)
    h, w = first.probabilities.shape[-2:]
    height, width = target["masks"].shape[-2:]
    # pixel centres of the image in the H/4 map's coordinates (its pixel centres are integers)
    xs = (np.arange(width) + 0.5) * w / width - 0.5
    ys = (np.arange(height) + 0.5) * h / height - 0.5
    for ax, k in zip(fig.axes, [k for _ in rows for k in range(len(first.queries))]):
        j = first.segments[k]
        if j is not None:
            ax.contour(xs, ys, target["masks"][j].numpy().astype(float), levels=[0.5],
                       colors=figures.TRUTH_COLOR, linewidths=1.0)
    return fig


def show_curves(ax, series: Mapping[str, tuple], title: str = "", xlabel: str = "step",
                ylabel: str = "", vlines: Optional[Mapping[str, float]] = None, legend: bool = True,
                running_mean: int = 1):
    """Curves over training steps on ``ax`` (``book/07_train_it_yourself.ipynb``): ``series``
    maps a label to ``(steps, values)``; ``vlines`` maps a label to a step marked by a dotted
    line. ``running_mean`` > 1 draws each curve as the mean of that many consecutive values, at
    the step of the last of them (for the noisy losses of single steps). Returns the axes."""
    for label, (x, y) in series.items():
        x, y = list(x), np.asarray(list(y), dtype=float)
        if running_mean > 1:
            y = np.convolve(y, np.ones(running_mean) / running_mean, mode="valid")
            x = x[running_mean - 1:]
        ax.plot(x, y, label=label, marker="o" if len(x) <= 30 else None, markersize=3)
    for label, step in (vlines or {}).items():
        ax.axvline(step, color="grey", linestyle=":", label=label)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if legend:
        ax.legend(frameon=False, fontsize=8)
    return ax


def show_matching_costs(panels: Sequence[tuple], category_names: Mapping[int, str]):
    """Matching cost matrices side by side, on one colour scale centred on 0 with one colour bar
    (``book/07_train_it_yourself.ipynb``). ``panels``: ``(cost (N, K), labels (K,), (query_idx,
    segment_idx), title)`` each; the chosen pairs are outlined in :data:`figures.PREDICTION_COLOR`.
    A negative cost is a cheap pair (blue), a positive one an expensive pair (red). Returns the figure."""
    top = max(float(cost.abs().max()) for cost, *_ in panels)
    widths = [cost.shape[1] for cost, *_ in panels]
    fig, axes = figures.new_figure(1, len(panels), figsize=(1.6 + 0.5 * sum(widths) + 1.2 * len(panels), 6.4),
                                   gridspec_kw={"width_ratios": widths})
    for ax, (cost, labels, (query_idx, segment_idx), title) in zip(axes[0], panels):
        image = ax.imshow(np.asarray(cost), cmap=figures.LOGIT_CMAP, vmin=-top, vmax=top, aspect="auto")
        for q, j in zip(query_idx, segment_idx):
            ax.add_patch(Rectangle((j - 0.5, q - 0.5), 1, 1, fill=False, edgecolor=figures.PREDICTION_COLOR,
                                   linewidth=2.5))
        ax.set_xticks(range(cost.shape[1]), [f"{j}: {category_names[int(c)]}" for j, c in enumerate(labels)],
                      rotation=60, ha="right")
        ax.set_yticks(range(cost.shape[0]))
        ax.set(xlabel="ground-truth segment", ylabel="query", title=title)
    fig.tight_layout()
    fig.colorbar(image, ax=list(axes[0]), fraction=0.04, pad=0.03, label="matching cost")
    return fig


def show_ground_truths(images: Sequence[torch.Tensor], truths: Sequence[tuple],
                       category_names: Mapping[int, str], titles: Optional[Sequence[str]] = None):
    """Scenes (top row) and their ground truth (bottom row), flat colours with a legend of class
    names under each map (``book/07_train_it_yourself.ipynb``). ``truths``: ``(id_map,
    segments_info)`` pairs. Returns the figure."""
    fig, axes = figures.new_figure(2, len(images), figsize=(3.6 * len(images), 9.6))
    for k, (image, (ids, segments)) in enumerate(zip(images, truths)):
        figures.show_image(image, ax=axes[0, k], title=titles[k] if titles else None)
        ax = figures.show_panoptic(ids, segments, category_names=category_names, ax=axes[1, k],
                                   title="ground truth")
        legend = ax.get_legend()
        handles = getattr(legend, "legend_handles", None) or legend.legendHandles   # matplotlib < 3.7
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=1,
                  fontsize=8, frameon=False, handlelength=1.2)
    fig.tight_layout(h_pad=2.0)
    return fig
