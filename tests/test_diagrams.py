"""The code-drawn diagrams of detr_explained.diagrams: what they print is what the package computes."""
import io
import itertools
import math
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

import detr_explained as de  # noqa: E402
from detr_explained import diagrams  # noqa: E402
from detr_explained.figures import new_figure  # noqa: E402
from detr_explained.matcher import match_cost  # noqa: E402
from detr_explained.merge import merge_panoptic, select_queries  # noqa: E402
from detr_explained.position_encoding import SinePositionEncoding  # noqa: E402

CHAPTER = re.compile(r"book/\d\d_[a-z_]+\.ipynb")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def tiny_synthetic():
    torch.manual_seed(0)
    return de.build_model("detr-tiny-synthetic")


def texts(fig, prefix):
    """{gid: text} of the figure's texts whose gid starts with ``prefix``."""
    found = {}
    for artist in fig.findobj(Text):
        gid = artist.get_gid()
        if gid and gid.startswith(prefix):
            found[gid] = artist.get_text()
    return found


def numbers(text):
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", text)]


def png(fig):
    """The figure as PNG, as the book saves it: it must draw without error, opaque white."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    image = Image.open(buffer).convert("RGBA")
    assert image.getpixel((0, 0)) == (255, 255, 255, 255)
    return image


def overlapping_labels(fig):
    """Pairs of visible texts (labels, cell numbers, legend entries) whose boxes overlap, in a
    figure drawn once already (``png``: the legend is placed when drawn)."""
    renderer = fig.canvas.get_renderer()
    shown = []
    for ax in fig.axes:
        shown += list(ax.texts)
        legend = ax.get_legend()
        if legend is not None:
            shown += list(legend.get_texts()) + [legend.get_title()]
    boxes = [(t.get_text(), t.get_window_extent(renderer))
             for t in shown if t.get_visible() and t.get_text().strip()]
    pairs = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            width = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            height = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if width > 1 and height > 1:
                pairs.append((a, b))
    return pairs


def labels_outside(fig):
    """Visible texts that do not lie wholly inside the figure (cut off when saved)."""
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    outside = []
    for text in (t for ax in fig.axes for t in ax.texts if t.get_visible() and t.get_text().strip()):
        box = text.get_window_extent(renderer)
        if not (0 <= box.x0 and box.x1 <= width and 0 <= box.y0 and box.y1 <= height):
            outside.append(text.get_text())
    return outside


def check_drawing(fig):
    """Every diagram: 10-11 inches wide, renders, opaque, no overlapping labels, has a title."""
    assert 10 <= fig.get_figwidth() <= 11
    png(fig)                                                     # draws it: the legend is placed
    assert overlapping_labels(fig) == []
    assert labels_outside(fig) == []
    assert fig.axes[0].texts[0].get_fontweight() == "bold"     # the title, what to look at


def test_every_diagram_names_its_chapter():
    for name in ("draw_tokens", "draw_joint_softmax", "draw_fpn_head", "draw_argmax_merge", "draw_matching"):
        assert CHAPTER.search(getattr(diagrams, name).__doc__), name


# --------------------------------------------------------------------------------------------

def test_tokens_are_read_row_by_row_and_pos_is_the_sine_code():
    fig = diagrams.draw_tokens()
    check_drawing(fig)
    height, width, d = 3, 4, 8
    grid = texts(fig, "grid-")
    assert len(grid) == height * width
    for gid, text in grid.items():
        r, c = map(int, gid.split("-")[1:])
        assert int(text) == r * width + c                           # index = row * W + col
    strip = texts(fig, "token-")
    assert [strip[f"token-{i}"] for i in range(height * width)] == [str(i) for i in range(height * width)]
    # the position code printed is SinePositionEncoding's, in the same token order
    pos = SinePositionEncoding(d // 2)(torch.zeros(1, height, width, dtype=torch.bool))[0]   # (d, H, W)
    printed = texts(fig, "pos-")
    assert len(printed) == d * height * width
    for ch in range(d):
        for i in range(height * width):
            expected = float(pos[ch, i // width, i % width])            # token i is cell (i // W, i % W)
            assert float(printed[f"pos-{ch}-{i}"]) == pytest.approx(expected, abs=0.006)
    assert texts(fig, "index-example")["index-example"].endswith(f"= {1 * width + 2}")


def test_tokens_follow_the_real_flattening_and_encoder_inputs():
    example = diagrams.token_example(2, 5, 4)
    assert example["where"].tolist() == [[r, c] for r in range(2) for c in range(5)]   # row-major
    query, key, value = example["attention_inputs"]
    assert torch.equal(query, example["tokens"] + example["pos"]) and torch.equal(key, query)
    assert torch.equal(value, example["tokens"])                 # no position code in the values
    fig = diagrams.draw_tokens(2, 3, 4)
    assert texts(fig, "grid-")["grid-1-2"] == "5"
    with pytest.raises(ValueError, match="up to 3 x 4 cells"):
        diagrams.draw_tokens(4, 3)
    with pytest.raises(ValueError, match="multiple of 4"):
        diagrams.draw_tokens(d=6)


# --------------------------------------------------------------------------------------------

def test_joint_softmax_numbers_sum_to_one_and_are_not_per_head():
    fig = diagrams.draw_joint_softmax()
    check_drawing(fig)
    joint = {gid: float(t) for gid, t in texts(fig, "joint-").items() if gid != "joint-total"}
    per_head = {gid: float(t) for gid, t in texts(fig, "perhead-").items() if gid != "perhead-total"}
    assert len(joint) == len(per_head) == 8
    assert sum(joint.values()) == pytest.approx(1.0, abs=0.003)          # one softmax over all 8
    head_sums = [sum(v for gid, v in joint.items() if gid.startswith(f"joint-{n}-")) for n in range(2)]
    assert all(s < 0.99 for s in head_sums)                              # a head alone is not 1
    assert [numbers(texts(fig, f"jointsum-{n}")[f"jointsum-{n}"])[0] for n in range(2)] == \
        pytest.approx(head_sums, abs=0.003)
    assert sum(per_head.values()) == pytest.approx(2.0, abs=0.003)       # the wrong one: 1 per head
    assert any(abs(joint["joint" + gid[7:]] - v) > 0.05 for gid, v in per_head.items())

    # recompute by hand from the printed q and k: scores q.k/sqrt(c), one softmax over all
    q = {n: numbers(texts(fig, f"q-{n}")[f"q-{n}"]) for n in range(2)}
    k = {gid: numbers(t) for gid, t in texts(fig, "k-").items()}
    scores = {}
    for gid, vector in k.items():
        n, i, j = map(int, gid.split("-")[1:])
        scores[(n, i, j)] = np.dot(q[n], vector) / math.sqrt(len(vector))
        printed = float(texts(fig, f"score-{n}-{i}-{j}")[f"score-{n}-{i}-{j}"])
        assert printed == pytest.approx(scores[(n, i, j)], abs=0.006)
    total = sum(math.exp(s) for s in scores.values())
    for (n, i, j), s in scores.items():
        assert joint[f"joint-{n}-{i}-{j}"] == pytest.approx(math.exp(s) / total, abs=6e-4)


def test_joint_softmax_example_is_the_module_output():
    example = diagrams.joint_softmax_example([[1, 1], [0, 2]], torch.arange(16.0).view(2, 2, 2, 2) % 3)
    assert example["joint"].sum() == pytest.approx(1.0)
    assert example["scale"] == pytest.approx(2 ** -0.5)
    assert example["per_head"].flatten(1).sum(1).tolist() == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="fits up to 3 heads"):
        diagrams.draw_joint_softmax([[1, 0, 1, 0]], torch.zeros(1, 4, 2, 3))
    with pytest.raises(ValueError, match="same M and c"):
        diagrams.joint_softmax_example([[1, 0, 0]], torch.zeros(1, 2, 2, 2))


# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["r50", "tiny_synthetic"])
def test_fpn_widths_are_the_models(which, request):
    model = request.getfixturevalue(which)
    head = model.mask_head
    fig = diagrams.draw_fpn_head(model)
    check_drawing(fig)
    widths = texts(fig, "width:")
    for name in ("lay1", "lay2", "lay3", "lay4", "lay5", "out_lay", "adapter1", "adapter2", "adapter3"):
        conv = getattr(head, name)
        assert numbers(widths[f"width:{name}"])[:2] == [conv.in_channels, conv.out_channels], name
    d, heads = model.config.hidden_dim, model.config.nheads
    assert numbers(widths["width:input"]) == [d, heads, head.lay1.in_channels]   # projected Res5 first
    assert head.lay1.in_channels == d + heads
    shapes = texts(fig, "shape-")
    res5 = 16 if model.config.dilation else 32                   # DC5 keeps Res5 at stride 16
    assert numbers(shapes["shape-input"]) == [d + heads, res5, res5]
    assert numbers(shapes["shape-out_lay"]) == [1, 4, 4]
    assert numbers(shapes["shape-+res4"]) == [head.adapter1.out_channels, 16, 16]
    assert set(texts(fig, "stride-")) == {f"stride-{s}" for s in (res5, 16, 8, 4)}
    upsample = texts(fig, "upsample-")
    assert upsample.pop("upsample-+res4") == f"nearest \u00d7{res5 // 16}"   # x1 with DC5: same grid
    assert all(t == "nearest \u00d72" for t in upsample.values())
    if which == "r50":                                          # the official numbers
        assert [numbers(widths[f"width:{n}"])[1] for n in ("lay1", "lay2", "lay3", "lay4", "lay5", "out_lay")] == \
            [264, 128, 64, 32, 16, 1]
        assert [numbers(widths[f"width:adapter{i}"]) for i in (1, 2, 3)] == [[1024, 128], [512, 64], [256, 32]]


# --------------------------------------------------------------------------------------------

def test_merge_diagram_is_merge_panoptics_output():
    fig = diagrams.draw_argmax_merge()
    check_drawing(fig)
    example = diagrams.merge_example()
    result = merge_panoptic(example["outputs"], [example["size"]], is_thing=example["is_thing"])[0]
    height, width = example["size"]
    drawn = torch.tensor([[int(texts(fig, f"id-{i}-{j}")[f"id-{i}-{j}"]) for j in range(width)]
                          for i in range(height)])
    assert torch.equal(drawn, result.id_map)
    # the kept / dropped column is select_queries' verdict at 0.85
    _, _, kept = select_queries(example["outputs"]["pred_logits"][0], 0.85)
    verdicts = {int(gid.split("-")[1]): t for gid, t in texts(fig, "table-").items() if gid.endswith("-kept?")}
    assert sorted(n for n, t in verdicts.items() if t == "kept") == kept.tolist()
    assert any("no object" in t for t in verdicts.values()) and any("\u2264 0.85" in t for t in verdicts.values())
    # two sky queries made one stuff segment
    sky = [s for s in result.segments_info if example["names"][s["category_id"]] == "sky"]
    assert len(sky) == 1 and len(sky[0]["queries"]) == 2
    assert "q1 + q2" in texts(fig, "segments")["segments"]
    # the argmax map names the query that wins each pixel of the softmax panels
    argmax = texts(fig, "argmax-")
    probs = texts(fig, "prob-")
    for i in range(height):
        for j in range(width):
            values = {q: float(probs[f"prob-{q}-{i}-{j}"]) for q in kept.tolist()}
            assert argmax[f"argmax-{i}-{j}"] == f"q{max(values, key=values.get)}"


def test_merge_diagram_follows_the_threshold():
    fig = diagrams.draw_argmax_merge(threshold=0.5)              # q3 (ground, 0.62) is kept now
    verdicts = {gid: t for gid, t in texts(fig, "table-").items() if gid.endswith("-kept?")}
    assert verdicts["table-3-kept?"] == "kept"


# --------------------------------------------------------------------------------------------

def test_matching_highlights_the_assignment_of_the_printed_costs():
    fig = diagrams.draw_matching()
    check_drawing(fig)
    example = diagrams.matching_example()
    num_queries, num_targets = example["cost"].shape
    printed = np.array([[float(texts(fig, f"cost-{q}-{j}")[f"cost-{q}-{j}"]) for j in range(num_targets)]
                        for q in range(num_queries)])
    logits, boxes = example["outputs"]["pred_logits"][0], example["outputs"]["pred_boxes"][0]
    expected = match_cost(logits, boxes, example["targets"]["labels"], example["targets"]["boxes"]).numpy()
    assert printed == pytest.approx(expected, abs=0.006)
    rows, cols = linear_sum_assignment(printed)
    highlighted = sorted(tuple(map(int, a.get_gid().split("-")[1:])) for a in fig.axes[0].lines
                         if (a.get_gid() or "").startswith("match-"))
    assert highlighted == sorted(zip(rows.tolist(), cols.tolist()))
    query_idx, target_idx = example["indices"]
    assert highlighted == sorted(zip(query_idx.tolist(), target_idx.tolist()))
    unmatched = texts(fig, "unmatched-")
    assert sorted(int(g.split("-")[1]) for g in unmatched) == sorted(set(range(num_queries)) - set(rows.tolist()))
    assert all(t == "no object" for t in unmatched.values())
    # the highlighted total is the smallest over every one-to-one choice, as the figure says
    choices = [printed[list(p), range(num_targets)].sum()
               for p in itertools.permutations(range(num_queries), num_targets)]
    assert printed[rows, cols].sum() == pytest.approx(min(choices))
    assert any(f"all {len(choices)} one-to-one" in t for t in (a.get_text() for a in fig.axes[0].texts))


def test_the_overlap_check_can_fail():
    fig, axes = new_figure(figsize=(10, 3))
    axes[0, 0].text(0.5, 0.5, "one label", fontsize=12)
    axes[0, 0].text(0.52, 0.5, "another label", fontsize=12)
    axes[0, 0].text(0.1, 0.1, "alone", fontsize=12)
    png(fig)
    assert overlapping_labels(fig) == [("one label", "another label")]


def test_the_diagrams_keep_the_books_colour_meanings(tiny_synthetic):
    """Convention 4 of figures: the colours that name rows, heads, queries or segments are none of
    the book's red (attention), orange (prediction, chosen) or blue (ground truth); in the
    matching, a ground-truth box is outlined in figures.TRUTH_COLOR and no predicted box is."""
    from matplotlib.colors import rgb_to_hsv, to_rgb
    from matplotlib.patches import Rectangle

    from detr_explained import figures

    def hue(color):
        return float(rgb_to_hsv(np.array(to_rgb(color)))[0]) * 360

    reserved = [hue(figures.ATTENTION_COLOR), hue(figures.PREDICTION_COLOR), hue(figures.TRUTH_COLOR)]
    for color in diagrams.LIGHT_COLORS + diagrams.DARK_COLORS:
        distance = min(min(abs(hue(color) - r), 360 - abs(hue(color) - r)) for r in reserved)
        assert distance > 15, (color, distance)
    assert len(diagrams.LIGHT_COLORS) == len(diagrams.DARK_COLORS)
    fig = diagrams.draw_matching()
    truth = to_rgb(figures.TRUTH_COLOR)
    outlines = [p for p in fig.axes[0].patches if isinstance(p, Rectangle) and p.get_facecolor()[3] == 0]
    solid = [p for p in outlines if p.get_linestyle() == "solid" and np.allclose(p.get_edgecolor()[:3], truth)]
    dashed = [p for p in outlines if p.get_linestyle() == "--"]
    assert len(solid) == len(diagrams.matching_example()["targets"]["labels"])
    assert len(dashed) == len(diagrams.matching_example()["outputs"]["pred_boxes"][0])
    assert not any(np.allclose(p.get_edgecolor()[:3], truth) for p in dashed)
    for figure in (fig, diagrams.draw_tokens(), diagrams.draw_joint_softmax(), diagrams.draw_argmax_merge(),
                   diagrams.draw_fpn_head(tiny_synthetic)):
        for patch in figure.axes[0].patches:                  # nothing filled red or orange
            face = patch.get_facecolor()
            if face[3] > 0:
                assert not np.allclose(face[:3], to_rgb(figures.ATTENTION_COLOR), atol=0.05)
                assert not np.allclose(face[:3], to_rgb(figures.PREDICTION_COLOR), atol=0.05)
