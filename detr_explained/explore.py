"""Explorers: a student at the controls of every stage.

Each explorer is two things:

- a **view**, a pure function from a state (a traced image and the control values) to a
  :class:`View`: a matplotlib figure, the arrays it draws (``view.data``), a table and one line
  of text. Views can be called and tested without widgets, and a chapter draws its static
  figures with them;
- a thin **panel** of ipywidgets controls over that view (ipywidgets 7.7.1, as in Colab, or 8).

The model runs once per image: :func:`trace_scene` and :func:`trace_image` keep the trace in a
:class:`Traced`, and a control that only changes what is shown (a layer, a cell, a query, a
head, a merge option) reads that trace and never runs the model again. Only the scene editor
runs the model, once per edit.

=====================  ==============================================  ============================
explorer               view function                                   chapter
=====================  ==============================================  ============================
encoder attention      :func:`encoder_attention_view`                  ``book/02_transformer.ipynb``
query inspector        :func:`query_view`                              ``book/03_attention_maps.ipynb``
mask-head stages       :func:`mask_stage_view`                         ``book/04_mask_head.ipynb``
merge                  :func:`merge_view`                              ``book/05_argmax_merge.ipynb``
scene editor           :func:`scene_view`                              ``book/07_train_it_yourself.ipynb``
=====================  ==============================================  ============================

Figures are :class:`matplotlib.figure.Figure` objects made without pyplot, so a panel never
leaves a figure behind for the notebook to show twice. They follow the book's figure conventions
(the module docstring of :mod:`detr_explained.figures`): panels that are compared share one
colour scale with one colour bar (a query's heads, the scene editor's kept queries), panoptic
maps are flat colours beside the image, never over it, and their legends name classes ("circle
2"), as do the tables beside them; red (``figures.ATTENTION_COLOR``) is attention over an image,
orange (``figures.PREDICTION_COLOR``) a predicted box or mask or the chosen cell, blue
(``figures.TRUTH_COLOR``) the outline of a ground-truth segment; maps on a feature grid are
drawn with their cell lines.
"""
from __future__ import annotations

import html
import io
import numbers
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.colors import TwoSlopeNorm
from matplotlib.patches import Patch, Rectangle

from . import figures, pq, synthetic
from .config import keep_threshold
from .detr import DETRPanoptic
from .merge import (KEEP_THRESHOLD, MAX_REMOVED_AREA, STUFF_MERGES, PanopticResult,
                    check_max_removed_area, check_threshold, merge_panoptic, select_queries)
from .trace import DETRTrace, trace

# The stages of the mask head, in order (the keys of DETRTrace.mask_head_stages).
MASK_STAGES = ("input", "lay1", "lay2", "+res4", "lay3", "+res3", "lay4", "+res2", "lay5", "out_lay")
# The merge explorer's threshold range: from 0.1 (nearly every query with a real class) to 0.99
# (little is kept); the models' own thresholds (0.4, 0.85) lie inside.
THRESHOLD_RANGE = (0.1, 0.99)
# Colour maps, the book's (figures, convention 4): attention weights and other non-negative
# magnitudes drawn on their own (0 up), and signed values such as mask logits (0 in the middle).
ATTENTION_CMAP = figures.ATTENTION_CMAP
LOGIT_CMAP = figures.LOGIT_CMAP
# The query inspector's class probabilities: neutral grey bars, lighter for "no object"; the
# query's most likely class is orange (figures.PREDICTION_COLOR: what the query predicts).
CLASS_BAR = "#8c8c8c"
NO_OBJECT_BAR = "#cccccc"
# How many kept queries the scene editor draws a map and a mask for.
EDITOR_QUERIES = 8
# Resolution of a panel's picture: 80 dots per inch keep a redraw fast and the picture sharp at
# the book's width.
PANEL_DPI = 80
# ... and of a View shown as a cell's result (a static figure of the book).
STATIC_DPI = 100

# --------------------------------------------------------------------------------------------
# The state: one image, traced once
# --------------------------------------------------------------------------------------------

@dataclass
class Traced:
    """One image traced once by a model, and what the views need to name what they show.

    trace:          the :class:`DETRTrace` of a batch of one image.
    image:          (H, W, 3) float array in [0, 1], the image as drawn.
    category_names: category id -> name; ``is_thing``: category id -> bool.
    truth:          the ground truth ``(ids (H, W), segments_info)`` when there is one.
    result:         the merge with its default options (the model's keep threshold, union,
                    small-segment rule).
    keep_threshold: the model's keep threshold (``model.config.keep_threshold``: the official
                    0.85, 0.4 for detr-tiny-synthetic); the views' default threshold.

    Made by :func:`trace_scene` or :func:`trace_image` (``book/02_transformer.ipynb``).
    """

    trace: DETRTrace
    image: np.ndarray
    category_names: Mapping[int, str]
    is_thing: Callable[[int], bool]
    truth: Optional[tuple] = None
    result: Optional[PanopticResult] = None
    keep_threshold: float = KEEP_THRESHOLD
    _probabilities: Optional[torch.Tensor] = field(default=None, repr=False)

    @property
    def num_queries(self) -> int:
        """N, the number of object queries."""
        return int(self.trace.pred_logits.shape[1])

    @property
    def num_heads(self) -> int:
        """M, the number of attention heads of the attention maps."""
        return int(self.trace.attention_maps.shape[2])

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w), the Res5 grid of image cells (H/32 x W/32, or H/16 x W/16 with DC5)."""
        return tuple(int(s) for s in self.trace.memory.shape[-2:])

    @property
    def probabilities(self) -> torch.Tensor:
        """(N, C+1) class probabilities of each query, "no object" last."""
        if self._probabilities is None:
            self._probabilities = self.trace.pred_logits[0].softmax(-1)
        return self._probabilities

    def name(self, category_id: int) -> str:
        """A category's name, "no object" for the last class."""
        if int(category_id) == self.trace.pred_logits.shape[-1] - 1:
            return "no object"
        return self.category_names.get(int(category_id), f"class {int(category_id)}")

    def query_label(self, query: int) -> str:
        """"query 9: triangle 0.96", the query's most likely class and its probability."""
        score, label = self.probabilities[query].max(-1)
        return f"query {query}: {self.name(int(label))} {float(score):.2f}"


def trace_scene(model: DETRPanoptic, scene: synthetic.Scene, trace: Optional[DETRTrace] = None) -> Traced:
    """Trace a generated scene (``synthetic.held_out_scene`` or an edited layout's render) with
    its ground truth and the synthetic class names (``book/02_transformer.ipynb``).

    ``trace``: a trace of this scene by this model that a chapter already has, kept instead of
    running the model again (it must be of one image of the scene's size).
    """
    if not isinstance(scene, synthetic.Scene):
        raise TypeError(f"trace_scene needs a synthetic.Scene (e.g. synthetic.held_out_scene(2)), got "
                        f"{type(scene).__name__}; for a photo use trace_image")
    return _traced(model, scene.tensor(), scene.image, synthetic.CATEGORY_NAMES, synthetic.is_thing,
                   (scene.ids, scene.segments_info()), trace)


