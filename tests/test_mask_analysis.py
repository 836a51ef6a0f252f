"""The analyses chapters 4 and 5 call: masks at the image's size, attention on a segment, the
spread between queries, the threshold sweep, the figures."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from detr_explained import examples, figures, mask_analysis, merge
from detr_explained.explore import merge_result, pq_of


@pytest.fixture(scope="module")
def book():
    return examples.book_scene()


def test_masks_at_the_image_size_are_the_merges():
    logits = torch.randn(3, 8, 8)
    up = mask_analysis.logits_at(logits, (32, 32))
    assert up.shape == (3, 32, 32)
    assert torch.equal(up, F.interpolate(logits[:, None], size=(32, 32), mode="bilinear",
                                         align_corners=False)[:, 0])
    assert torch.equal(mask_analysis.masks_at(logits, (32, 32)), up > 0)


def test_attention_on_a_segment_by_hand():
    maps = torch.zeros(2, 2, 2)              # 2 heads on a 2 x 2 grid, summing to 1 together
    maps[0, 0, 0] = 0.6                       # head 0: all on the top-left cell
    maps[1, 1, 1] = 0.4                       # head 1: all on the bottom-right cell
    segment = torch.zeros(8, 8, dtype=torch.bool)
    segment[0, 0] = True                      # one pixel in the top-left cell
    assert mask_analysis.cells_touched(segment, (2, 2)).tolist() == [[True, False], [False, False]]
    on = mask_analysis.attention_on_segment(maps, segment)
    assert on["cells"] == pytest.approx(0.25) and on["share"] == pytest.approx(0.6)
    assert on["heads"].tolist() == pytest.approx([0.6, 0.4])
    assert on["top"] == 0 and on["top_share"] == pytest.approx(1.0)


def test_peak_and_spread():
    class Trace:                              # the only field peak reads
        attention_maps = torch.full((1, 3, 8, 2, 2), 1 / 32)   # flat over 8 heads x 4 cells
    assert mask_analysis.peak(Trace()) == pytest.approx(1.0)
    same = torch.randn(1, 4, 3, 3).repeat(5, 1, 1, 1)          # 5 identical queries
    assert mask_analysis.spread(same, 5) == pytest.approx(0.0, abs=1e-7)
    assert mask_analysis.spread(torch.randn(10, 4, 3, 3), 5) > 0.5


def test_kept_queries_and_the_query_of_a_segment(book):
    rows = mask_analysis.kept_queries_on_truth(book.traced)
    _, _, kept = merge.select_queries(book.trace.pred_logits[0], book.traced.keep_threshold)
    assert [r["query"] for r in rows] == kept.tolist()
    assert all(0 <= r["iou"] <= 1 and 0 <= r["attention"] <= 1 + 1e-6 for r in rows)
    largest = max(range(len(book.truth)), key=lambda k: book.truth[k]["area"])
    q = mask_analysis.query_for_segment(book.traced, largest)
    assert 0 <= q < book.trace.pred_logits.shape[1]


def test_threshold_steps(book):
    steps = mask_analysis.threshold_steps(book.traced)
    assert [s["threshold"] for s in steps] == sorted(s["threshold"] for s in steps)
    for before, after in zip(steps, steps[1:]):               # a higher threshold keeps fewer
        assert set(after["kept"]) < set(before["kept"])
    at_default = [s for s in steps if s["threshold"] <= book.traced.keep_threshold][-1]
    assert at_default["pq"] == pytest.approx(pq_of(book.traced, merge_result(book.traced)).summary["All"]["pq"])


def test_figures_share_one_scale_and_outline_in_the_book_colours():
    logits = torch.randn(3, 8, 8) * 5
    truth = torch.zeros(3, 32, 32, dtype=torch.bool)
    truth[:, 8:24, 8:24] = True
    fig = mask_analysis.show_mask_logits(logits, ["a", "b", "c"], truth=truth, predicted=truth)
    maps = [ax for ax in fig.axes if ax.images and ax.get_title()]
    limits = {ax.images[0].get_clim() for ax in maps}
    assert len(maps) == 3 and len(limits) == 1                 # one scale ...
    low, high = limits.pop()
    assert low == -high                                        # ... centred on 0
    assert len(fig.axes) == 4                                  # and one colour bar
    colours = {tuple(np.round(c.get_edgecolor()[0][:3], 3)) for ax in maps for c in ax.collections}
    assert {tuple(np.round(matplotlib_rgb(figures.TRUTH_COLOR), 3)),
            tuple(np.round(matplotlib_rgb(figures.PREDICTION_COLOR), 3))} <= colours


def matplotlib_rgb(colour):
    from matplotlib.colors import to_rgb
    return to_rgb(colour)


def test_print_segments_names_the_classes(capsys):
    from detr_explained.merge import PanopticResult
    result = PanopticResult(torch.ones(2, 2, dtype=torch.long),
                            [{"id": 1, "category_id": 4, "isthing": False, "area": 4, "queries": [3, 7]}])
    mask_analysis.print_segments(result, {4: "sky"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["1", "sky", "stuff", "4", "[3,", "7]"]
