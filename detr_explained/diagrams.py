"""Diagrams drawn by code, from the real computation (chapters 2, 3, 4, 5 and 7).

Each function runs a small piece of the package (a positional encoding, an attention module, a
model's mask head, the merge, the matcher) on a tiny example and draws what it computed. No
number or shape in these figures is typed in: widths are read from the modules, values from
the tensors the package's own functions return, and every function checks the numbers it draws
against the formula it illustrates before it draws them.

    draw_tokens         image to tokens, positional encoding    book/02_transformer.ipynb
    draw_joint_softmax  one softmax over heads x cells          book/03_attention_maps.ipynb
    draw_fpn_head       the FPN mask head and its widths        book/04_mask_head.ipynb
    draw_argmax_merge   threshold, argmax, stuff merge          book/05_argmax_merge.ipynb
    draw_matching       Hungarian matching as a graph           book/07_train_it_yourself.ipynb

Figure conventions
------------------
* The caption is the chapter's job; each figure has a title that says what to look at.
* One colour meaning per figure (the feature-map row of a token, the attention head, the stage
  of the model, the kept query, the ground-truth segment), named in the figure by a legend or
  by labels drawn in the same colours; the legend's colours are exactly the drawn ones.
  Neutral greys carry no meaning.
* The book's colours keep their one meaning here too (convention 4 of :mod:`detr_explained.figures`):
  the colours that name rows, heads, queries or segments (:data:`LIGHT_COLORS`, and
  :data:`DARK_COLORS` for their lines) are none of red (attention over an image), orange (a
  predicted mask, the chosen cell or query) or blue (the outline of a ground-truth segment),
  and a ground-truth box is outlined in ``figures.TRUTH_COLOR``. The stages' fills are the
  pipeline diagram's (``figures.STAGE_COLORS``).
* Drawn for a figure 10 to 11 inches wide, text 9 pt or larger; no two labels overlap (the
  tests measure every text's box in the rendered figure).
* One data unit is a tenth of an inch: the axes fill the figure, so the layout is in inches.
* Text that shows a number the tests read back has a ``gid`` (e.g. ``"joint-0-1-0"``).
* Built with ``figures.new_figure``: opaque white, also when saved, for the book's dark theme.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch, Rectangle

from .attention_maps import BoxAttentionMaps
from .checks import whole_number
from .config import CONFIGS, get_config
from .figures import STAGE_COLORS, TRUTH_COLOR, _arrow, _box, new_figure
from .matcher import COST_BBOX, COST_CLASS, COST_GIOU, HungarianMatcher, match_cost
from .mask_head import SKIPS
from .merge import KEEP_THRESHOLD, MAX_REMOVED_AREA, check_threshold, merge_panoptic, select_queries
from .position_encoding import SinePositionEncoding
from .synthetic import CATEGORY_NAMES, NUM_CLASSES, THING_IDS
from .transformer import EncoderLayer

# Data units per inch: the axes fill the figure, so coordinates are tenths of an inch.
UNITS = 10
# Light colours that name a row, head, query or segment: dark enough to tell apart and light
# enough for black text on them, and none of the book's red, orange or blue (figures, convention
# 4), which mean attention, a prediction and the ground truth. DARK_COLORS: the same hues, for lines.
LIGHT_COLORS = ("#98df8a", "#c5b0d5", "#dbdb8d", "#9edae5", "#f7b6d2")
DARK_COLORS = ("#2ca02c", "#9467bd", "#bcbd22", "#17becf", "#e377c2")
GREY_TEXT = "#666666"
EDGE = "#333333"


# --------------------------------------------------------------------------------------------
# Drawing helpers
# --------------------------------------------------------------------------------------------

def _canvas(width: float, height: float):
    """A figure of width x height inches whose one axes fills it, 10 data units per inch."""
    fig, axes = new_figure(figsize=(width, height))
    ax = axes[0, 0]
    ax.set_position([0, 0, 1, 1])
    ax.set_xlim(0, width * UNITS)
    ax.set_ylim(0, height * UNITS)
    ax.axis("off")
    return fig, ax


def _title(ax, title: str, subtitle: str = "") -> None:
    """The title (what to look at) and an optional second line, at the top of the canvas."""
    top = ax.get_ylim()[1]
    middle = ax.get_xlim()[1] / 2
    ax.text(middle, top - 2.2, title, ha="center", va="center", fontsize=13.5, fontweight="bold")
    if subtitle:
        ax.text(middle, top - 5.4, subtitle, ha="center", va="center", fontsize=10.5, color="#222222")


def _cell(ax, x, y, w, h, text="", face="white", gid=None, size=10.0, weight="normal",
          family=None, edge="#555555", lw=0.9, color="black"):
    """A rectangle with centred text; returns the text (None without text)."""
    ax.add_patch(Rectangle((x, y), w, h, facecolor=face, edgecolor=edge, lw=lw))
    if not text:
        return None
    return ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size,
                   fontweight=weight, family=family, gid=gid, color=color)


def _fmt(value: float, digits: int = 2) -> str:
    """A number with ``digits`` decimals, never "-0.00"."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _vector(values) -> str:
    """A short integer vector as "[2 0 1 0]"."""
    return "[" + " ".join(f"{int(v)}" for v in values) + "]"


def _label_last_texts(ax, count: int, gids: Sequence[Optional[str]]) -> None:
    """Give gids to the last ``count`` texts of ``ax`` (those ``figures._box`` just drew)."""
    for text, gid in zip(ax.texts[-count:], gids):
        if gid:
            text.set_gid(gid)


def _model_name(model) -> str:
    """The name of a model's config in CONFIGS, or "this model"."""
    config = getattr(model, "config", None)
    return next((name for name, c in CONFIGS.items() if c == config), "this model")


# --------------------------------------------------------------------------------------------
# 1. Image to tokens (book/02_transformer.ipynb)
# --------------------------------------------------------------------------------------------