def trace_image(model: DETRPanoptic, image: torch.Tensor, category_names: Optional[Mapping[int, str]] = None,
                is_thing: Optional[Callable[[int], bool]] = None, truth: Optional[tuple] = None) -> Traced:
    """Trace one normalised (3, H, W) image (``prepare_image``), e.g. a photo; ``truth`` is an
    optional ``(ids, segments_info)`` ground truth of the same size (``book/02_transformer.ipynb``)."""
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"trace_image needs one normalised image (3, H, W) from prepare_image, got {got}")
    if truth is not None:
        if not (isinstance(truth, (tuple, list)) and len(truth) == 2):
            raise ValueError("truth must be (ids, segments_info): an (H, W) id map and its segments")
        if tuple(np.shape(truth[0])) != tuple(image.shape[-2:]):
            raise ValueError(f"the ground truth's id map is {tuple(np.shape(truth[0]))} but the image is "
                             f"{tuple(image.shape[-2:])}: give the ground truth of this image, at its size")
    if is_thing is None:
        from .merge import coco_is_thing
        is_thing = coco_is_thing
    return _traced(model, image, image, dict(category_names or {}), is_thing, truth)


def _traced(model, tensor, image, names, is_thing, truth, tr: Optional[DETRTrace] = None) -> Traced:
    if not isinstance(model, DETRPanoptic):
        raise TypeError(f"the explorers need a DETRPanoptic (from build_model(...)), got {type(model).__name__}")
    if model.training:
        raise ValueError("the model is in training mode (dropout on): call model.eval() first")
    if tr is not None:
        if not isinstance(tr, DETRTrace):
            raise TypeError(f"trace must be a DETRTrace (from detr_explained.trace), got {type(tr).__name__}")
        if tuple(tr.images.shape) != (1,) + tuple(tensor.shape) or tr.pred_logits.shape[1] != model.config.num_queries:
            raise ValueError(f"the trace is of a batch {tuple(tr.images.shape)} with {tr.pred_logits.shape[1]} "
                             f"queries, not of this one image {tuple(tensor.shape)} by this model: trace the "
                             "image alone (trace(model, [scene.tensor()])) or leave trace out")
    else:
        parameter = next(model.parameters())
        tr = trace(model, [tensor.to(parameter.device, parameter.dtype)])
    threshold = keep_threshold(model)
    result = merge_panoptic(tr.outputs, tr.sizes, threshold=threshold, is_thing=is_thing)[0]
    return Traced(trace=tr, image=figures.image_array(image), category_names=names, is_thing=is_thing,
                  truth=truth, result=result, keep_threshold=threshold)


# --------------------------------------------------------------------------------------------
# What a view returns
# --------------------------------------------------------------------------------------------

@dataclass
class View:
    """What one state of an explorer shows: a figure, the arrays drawn on it by panel name, a
    table (a list of rows, each a dict) and one line of text (``book/02_transformer.ipynb``)."""

    figure: Figure
    data: dict
    table: list = field(default_factory=list)
    text: str = ""
    drawing: Optional["Drawing"] = field(default=None, repr=False)

    def table_text(self) -> str:
        """The table as aligned plain text (what a chapter prints)."""
        if not self.table:
            return ""
        header = list(self.table[0])
        rows = [[_cell(row[h]) for h in header] for row in self.table]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)

    def png(self, dpi: int = PANEL_DPI) -> bytes:
        """The figure as PNG bytes: what a panel shows after each change."""
        buffer = io.BytesIO()
        # zlib level 1: a third of the default's encoding time, for a slightly larger file
        self.figure.savefig(buffer, format="png", dpi=dpi, facecolor=figures.BACKGROUND,
                            pil_kwargs={"compress_level": 1})
        return buffer.getvalue()

    def _ipython_display_(self):
        # The figure as a PNG made here: it is not a pyplot figure, so the notebook's matplotlib
        # backend (which may never have been loaded) is not needed to show it.
        from IPython.display import Image, display
        if self.text:
            print(self.text)
        if self.table:
            print(self.table_text())
        display(Image(self.png(dpi=STATIC_DPI)))


@dataclass
class Drawing:
    """A view's figure and its artists by name, kept by a panel so that the next state only
    updates them (new image data, limits, titles) instead of building a figure: building the
    axes and colour bars is half of a redraw's time (``book/02_transformer.ipynb``)."""

    kind: tuple
    figure: Figure
    artists: dict = field(default_factory=dict)

    def fits(self, kind: tuple) -> bool:
        """Whether this drawing was made for the same view of the same traced image."""
        return self.kind == kind


def _reuse(drawing: Optional[Drawing], kind: tuple) -> Optional[Drawing]:
    return drawing if drawing is not None and drawing.fits(kind) else None


def _replace_contour(ax, artists: dict, name: str, mask: np.ndarray, color=figures.PREDICTION_COLOR):
    """Draw the outline of an (H, W) boolean mask (orange: a predicted mask) with
    ``figures.draw_outline`` (closed along the image's edge), removing the previous one of that
    name."""
    old = artists.pop(name, None)
    if old is not None:
        old.remove()
    if mask.any():
        artists[name] = figures.draw_outline(ax, mask, color)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _figure(width: float, height: float) -> Figure:
    """A figure outside pyplot, with the book's white background. No automatic layout: a
    constrained or tight layout doubles the time a panel takes to redraw."""
    return Figure(figsize=(width, height), facecolor=figures.BACKGROUND)


def _check_query(traced: Traced, query) -> int:
    n = traced.num_queries
    if isinstance(query, bool) or not isinstance(query, numbers.Integral) or not 0 <= query < n:
        raise ValueError(f"query must be a query index from 0 to {n - 1} (the model has N = {n} "
                         f"queries), got {query!r}")
    return int(query)


def _check_head(traced: Traced, head) -> None:
    M = traced.num_heads
    if head != "all" and (isinstance(head, bool) or not isinstance(head, numbers.Integral) or not 0 <= head < M):
        raise ValueError(f'head must be "all" or a head index from 0 to {M - 1}, got {head!r}')


def _check_choice(value, name: str, choices: Sequence) -> object:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def _grid_lines(ax, grid: tuple[int, int], size: tuple[int, int], alpha: float = 0.8):
    """White lines between the cells of an (h, w) grid laid over ``size`` (H, W) pixels, where
    the cells can be counted (at most ``figures.MAX_GRID_CELLS`` a side; convention 5)."""
    (h, w), (height, width) = grid, size
    if max(h, w) > figures.MAX_GRID_CELLS:
        return
    for r in range(1, h):
        ax.axhline(r * height / h - 0.5, color="white", linewidth=0.6, alpha=alpha)
    for c in range(1, w):
        ax.axvline(c * width / w - 0.5, color="white", linewidth=0.6, alpha=alpha)


def _draw_grid_map(fig, ax, weights: np.ndarray, vmax: float, title: str, label: str = "attention weight",
                   image_size: Optional[tuple[int, int]] = None, outline: Optional[np.ndarray] = None):
    """An (h, w) map of attention weights on its cells, drawn on its own (``ATTENTION_CMAP``,
    0..vmax), with a colour bar and white cell lines. With ``image_size`` (H, W) the cells are
    placed over image pixels, so that ``outline``, an (H, W) boolean mask of a predicted segment,
    can be drawn on them as an orange line (``figures.PREDICTION_COLOR``)."""
    h, w = weights.shape
    height, width = image_size if image_size is not None else (h, w)
    extent = (-0.5, width - 0.5, height - 0.5, -0.5)
    im = ax.imshow(weights, cmap=ATTENTION_CMAP, vmin=0.0, vmax=vmax, interpolation="nearest", extent=extent)
    _grid_lines(ax, (h, w), (height, width), alpha=1.0)
    if outline is not None and outline.any():
        figures.draw_outline(ax, outline, figures.PREDICTION_COLOR)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8, label=label)
    return im


