"""Every figure of the book, in one place, and the conventions every figure follows.

Each chapter calls these helpers instead of drawing its own axes; each helper's docstring names
the chapters that use it. All figures have an OPAQUE white background, also when saved, so that
they stay readable on the book's dark theme (a transparent figure shows black text on black).

Shapes in labels use the book's notation: B images, N object queries, M attention heads,
d the transformer width, C the number of classes, H x W the padded input image.

Conventions (the book's figures, ``diagrams`` and the explorers of ``explore`` follow them):

1. **Compared panels share one colour scale, with a colour bar.** Panels drawn side by side to be
   compared (the heads of one query, the queries of one image, one stage across queries) use one
   ``vmin``/``vmax`` and one colour bar, so weak attention looks weak. Only maps of different
   quantities (channels of different layers) get a scale each, and then each its own colour bar
   (``show_maps(..., scale="each")``).
2. **Legend colours are true.** A panoptic map is drawn in flat, opaque colours, never blended
   over the photo, so a segment has exactly its legend's colour; the image goes in its own panel.
   Attention over an image is the one overlay: the :data:`ATTENTION_COLOR` cells' opacity is the
   weight, and its colour bar is drawn the same way, over white.
3. **Class names in legends**: a segment is named by its class ("circle", "circle 2" for the
   second one), its kind and its area; raw segment ids (7-digit numbers in the COCO format) are
   shown only where a figure is about the ids themselves (``show_panoptic(..., show_ids=True)``).
4. **One meaning per colour**, across the book: :data:`ATTENTION_COLOR` (red) is attention weight
   over an image; :data:`TRUTH_COLOR` (blue) outlines a ground-truth segment;
   :data:`PREDICTION_COLOR` (orange) outlines a predicted mask or the cell or query chosen;
   :data:`ATTENTION_CMAP` (viridis) is a non-negative magnitude (attention weights, |activations|)
   drawn on its own; :data:`LOGIT_CMAP` (blue-white-red, centred on 0) a signed value such as a
   mask logit; black (:data:`VOID_COLOR`) is VOID; dark grey is padding. The colours of
   :func:`segment_colors` name segments, in panoptic maps and their legends only, and avoid
   those hues (greens, purples, browns, pinks, olives, cyans).
5. **Cells are visible where cells are counted**: a map on a feature grid is drawn with its cell
   lines (``show_cells_over_image(..., grid=True)``).
6. **A caption on every figure**: the markdown cell right after a figure's cell starts with an
   italic sentence that says what to look at (``tests/test_figure_captions.py`` checks it).
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

from .pq import mask_iou
from .preprocessing import denormalize

# The figure background: opaque white, never transparent (dark-mode readers, see module doc).
BACKGROUND = "white"

# What the style helper sets: white figures and axes, also in saved files.
BOOK_RC = {
    "figure.facecolor": BACKGROUND,
    "figure.edgecolor": BACKGROUND,
    "axes.facecolor": BACKGROUND,
    "savefig.facecolor": BACKGROUND,
    "savefig.edgecolor": BACKGROUND,
    "savefig.transparent": False,
    "font.size": 10,
}

# Colour of VOID (segment id 0, unlabelled pixels) in panoptic maps.
VOID_COLOR = (0.0, 0.0, 0.0)
# One meaning per colour (module docstring, convention 4).
ATTENTION_COLOR = (0.9, 0.0, 0.0)   # red: attention weight over an image (opacity = weight)
TRUTH_COLOR = "#0050ff"             # blue: outline of a ground-truth segment
PREDICTION_COLOR = "#ff7f0e"        # orange: outline of a predicted mask, the chosen cell or query
ATTENTION_CMAP = "viridis"          # a non-negative magnitude drawn on its own
LOGIT_CMAP = "RdBu_r"               # a signed value, centred on 0 (mask logits)
PADDING_COLOR = "#555555"           # dark grey: padding
# Cell lines are drawn on maps of at most this many cells a side (more would hide the map).
MAX_GRID_CELLS = 40


def use_book_style() -> None:
    """Make every later matplotlib figure opaque white (all chapters; ``book/intro.ipynb``)."""
    matplotlib.rcParams.update(BOOK_RC)


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs):
    """``plt.subplots`` with the book's opaque white background (all chapters, from
    ``book/intro.ipynb``).

    Returns ``(fig, axes)`` like ``plt.subplots``.
    """
    use_book_style()
    kwargs.setdefault("facecolor", BACKGROUND)
    kwargs.setdefault("squeeze", False)
    return plt.subplots(nrows, ncols, **kwargs)


def _to_numpy(x) -> np.ndarray:
    """A torch tensor (any device, with or without grad) or array-like as a numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x)


# --------------------------------------------------------------------------------------------
# The pipeline diagram (book/intro.ipynb)
# --------------------------------------------------------------------------------------------