def token_example(height: int = 3, width: int = 4, d: int = 8, temperature: Optional[float] = None) -> dict:
    """The tokens of a small feature map and their position code, as the transformer makes them
    (``book/02_transformer.ipynb``; drawn by :func:`draw_tokens`).

    A (1, d, height, width) feature map whose channels 0 and 1 hold each cell's row and column
    (so that a cell can be followed through the flattening) is flattened as
    ``transformer.Transformer.forward`` does, ``flatten(2).permute(2, 0, 1)``, and so is the sine
    position code of the same grid (``position_encoding.SinePositionEncoding`` with d/2 features
    per axis). A real ``transformer.EncoderLayer`` is then run on them, and the inputs its
    self-attention receives are recorded: query and key are tokens + pos, the value the tokens.

    Returns a dict: ``tokens`` (H*W, 1, d), ``pos`` (H*W, 1, d), ``where`` (H*W, 2) the (row, col)
    each token came from, ``attention_inputs`` (query, key, value), ``encoding`` (the module).
    """
    height = whole_number(height, "height")
    width = whole_number(width, "width")
    d = whole_number(d, "d", 4)
    if d % 4:
        raise ValueError(f"d must be a multiple of 4 (d/2 features per axis, in sin/cos pairs), got {d}")
    if temperature is None:
        temperature = get_config("detr-r50-panoptic").pos_temperature
    encoding = SinePositionEncoding(d // 2, temperature)
    mask = torch.zeros(1, height, width, dtype=torch.bool)              # no padding
    pos = encoding(mask)                                                # (1, d, H, W)
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    feature = torch.randn(1, d, height, width, generator=torch.Generator().manual_seed(0))
    feature[0, 0], feature[0, 1] = rows.float(), cols.float()           # follow each cell
    tokens = feature.flatten(2).permute(2, 0, 1)                        # (H*W, 1, d): Transformer.forward
    pos_tokens = pos.flatten(2).permute(2, 0, 1)                        # (H*W, 1, d)
    where = tokens[:, 0, :2].round().long()                             # (H*W, 2) row, col

    layer = EncoderLayer(d, 2, 2 * d, 0.0).eval()
    seen = {}

    def record(module, args, kwargs):
        seen.update(query=args[0], key=args[1], value=kwargs["value"])

    handle = layer.self_attn.register_forward_pre_hook(record, with_kwargs=True)
    with torch.no_grad():
        layer(tokens, pos_tokens, None)
    handle.remove()
    return {"tokens": tokens, "pos": pos_tokens, "where": where, "encoding": encoding,
            "attention_inputs": (seen["query"], seen["key"], seen["value"])}


def draw_tokens(height: int = 3, width: int = 4, d: int = 8, temperature: Optional[float] = None):
    """Image to tokens, drawn for ``book/02_transformer.ipynb``: a height x width Res5 grid of d
    channels is read row by row into H*W tokens of width d (token index = row * W + col), and the
    sine position code of the same grid, flattened the same way, is added to the queries and
    keys of self-attention but not to its values.

    Everything comes from :func:`token_example`: the token order from flattening a real tensor,
    the code's values from ``SinePositionEncoding``, the q/k/v rule from the inputs a real
    ``EncoderLayer`` hands to its attention. Up to 3 x 4 cells and d <= 8, so every number fits.
    Returns the figure.
    """
    example = token_example(height, width, d, temperature)
    tokens, pos, where = example["tokens"], example["pos"], example["where"]
    count, _, d = tokens.shape
    if count > 12 or d > 8 or height > 3 or width > 4:
        raise ValueError(f"the diagram shows a grid of up to 3 x 4 cells, at most 12 tokens of width at most 8 "
                         f"(every number must be legible); got {height} x {width} = {count} tokens of width {d}")
    order = [(int(r), int(c)) for r, c in where]
    for index, (r, c) in enumerate(order):        # the rule the diagram states
        if index != r * width + c:
            raise AssertionError(f"token {index} came from cell {(r, c)}, not row * W + col")
    query, key, value = example["attention_inputs"]
    if not (torch.equal(query, tokens + pos) and torch.equal(key, tokens + pos) and torch.equal(value, tokens)):
        raise AssertionError("EncoderLayer's attention did not get q = k = x + pos, v = x")
    encoding = example["encoding"]
    features = encoding.num_pos_feats
    frequencies = encoding.temperature ** (2 * (torch.arange(features) // 2) / features)  # (F,)
    full_d = get_config("detr-r50-panoptic").hidden_dim

    fig, ax = _canvas(11, 7.4)
    _title(ax, "Image to tokens: the grid is read row by row, token index = row \u00b7 W + col",
           f"colour = the feature-map row a token comes from; d = {d} here ({full_d} in detr-r50-panoptic)")
    row_colors = [LIGHT_COLORS[r % len(LIGHT_COLORS)] for r in range(height)]

    # The feature map, cells numbered in token order.
    cell, gx0, gtop = 7.0, 10.0, 57.0
    ax.text(2.0, gtop + 4.4, f"Res5 feature map (d, H, W) = ({d}, {height}, {width})",
            ha="left", va="center", fontsize=11, fontweight="bold")
    for c in range(width):
        ax.text(gx0 + (c + 0.5) * cell, gtop + 1.5, f"col {c}", ha="center", va="center", fontsize=9.5)
    for r in range(height):
        y = gtop - (r + 1) * cell
        ax.text(gx0 - 1.0, y + cell / 2, f"row {r}", ha="right", va="center", fontsize=9.5,
                bbox=dict(boxstyle="round,pad=0.25", facecolor=row_colors[r], edgecolor=EDGE, lw=0.8))
    for index, (r, c) in enumerate(order):
        x, y = gx0 + c * cell, gtop - (r + 1) * cell
        _cell(ax, x, y, cell, cell, face=row_colors[r], edge=EDGE)
        ax.text(x + cell / 2, y + cell * 0.62, str(index), ha="center", va="center", fontsize=14,
                fontweight="bold", gid=f"grid-{r}-{c}")
        ax.text(x + cell / 2, y + cell * 0.22, f"({r}, {c})", ha="center", va="center", fontsize=9.5)
    r, c = height // 2, width // 2
    ax.text(2.0, gtop - height * cell - 3.0,
            f"index = row\u00b7W + col: ({r}, {c}) \u2192 {r}\u00b7{width} + {c} = {order.index((r, c))}",
            ha="left", va="center", fontsize=10, family="monospace", gid="index-example")

    # The token sequence, one column per token, and the position code under it.
    sx0, sx1 = 50.0, 108.5
    cw = (sx1 - sx0) / count
    ax.text(sx0, gtop + 4.4, f"tokens x: flatten(2).permute(2, 0, 1) \u2192 (H\u00b7W, d) = ({count}, {d})",
            ha="left", va="center", fontsize=11, fontweight="bold")
    strip_y, strip_h = gtop - 8.0, 8.0
    for index, (r, c) in enumerate(order):
        x = sx0 + index * cw
        _cell(ax, x, strip_y, cw, strip_h, face=row_colors[r], edge=EDGE)
        ax.text(x + cw / 2, strip_y + strip_h * 0.66, str(index), ha="center", va="center", fontsize=12,
                fontweight="bold", gid=f"token-{index}")
        ax.text(x + cw / 2, strip_y + strip_h * 0.25, f"({r},{c})", ha="center", va="center", fontsize=9)
    _arrow(ax, [(gx0 + width * cell + 0.6, strip_y + strip_h / 2), (sx0 - 0.6, strip_y + strip_h / 2)])
    ax.text((gx0 + width * cell + sx0) / 2, strip_y + strip_h / 2 + 2.0, "flatten", ha="center",
            va="center", fontsize=9.5, family="monospace")

    rh = 3.6
    table_top = strip_y - 4.6
    ax.text(sx0, table_top + 2.0, f"+ pos (H\u00b7W, d): the sine code of the same {height} x {width} grid, "
            "flattened alike", ha="left", va="center", fontsize=10.5, fontweight="bold")
    values = pos[:, 0, :]                                               # (H*W, d)
    for ch in range(d):
        y = table_top - (ch + 1) * rh
        axis, i = ("y", ch) if ch < features else ("x", ch - features)
        trig = "sin" if i % 2 == 0 else "cos"
        ax.text(sx0 - 0.8, y + rh / 2, f"{ch}: {trig}({axis}/{float(frequencies[i]):g})", ha="right",
                va="center", fontsize=9.5, family="monospace")
        for index in range(count):
            _cell(ax, sx0 + index * cw, y, cw, rh, _fmt(float(values[index, ch])), size=9.5,
                  gid=f"pos-{ch}-{index}", edge="#999999", lw=0.6)
    ax.text(sx0, table_top - d * rh - 2.2,
            f"channels 0-{features - 1} code the row (y), {features}-{d - 1} the column (x); "
            "y and x are normalised to (0, 2\u03c0]", ha="left", va="center", fontsize=9.5, color="#222222")

    # Where the code goes: query and key, not value (recorded from a real EncoderLayer).
    ax.text(3.0, 29.5, "inside an EncoderLayer:", ha="left", va="center", fontsize=10.5, fontweight="bold")
    _box(ax, 3, 20.5, 12, 5.5, "x", "tokens")
    _box(ax, 21, 20.5, 12, 5.5, "pos", "position")
    _box(ax, 3, 10.5, 12, 5.5, "value", "x")
    _box(ax, 21, 10.5, 12, 5.5, "query, key", "x + pos")
    _box(ax, 3, 1.2, 30, 5.2, "self_attn(q, k, value=v)")
    _arrow(ax, [(9, 20.1), (9, 16.5)])
    _arrow(ax, [(27, 20.1), (27, 16.5)])
    _arrow(ax, [(15.4, 21.0), (20.6, 15.8)])
    _arrow(ax, [(9, 10.1), (9, 6.9)])
    _arrow(ax, [(27, 10.1), (27, 6.9)])
    return fig


# --------------------------------------------------------------------------------------------
# 2. The joint softmax of the attention maps (book/03_attention_maps.ipynb)
# --------------------------------------------------------------------------------------------

# The hand-sized example: one query of 2 heads x 4 channels, keys on a 2 x 2 grid.
_EXAMPLE_Q = [[2, 0, 1, 0],
              [0, 1, 0, 1]]
_EXAMPLE_K = [  # (M, c, h, w), written per head as one c-vector per cell, then transposed
    [[[1, 0, 0, 0], [0, 1, 1, 0]], [[1, 0, 2, 0], [0, 0, 0, 1]]],
    [[[0, 1, 0, 0], [0, 0, 0, 0]], [[1, 0, 1, 0], [0, 2, 0, 0]]],
]


def joint_softmax_example(q=None, k=None) -> dict:
    """The attention maps of one query, computed by ``attention_maps.BoxAttentionMaps`` with
    identity projections, so that a student can check them by hand (``book/03_attention_maps.ipynb``;
    drawn by :func:`draw_joint_softmax`).

    q: (M, c) the query split into M heads of c channels; k: (M, c, h, w) the keys. Default:
    2 heads of 4 small whole numbers on a 2 x 2 grid. The module's q_linear and k_linear are set
    to the identity with zero bias, so its output is softmax over all M*h*w scores
    q[n] . k[n, :, i, j] / sqrt(c); this is checked. Returns a dict of tensors: ``q``, ``k``,
    ``scores`` (M, h, w), ``joint`` (M, h, w, the module's output), ``per_head`` (M, h, w, a softmax
    per head, which DETR does NOT take), and ``scale`` (the module's 1/sqrt(c)).
    """
    if q is None:
        q = _EXAMPLE_Q
    if k is None:
        k = torch.tensor(_EXAMPLE_K).permute(0, 3, 1, 2)                 # (M, h, w, c) -> (M, c, h, w)
    q = torch.as_tensor(q, dtype=torch.float32)
    k = torch.as_tensor(k, dtype=torch.float32)
    if q.dim() != 2 or k.dim() != 4 or k.shape[:2] != q.shape:
        raise ValueError(f"q must be (M, c) and k (M, c, h, w) with the same M and c; got {tuple(q.shape)} "
                         f"and {tuple(k.shape)}")
    heads, channels, h, w = k.shape
    module = BoxAttentionMaps(heads * channels, heads * channels, heads).eval()
    with torch.no_grad():
        for linear in (module.q_linear, module.k_linear):
            linear.weight.copy_(torch.eye(heads * channels))
            linear.bias.zero_()
        joint = module(q.reshape(1, 1, heads * channels), k.reshape(1, heads * channels, h, w))[0, 0]  # (M, h, w)
    scores = (q[:, :, None, None] * k).sum(1) / math.sqrt(channels)      # (M, h, w): q . k / sqrt(c)
    expected = scores.flatten().softmax(0).view(heads, h, w)            # one softmax over M*h*w
    if not torch.allclose(joint, expected, atol=1e-6):
        raise AssertionError("BoxAttentionMaps with identity projections is not softmax(q.k/sqrt(c)) "
                             "over all heads")
    per_head = scores.flatten(1).softmax(-1).view(heads, h, w)          # for contrast only
    return {"q": q, "k": k, "scores": scores, "joint": joint, "per_head": per_head, "scale": module.scale}


def draw_joint_softmax(q=None, k=None):
    """The attention-map computation of ``book/03_attention_maps.ipynb`` on a hand-sized example:
    one query q (M heads x c channels), keys k (M x c x h x w), the scores q . k / sqrt(c) per head
    and cell, then ONE softmax over heads x h x w jointly (all M*h*w weights sum to 1, each head's
    part to its share), beside the per-head softmax DETR does not take.

    The numbers are the output of ``BoxAttentionMaps`` (see :func:`joint_softmax_example`);
    default: 2 heads of 4 channels on a 2 x 2 grid, 8 weights. Sizes must fit 11 inches: up to 3
    heads, c <= 4, h <= 3 rows and w <= 2 columns. Returns the figure.
    """
    ex = joint_softmax_example(q, k)
    q, k, scores, joint, per_head = ex["q"], ex["k"], ex["scores"], ex["joint"], ex["per_head"]
    heads, channels, h, w = k.shape
    longest = max(len(_vector(v)) for v in [*q, *k.permute(0, 2, 3, 1).reshape(-1, channels)])
    vec_w = 0.85 * longest + 2.2                                        # a c-vector's cell, in monospace
    sw = 6.0
    # column widths: the grid, or its two-line header if wider
    k_col, s_col, j_col, p_col = max(w * vec_w, 22.0), max(w * sw, 12.0), max(w * sw, 15.0), max(w * sw, 17.0)
    x_label, x_q, x_k = 1.0, 11.0, 26.0
    x_s = x_k + k_col + 5.0
    x_j = x_s + s_col + 5.0
    x_sep = x_j + j_col + 3.0
    x_p = x_sep + 3.0
    if heads > 3 or channels > 4 or h > 3 or x_p + p_col > 109.0:
        raise ValueError(f"the diagram fits up to 3 heads, 4 channels, 3 rows and 2 columns of one-digit "
                         f"numbers; got M={heads}, c={channels}, h x w = {h} x {w}, vectors like "
                         f"{_vector(k[0, :, 0, 0])}")
    total = heads * h * w
    head_colors = [LIGHT_COLORS[n] for n in range(heads)]
    ch, gap = 5.0, 7.0
    height_in = (16.0 + heads * (h * ch + gap) + 12.0) / UNITS
    fig, ax = _canvas(11, height_in)
    top_y = height_in * UNITS
    _title(ax, f"Attention maps: ONE softmax over heads \u00d7 cells, so all {total} weights sum to 1",
           "colour = the attention head; each head's weights sum to its share of the query's attention, not to 1")

    head_top = top_y - 15.5
    # each grid centred in its column
    g_k, g_s = x_k + (k_col - w * vec_w) / 2, x_s + (s_col - w * sw) / 2
    g_j, g_p = x_j + (j_col - w * sw) / 2, x_p + (p_col - w * sw) / 2

    def header(x, text):
        ax.text(x, head_top + 1.8, text, ha="center", va="bottom", fontsize=10, linespacing=1.3)

    q_w = max(11.0, vec_w)
    header(x_q + q_w / 2, f"q: one query\n(M, c) = ({heads}, {channels})")
    header(x_k + k_col / 2, f"k: a c-vector per cell\n(M, c, h, w) = ({heads}, {channels}, {h}, {w})")
    header(x_s + s_col / 2, "scores\nq \u00b7 k / \u221ac")
    header(x_j + j_col / 2, f"joint softmax over\nM\u00b7h\u00b7w = {total} numbers")
    header(x_p + p_col / 2, "per-head softmax\n(NOT what DETR does)")
    ax.plot([x_sep, x_sep], [2.0, head_top + 6.5], color=GREY_TEXT, lw=1.0, ls="--")

    for n in range(heads):
        top = head_top - n * (h * ch + gap)
        mid = top - h * ch / 2
        ax.text(x_label + 3.8, mid, f"head {n}", ha="center", va="center", fontsize=10.5, fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.3", facecolor=head_colors[n], edgecolor=EDGE, lw=0.8))
        _cell(ax, x_q, mid - 2.5, q_w, 5.0, _vector(q[n]), face=head_colors[n], family="monospace",
              gid=f"q-{n}", edge=EDGE)
        ax.text((x_q + q_w + g_k) / 2, mid, "\u00b7", ha="center", va="center", fontsize=20, fontweight="bold")
        for i in range(h):
            for j in range(w):
                y = top - (i + 1) * ch
                _cell(ax, g_k + j * vec_w, y, vec_w, ch, _vector(k[n, :, i, j]), face=head_colors[n],
                      family="monospace", gid=f"k-{n}-{i}-{j}", edge=EDGE)
                _cell(ax, g_s + j * sw, y, sw, ch, _fmt(float(scores[n, i, j])), face=head_colors[n],
                      gid=f"score-{n}-{i}-{j}", edge=EDGE)
                _cell(ax, g_j + j * sw, y, sw, ch, _fmt(float(joint[n, i, j]), 3), face=head_colors[n],
                      gid=f"joint-{n}-{i}-{j}", edge=EDGE, weight="bold")
                _cell(ax, g_p + j * sw, y, sw, ch, _fmt(float(per_head[n, i, j]), 3), face=head_colors[n],
                      gid=f"perhead-{n}-{i}-{j}", edge=EDGE)
        _arrow(ax, [(g_k + w * vec_w + 0.6, mid), (g_s - 0.6, mid)])
        _arrow(ax, [(g_s + w * sw + 0.6, mid), (g_j - 0.6, mid)])
        bottom = top - h * ch
        ax.text(x_j + j_col / 2, bottom - 1.9, f"\u03a3 = {_fmt(float(joint[n].sum()), 3)}", ha="center",
                va="center", fontsize=10, gid=f"jointsum-{n}")
        ax.text(x_p + p_col / 2, bottom - 1.9, f"\u03a3 = {_fmt(float(per_head[n].sum()), 3)}", ha="center",
                va="center", fontsize=10, gid=f"perheadsum-{n}")

    last = head_top - heads * (h * ch + gap) + gap - 2.0
    ax.text(x_j + j_col / 2, last - 3.2, f"all {total}: \u03a3 = {_fmt(float(joint.sum()), 3)}",
            ha="center", va="center", fontsize=10.5, fontweight="bold", gid="joint-total")
    ax.text(x_p + p_col / 2, last - 3.2, f"all {total}: \u03a3 = {_fmt(float(per_head.sum()), 3)}",
            ha="center", va="center", fontsize=10.5, gid="perhead-total")
    n, i, j = (int(v) for v in np.unravel_index(int(scores.argmax()), scores.shape))
    terms = " + ".join(f"{int(a)}\u00b7{int(b)}" for a, b in zip(q[n], k[n, :, i, j]))
    root = _fmt(math.sqrt(channels), 2).rstrip("0").rstrip(".")         # "2", "1.41"
    ax.text(1.0, 5.6, f"score = q \u00b7 k / \u221ac with c = {channels}, e.g. head {n}, cell ({i}, {j}): "
            f"({terms}) / {root} = {_fmt(float(scores[n, i, j]))}",
            ha="left", va="center", fontsize=10, family="monospace")
    ax.text(1.0, 2.2, f"weight = exp(score) / (sum of exp(score) over all {heads} heads and {h * w} cells)  "
            f"e.g. {_fmt(float(joint[n, i, j]), 3)} here", ha="left", va="center", fontsize=10,
            family="monospace")
    return fig


# --------------------------------------------------------------------------------------------
# 3. The FPN mask head (book/04_mask_head.ipynb)
# --------------------------------------------------------------------------------------------

def fpn_stages(model) -> dict:
    """The mask head of ``model`` run on zeros for one query, recording every stage
    (``book/04_mask_head.ipynb``; drawn by :func:`draw_fpn_head`).

    Res5 is 2 x 2 cells; each skip is as large as the backbone's strides say. Returns a dict:
    ``shapes`` {stage name: (channels, stride)} for input, lay1, lay2, +res4, lay3, +res3, lay4,
    +res2, lay5, out_lay, read from the recorded tensors; ``strides`` the backbone's;
    ``hidden_dim`` and ``nheads``.
    """
    head = model.mask_head
    resnet = model.detr.backbone.resnet
    strides = dict(resnet.strides)
    d = head.hidden_dim
    nheads = head.lay1.in_channels - d
    if nheads != model.bbox_attention.num_heads:
        raise AssertionError(f"lay1 takes {head.lay1.in_channels} = d + {nheads} channels, but the model "
                             f"has {model.bbox_attention.num_heads} heads")
    cells = 2
    adapters = (head.adapter1, head.adapter2, head.adapter3)
    fpns = []
    for adapter, level in zip(adapters, SKIPS):
        if adapter.in_channels != resnet.channels[level]:
            raise AssertionError(f"{level} has {resnet.channels[level]} channels, its adapter takes "
                                 f"{adapter.in_channels}")
        side = cells * strides["res5"] // strides[level]
        fpns.append(torch.zeros(1, adapter.in_channels, side, side))
    recorder = {}
    with torch.no_grad():
        head(torch.zeros(1, d, cells, cells), torch.zeros(1, 1, nheads, cells, cells), fpns, recorder)
    stages = recorder["mask_head_stages"]
    shapes = {name: (int(x.shape[1]), strides["res5"] * cells // int(x.shape[-1])) for name, x in stages.items()}
    return {"shapes": shapes, "strides": strides, "hidden_dim": d, "nheads": nheads}


def draw_fpn_head(model):
    """The FPN mask head of ``model`` with its widths and strides, for ``book/04_mask_head.ipynb``.

    Its input is the projected Res5 (d channels) followed by one query's M attention maps, d + M
    channels at stride 32 (264 for detr-r50-panoptic); lay1 and lay2 (3x3 conv, GroupNorm, ReLU)
    bring it to d/2; then three times: nearest upsampling to the next backbone level, plus that
    level's features brought to the same width by a 1x1 adapter, then a conv that halves the width;
    out_lay gives one mask logit per pixel at stride 4. Every width is read from the model's
    modules (``lay1`` .. ``lay5``, ``gn1``, ``adapter1`` .. ``adapter3``, ``out_lay``) and checked
    against the tensors of a run on zeros (:func:`fpn_stages`); the strides are the backbone's.
    Works for any built model, e.g. ``build_model("detr-r50-panoptic")`` or
    ``build_model("detr-tiny-synthetic")``. Returns the figure.
    """
    head = model.mask_head
    info = fpn_stages(model)
    shapes, strides, d, nheads = info["shapes"], info["strides"], info["hidden_dim"], info["nheads"]
    convs = {name: getattr(head, name) for name in ("lay1", "lay2", "lay3", "lay4", "lay5", "out_lay")}
    for name, conv in convs.items():
        if shapes[name][0] != conv.out_channels:
            raise AssertionError(f"{name} has {conv.out_channels} out channels but made {shapes[name][0]}")
    groups = head.gn1.num_groups
    widths = [shapes["input"][0]] + [convs[n].out_channels for n in ("lay2", "lay3", "lay4", "lay5", "out_lay")]
    name = _model_name(model)

    first, last = shapes["input"][1], shapes["out_lay"][1]
    fig, ax = _canvas(11, 10.4)
    _title(ax, f"FPN mask head of {name}: " + " \u2192 ".join(map(str, widths))
           + f" channels, stride {first} \u2192 {last}",
           "colour = the part of the model, as in the pipeline diagram; "
           f"each lay: 3x3 conv + GroupNorm({groups} groups) + ReLU")

    cx, bw, bh = 58.0, 24.0, 5.0
    x0 = cx - bw / 2
    step = 7.4
    ys = {}
    order = ["input", "lay1", "lay2", "+res4", "lay3", "+res3", "lay4", "+res2", "lay5", "out_lay"]
    y = 76.0
    for stage in order:
        ys[stage] = y                    # centre of the stage's box or circle
        y -= step

    # Stride bands, from the recorded tensors.
    band_edges = {}
    for stage in order:
        band_edges.setdefault(shapes[stage][1], []).append(ys[stage])
    for b, (stride, centres) in enumerate(sorted(band_edges.items(), reverse=True)):
        top, bottom = max(centres) + step / 2, min(centres) - step / 2
        if b == 0:
            top += 1.5
        if bottom < 0.5:
            bottom = 0.5
        ax.add_patch(Rectangle((1.0, bottom), 108.0, top - bottom, facecolor="#f4f4f4" if b % 2 == 0 else "white",
                               edgecolor="none", zorder=-2))
        ax.text(107.5, (top + bottom) / 2, f"stride {stride}\nH/{stride} \u00d7 W/{stride}", ha="right",
                va="center", fontsize=10.5, fontweight="bold", gid=f"stride-{stride}")

    # The inputs: projected Res5 first, then the query's attention maps.
    ytop = 85.0
    _box(ax, 30.0, ytop, 24.0, 6.2, "src_proj", f"input_proj(Res5): {d}", "CNN backbone")
    _label_last_texts(ax, 2, [None, "width:src_proj"])
    _box(ax, 62.0, ytop, 24.0, 6.2, "attention maps", f"one query: M = {nheads}", "panoptic head")
    _label_last_texts(ax, 2, [None, "width:maps"])
    _arrow(ax, [(42.0, ytop - 0.4), (42.0, ys["input"] + bh / 2 + 2.0), (cx - 2.0, ys["input"] + bh / 2 + 2.0),
                (cx - 2.0, ys["input"] + bh / 2 + 0.4)])
    _arrow(ax, [(74.0, ytop - 0.4), (74.0, ys["input"] + bh / 2 + 2.0), (cx + 2.0, ys["input"] + bh / 2 + 2.0),
                (cx + 2.0, ys["input"] + bh / 2 + 0.4)])

    titles = {"input": ("cat(src_proj, maps)", f"{d} + {nheads} = {shapes['input'][0]}"),
              "out_lay": ("out_lay  3x3 conv",
                          f"{convs['out_lay'].in_channels} \u2192 {convs['out_lay'].out_channels}, no GN/ReLU")}
    for layer in ("lay1", "lay2", "lay3", "lay4", "lay5"):
        titles[layer] = (f"{layer}  3x3 conv", f"{convs[layer].in_channels} \u2192 {convs[layer].out_channels}")
    previous = None
    for stage in order:
        yc = ys[stage]
        if stage.startswith("+"):
            ax.add_patch(Circle((cx, yc), 2.3, facecolor=STAGE_COLORS["panoptic head"], edgecolor=EDGE, lw=1.2))
            ax.text(cx, yc, "+", ha="center", va="center", fontsize=15, fontweight="bold")
            factor = shapes[previous][1] // shapes[stage][1]
            _arrow(ax, [(cx, ys[previous] - bh / 2 - 0.4), (cx, yc + 2.3)])
            ax.text(cx + 1.2, (ys[previous] - bh / 2 + yc + 2.3) / 2, f"nearest \u00d7{factor}", ha="left",
                    va="center", fontsize=9.5, family="monospace", gid=f"upsample-{stage}")
        else:
            title, widths_text = titles[stage]
            _box(ax, x0, yc - bh / 2, bw, bh, title, widths_text, "panoptic head")
            _label_last_texts(ax, 2, [None, f"width:{stage}"])
            if previous is not None:
                start = ys[previous] - (2.3 if previous.startswith("+") else bh / 2 + 0.4)
                _arrow(ax, [(cx, start), (cx, yc + bh / 2 + 0.4)])
        channels, stride = shapes[stage]
        ax.text(cx + bw / 2 + 2.0, yc, f"(B\u00b7N, {channels}, H/{stride}, W/{stride})", ha="left", va="center",
                fontsize=10, family="monospace", gid=f"shape-{stage}")
        previous = stage

    # The skips: backbone level -> 1x1 adapter -> the sum.
    for skip, adapter_name in zip(SKIPS, ("adapter1", "adapter2", "adapter3")):
        adapter = getattr(head, adapter_name)
        yc = ys["+" + skip]
        level = skip.capitalize()
        _box(ax, 2.0, yc - bh / 2, 15.0, bh, level, f"{adapter.in_channels} ch /{strides[skip]}", "CNN backbone")
        _box(ax, 21.0, yc - bh / 2, 21.0, bh, f"{adapter_name} 1x1",
             f"{adapter.in_channels} \u2192 {adapter.out_channels}", "panoptic head")
        _label_last_texts(ax, 2, [None, f"width:{adapter_name}"])
        _arrow(ax, [(17.4, yc), (20.6, yc)])
        _arrow(ax, [(42.4, yc), (cx - 2.5, yc)])
    ax.text(cx + bw / 2 + 2.0, ys["out_lay"] - 2.9, "= the query's mask logits", ha="left", va="center",
            fontsize=10)

    used = ["CNN backbone", "panoptic head"]
    handles = [Patch(facecolor=STAGE_COLORS[kind], edgecolor=EDGE, label=kind) for kind in used]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.01, 0.905), fontsize=10.5, frameon=False)
    ax.text(2.0, 83.0, "\u2295: nearest upsampling,\nthen add the skip", ha="left", va="center", fontsize=10.5)
    return fig


# --------------------------------------------------------------------------------------------
# 4. The argmax merge (book/05_argmax_merge.ipynb)
# --------------------------------------------------------------------------------------------

# One row per query: (category id or None for "no object", its softmax probability).
_MERGE_QUERIES = [(1, 0.96), (4, 0.93), (4, 0.91), (5, 0.62), (None, 0.97), (5, 0.95)]
# Where each query's mask logits peak on the 4 x 5 grid: (row, col, height); dropped queries too.
_MERGE_PEAKS = [(2.2, 0.4, 3.2), (0.0, 1.0, 3.0), (0.0, 3.8, 3.0), (1.5, 2.0, 4.0), (1.5, 2.5, 2.0),
                (3.0, 3.0, 3.2)]
_MERGE_GRID = (4, 5)


def merge_example() -> dict:
    """A tiny model output for the merge: 6 queries of the synthetic classes (circle, sky, sky,
    ground, no object, ground), their class logits and 4 x 5 mask logits
    (``book/05_argmax_merge.ipynb``; drawn by :func:`draw_argmax_merge`).

    Class logits are the logs of chosen probabilities, so the softmax gives them back; mask logits
    are bumps, peak - 1.3 * distance to the query's centre, rounded to 0.1. Returns a dict:
    ``outputs`` (pred_logits (1, 6, C+1), pred_masks (1, 6, 4, 5)), ``size`` (4, 5), ``is_thing``
    and ``names`` (category id -> name, "no object" for the last logit).
    """
    num_logits = NUM_CLASSES + 1
    no_object = num_logits - 1
    probs = torch.zeros(len(_MERGE_QUERIES), num_logits)
    for row, (category, p) in zip(probs, _MERGE_QUERIES):
        row[:] = (1 - p) / (num_logits - 1)
        row[no_object if category is None else category] = p
    height, width = _MERGE_GRID
    rows, cols = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    masks = torch.stack([torch.round((peak - 1.3 * torch.hypot(rows - r, cols - c)) * 10) / 10
                         for r, c, peak in _MERGE_PEAKS])                # (N, h, w)
    names = dict(CATEGORY_NAMES)
    names[no_object] = "no object"
    return {"outputs": {"pred_logits": probs.log()[None], "pred_masks": masks[None]},
            "size": (height, width), "is_thing": {c: c in THING_IDS for c in range(NUM_CLASSES)},
            "names": names}


def draw_argmax_merge(threshold: float = KEEP_THRESHOLD):
    """The merge of ``book/05_argmax_merge.ipynb`` on a tiny example (:func:`merge_example`):
    each query's class score against the threshold (kept or dropped), the kept queries' mask logits,
    the per-pixel softmax over the kept queries, the argmax (which query wins each pixel) and the
    final id map, in which the stuff queries of one class (two "sky" queries) became one segment.

    Scores and kept queries come from ``merge.select_queries``, the id map and segments from
    ``merge.merge_panoptic``; the softmax and argmax drawn are checked to give the same map. With a
    lower ``threshold`` more queries are kept; a kept query whose segment has at most 4 pixels is
    removed by the merge (its row says so) and the softmax is over the others, as in the final round
    of ``merge.merge_image``. Returns the figure.
    """
    threshold = check_threshold(threshold)
    ex = merge_example()
    logits, masks = ex["outputs"]["pred_logits"][0], ex["outputs"]["pred_masks"][0]
    names = ex["names"]
    height, width = ex["size"]
    scores, labels, kept = select_queries(logits, threshold)
    result = merge_panoptic(ex["outputs"], [ex["size"]], threshold=threshold, is_thing=ex["is_thing"])[0]
    no_object = logits.shape[-1] - 1
    kept = kept.tolist()
    shown = sorted(q for s in result.segments_info for q in s["queries"])   # kept and not removed
    if not shown:
        raise ValueError(f"at threshold {threshold} no query of the example keeps a segment: nothing to draw")
    probs = masks[shown].softmax(0)                                     # (K, h, w): over the kept queries
    winner = probs.argmax(0)                                            # (h, w): position in `shown`
    if len(shown) > 1:
        top2 = probs.topk(2, dim=0).values
        if bool((top2[0] - top2[1] < 1e-3).any()):
            raise AssertionError("a pixel of the example is a near tie: the argmax drawn would be ambiguous")
    segment_of_query = {q: s["id"] for s in result.segments_info for q in s["queries"]}
    drawn_ids = torch.tensor([segment_of_query[shown[int(k)]] for k in winner.flatten()]).view(height, width)
    if not torch.equal(drawn_ids, result.id_map):
        raise AssertionError("the drawn softmax-argmax and merge_panoptic disagree")
    colors = {q: LIGHT_COLORS[i % len(LIGHT_COLORS)] for i, q in enumerate(shown)}
    segment_color = {s["id"]: colors[s["queries"][0]] for s in result.segments_info}

    fig, ax = _canvas(11, 10.8)
    _title(ax, f"The merge: keep scores above {threshold:g}, then a per-pixel argmax over the kept masks",
           "colour = the kept query (a merged stuff segment takes its first query's colour); "
           "dropped queries take no part")

    # Row 1: class scores and the threshold.
    row_h, tx = 3.1, 2.0
    columns = [("query", 9.0), ("best class", 16.0), ("score", 9.0),
               (f"kept? (score > {threshold:g}, a real class)", 34.0)]
    top = 98.0
    x = tx
    for title, cw in columns:
        _cell(ax, x, top - row_h, cw, row_h, title, face="#e8e8e8", size=10, weight="bold")
        x += cw
    for n in range(len(logits)):
        y = top - (n + 2) * row_h
        label = int(labels[n])
        if n in shown:
            verdict = "kept"
        elif n in kept:
            verdict = f"kept, then removed: segment \u2264 {MAX_REMOVED_AREA} px"
        elif label == no_object:
            verdict = "dropped: no object"
        else:
            verdict = f"dropped: {_fmt(float(scores[n]))} \u2264 {threshold:g}"
        face = colors.get(n, "white")
        cells = [f"q{n}", names[label], _fmt(float(scores[n])), verdict]
        x = tx
        for (title, cw), text in zip(columns, cells):
            _cell(ax, x, y, cw, row_h, text, face=face, size=10, color="black" if n in shown else GREY_TEXT,
                  gid=f"table-{n}-{title.split()[0]}")
            x += cw
    ax.text(tx, top - (len(logits) + 2) * row_h - 1.6,
            f"score = the largest softmax probability over the {logits.shape[-1]} outputs (merge.select_queries)",
            ha="left", va="center", fontsize=9.5, color="#222222")

    # Legend: one patch per kept query.
    kinds = {q: "thing" if ex["is_thing"][int(labels[q])] else "stuff" for q in shown}
    handles = [Patch(facecolor=colors[q], edgecolor=EDGE, label=f"q{q}: {names[int(labels[q])]} ({kinds[q]})")
               for q in shown]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.67, 0.915), fontsize=10.5, frameon=False,
              title="kept queries", title_fontsize=10.5)

    # Rows 2 and 3: mask logits, then the softmax over the kept queries, one panel per kept query.
    cell = 4.0
    pw, ph = width * cell, height * cell
    px0 = 15.0
    pgap = min(8.0, (110.0 - px0 - 1.0 - len(shown) * pw) / max(1, len(shown) - 1))
    if pgap < 2.0:
        raise ValueError(f"at threshold {threshold} the example keeps {len(shown)} queries, more than fit "
                         "side by side")
    rows = [("mask logits\n(kept queries)", masks[shown], 1, 51.0),
            ("softmax over\nkept queries,\nper pixel", probs, 2, 27.5)]
    for label, values, digits, y0 in rows:
        ax.text(1.0, y0 + ph / 2, label, ha="left", va="center", fontsize=10.5, fontweight="bold")
        for p, q in enumerate(shown):
            x0 = px0 + p * (pw + pgap)
            ax.text(x0 + pw / 2, y0 + ph + 1.6, f"q{q}: {names[int(labels[q])]}", ha="center", va="center",
                    fontsize=10.5, fontweight="bold")
            for i in range(height):
                for j in range(width):
                    wins = int(winner[i, j]) == p
                    face = colors[q] if (digits == 2 and wins) else "white"
                    _cell(ax, x0 + j * cell, y0 + ph - (i + 1) * cell, cell, cell,
                          _fmt(float(values[p, i, j]), digits), face=face, size=9.5,
                          weight="bold" if wins else "normal", edge="#999999", lw=0.6,
                          gid=f"{'logit' if digits == 1 else 'prob'}-{q}-{i}-{j}")
            ax.add_patch(Rectangle((x0, y0), pw, ph, facecolor="none", edgecolor=EDGE, lw=1.4))
    ax.text(px0, 24.9, "bold, filled: the kept query with the highest value at that pixel wins it (the argmax; "
            "the softmax does not change which)", ha="left", va="center", fontsize=9.5, color="#222222")

    # Row 4: the argmax (which query) and the merged id map.
    y0 = 3.0
    maps = [("argmax: winning query", lambda i, j: f"q{shown[int(winner[i, j])]}",
             lambda i, j: colors[shown[int(winner[i, j])]], "argmax"),
            ("panoptic id map (merge_panoptic)", lambda i, j: str(int(result.id_map[i, j])),
             lambda i, j: segment_color[int(result.id_map[i, j])], "id")]
    for m, (title, text, face, prefix) in enumerate(maps):
        x0 = px0 + m * (pw + 16.0)
        ax.text(x0 + pw / 2, y0 + ph + 1.6, title, ha="center", va="center", fontsize=10.5, fontweight="bold")
        for i in range(height):
            for j in range(width):
                _cell(ax, x0 + j * cell, y0 + ph - (i + 1) * cell, cell, cell, text(i, j), face=face(i, j),
                      size=10, edge="#999999", lw=0.6, gid=f"{prefix}-{i}-{j}")
        ax.add_patch(Rectangle((x0, y0), pw, ph, facecolor="none", edgecolor=EDGE, lw=1.4))
    _arrow(ax, [(px0 + pw + 0.8, y0 + ph / 2), (px0 + pw + 15.2, y0 + ph / 2)])
    ax.text(px0 + pw + 8.0, y0 + ph / 2 + 2.6, "merge stuff", ha="center", va="center", fontsize=9.5,
            family="monospace")
    ax.text(1.0, y0 + ph / 2, "which query\nwins a pixel", ha="left", va="center", fontsize=10.5,
            fontweight="bold")
    lines = []
    for s in result.segments_info:
        queries = " + ".join(f"q{q}" for q in s["queries"])
        lines.append(f"segment {s['id']}: {names[s['category_id']]} "
                     f"({'thing' if s['isthing'] else 'stuff'}), {s['area']} px \u2190 {queries}")
    ax.text(px0 + 2 * pw + 16.0 + 4.0, y0 + ph / 2, "\n".join(lines), ha="left", va="center", fontsize=10,
            linespacing=1.6, gid="segments")
    return fig


# --------------------------------------------------------------------------------------------
# 5. Hungarian matching (book/07_train_it_yourself.ipynb)
# --------------------------------------------------------------------------------------------

# Ground truth: (category id, box cx, cy, w, h) in [0, 1]; predictions: (category id or None,
# probability, box). Query 1 is close to both shapes: the cheapest pairing must choose for it.
_MATCH_TARGETS = [(1, (0.28, 0.62, 0.26, 0.28)), (2, (0.70, 0.66, 0.30, 0.22)), (4, (0.50, 0.16, 0.96, 0.28))]
_MATCH_PREDICTIONS = [(1, 0.55, (0.33, 0.60, 0.24, 0.30)), (2, 0.80, (0.52, 0.64, 0.36, 0.26)),
                      (None, 0.90, (0.50, 0.45, 0.20, 0.20)), (4, 0.85, (0.50, 0.19, 0.90, 0.32)),
                      (2, 0.60, (0.74, 0.68, 0.26, 0.24))]


def matching_example() -> dict:
    """A small matching problem: 5 predicted queries and 3 ground-truth segments of the synthetic
    classes, with boxes in the unit square (``book/07_train_it_yourself.ipynb``; drawn by
    :func:`draw_matching`).

    Returns a dict: ``outputs`` (pred_logits (1, 5, C+1), pred_boxes (1, 5, 4)), ``targets``
    (one dict with labels (3,) and boxes (3, 4), cxcywh), ``cost`` (5, 3) from
    ``matcher.match_cost`` and ``indices`` (query_idx, target_idx) from ``HungarianMatcher``.
    """
    num_logits = NUM_CLASSES + 1
    logits = torch.zeros(len(_MATCH_PREDICTIONS), num_logits)
    for row, (category, p, _) in zip(logits, _MATCH_PREDICTIONS):
        probs = torch.full((num_logits,), (1 - p) / (num_logits - 1))
        probs[num_logits - 1 if category is None else category] = p
        row[:] = probs.log()
    boxes = torch.tensor([box for _, _, box in _MATCH_PREDICTIONS])
    targets = {"labels": torch.tensor([c for c, _ in _MATCH_TARGETS]),
               "boxes": torch.tensor([box for _, box in _MATCH_TARGETS])}
    outputs = {"pred_logits": logits[None], "pred_boxes": boxes[None]}
    cost = match_cost(logits, boxes, targets["labels"], targets["boxes"])          # (N, K)
    indices = HungarianMatcher()(outputs, [targets])[0]
    return {"outputs": outputs, "targets": targets, "cost": cost, "indices": indices}


def draw_matching():
    """Hungarian matching as a bipartite graph, for ``book/07_train_it_yourself.ipynb``: N = 5
    predicted queries on the left, K = 3 ground-truth segments on the right, every pair joined
    by an edge whose weight is the matching cost (``matcher.match_cost``: class probability, L1
    and GIoU of the boxes), the one-to-one matching of smallest total cost highlighted
    (``matcher.HungarianMatcher``), and the unmatched queries marked "no object". Beside it the
    boxes in the image and the cost matrix with the chosen entries.

    The example is :func:`matching_example`. Returns the figure.
    """
    ex = matching_example()
    cost = ex["cost"]
    num_queries, num_targets = cost.shape
    query_idx, target_idx = (t.tolist() for t in ex["indices"])
    match = dict(zip(query_idx, target_idx))                           # query -> target
    logits = ex["outputs"]["pred_logits"][0]
    boxes = ex["outputs"]["pred_boxes"][0]
    labels, gt_boxes = ex["targets"]["labels"], ex["targets"]["boxes"]
    probs, best = logits.softmax(-1).max(-1)
    no_object = logits.shape[-1] - 1
    names = dict(CATEGORY_NAMES)
    names[no_object] = "no object"
    gt_colors = [LIGHT_COLORS[j % len(LIGHT_COLORS)] for j in range(num_targets)]
    gt_lines = [DARK_COLORS[j % len(DARK_COLORS)] for j in range(num_targets)]
    total = float(sum(cost[q, t] for q, t in match.items()))

    fig, ax = _canvas(11, 6.2)
    _title(ax, f"Hungarian matching: each of the {num_targets} segments gets one query, "
           f"the {num_queries - num_targets} others learn \"no object\"",
           "colour = the ground-truth segment a query is matched to; grey = unmatched; "
           "thick edges: the pairs of smallest total cost")

    # The boxes in the image (unit square), y pointing down as in images.
    ix0, iy0, side = 2.0, 12.0, 24.0
    ax.add_patch(Rectangle((ix0, iy0), side, side, facecolor="white", edgecolor=EDGE, lw=1.2))
    ax.text(ix0 + side / 2, iy0 + side + 2.0, "boxes in the image", ha="center", va="center", fontsize=10.5,
            fontweight="bold")

    def rect(box):
        cxb, cyb, wb, hb = (float(v) for v in box)
        return ix0 + (cxb - wb / 2) * side, iy0 + (1 - cyb - hb / 2) * side, wb * side, hb * side

    for j in range(num_targets):
        x, y, w, h = rect(gt_boxes[j])
        ax.add_patch(Rectangle((x, y), w, h, facecolor=gt_colors[j], alpha=0.45, edgecolor="none"))
        ax.add_patch(Rectangle((x, y), w, h, facecolor="none", edgecolor=TRUTH_COLOR, lw=2.0))
    for q in range(num_queries):
        x, y, w, h = rect(boxes[q])
        color = gt_lines[match[q]] if q in match else GREY_TEXT
        ax.add_patch(Rectangle((x, y), w, h, facecolor="none", edgecolor=color, lw=1.4, ls="--"))
    handles = [Line2D([], [], color=TRUTH_COLOR, lw=2.0, label="ground truth"),
               Line2D([], [], color=EDGE, lw=1.4, ls="--", label="predicted")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.005, 0.19), ncol=2, fontsize=9.5,
              frameon=False, handlelength=2.2, columnspacing=1.0)

    # The bipartite graph.
    qx, qw, node_h = 36.0, 17.0, 4.4
    gx, gw = 65.0, 13.0
    q_ys = [44.0 - 7.6 * i for i in range(num_queries)]
    mid = sum(q_ys) / len(q_ys)
    g_ys = [mid + 9.0 * (num_targets - 1) / 2 - 9.0 * j for j in range(num_targets)]
    for x, text in ((qx + qw / 2, f"{num_queries} predictions"), (gx + gw / 2, f"{num_targets} ground truth")):
        ax.text(x, 50.6, text, ha="center", va="center", fontsize=10.5, fontweight="bold")
    for q in range(num_queries):
        for j in range(num_targets):
            if match.get(q) == j:
                continue
            ax.plot([qx + qw, gx], [q_ys[q], g_ys[j]], color="#bbbbbb", lw=1.0, zorder=0)
    for q, j in match.items():
        ax.plot([qx + qw, gx], [q_ys[q], g_ys[j]], color=gt_lines[j], lw=3.2, zorder=1, gid=f"match-{q}-{j}")
    for q in range(num_queries):
        face = gt_colors[match[q]] if q in match else "#eeeeee"
        edge, lw = (gt_lines[match[q]], 2.0) if q in match else (EDGE, 0.9)
        _cell(ax, qx, q_ys[q] - node_h / 2, qw, node_h,
              f"q{q}: {names[int(best[q])]} {_fmt(float(probs[q]))}", face=face, edge=edge, lw=lw, size=10,
              color="black" if q in match else GREY_TEXT, gid=f"query-{q}")
        if q not in match:
            ax.text(qx - 0.8, q_ys[q], "no object", ha="right", va="center", fontsize=9.5, color=GREY_TEXT,
                    fontstyle="italic", gid=f"unmatched-{q}")
    for j in range(num_targets):
        _cell(ax, gx, g_ys[j] - node_h / 2, gw, node_h, f"gt{j}: {names[int(labels[j])]}", face=gt_colors[j],
              edge=gt_lines[j], lw=2.0, size=10, weight="bold", gid=f"segment-{j}")

    # The cost matrix, matched entries filled.
    tx0, cw, rh = 81.5, 7.5, 4.0
    ttop = 46.0
    ax.text(tx0 + (num_targets * cw + 5.0) / 2, ttop + 2.4, "cost[query, segment]", ha="center", va="center",
            fontsize=10.5, fontweight="bold")
    for j in range(num_targets):
        _cell(ax, tx0 + 5.0 + j * cw, ttop - rh, cw, rh, f"gt{j}", face=gt_colors[j], size=10, weight="bold")
    for q in range(num_queries):
        y = ttop - (q + 2) * rh
        ax.text(tx0 + 4.4, y + rh / 2, f"q{q}", ha="right", va="center", fontsize=10)
        for j in range(num_targets):
            chosen = match.get(q) == j
            _cell(ax, tx0 + 5.0 + j * cw, y, cw, rh, _fmt(float(cost[q, j])), size=10,
                  face=gt_colors[j] if chosen else "white", weight="bold" if chosen else "normal",
                  gid=f"cost-{q}-{j}")
    y_text = ttop - (num_queries + 2) * rh - 2.5
    ax.text(tx0 - 1.0, y_text, f"total of the bold ones: {_fmt(total)},\nthe smallest of all "
            f"{math.perm(num_queries, num_targets)} one-to-one choices",
            ha="left", va="top", fontsize=9.5, linespacing=1.4)
    ax.text(36.0, 4.0, f"cost = {COST_CLASS:g}\u00b7(\u2212p(class)) + {COST_BBOX:g}\u00b7L1(boxes) + "
            f"{COST_GIOU:g}\u00b7(\u2212GIoU(boxes))   (matcher.match_cost)", ha="left", va="center",
            fontsize=10, family="monospace")
    return fig