def _draw_logits(fig, ax, logits: torch.Tensor, title: str):
    """Mask logits on a diverging scale centred at 0 (red where the mask is on); each side of 0
    is scaled to its own extreme, and the colour bar says so."""
    low, high = float(logits.min()), float(logits.max())
    norm = TwoSlopeNorm(vcenter=0.0, vmin=min(low, -1e-6), vmax=max(high, 1e-6))
    im = ax.imshow(logits.numpy(), cmap=LOGIT_CMAP, norm=norm, interpolation="nearest")
    _bare(ax)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8, label="logit (red > 0: in the mask)")
    return im


def _legend_names(segments: Sequence[dict], category_names: Mapping[int, str]) -> list[str]:
    """Each segment's name in its legend (``figures.segment_labels``: "rectangle 2" for the second
    rectangle), without the "(kind, area)" that a table gives in columns of its own."""
    return [label.rsplit(" (", 1)[0] for label in figures.segment_labels(segments, category_names)]


def _matched_names(pred_colors, gt_colors, gt_names: Sequence[str]) -> list[str]:
    """For each predicted segment, the legend name of the ground-truth segment whose colour it
    has (``figures.matched_colors``: the segment it matches), or "no match"."""
    by_colour = {tuple(np.round(c, 6)): name for c, name in zip(gt_colors, gt_names)}
    return [by_colour.get(tuple(np.round(c, 6)), "no match") for c in pred_colors]