# Fill colour per stage family; the legend of the diagram names them.
STAGE_COLORS = {
    "input / output": "#eeeeee",
    "CNN backbone": "#cfe2f3",
    "transformer": "#d9ead3",
    "box detector heads": "#fff2cc",
    "panoptic head": "#f4cccc",
    "merge": "#e1d5e7",
}


def _box(ax, x, y, w, h, title, shape="", kind="input / output"):
    """A rounded box with a bold title and, under it, a shape in the book's notation."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.3,rounding_size=1.2",
                                facecolor=STAGE_COLORS[kind], edgecolor="#333333", lw=1.2))
    if shape:
        ax.text(x + w / 2, y + h * 0.66, title, ha="center", va="center", fontsize=12,
                fontweight="bold")
        ax.text(x + w / 2, y + h * 0.28, shape, ha="center", va="center", fontsize=10.5,
                family="monospace")
    else:
        ax.text(x + w / 2, y + h / 2, title, ha="center", va="center", fontsize=12,
                fontweight="bold")


def _arrow(ax, points, label="", label_at=None, color="#333333", ha="left"):
    """An arrow along a polyline ``points`` (the head at the last point), with an optional label."""
    for start, end in zip(points[:-2], points[1:-1]):
        ax.plot([start[0], end[0]], [start[1], end[1]], color=color, lw=1.4)
    ax.add_patch(FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>", mutation_scale=14,
                                 color=color, lw=1.4, shrinkA=0, shrinkB=0))
    if label:
        lx, ly = label_at if label_at is not None else points[-2]
        ax.text(lx, ly, label, fontsize=9.5, ha=ha, va="center", color="#111111",
                family="monospace",
                bbox=dict(boxstyle="round,pad=0.15", facecolor=BACKGROUND, edgecolor="none"))


def draw_pipeline(figsize=(14.2, 8.2)):
    """DETR's panoptic pipeline as a diagram of boxes, arrows and tensor shapes.

    Drawn for ``book/intro.ipynb``; top row: the box detector (backbone, input_proj,
    transformer, heads); middle and bottom rows: the panoptic head (attention maps with the
    box embeddings as QUERY and the encoder memory as KEY, concatenation with ``src_proj``,
    the FPN-style CNN with the Res4, Res3, Res2 skips, the pixel-wise argmax).
    Returns the figure.
    """
    fig, axes = new_figure(figsize=figsize)
    ax = axes[0, 0]
    ax.set_xlim(-0.5, 141.5)  # 10 data units per inch: boxes are sized to their text
    ax.set_ylim(0.5, 83)
    ax.axis("off")

    # Row 1: the box detector (y 56..70).
    _box(ax, 0.5, 56, 14, 14, "image", "(B, 3, H, W)")
    _box(ax, 18.5, 56, 24, 14, "ResNet backbone", "Res2 /4  Res3 /8\nRes4 /16  Res5 /32", "CNN backbone")
    _box(ax, 47, 56, 17, 14, "input_proj", "1x1 conv\n2048 -> d", "CNN backbone")
    _box(ax, 69, 56, 22, 14, "encoder", "6 x self-attn\n+ sine pos. enc.", "transformer")
    _box(ax, 96, 56, 18, 14, "decoder", "6 layers", "transformer")
    _box(ax, 119, 56, 21, 14, "heads", "class (B, N, C+1)\nbox (B, N, 4)", "box detector heads")
    _box(ax, 94, 75, 22, 6, "N object queries", kind="transformer")
    for x0, x1 in [(15.1, 17.9), (43.1, 46.4), (64.6, 68.4), (91.6, 95.4), (114.6, 118.4)]:
        _arrow(ax, [(x0, 63), (x1, 63)])
    _arrow(ax, [(105, 74.6), (105, 70.6)])

    # Row 2: the attention maps and the concatenation (y 30..44).
    _box(ax, 80, 30, 36, 14, "multi-head attention maps", "(B, N, M, H/32, W/32)",
         "panoptic head")
    _arrow(ax, [(84, 55.4), (84, 44.6)], "KEY: memory\n(B, d, H/32, W/32)",
           label_at=(85, 50), ha="left")
    _arrow(ax, [(105, 55.4), (105, 44.6)], "QUERY: box embeddings\nhs[-1] (B, N, d)",
           label_at=(106, 50), ha="left")
    _box(ax, 47, 30, 29, 14, "concat per query", "(B*N, d+M, H/32, W/32)", "panoptic head")
    _arrow(ax, [(55.5, 55.4), (55.5, 44.6)], "src_proj\n(B, d, H/32, W/32)",
           label_at=(56.5, 50), ha="left")
    _arrow(ax, [(79.4, 37), (76.6, 37)])

    # The FPN-style CNN, under the backbone so the skips run straight down (y 2..44).
    _box(ax, 18.5, 2, 24, 42, "", kind="panoptic head")
    ax.text(30.5, 40.5, "FPN-style CNN", ha="center", fontsize=12, fontweight="bold")
    steps = [("lay1, lay2  /32", 34), ("+ Res4 -> lay3  /16", 27), ("+ Res3 -> lay4  /8", 20),
             ("+ Res2 -> lay5  /4", 13), ("out_lay: 1 logit", 6)]
    for text, y in steps:
        ax.text(30.5, y, text, ha="center", va="center", fontsize=10.5, family="monospace")
    for x, name in [(23, "Res4"), (30.5, "Res3"), (38, "Res2")]:
        _arrow(ax, [(x, 55.4), (x, 44.6)], name, label_at=(x + 0.6, 50), ha="left",
               color="#1f4e79")
    _arrow(ax, [(46.4, 37), (43.1, 37)])

    # Row 3: from mask logits to the panoptic map (y 2..16).
    _box(ax, 47, 2, 24, 14, "mask logits", "(B, N, H/4, W/4)", "panoptic head")
    _box(ax, 79, 2, 28, 14, "pixel-wise argmax", "over queries with\nclass score > 0.85",
         "merge")
    _box(ax, 116, 2, 24, 14, "panoptic map", "(H, W) segment ids\n+ segments_info")
    for x0, x1 in [(43.1, 46.4), (71.6, 78.4), (107.6, 115.4)]:
        _arrow(ax, [(x0, 9), (x1, 9)])
    _arrow(ax, [(135, 55.4), (135, 22), (93, 22), (93, 16.6)], "class scores",
           label_at=(118, 22), ha="center")

    handles = [Patch(facecolor=c, edgecolor="#333333", label=k) for k, c in STAGE_COLORS.items()]
    ax.legend(handles=handles, loc="upper left", ncol=3, fontsize=10.5, frameon=False,
              bbox_to_anchor=(0.0, 1.02))
    return fig


# --------------------------------------------------------------------------------------------
# Images and maps (book/01_backbone.ipynb onwards)
# --------------------------------------------------------------------------------------------

def image_array(image, normalized: Optional[bool] = None) -> np.ndarray:
    """An (H, W, 3) float array in [0, 1] from a 3xHxW tensor, an HxWx3 array or a PIL image.

    A channels-first float image with values outside [0, 1] is taken as ImageNet-normalised
    (``normalized=None``) and mapped back with ``preprocessing.denormalize``
    (``book/01_backbone.ipynb``).
    """
    x = _to_numpy(image)
    if x.ndim not in (2, 3) or x.size == 0:
        raise ValueError(f"an image to draw must be HxW, HxWx3 or 3xHxW and not empty; got shape {x.shape}")
    if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):
        if normalized is None:
            normalized = x.dtype.kind == "f" and (x.min() < 0 or x.max() > 1)
        if normalized:
            return denormalize(torch.as_tensor(x))  # (H, W, 3)
        x = x.transpose(1, 2, 0)  # (3, H, W) -> (H, W, 3)
    if x.dtype.kind == "b":
        x = x.astype(float)  # False black, True white
    elif x.dtype == np.uint16:
        x = x.astype(float) / 65535.0  # 16-bit pixels, as load_image reads them
    elif x.dtype.kind in "ui":
        if x.min() < 0 or x.max() > 255:
            raise ValueError(f"an integer image must hold 8-bit pixels (0..255), or be uint16; got values "
                             f"in [{x.min()}, {x.max()}]: convert it with astype(np.uint8) or astype(np.uint16)")
        x = x.astype(float) / 255.0
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=-1)
    return np.clip(x[..., :3], 0, 1)


def show_image(image, ax=None, title: Optional[str] = None, normalized: Optional[bool] = None):
    """Show an image: a 3xHxW tensor, an HxWx3 array or a PIL image (``book/01_backbone.ipynb``,
    ``book/05_argmax_merge.ipynb``, ``book/07_train_it_yourself.ipynb``).

    An ImageNet-normalised tensor is mapped back to colours first (see :func:`image_array`).
    Returns the axes.
    """
    x = image_array(image, normalized)
    if ax is None:
        _, axes = new_figure(figsize=(6, 6 * x.shape[0] / x.shape[1]))
        ax = axes[0, 0]
    ax.imshow(x)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def show_cells_over_image(image, cell_map, ax=None, title: Optional[str] = None, outline=None,
                          vmax: Optional[float] = None, color=ATTENTION_COLOR,
                          outline_color: str = TRUTH_COLOR, grid: bool = True,
                          colorbar: bool = False, label: str = "attention weight"):
    """A coarse map (attention over the h x w cells of a feature map) over the image it was
    computed from (``book/02_transformer.ipynb``, ``book/03_attention_maps.ipynb``).

    The image is drawn in grey; each cell of ``cell_map`` (h, w) covers its block of H/h x W/w
    pixels, in ``color`` (red: attention), more opaque where the value is higher (opaque at
    ``vmax``, default the map's maximum: give panels that are compared one ``vmax``, convention 1
    of this module). ``grid`` draws the cell lines. ``outline``, an (H, W) boolean mask such as
    one ground-truth segment, is drawn as a line (blue: ground truth; orange: a predicted mask).
    ``colorbar`` adds the scale, drawn as the cells are (see :func:`attention_colorbar`).
    Returns the axes.
    """
    grey = 0.35 + 0.5 * image_array(image).mean(-1)  # (H, W): light grey, so the map stands out
    height, width = grey.shape
    if ax is None:
        _, axes = new_figure(figsize=(3.2, 3.2 * height / width))
        ax = axes[0, 0]
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
    weights = _to_numpy(cell_map).astype(float)                        # (h, w)
    if weights.ndim != 2:
        raise ValueError(f"cell_map must be one (h, w) map, got shape {weights.shape}: pick one "
                         "query and head, or sum the heads first")
    top = float(weights.max()) if vmax is None else float(vmax)
    scaled = np.clip(weights / top, 0, 1) if top > 0 else np.zeros_like(weights)
    rgba = np.zeros(scaled.shape + (4,))
    rgba[..., :3] = color
    rgba[..., 3] = 0.9 * scaled
    # pixel centres are at integers, so the image spans -0.5 .. W - 0.5
    ax.imshow(rgba, interpolation="nearest", extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    if grid:
        h, w = weights.shape
        for r in range(1, h):
            ax.axhline(r * height / h - 0.5, color="white", linewidth=0.6, alpha=0.8)
        for c in range(1, w):
            ax.axvline(c * width / w - 0.5, color="white", linewidth=0.6, alpha=0.8)
    if outline is not None:
        draw_outline(ax, outline, outline_color)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        attention_colorbar(ax, top, color=color, label=label)
    return ax


def draw_outline(ax, mask, color: str = TRUTH_COLOR, linewidth: float = 1.3):
    """Outline an (H, W) boolean mask on ``ax`` (blue: ground truth, orange: a prediction;
    ``book/03_attention_maps.ipynb``). The mask is padded with a False border first, so that a
    segment touching the image's edge gets a closed line along that edge; the axes keep the
    image's limits. Returns the contour set."""
    mask = _to_numpy(mask).astype(float)
    if mask.ndim != 2:
        raise ValueError(f"an outline needs one (H, W) mask, got shape {mask.shape}")
    height, width = mask.shape
    limits = ax.get_xlim(), ax.get_ylim()
    padded = np.pad(mask, 1)                                   # (H + 2, W + 2), False border
    lines = ax.contour(np.arange(-1, width + 1), np.arange(-1, height + 1), padded, levels=[0.5],
                       colors=color, linewidths=linewidth)
    if ax.images:
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
    return lines