def _bare(ax):
    """No axis lines, ticks or labels. Emptying the tick lists as well saves matplotlib from
    making tick objects it would not draw (a good part of a redraw's time)."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_axis_off()


def _draw_image_with_grid(ax, image: np.ndarray, grid: tuple[int, int], title: str):
    """The image with the lines of the Res5 grid (each cell covers H/h x W/w pixels)."""
    height, width = image.shape[:2]
    ax.imshow(image, extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    _grid_lines(ax, grid, (height, width))
    _bare(ax)
    ax.set_title(title, fontsize=9)


def _outline_cell(ax, row: int, col: int, scale=(1.0, 1.0), color=figures.PREDICTION_COLOR):
    """The chosen cell, outlined in orange (``figures.PREDICTION_COLOR``)."""
    sy, sx = scale
    return ax.add_patch(Rectangle((col * sx - 0.5, row * sy - 0.5), sx, sy, fill=False, edgecolor=color,
                                  linewidth=2.2))


# --------------------------------------------------------------------------------------------
# 1. Encoder self-attention at a point (book/02_transformer.ipynb)
# --------------------------------------------------------------------------------------------

def encoder_attention_at(traced: Traced, row: int, col: int, layer: int) -> torch.Tensor:
    """(h, w): where image cell (row, col) attends in encoder ``layer``, heads averaged; each
    map sums to 1 over the image's cells (``book/02_transformer.ipynb``)."""
    h, w = traced.grid
    layers = traced.trace.encoder_attention.shape[0]
    for value, name, top in ((row, "row", h), (col, "col", w), (layer, "layer", layers)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < top:
            raise ValueError(f"{name} must be a whole number from 0 to {top - 1} (the grid is {h} x {w} "
                             f"cells, the encoder has {layers} layers), got {value!r}")
    return traced.trace.encoder_attention[layer, 0, row * w + col].view(h, w)


def encoder_attention_view(traced: Traced, row: int = 0, col: int = 0, layer: int = -1,
                           drawing: Optional[Drawing] = None) -> View:
    """Where one image cell attends, in one encoder layer (``book/02_transformer.ipynb``).

    Left: the image with the Res5 grid and the chosen cell. Right: that cell's row of the
    layer's self-attention (heads averaged) on the grid. The colour scale is shared by all
    layers of this cell, so switching layers compares like with like. ``layer=-1`` is the last.
    ``drawing``: a previous view's drawing to update instead of drawing anew (what panels do).
    """
    layers = traced.trace.encoder_attention.shape[0]
    if isinstance(layer, numbers.Integral) and not isinstance(layer, bool) and -layers <= layer < 0:
        layer = layers + layer
    weights = encoder_attention_at(traced, row, col, layer)                      # (h, w)
    h, w = traced.grid
    every_layer = traced.trace.encoder_attention[:, 0, row * w + col]            # (L, h*w)
    vmax = float(every_layer.max())
    height, width = traced.image.shape[:2]
    d = _reuse(drawing, ("encoder", id(traced)))
    if d is None:
        fig = _figure(7.6, 3.3)
        ax_image, ax_map = fig.subplots(1, 2)
        fig.subplots_adjust(left=0.02, right=0.95, top=0.88, bottom=0.06, wspace=0.15)
        _draw_image_with_grid(ax_image, traced.image, (h, w), "")
        d = Drawing(("encoder", id(traced)), fig)
        d.artists["image_cell"] = _outline_cell(ax_image, row, col, (height / h, width / w))
        d.artists["map"] = _draw_grid_map(fig, ax_map, weights.numpy(), vmax, "")
        d.artists["map_cell"] = _outline_cell(ax_map, row, col)
        d.artists["axes"] = (ax_image, ax_map)
    ax_image, ax_map = d.artists["axes"]
    ax_image.set_title(f"cell ({row}, {col}) of the {h} x {w} grid", fontsize=9)
    d.artists["image_cell"].set_xy((col * width / w - 0.5, row * height / h - 0.5))
    d.artists["map"].set_data(weights.numpy())
    d.artists["map"].set_clim(0.0, vmax)
    d.artists["map_cell"].set_xy((col - 0.5, row - 0.5))
    ax_map.set_title(f"encoder layer {layer}: where it attends", fontsize=9)
    own = float(weights[row, col])
    top = int(weights.flatten().argmax())
    text = (f"encoder layer {layer} of {layers}, cell ({row}, {col}): {own:.1%} of its attention on itself "
            f"(an even spread would give {1 / (h * w):.1%} to each cell); most on cell "
            f"({top // w}, {top % w}), {float(weights.flatten()[top]):.1%}")
    return View(d.figure, {"attention": weights.numpy(), "vmax": vmax, "layer": layer}, [], text, d)


# --------------------------------------------------------------------------------------------
# 2. Query inspector (book/03_attention_maps.ipynb)
# --------------------------------------------------------------------------------------------

def query_rows(traced: Traced, threshold: Optional[float] = None) -> list[dict]:
    """One row per query: its index, most likely class, probability and whether the merge keeps
    it, above ``threshold`` (default the model's keep threshold) (``book/03_attention_maps.ipynb``)."""
    threshold = traced.keep_threshold if threshold is None else threshold
    scores, labels, kept = select_queries(traced.trace.pred_logits[0], threshold)
    kept = set(kept.tolist())
    return [{"query": q, "class": traced.name(int(labels[q])), "score": float(scores[q]), "kept": q in kept}
            for q in range(traced.num_queries)]


def segment_of_query(traced: Traced, query: int) -> Optional[dict]:
    """The segment of the default merge that ``query`` made or joined, or None
    (``book/03_attention_maps.ipynb``)."""
    for segment in traced.result.segments_info:
        if query in segment["queries"]:
            return segment
    return None


def query_view(traced: Traced, query: int, head="all", drawing: Optional[Drawing] = None) -> View:
    """One query, side by side (``book/03_attention_maps.ipynb``): its predicted box over the
    image; its attention map on the Res5 cells (one head, or the M heads summed; cell lines
    drawn) with the outline of its final segment; its class probabilities, the most likely class
    in orange, the threshold dashed; its mask logits at H/4 (``LOGIT_CMAP``, 0 white); the segment
    the merge gave it. What the query predicts (box, class, segment) is orange
    (``figures.PREDICTION_COLOR``).

    With one head chosen, the scale is that query's largest weight over all heads, so heads are
    compared on one scale whichever is shown; the heads-summed map has its own scale (it sums to
    1). Each map has its colour bar. ``drawing``: a previous view's drawing to update (what the
    panel does).
    """
    query = _check_query(traced, query)
    M = traced.num_heads
    _check_head(traced, head)
    maps = traced.trace.attention_maps[0, query]                                # (M, h, w)
    if head == "all":
        shown, vmax, what = maps.sum(0), float(maps.sum(0).max()), f"{M} heads summed"
    else:
        shown, vmax, what = maps[head], float(maps.max()), f"head {head} ({float(maps[head].sum()):.1%} of the weight)"
    probabilities = traced.probabilities[query]                                 # (C+1,)
    logits = traced.trace.pred_masks[0, query]                                  # (H/4, W/4)
    segment = segment_of_query(traced, query)
    height, width = traced.image.shape[:2]
    region = (np.zeros((height, width), dtype=bool) if segment is None
              else (traced.result.id_map == segment["id"]).numpy())            # (H, W)
    faded = traced.image * 0.35 + 0.65                                          # (H, W, 3)

    d = _reuse(drawing, ("query", id(traced)))
    if d is None:
        d = _query_drawing(traced, shown, vmax, logits, probabilities)
    a, axes = d.artists, d.artists["axes"]
    cx, cy, bw, bh = traced.trace.pred_boxes[0, query].tolist()                 # normalised
    pad_h, pad_w = traced.trace.images.shape[-2:]                               # the padded batch
    a["box"].set_bounds((cx - bw / 2) * pad_w - 0.5, (cy - bh / 2) * pad_h - 0.5, bw * pad_w, bh * pad_h)
    axes[0].set_title(f"{traced.query_label(query)}\nits predicted box", fontsize=9)
    a["map"].set_data(shown.numpy())
    a["map"].set_clim(0.0, vmax)
    axes[1].set_title(f"attention map, {what}", fontsize=9)
    _replace_contour(axes[1], a, "map_outline", region)
    for bar, p in zip(a["bars"], probabilities.tolist()):
        bar.set_width(p)
    label = int(probabilities.argmax())
    previous = a.get("best_bar")
    if previous is not None and previous != label:     # back to its own grey
        a["bars"][previous].set_facecolor(a["bar_colors"][previous])
    a["bars"][label].set_facecolor(figures.PREDICTION_COLOR)   # the query's class: its prediction
    a["best_bar"] = label
    a["logits"].set_data(logits.numpy())
    a["logits"].set_clim(min(float(logits.min()), -1e-6), max(float(logits.max()), 1e-6))
    if segment is None:
        a["segment"].set_data(faded)
        axes[4].set_title("final segment: none\n(not kept by the merge)", fontsize=9)
    else:
        shaded = faded.copy()
        shaded[region] = traced.image[region]
        a["segment"].set_data(shaded)
        axes[4].set_title(f"final segment {segment['id']}: {traced.name(segment['category_id'])}\n"
                          f"{segment['area']} px", fontsize=9)
    _replace_contour(axes[4], a, "segment_outline", region)
    text = (f"query {query}: {traced.name(label)} with probability {float(probabilities[label]):.3f}; "
            + (f"segment {segment['id']} of {segment['area']} px" if segment else "not kept, no segment"))
    return View(d.figure, {"attention": shown.numpy(), "vmax": vmax, "probabilities": probabilities.numpy(),
                           "mask_logits": logits.numpy(), "segment": region}, [], text, d)


def _query_drawing(traced: Traced, shown, vmax, logits, probabilities) -> Drawing:
    """The query inspector's figure, its artists named for the updates."""
    fig = _figure(14.0, 3.2)
    axes = fig.subplots(1, 5, width_ratios=[1, 1.2, 1.25, 1.2, 1])
    fig.subplots_adjust(left=0.01, right=0.99, top=0.84, bottom=0.08, wspace=0.45)
    height, width = traced.image.shape[:2]
    d = Drawing(("query", id(traced)), fig, {"axes": axes})
    axes[0].imshow(traced.image)
    d.artists["box"] = axes[0].add_patch(Rectangle((0, 0), 1, 1, fill=False, edgecolor=figures.PREDICTION_COLOR,
                                                   linewidth=2))
    axes[0].set_xlim(-0.5, width - 0.5)
    axes[0].set_ylim(height - 0.5, -0.5)
    _bare(axes[0])
    d.artists["map"] = _draw_grid_map(fig, axes[1], shown.numpy(), vmax, "", image_size=(height, width))
    names = [traced.name(c) for c in range(len(probabilities))]
    order = np.arange(len(names))
    # grey bars (lighter for "no object"); the update colours the query's most likely class orange
    colours = [NO_OBJECT_BAR if n == "no object" else CLASS_BAR for n in names]
    d.artists["bars"] = axes[2].barh(order, probabilities.numpy(), color=colours)
    d.artists["bar_colors"] = colours
    if len(names) <= 12:
        axes[2].set_yticks(order, names, fontsize=7)
    else:  # COCO's 250 outputs: no room for names; the text under the panel names the best
        axes[2].set_yticks([])
    axes[2].invert_yaxis()
    axes[2].set_xlim(0, 1)
    axes[2].set_xticks([0, 0.5, 1])
    axes[2].axvline(traced.keep_threshold, color="black", linestyle="--", linewidth=1)
    axes[2].set_title(f"class probabilities (kept above {traced.keep_threshold:g})", fontsize=9)
    d.artists["logits"] = _draw_logits(fig, axes[3], logits, f"mask logits {tuple(logits.shape)} at H/4")
    d.artists["segment"] = axes[4].imshow(traced.image)
    _bare(axes[4])
    return d


# --------------------------------------------------------------------------------------------
# 3. Mask-head stages (book/04_mask_head.ipynb)
# --------------------------------------------------------------------------------------------

def _correlation(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each channel of x (C, h, w) with target (h, w): (C,)."""
    x = x.flatten(1) - x.flatten(1).mean(1, keepdim=True)                      # (C, h*w)
    y = target.flatten() - target.mean()                                        # (h*w,)
    return (x @ y) / (x.norm(dim=1) * y.norm()).clamp_min(1e-12)


def _channel_scale(picture: torch.Tensor) -> tuple[str, float, float, str]:
    """(cmap, vmin, vmax, colour-bar label) for one channel of a stage: a magnitude from 0 where
    it has no negative value (after a ReLU), else a signed scale centred on 0."""
    low, high = float(picture.min()), float(picture.max())
    if low >= 0:
        return ATTENTION_CMAP, 0.0, max(high, 1e-6), "activation (all >= 0)"
    top = max(-low, high, 1e-6)
    return LOGIT_CMAP, -top, top, "activation (signed, 0 white)"


def mask_stage_view(traced: Traced, query: int, stage: str = "lay3", drawing: Optional[Drawing] = None) -> View:
    """One query's features at one stage of the mask head, at that stage's resolution
    (``book/04_mask_head.ipynb``).

    Left: the channel most correlated with the query's final mask logits (each stage has many
    channels; this one shows what the stage already knows of the mask): after a ReLU (lay1 ..
    lay5) its values are all >= 0 and drawn as a magnitude (``ATTENTION_CMAP``, from 0); where
    they can be negative (the input, the sums with a skip) on ``LOGIT_CMAP``, centred on 0.
    Middle: the mean |activation| over all channels, where the stage is active at all (a
    magnitude, from 0). Right: the final mask logits, for reference. The three are different
    quantities: each has its own scale and colour bar. The title gives the stage's shape
    (channels, h, w) and stride. ``drawing``: a previous view's drawing to update (what the
    panel does).
    """
    query = _check_query(traced, query)
    _check_choice(stage, "stage", MASK_STAGES)
    x = traced.trace.mask_head_stages[stage][query]                             # (C, h, w)
    final = traced.trace.pred_masks[0, query]                                   # (H/4, W/4)
    target = F.adaptive_avg_pool2d(final[None], x.shape[-2:])[0]                # (h, w)
    r = _correlation(x, target)
    channel = int(r.argmax())
    stride = traced.trace.images.shape[-1] // x.shape[-1]
    best, mean_abs = x[channel], x.abs().mean(0)                                # (h, w) each
    d = _reuse(drawing, ("stages", id(traced)))
    if d is None:
        fig = _figure(10.5, 3.3)
        axes = fig.subplots(1, 3)
        fig.subplots_adjust(left=0.01, right=0.97, top=0.80, bottom=0.04, wspace=0.12)
        d = Drawing(("stages", id(traced)), fig, {"axes": axes})
        for ax, name, picture in ((axes[0], "best", best), (axes[1], "mean_abs", mean_abs)):
            d.artists[name] = ax.imshow(picture.numpy(), cmap=ATTENTION_CMAP, interpolation="nearest")
            _bare(ax)
            d.artists[name + "_bar"] = fig.colorbar(d.artists[name], ax=ax, shrink=0.8)
        d.artists["mean_abs_bar"].set_label("mean |activation|")
        d.artists["logits"] = _draw_logits(fig, axes[2], final, "")
    a, axes = d.artists, d.artists["axes"]
    cmap, low, high, label = _channel_scale(best)
    a["best"].set_cmap(cmap)
    a["best_bar"].set_label(label)
    for name, picture, (low, high) in (("best", best, (low, high)),
                                       ("mean_abs", mean_abs, (0.0, max(float(mean_abs.max()), 1e-6)))):
        a[name].set_data(picture.numpy())
        a[name].set_extent((-0.5, picture.shape[-1] - 0.5, picture.shape[-2] - 0.5, -0.5))
        a[name].set_clim(low, high)
    for ax, picture in zip(axes[:2], (best, mean_abs)):
        ax.set_xlim(-0.5, picture.shape[-1] - 0.5)
        ax.set_ylim(picture.shape[-2] - 0.5, -0.5)
    a["logits"].set_data(final.numpy())
    a["logits"].set_clim(min(float(final.min()), -1e-6), max(float(final.max()), 1e-6))
    axes[0].set_title(f"channel {channel} of {x.shape[0]} (r = {float(r[channel]):.2f})", fontsize=9)
    axes[1].set_title("mean |activation| of all channels", fontsize=9)
    axes[2].set_title(f"out_lay: final mask logits {tuple(final.shape)}", fontsize=9)
    d.figure.suptitle(f"{traced.query_label(query)}; stage {stage}: {tuple(x.shape)} (channels, h, w), "
                      f"stride {stride}", fontsize=10)
    text = (f"stage {stage} of query {query}: {tuple(x.shape)}, stride {stride}; channel {channel} is the "
            f"most like the final mask (r = {float(r[channel]):.2f})")
    return View(d.figure, {"channel": best.numpy(), "channel_index": channel, "r": float(r[channel]),
                           "mean_abs": mean_abs.numpy(), "shape": tuple(x.shape), "stride": stride},
                [], text, d)


# --------------------------------------------------------------------------------------------
# 4. Merge explorer (book/05_argmax_merge.ipynb)
# --------------------------------------------------------------------------------------------

def merge_result(traced: Traced, threshold: Optional[float] = None, max_removed_area: int = MAX_REMOVED_AREA,
                 stuff_merge: str = "union") -> PanopticResult:
    """The merge of the traced outputs with these options; no model run
    (``book/05_argmax_merge.ipynb``)."""
    tr = traced.trace
    threshold = traced.keep_threshold if threshold is None else threshold
    return merge_panoptic(tr.outputs, tr.sizes, threshold=threshold, is_thing=traced.is_thing,
                          stuff_merge=stuff_merge, max_removed_area=max_removed_area)[0]


def pq_of(traced: Traced, result: PanopticResult) -> Optional[pq.PQResult]:
    """PQ of ``result`` against the traced image's ground truth, None without one
    (``book/05_argmax_merge.ipynb``)."""
    if traced.truth is None:
        return None
    gt_ids, gt_segments = traced.truth
    categories = [{"id": c, "name": n, "isthing": int(bool(traced.is_thing(c)))}
                  for c, n in traced.category_names.items()]
    return pq.pq_compute([((gt_ids, gt_segments), (result.id_map.numpy(), result.segments_info))], categories)


def merge_view(traced: Traced, threshold: Optional[float] = None, max_removed_area: int = MAX_REMOVED_AREA,
               stuff_merge: str = "union", drawing: Optional[Drawing] = None) -> View:
    """The panoptic map for one choice of merge options (``book/05_argmax_merge.ipynb``).

    ``threshold`` keeps a query whose best class is above it (default the model's keep threshold;
    0.1 to 0.99 in the panel);
    ``max_removed_area`` is the small-segment rule (4 pixels, officially; 0 turns it off);
    ``stuff_merge`` is "union" or "official". The maps are flat colours (the image is not under
    them), with legends by class name ("rectangle 2": the second rectangle); the table lists the
    segments under the same names (column ``legend``), so a row is found in the legend and on
    the map; the text says how many queries were kept and, with a ground truth, the image's PQ.
    Beside the merged map, the ground truth; a predicted segment that matches one of its
    segments (same class, IoU above 0.5) has its colour, and the table's column ``matches``
    gives that segment's name in the ground truth's legend (or "no match"). ``drawing``: a
    previous view's drawing to update.
    """
    threshold = check_threshold(traced.keep_threshold if threshold is None else threshold)
    max_removed_area = check_max_removed_area(max_removed_area)
    _check_choice(stuff_merge, "stuff_merge", STUFF_MERGES)
    result = merge_result(traced, threshold, max_removed_area, stuff_merge)
    kept = sorted(q for s in result.segments_info for q in s["queries"])
    _, _, selected = select_queries(traced.trace.pred_logits[0], threshold)
    colors = None
    if traced.truth is not None:
        gt_ids, gt_segments = traced.truth
        colors, gt_colors = figures.matched_colors(result.id_map, result.segments_info, gt_ids, gt_segments)
        matches = _matched_names(colors, gt_colors, _legend_names(gt_segments, traced.category_names))
    # each segment under its name in the legend; with a ground truth, the name of the one it matches
    table = []
    for k, (s, name) in enumerate(zip(result.segments_info, _legend_names(result.segments_info,
                                                                          traced.category_names))):
        row = {"segment": s["id"], "legend": name}
        if traced.truth is not None:
            row["matches"] = matches[k]
        row.update(kind="thing" if s["isthing"] else "stuff", area=s["area"], score=s["score"],
                   queries=" ".join(map(str, s["queries"])))
        table.append(row)
    score = pq_of(traced, result)
    d = _reuse(drawing, ("merge", id(traced)))
    if d is None:
        panels = 2 if traced.truth is not None else 1
        fig = _figure(6.0 * panels, 3.4)
        axes = np.atleast_1d(fig.subplots(1, panels))
        fig.subplots_adjust(left=0.01, right=0.62 if panels == 1 else 0.80, top=0.86, bottom=0.03,
                            wspace=0.85)
        d = Drawing(("merge", id(traced)), fig, {"axes": axes})
        if traced.truth is not None:
            figures.show_panoptic(gt_ids, gt_segments, category_names=traced.category_names, ax=axes[1],
                                  colors=gt_colors, title="ground truth (a match has its colour)")
            axes[1].images[0].set_interpolation("nearest")
            axes[1].title.set_fontsize(9)
    axes = d.artists["axes"]
    for image in list(axes[0].images):
        image.remove()
    if axes[0].get_legend() is not None:
        axes[0].get_legend().remove()
    figures.show_panoptic(result.id_map, result.segments_info, category_names=traced.category_names,
                          ax=axes[0], colors=colors,
                          title=f"merged (threshold {threshold:.2f}, {stuff_merge}, <= {max_removed_area} px removed)")
    axes[0].images[0].set_interpolation("nearest")
    axes[0].title.set_fontsize(9)
    text = (f"{len(selected)} of {traced.num_queries} queries above {threshold:.2f}; "
            f"{len(result.segments_info)} segments from {len(kept)} of them")
    if score is not None:
        s = score.summary
        text += (f"; PQ of this image {100 * s['All']['pq']:.1f} (things {100 * s['Things']['pq']:.1f}, "
                 f"stuff {100 * s['Stuff']['pq']:.1f})")
    return View(d.figure, {"id_map": result.id_map.numpy(), "kept": len(selected),
                           "pq": None if score is None else score.summary}, table, text, d)


# --------------------------------------------------------------------------------------------
# 5. Scene editor (book/07_train_it_yourself.ipynb)
# --------------------------------------------------------------------------------------------

def shapes_found(traced: Traced, layout) -> tuple[dict, dict]:
    """For each shape of ``layout`` that shows in the traced scene (``layout.render()``): whether
    a predicted segment matches it (PQ's match: the same class, IoU above 0.5), and how many
    predicted things that match no shape lie mostly on it (one that lies on no shape counts nowhere). Returns ``(found, extra)``, two dicts
    keyed by the shape's position in ``layout.shapes`` (``book/07_train_it_yourself.ipynb``)."""
    truth = torch.from_numpy(traced.truth[0])                                   # (H, W) ids
    shown = [k for k, shape in enumerate(layout.shapes) if bool((truth == shape.segment_id).any())]
    found, extra = dict.fromkeys(shown, False), dict.fromkeys(shown, 0)
    predicted = [s for s in traced.result.segments_info if s["isthing"]]
    if not shown or not predicted:
        return found, extra
    gt = torch.stack([truth == layout.shapes[k].segment_id for k in shown])     # (G, H, W)
    masks = torch.stack([traced.result.id_map == s["id"] for s in predicted])   # (P, H, W)
    same_class = torch.tensor([[s["category_id"] == layout.shapes[k].category for k in shown]
                               for s in predicted])                            # (P, G)
    match = (pq.mask_iou(masks, gt) > 0.5) & same_class                         # (P, G)
    for g in match.any(0).nonzero()[:, 0].tolist():
        found[shown[g]] = True
    for p in (~match.any(1)).nonzero()[:, 0].tolist():                          # matches no shape
        overlap = (masks[p] & gt).sum((1, 2))                                   # (G,) pixels on each
        if overlap.max() > 0:                                                   # on stuff only: no shape's
            extra[shown[int(overlap.argmax())]] += 1
    return found, extra


def scene_view(traced: Traced, layout=None) -> View:
    """A scene, what the trained model makes of it, and its kept queries
    (``book/07_train_it_yourself.ipynb``).

    Top: the scene with each shape's number (``layout``, a ``synthetic.SceneLayout``, if
    given), the ground truth and the merged prediction in flat colours, a predicted segment in
    the colour of the ground-truth segment it matches, with one legend by class name. Bottom:
    for each kept query (up to 8), its attention map (heads summed) in red over the scene, on
    its Res5 cells, all on one scale with one colour bar, and the outline of its mask in orange.
    """
    result = traced.result
    gt_ids, gt_segments = traced.truth
    kept = [q for s in result.segments_info for q in s["queries"]][:EDITOR_QUERIES]
    width = max(12.0, 1.6 * len(kept))
    # the kept queries' row is as tall as its pictures, so that the colour bar beside them is too
    # (the colour bar takes 0.046 + 0.04 of the row's width)
    columns, right = max(1, len(kept)), 1 - 0.9 / width
    panel = 0.914 * (right - 0.01) * width / (columns + 0.06 * (columns - 1))      # inches
    panel_height = min(panel * traced.image.shape[0] / traced.image.shape[1], 2.0)
    upper_height, lower_height = 3.8, panel_height + 0.6
    fig = _figure(width, upper_height + lower_height)
    upper, lower = fig.subfigures(2, 1, height_ratios=[upper_height, lower_height])
    top = upper.subplots(1, 3)
    upper.subplots_adjust(left=0.01, right=0.75, top=0.92, bottom=0.02, wspace=0.08)
    lower.subplots_adjust(left=0.01, right=right, top=1 - 0.55 / lower_height, bottom=0.05 / lower_height,
                          wspace=0.06)
    top[0].imshow(traced.image)
    _bare(top[0])
    top[0].set_title("the scene (shape numbers)", fontsize=9)
    hidden = []
    if layout is not None:
        hidden = layout.hidden()
        for k, shape in enumerate(layout.shapes):
            top[0].text(shape.cx, shape.cy, str(k), color="white" if k not in hidden else "#999999",
                        ha="center", va="center", fontsize=9, fontweight="bold",
                        bbox=dict(boxstyle="round,pad=0.15", facecolor="black", alpha=0.5, linewidth=0))
    pred_colors, gt_colors = figures.matched_colors(result.id_map, result.segments_info, gt_ids, gt_segments)
    figures.show_panoptic(gt_ids, gt_segments, category_names=traced.category_names, ax=top[1],
                          colors=gt_colors, title="ground truth", legend=False)
    figures.show_panoptic(result.id_map, result.segments_info, category_names=traced.category_names,
                          ax=top[2], colors=pred_colors, title="the model's panoptic map", legend=False)
    for ax in top[1:]:
        ax.images[0].set_interpolation("nearest")
        ax.title.set_fontsize(9)
    # one legend for both maps: the ground truth's segments by class name (a prediction that
    # matches one has its colour), then the predicted segments that match none
    gt_labels = figures.segment_labels(gt_segments, traced.category_names)
    if layout is not None:      # a thing's legend entry also gives its number on the scene
        number = {shape.segment_id: k for k, shape in enumerate(layout.shapes)}
        gt_labels = [f"{label}: shape {number[seg['id']]}" if seg["id"] in number else label
                     for label, seg in zip(gt_labels, gt_segments)]
    handles = [Patch(facecolor=c, edgecolor="#333333", label=label) for c, label in zip(gt_colors, gt_labels)]
    gt_rgb = {tuple(np.round(c, 6)) for c in gt_colors}
    handles += [Patch(facecolor=c, edgecolor="#333333",
                      label=f"no match: {traced.name(s['category_id'])} ({s['area']} px)")
                for c, s in zip(pred_colors, result.segments_info) if tuple(np.round(c, 6)) not in gt_rgb]
    if (gt_ids == 0).any() or bool((result.id_map == 0).any()):
        handles.append(Patch(facecolor=figures.VOID_COLOR, edgecolor="#333333", label="VOID (unlabelled)"))
    top[2].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
                  title="ground truth; a predicted\nsegment that matches one\nhas its colour", title_fontsize=8,
                  alignment="left")
    maps = traced.trace.attention_maps[0].sum(1)                                # (N, h, w)
    vmax = float(maps[kept].max()) if kept else 1.0
    masks = F.interpolate(traced.trace.pred_masks[:, kept], size=traced.image.shape[:2], mode="bilinear",
                          align_corners=False)[0] > 0 if kept else None          # (K, H, W)
    bottom = list(np.atleast_1d(lower.subplots(1, max(1, len(kept))))) if kept else []
    for ax, k, q in zip(bottom, range(len(kept)), kept):
        figures.show_cells_over_image(traced.image, maps[q], ax=ax, vmax=vmax,
                                      outline=masks[k].numpy(), outline_color=figures.PREDICTION_COLOR,
                                      title=traced.query_label(q).replace("query ", "q"))
    if bottom:
        figures.attention_colorbar(bottom, vmax, label="attention weight\n(heads summed)")
    lower.suptitle("kept queries: attention over the scene (red, heads summed, one scale) and the outline "
                   "of the query's mask (orange, logit > 0)", fontsize=9)
    score = pq_of(traced, result)
    s = score.summary
    text = (f"{len(gt_segments)} segments in the ground truth, {len(result.segments_info)} predicted; "
            f"PQ {100 * s['All']['pq']:.1f} (things {100 * s['Things']['pq']:.1f}, stuff {100 * s['Stuff']['pq']:.1f})")
    if hidden:
        text += f"; shape(s) {hidden} hidden behind others, left out"
    # each predicted segment under the legend's name of the ground-truth segment it matches (its colour)
    matches = _matched_names(pred_colors, gt_colors, _legend_names(gt_segments, traced.category_names))
    table = [{"segment": seg["id"], "class": traced.name(seg["category_id"]), "area": seg["area"],
              "matches": match, "queries": " ".join(map(str, seg["queries"]))}
             for seg, match in zip(result.segments_info, matches)]
    return View(fig, {"id_map": result.id_map.numpy(), "kept": kept, "pq": s,
                      "attention": maps[kept].numpy(), "vmax": vmax}, table, text)


# --------------------------------------------------------------------------------------------
# The panels: thin ipywidgets over the views
# --------------------------------------------------------------------------------------------

class Panel:
    """Controls over a view function; ``view`` is the current :class:`View`, ``controls`` the
    widgets by name, ``widget`` the box to display (``book/02_transformer.ipynb``).

    Setting a control's ``value`` (by hand or in a test) redraws at once. Works with
    ipywidgets 7.7.1 (Colab) and 8.
    """

    def __init__(self, controls: dict, title: str):
        import ipywidgets as widgets
        self.controls = controls
        # The picture is an Image widget whose value is the PNG, not an Output widget that
        # displays it: an Output's captured display makes nbclient, which executes the book,
        # miss the kernel's reply now and then and wait a whole cell timeout (seen in 1 run of 4).
        self.picture = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.table = widgets.HTML()
        self.caption = widgets.HTML()
        self.view: Optional[View] = None
        self.updates = 0
        rows = [widgets.HTML(f"<b>{title}</b>"), widgets.HBox(list(controls.values())[:3])]
        if len(controls) > 3:
            rows.append(widgets.HBox(list(controls.values())[3:]))
        self.widget = widgets.VBox(rows + [self.caption, self.picture, self.table])
        for control in controls.values():
            if hasattr(control, "value"):
                control.observe(self._changed, names="value")

    @property
    def drawing(self) -> Optional[Drawing]:
        """The current view's drawing, which the next view updates."""
        return None if self.view is None else self.view.drawing

    def _changed(self, change=None):
        self.update()

    def compute(self) -> View:
        """The view for the controls' current values."""
        raise NotImplementedError

    def update(self) -> View:
        """Recompute the view and show it in the panel: caption, picture (PNG) and table."""
        self.view = self.compute()
        self.updates += 1
        self.caption.value = f"<span>{html.escape(self.view.text)}</span>"
        self.picture.value = self.view.png()
        self.table.value = (f"<pre style='font-size: 0.8em'>{html.escape(self.view.table_text())}</pre>"
                            if self.view.table else "")
        return self.view

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