def attention_colorbar(ax, vmax: float, color=ATTENTION_COLOR, label: str = "attention weight"):
    """A colour bar for :func:`show_cells_over_image`'s red cells: from 0 (white) to ``vmax``
    (opaque ``color``), drawn as the cells are, over white (``book/02_transformer.ipynb``,
    ``book/03_attention_maps.ipynb``). ``ax`` is one axes or a list of them (one bar for all,
    convention 1). Returns the colour bar."""
    from matplotlib.colors import LinearSegmentedColormap, Normalize
    from matplotlib.cm import ScalarMappable

    rgb = np.asarray(matplotlib.colors.to_rgb(color))
    ramp = LinearSegmentedColormap.from_list("attention", [(1, 1, 1), tuple(0.1 + 0.9 * rgb)])
    axes = list(np.ravel(ax)) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
    mappable = ScalarMappable(norm=Normalize(0, vmax), cmap=ramp)
    bar = axes[0].figure.colorbar(mappable, ax=axes, fraction=0.046, pad=0.04)
    bar.set_label(label, fontsize=8)
    return bar


def show_maps(maps, titles: Optional[Sequence[str]] = None, ncols: int = 4, cmap: str = ATTENTION_CMAP,
              suptitle: Optional[str] = None, size: float = 2.6, colorbar: bool = True,
              scale: str = "shared", vmin: Optional[float] = None, vmax: Optional[float] = None,
              label: Optional[str] = None):
    """A grid of 2-D maps: feature channels, attention maps, mask logits (``book/01_backbone.ipynb``,
    ``book/03_attention_maps.ipynb``, ``book/04_mask_head.ipynb``).

    ``maps`` is a (K, h, w) tensor or array, or a list of K 2-D maps of one shape. With
    ``scale="shared"`` (the default, convention 1) every map uses one colour scale, from ``vmin``
    to ``vmax`` (default: the smallest and largest value of all maps; centred on 0 with
    ``cmap=LOGIT_CMAP``), and the figure has one colour bar (``label`` names its quantity).
    ``scale="each"`` gives each map its own scale and, with ``colorbar``, its own bar: for maps of
    different quantities. Returns the figure, with K axes plus the colour bars.
    """
    if scale not in ("shared", "each"):
        raise ValueError(f"scale must be 'shared' (one colour scale for all maps) or 'each', got {scale!r}")
    maps = [_to_numpy(m).astype(float) for m in maps]
    if not maps:
        raise ValueError("show_maps needs at least one map")
    ncols = max(1, min(ncols, len(maps)))
    nrows = -(-len(maps) // ncols)
    h, w = maps[0].shape[-2:]
    norm = {}
    if scale == "shared":
        if any(m.shape != maps[0].shape for m in maps):
            raise ValueError("maps drawn on one shared scale must have one shape; got "
                             f"{sorted({m.shape for m in maps})}: pass scale='each' for maps of other sizes")
        low = min(float(m.min()) for m in maps) if vmin is None else float(vmin)
        high = max(float(m.max()) for m in maps) if vmax is None else float(vmax)
        if cmap == LOGIT_CMAP and vmin is None and vmax is None:
            high = max(abs(low), abs(high))
            low = -high
        norm = {"vmin": low, "vmax": high}
    width = size * ncols + (0.6 if colorbar and scale == "shared" else 0)
    fig, axes = new_figure(nrows, ncols, figsize=(width, size * nrows * h / w + 0.4 * bool(suptitle)))
    images = []
    for i, ax in enumerate(axes.flat):
        if i >= len(maps):
            fig.delaxes(ax)  # no empty frames in the last row
            continue
        im = ax.imshow(maps[i], cmap=cmap, **norm)
        images.append(im)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
        if colorbar and scale == "each":
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    if colorbar and scale == "shared":
        bar = fig.colorbar(images[0], ax=[ax for ax in axes.flat if ax in fig.axes], fraction=0.03, pad=0.02)
        if label:
            bar.set_label(label, fontsize=8)
    return fig


def show_maps_over_image(image, maps, titles: Optional[Sequence[str]] = None, outlines=None,
                         ncols: int = 4, vmax: Optional[float] = None, size: float = 2.2,
                         suptitle: Optional[str] = None):
    """Attention maps compared side by side over their image: the queries of one image, or the
    heads of one query (``book/03_attention_maps.ipynb``, ``book/04_mask_head.ipynb``).

    ``maps`` (K, h, w) on the image's cells; ``image`` is one image for all panels, or a list of
    K (one per panel, of one size: e.g. the images of a padded batch). Every panel is drawn by
    :func:`show_cells_over_image` (red cells, opacity = weight, cell lines) on ONE scale, 0 to
    ``vmax`` (default the largest weight of all panels), with one colour bar (convention 1): a
    weak map looks weak. ``outlines``: one (H, W) boolean mask for every panel, or a list with
    one mask (or None) per panel, drawn in :data:`TRUTH_COLOR` (a ground-truth segment).
    Returns the figure.
    """
    maps = [torch.as_tensor(m) for m in maps]
    if not maps:
        raise ValueError("show_maps_over_image needs at least one map")
    top = max(float(m.max()) for m in maps) if vmax is None else float(vmax)
    ncols = max(1, min(ncols, len(maps)))
    nrows = -(-len(maps) // ncols)
    images = list(image) if isinstance(image, (list, tuple)) else [image] * len(maps)
    if len(images) != len(maps):
        raise ValueError(f"{len(images)} images for {len(maps)} maps: give one image, or one per map")
    if outlines is not None and not isinstance(outlines, (list, tuple)) and np.ndim(_to_numpy(outlines)) == 2:
        outlines = [outlines] * len(maps)                        # one mask for every panel
    if outlines is not None and len(outlines) != len(maps):
        raise ValueError(f"{len(outlines)} outlines for {len(maps)} maps: give one mask, or one per map")
    height, width = image_array(images[0]).shape[:2]
    fig, axes = new_figure(nrows, ncols, figsize=(size * ncols + 0.9,
                                                  size * nrows * height / width + 0.3 + 0.3 * bool(suptitle)))
    panels = []
    for i, ax in enumerate(axes.flat):
        if i >= len(maps):
            fig.delaxes(ax)
            continue
        outline = None if outlines is None else outlines[i]
        show_cells_over_image(images[i], maps[i], ax=ax, vmax=top, outline=outline,
                              title=None if titles is None else titles[i])
        panels.append(ax)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    attention_colorbar(panels, top)
    return fig


def show_padding_masks(masks, titles: Optional[Sequence[str]] = None, ncols: int = 4,
                       size: float = 2.6):
    """Padding masks, True = padding (``book/01_backbone.ipynb``, ``book/02_transformer.ipynb``).

    ``masks`` is a (B, h, w) boolean tensor or array. Padding is drawn dark grey, image pixels
    light, with a legend; a mask of at most ``MAX_GRID_CELLS`` cells a side gets its cell lines,
    so that its cells can be counted. Returns the figure.
    """
    masks = _to_numpy(masks).astype(bool)
    if masks.ndim == 2:
        masks = masks[None]
    if titles is None:
        titles = [f"image {i}: {m.sum()} of {m.size} padded" for i, m in enumerate(masks)]
    cmap = ListedColormap(["#f3f3f3", PADDING_COLOR])
    fig = show_maps(masks.astype(float), titles=titles, ncols=ncols, cmap=cmap, size=size,
                    colorbar=False, scale="each")
    for ax, mask in zip(fig.axes, masks):
        ax.images[0].set_clim(0, 1)
        h, w = mask.shape
        if max(h, w) <= MAX_GRID_CELLS:  # cells a reader can count (convention 5)
            for r in range(1, h):
                ax.axhline(r - 0.5, color="#999999", linewidth=0.5)
            for c in range(1, w):
                ax.axvline(c - 0.5, color="#999999", linewidth=0.5)
    fig.legend(handles=[Patch(facecolor="#f3f3f3", edgecolor="#333333", label="image"),
                        Patch(facecolor=PADDING_COLOR, edgecolor="#333333", label="padding (True)")],
               loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, -0.08))
    return fig


# Segment colours (convention 4): tab20's greens, purples, browns, pinks, olives and cyans, then
# tab20b's greens, olives, browns and purples; no blue, orange, red or grey, whose meanings are
# the ground truth, a prediction, attention and padding.
_SEGMENT_TAB20 = (4, 5, 8, 9, 10, 11, 12, 13, 16, 17, 18, 19)
_SEGMENT_TAB20B = (4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19)


def segment_colors(n: int) -> np.ndarray:
    """``n`` distinguishable RGB colours, the same ones every time, none of them the blue, orange,
    red or grey that mean something else in the book (convention 4; ``book/05_argmax_merge.ipynb``)."""
    palette = np.concatenate([plt.get_cmap("tab20")(np.array(_SEGMENT_TAB20))[:, :3],
                              plt.get_cmap("tab20b")(np.array(_SEGMENT_TAB20B))[:, :3]])
    return palette[np.arange(n) % len(palette)]


def matched_colors(pred_ids, pred_segments: Sequence[Mapping], gt_ids,
                   gt_segments: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray]:
    """Colours for a prediction and its ground truth drawn side by side, so that a predicted
    segment has the colour of the ground-truth segment it matches (``book/07_train_it_yourself.ipynb``).

    A match is PQ's: the same category and IoU above 0.5 (so at most one per segment). The
    ground truth gets ``segment_colors`` in its order; an unmatched predicted segment gets a colour
    that no ground-truth segment has. Returns (pred_colors, gt_colors), RGB rows aligned with
    the two segment lists, for ``show_panoptic(..., colors=...)``.
    """
    palette = segment_colors(len(gt_segments) + len(pred_segments))
    gt_colors = palette[:len(gt_segments)]
    pred_colors = palette[len(gt_segments):].copy()                          # unmatched: unused colours
    if not pred_segments or not gt_segments:
        return pred_colors, gt_colors
    pred_ids = _to_numpy(pred_ids).astype(np.int64)
    gt_ids = _to_numpy(gt_ids).astype(np.int64)
    pred_masks = torch.stack([torch.from_numpy(pred_ids == s["id"]) for s in pred_segments])  # (P, h, w)
    gt_masks = torch.stack([torch.from_numpy(gt_ids == g["id"]) for g in gt_segments])        # (G, h, w)
    same_class = torch.tensor([[s["category_id"] == g["category_id"] for g in gt_segments]
                               for s in pred_segments])                                      # (P, G)
    match = ((mask_iou(pred_masks, gt_masks) > 0.5) & same_class).numpy()   # (P, G), at most one per row
    rows, cols = np.nonzero(match)
    pred_colors[rows] = gt_colors[cols]
    return pred_colors, gt_colors


def segment_labels(segments_info: Sequence[Mapping], category_names: Optional[Mapping[int, str]] = None,
                   show_ids: bool = False) -> list[str]:
    """Legend labels for segments, by class name (convention 3): "circle", "circle 2" for the
    second circle, then the kind and the area; with ``show_ids`` the segment id first
    (``book/05_argmax_merge.ipynb``, ``book/07_train_it_yourself.ipynb``)."""
    seen: dict[str, int] = {}
    labels = []
    for seg in segments_info:
        name = (category_names or {}).get(seg["category_id"], f"class {seg['category_id']}")
        seen[name] = seen.get(name, 0) + 1
        named = name if seen[name] == 1 else f"{name} {seen[name]}"
        kind = "thing" if seg.get("isthing") else "stuff"
        area = f", {seg['area']} px" if "area" in seg else ""
        labels.append(f"{seg['id']}: {named} ({kind}{area})" if show_ids else f"{named} ({kind}{area})")
    return labels


def show_panoptic(id_map, segments_info: Sequence[Mapping], image=None,
                  category_names: Optional[Mapping[int, str]] = None, ax=None,
                  title: Optional[str] = None, alpha: Optional[float] = None, colors=None,
                  show_ids: bool = False, legend: bool = True):
    """A panoptic segmentation, one flat colour per segment, with a legend of class names
    (``book/intro.ipynb``, ``book/05_argmax_merge.ipynb``, ``book/07_train_it_yourself.ipynb``).

    ``id_map`` is an (h, w) integer map of segment ids; ``segments_info`` a list of dicts with
    "id", "category_id", "isthing" and "area". Id 0 is VOID (unlabelled) and drawn black, unless
    ``segments_info`` lists a segment with id 0 (as the official post-processor numbers them). The
    colours are opaque, so each segment has exactly its legend's colour (convention 2): draw the
    image in its own panel. Blending over ``image`` happens only when ``alpha`` (< 1) is given,
    and then the legend's colours are no longer the map's. ``colors``, one RGB row per segment,
    replaces the default ``segment_colors`` (``matched_colors`` gives a prediction the colours of
    its ground truth). Legend labels come from :func:`segment_labels` (``show_ids`` adds the
    segment ids). Returns the axes.
    """
    ids = _to_numpy(id_map).astype(np.int64)
    rgb = np.zeros(ids.shape + (3,))
    rgb[:] = VOID_COLOR
    if colors is None:
        colors = segment_colors(len(segments_info))
    elif len(colors) != len(segments_info):
        raise ValueError(f"colors has {len(colors)} rows but there are {len(segments_info)} segments: "
                         "give one RGB colour per segment of segments_info")
    if image is not None and alpha is None:
        raise ValueError("show_panoptic draws flat colours so that its legend is true: draw the image in "
                         "its own panel (show_image), or pass alpha (< 1) to blend anyway")
    handles = []
    for color, seg, label in zip(colors, segments_info, segment_labels(segments_info, category_names, show_ids)):
        rgb[ids == seg["id"]] = color
        handles.append(Patch(facecolor=color, edgecolor="#333333", label=label))
    if (ids == 0).any() and all(seg["id"] != 0 for seg in segments_info):  # a listed id 0 is a segment
        handles.append(Patch(facecolor=VOID_COLOR, edgecolor="#333333", label="VOID (unlabelled)"))
    if image is not None:
        rgb = (1 - alpha) * image_array(image) + alpha * rgb
    if ax is None:
        _, axes = new_figure(figsize=(9, 9 * ids.shape[0] / ids.shape[1] / 1.45))
        ax = axes[0, 0]
    ax.imshow(rgb, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9,
                  frameon=False)
    return ax


# --------------------------------------------------------------------------------------------
# Shape tables (every chapter that traces tensors)
# --------------------------------------------------------------------------------------------

@dataclass
class ShapeTable:
    """Rows of (name, shape, stride); shown as HTML in the book, as aligned text elsewhere
    (made by ``shape_table``, ``book/01_backbone.ipynb`` onwards)."""

    rows: list

    def __repr__(self) -> str:
        header = ("name", "shape", "stride")
        widths = [max(len(r[i]) for r in [header, *self.rows]) for i in range(3)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                 for row in [header, *self.rows]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        cell = '<td style="padding: 0.15em 1.2em 0.15em 0; text-align: left">'
        head = "".join(f'<th style="padding-right: 1.2em; text-align: left">{h}</th>'
                       for h in ("name", "shape", "stride"))
        body = "".join("<tr>" + "".join(f"{cell}<code>{html.escape(c)}</code></td>" for c in row)
                       + "</tr>" for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def shape_table(named_tensors, input_size: Optional[Sequence[int]] = None,
                strides: Optional[Mapping[str, object]] = None) -> ShapeTable:
    """A table of name / shape / stride (``book/01_backbone.ipynb`` to ``book/05_argmax_merge.ipynb``).

    ``named_tensors`` maps names to tensors, arrays or shapes (``torch.Size``, tuples); a list of
    (name, value) pairs keeps its order too. The stride of a 4-D (B, C, h, w) value is the power
    of two nearest to ``input_size[0] / h`` when ``input_size`` (H, W) is given (the ResNet rounds
    sizes up, so a 375-pixel side gives 12 cells at stride 32, not 31); ``strides`` sets it by
    name (e.g. ``{"pred_masks": 4}``). Other rows show "-".
    """
    items = named_tensors.items() if isinstance(named_tensors, Mapping) else named_tensors
    rows = []
    for name, value in items:
        shape = tuple(int(s) for s in (value.shape if hasattr(value, "shape") else value))
        stride = (strides or {}).get(name)
        if stride is None and input_size is not None and len(shape) == 4:
            stride = 2 ** round(math.log2(input_size[0] / shape[-2]))
        rows.append((str(name), str(shape), "-" if stride is None else f"/{stride}"))
    return ShapeTable(rows)


# --------------------------------------------------------------------------------------------
# Your own labels (book/09_your_own_dataset.ipynb)
# --------------------------------------------------------------------------------------------

def show_export(image, annotations: Sequence[Mapping], semantic, category_names: Mapping[int, str],
                stuff_colors: Optional[Mapping[int, Sequence[float]]] = None):
    """What a labelling tool exported for one image, in three panels (``book/09_your_own_dataset.ipynb``):
    the photo; the same photo with each instance's polygon outlined and named; the semantic PNG
    of the stuff in flat colours (0, unlabelled, black), with a legend of class names.

    ``annotations``: the image's entries of a COCO instances JSON (``category_id`` and polygon
    ``segmentation``); ``semantic``: the (H, W) array of stuff category ids. Returns the figure.
    """
    from matplotlib.patches import Polygon as PolygonPatch
    pixels = image_array(image)
    semantic = _to_numpy(semantic).astype(np.int64)
    fig, axes = new_figure(1, 3, figsize=(12, 3.6 * pixels.shape[0] / pixels.shape[1] + 0.6))
    axes[0, 0].imshow(pixels)
    axes[0, 0].set_title("the photo")
    axes[0, 1].imshow(pixels)
    axes[0, 1].set_title(f"instances.json: {len(annotations)} polygons")
    thing_ids = sorted({a["category_id"] for a in annotations})
    outline = dict(zip(thing_ids, segment_colors(len(thing_ids) + 8)[::2]))
    for ann in annotations:
        for polygon in ann["segmentation"]:
            points = np.asarray(polygon, dtype=float).reshape(-1, 2)
            axes[0, 1].add_patch(PolygonPatch(points, closed=True, fill=False, lw=1.6,
                                              edgecolor=outline[ann["category_id"]]))
    values = sorted(set(np.unique(semantic).tolist()))
    palette = stuff_colors or {}
    rgb = np.zeros(semantic.shape + (3,))
    handles = []
    fallback = iter(segment_colors(len(values) + 8)[1::2])
    for value in values:
        color = VOID_COLOR if value == 0 else tuple(palette.get(value, next(fallback)))
        rgb[semantic == value] = color
        label = "0: unlabelled" if value == 0 else f"{value}: {category_names.get(value, value)}"
        handles.append(Patch(facecolor=color, edgecolor="#333333", label=label))
    handles += [Patch(facecolor="none", edgecolor=outline[c], lw=1.6, label=f"{c}: {category_names.get(c, c)}")
                for c in thing_ids]
    axes[0, 2].imshow(rgb, interpolation="nearest")
    axes[0, 2].set_title("semantic PNG (stuff ids)")
    for ax in axes[0]:
        ax.set_axis_off()
    axes[0, 2].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                      title="category id: name")
    fig.tight_layout()
    return fig


def show_predictions(images: Sequence, truths: Sequence[tuple], predictions: Sequence[tuple],
                     category_names: Mapping[int, str], titles: Optional[Sequence[str]] = None):
    """Held-out images, their ground truth and the model's panoptic maps, one row per image
    (``book/09_your_own_dataset.ipynb``).

    ``truths`` and ``predictions``: ``(id_map, segments_info)`` pairs. A predicted segment gets the
    colour of the ground-truth segment it matches in PQ's sense (``matched_colors``: same class,
    IoU above 0.5); a segment without a match gets a colour no ground-truth segment has. Colours
    are flat (not blended with the photo), so the legends' colours are the map's. Returns the figure.
    """
    rows = len(images)
    fig, axes = new_figure(rows, 3, figsize=(12, 4.6 * rows))
    for r, (image, (gt_ids, gt_segments), (pred_ids, pred_segments)) in enumerate(zip(images, truths, predictions)):
        pred_colors, gt_colors = matched_colors(pred_ids, pred_segments, gt_ids, gt_segments)
        show_image(image, ax=axes[r, 0], title=(titles[r] if titles else None))
        show_panoptic(gt_ids, gt_segments, category_names=category_names, ax=axes[r, 1],
                      title="ground truth", colors=gt_colors)
        show_panoptic(pred_ids, pred_segments, category_names=category_names, ax=axes[r, 2],
                      title="model", colors=pred_colors)
        for ax in axes[r, 1:]:   # legends under their maps, so that no panel hides another's
            legend = ax.get_legend()
            handles = getattr(legend, "legend_handles", None) or legend.legendHandles   # matplotlib < 3.7
            ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2,
                      fontsize=8, frameon=False, handlelength=1.2, columnspacing=0.8)
    fig.tight_layout()
    return fig