class EncoderAttentionPanel(Panel):
    """Pick a cell (row, column) and an encoder layer; see where that cell attends
    (``book/02_transformer.ipynb``)."""

    def __init__(self, traced: Traced, row: int = 0, col: int = 0, layer: int = -1):
        import ipywidgets as widgets
        self.traced = traced
        h, w = traced.grid
        layers = traced.trace.encoder_attention.shape[0]
        if isinstance(layer, numbers.Integral) and not isinstance(layer, bool) and -layers <= layer < 0:
            layer += layers
        encoder_attention_at(traced, row, col, layer)   # a clear error here: a slider would clamp
        controls = {
            "row": widgets.IntSlider(value=row, min=0, max=h - 1, description="row"),
            "col": widgets.IntSlider(value=col, min=0, max=w - 1, description="column"),
            "layer": widgets.ToggleButtons(options=[(f"layer {k}", k) for k in range(layers)],
                                           value=layer, description="encoder"),
        }
        super().__init__(controls, "Encoder self-attention at a point")
        self.update()

    def compute(self) -> View:
        c = self.controls
        return encoder_attention_view(self.traced, c["row"].value, c["col"].value, c["layer"].value,
                                      drawing=self.drawing)


def _query_choice(traced: Traced, query: Optional[int], all_queries: bool = False) -> tuple[list, int]:
    """A query dropdown's (label, query) options, the kept queries (or all) with class and
    score, and the query it starts on: ``query``, added to the list if it is not kept, or the
    first kept one."""
    rows = query_rows(traced)                                   # row q is query q

    def option(row):
        dropped = "" if row["kept"] else " (dropped)"
        return f"{row['query']}: {row['class']} {row['score']:.2f}{dropped}", row["query"]

    options = [option(r) for r in rows if r["kept"] or all_queries] or [option(r) for r in rows]
    query = options[0][1] if query is None else _check_query(traced, query)
    if query not in [value for _, value in options]:
        options.append(option(rows[query]))
    return options, query


class QueryPanel(Panel):
    """Pick a kept query (listed with class and score) and a head or all heads
    (``book/03_attention_maps.ipynb``)."""

    def __init__(self, traced: Traced, query: Optional[int] = None, head="all", all_queries: bool = False):
        import ipywidgets as widgets
        self.traced = traced
        options, query = _query_choice(traced, query, all_queries)
        _check_head(traced, head)
        controls = {
            "query": widgets.Dropdown(options=options, value=query, description="query"),
            "head": widgets.Dropdown(options=[("all heads", "all")] + [(f"head {m}", m)
                                                                       for m in range(traced.num_heads)],
                                     value=head, description="head"),
        }
        super().__init__(controls, "Query inspector")
        self.update()

    def compute(self) -> View:
        return query_view(self.traced, self.controls["query"].value, self.controls["head"].value,
                          drawing=self.drawing)


class MaskStagePanel(Panel):
    """Pick a query and a mask-head stage (``book/04_mask_head.ipynb``)."""

    def __init__(self, traced: Traced, query: Optional[int] = None, stage: str = "lay3"):
        import ipywidgets as widgets
        self.traced = traced
        options, query = _query_choice(traced, query)
        _check_choice(stage, "stage", MASK_STAGES)
        controls = {
            "query": widgets.Dropdown(options=options, value=query, description="query"),
            "stage": widgets.SelectionSlider(options=list(MASK_STAGES), value=stage, description="stage"),
        }
        super().__init__(controls, "Mask-head stages")
        self.update()

    def compute(self) -> View:
        return mask_stage_view(self.traced, self.controls["query"].value, self.controls["stage"].value,
                               drawing=self.drawing)


class MergePanel(Panel):
    """The merge's options: threshold, small-segment rule, stuff merge
    (``book/05_argmax_merge.ipynb``)."""

    def __init__(self, traced: Traced, threshold: Optional[float] = None,
                 max_removed_area: int = MAX_REMOVED_AREA, stuff_merge: str = "union"):
        import ipywidgets as widgets
        self.traced = traced
        threshold = traced.keep_threshold if threshold is None else threshold
        low, high = THRESHOLD_RANGE
        if check_threshold(threshold) < low or threshold > high:   # the slider would clamp it
            raise ValueError(f"the merge explorer's threshold runs from {low} to {high}, got {threshold!r}; "
                             "for other values call merge_view(traced, threshold)")
        check_max_removed_area(max_removed_area)
        _check_choice(stuff_merge, "stuff_merge", STUFF_MERGES)
        controls = {
            "threshold": widgets.FloatSlider(value=threshold, min=low, max=high, step=0.01,
                                             description="threshold", continuous_update=False),
            "small": widgets.Checkbox(value=max_removed_area > 0,
                                      description=f"remove segments <= {MAX_REMOVED_AREA} px"),
            "stuff_merge": widgets.ToggleButtons(options=list(STUFF_MERGES), value=stuff_merge,
                                                 description="stuff"),
        }
        super().__init__(controls, "Merge explorer")
        self.update()

    def compute(self) -> View:
        c = self.controls
        return merge_view(self.traced, c["threshold"].value, MAX_REMOVED_AREA if c["small"].value else 0,
                          c["stuff_merge"].value, drawing=self.drawing)


class SceneEditor(Panel):
    """Add, move, resize or remove a shape of a generated scene; the model runs again
    (``book/07_train_it_yourself.ipynb``).

    ``layout`` is a ``synthetic.SceneLayout`` (``synthetic.held_out_layout(i)``). ``history``
    keeps every layout, so ``undo()`` goes back.
    """

    def __init__(self, model: DETRPanoptic, layout):
        import ipywidgets as widgets
        self.model = model
        self.layout = layout
        self.history = []
        height, width = layout.height, layout.width
        controls = {
            "shape": widgets.Dropdown(options=self._shape_options(), value=len(layout.shapes) - 1
                                      if layout.shapes else None, description="shape"),
            "row": widgets.IntSlider(min=0, max=height - 1, description="row", continuous_update=False),
            "col": widgets.IntSlider(min=0, max=width - 1, description="column", continuous_update=False),
            "size": widgets.IntSlider(min=3, max=max(4, min(height, width) // 3), description="size",
                                      continuous_update=False),
            "category": widgets.Dropdown(options=[(c["name"], c["id"]) for c in synthetic.THING_CATEGORIES],
                                         value=synthetic.CIRCLE, description="new"),
            "add": widgets.Button(description="add", tooltip="add a shape of the class under 'new', on top"),
            "remove": widgets.Button(description="remove", tooltip="remove the chosen shape"),
            "undo": widgets.Button(description="undo", tooltip="back to the scene before the last edit"),
        }
        self._syncing = False
        super().__init__(controls, "Scene editor")
        controls["shape"].unobserve(self._changed, names="value")
        controls["shape"].observe(self._select, names="value")
        controls["category"].unobserve(self._changed, names="value")
        controls["add"].on_click(lambda _: self.add(controls["category"].value))
        controls["remove"].on_click(lambda _: self.remove())
        controls["undo"].on_click(lambda _: self.undo())
        self._select()

    def _shape_options(self):
        names = synthetic.CATEGORY_NAMES
        return [(f"{k}: {names[s.category]}", k) for k, s in enumerate(self.layout.shapes)]

    def _select(self, change=None):
        """Show the chosen shape's position and size on the sliders without editing it."""
        k = self.controls["shape"].value
        self._syncing = True
        try:
            if k is not None:
                shape = self.layout.shapes[k]
                c = self.controls
                c["row"].value = int(round(min(max(shape.cy, 0), self.layout.height - 1)))
                c["col"].value = int(round(min(max(shape.cx, 0), self.layout.width - 1)))
                c["size"].value = int(round(min(max(shape.size, c["size"].min), c["size"].max)))
        finally:
            self._syncing = False
        if self.view is None:
            self.update()

    def _changed(self, change=None):
        if self._syncing:
            return
        k = self.controls["shape"].value
        if k is None:
            return
        c = self.controls
        shape = self.layout.shapes[k]
        if change is not None and change["owner"] is c["size"]:
            self._edit(self.layout.resized(k, float(c["size"].value)))
        elif (round(shape.cy), round(shape.cx)) != (c["row"].value, c["col"].value):
            self._edit(self.layout.moved(k, float(c["row"].value), float(c["col"].value)))

    def _edit(self, layout, select: Optional[int] = None):
        self.history.append(self.layout)
        self.layout = layout
        self._refresh_shapes(select)
        return self.update()

    def _refresh_shapes(self, select: Optional[int] = None):
        dropdown = self.controls["shape"]
        current = dropdown.value if select is None else select
        options = self._shape_options()
        self._syncing = True
        try:
            dropdown.options = options
            if options:
                dropdown.value = current if current is not None and current < len(options) else len(options) - 1
            else:
                dropdown.value = None
        finally:
            self._syncing = False
        self._select()

    def move(self, k: int, row: float, col: float) -> View:
        """Move shape ``k`` to centre (row, col) and run the model again."""
        return self._edit(self.layout.moved(k, row, col), k)

    def resize(self, k: int, size: float) -> View:
        """Give shape ``k`` a new size (radius in pixels) and run the model again."""
        return self._edit(self.layout.resized(k, size), k)

    def remove(self, k: Optional[int] = None) -> View:
        """Remove shape ``k`` (default: the selected one) and run the model again."""
        k = self.controls["shape"].value if k is None else k
        if k is None:
            raise ValueError("there is no shape left to remove: add one first")
        return self._edit(self.layout.removed(k), max(0, k - 1))

    def add(self, category: int, row: Optional[float] = None, col: Optional[float] = None,
            size: Optional[float] = None) -> View:
        """Add a shape of ``category`` on top (default: the sliders' position and size)."""
        c = self.controls
        row = c["row"].value if row is None else row
        col = c["col"].value if col is None else col
        size = c["size"].value if size is None else size
        layout = self.layout.added(category, float(row), float(col), float(size))
        return self._edit(layout, len(layout.shapes) - 1)

    def undo(self) -> Optional[View]:
        """Go back to the layout before the last edit."""
        if not self.history:
            return self.view
        self.layout = self.history.pop()
        self._refresh_shapes()
        return self.update()

    def compute(self) -> View:
        scene = self.layout.render()
        self.traced = trace_scene(self.model, scene)
        return scene_view(self.traced, self.layout)
