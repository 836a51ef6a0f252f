"""Measuring attention maps against a ground truth (detr_explained.attention_analysis)."""
import matplotlib
import pytest
import torch

from detr_explained import attention_analysis as aa
from detr_explained import examples, explore

matplotlib.use("Agg")


def test_cell_cover_is_the_fraction_of_each_cell_a_segment_covers():
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :4, :] = True                    # the top half
    masks[1] = ~masks[0]                      # the bottom half
    masks[0, 4, 0] = True                     # and one pixel of the cell below
    masks[1, 4, 0] = False
    cover = aa.cell_cover(masks, (2, 2))      # cells of 4 x 4 pixels
    assert cover.shape == (2, 2, 2)
    assert torch.allclose(cover.sum(0), torch.ones(2, 2))   # segments that tile: fractions sum to 1
    assert cover[0, 0, 0] == 1 and cover[0, 1, 0] == 1 / 16 and cover[0, 1, 1] == 0


def test_cell_cover_of_a_grid_that_does_not_divide_the_image():
    masks = torch.ones(1, 375, 409, dtype=torch.bool)       # the photo batch's padded size
    cover = aa.cell_cover(masks, (12, 13))                   # Res5's grid, cells of 32 pixels
    assert cover.shape == (1, 12, 13) and torch.allclose(cover, torch.ones_like(cover))
    with pytest.raises(ValueError, match="does not tile"):
        aa.cell_cover(torch.ones(1, 9, 9, dtype=torch.bool), (4, 4))   # cells of 3 cover 9 in 3


def test_weight_on_segments_spreads_each_cell_over_its_pixels():
    cover = torch.tensor([[[1.0, 0.5], [0.0, 0.0]], [[0.0, 0.5], [1.0, 1.0]]])  # (S=2, 2, 2)
    uniform = torch.full((1, 2, 2), 0.25)
    assert torch.allclose(aa.weight_on_segments(uniform, cover), torch.tensor([[0.375, 0.625]]))
    per_head = torch.zeros(1, 3, 2, 2)
    per_head[0, 1, 0, 1] = 1.0                # head 1 all on the shared cell
    assert torch.allclose(aa.weight_on_segments(per_head, cover)[0, 1], torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="grid"):
        aa.weight_on_segments(torch.ones(1, 3, 3), cover)


def test_map_distance_is_zero_for_equal_maps_and_one_for_disjoint_ones():
    a = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    b = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    assert aa.map_distance(a, a) == 0 and aa.map_distance(a, b) == 1
    assert torch.allclose(aa.map_distance(a, torch.full((2, 2), 0.25)), torch.tensor(0.75))


@pytest.fixture(scope="module")
def book():
    return examples.book_scene()


def test_segment_weights_on_the_book_scene(book):
    weights = aa.segment_weights(book.traced)
    kept = [row["query"] for row in explore.query_rows(book.traced) if row["kept"]]
    assert weights.queries.tolist() == kept
    K, S = len(kept), len(book.truth)
    assert weights.on_each.shape == (K, S)
    # the maps sum to 1 per query and the segments tile the scene: the weights on them sum to 1
    assert torch.allclose(weights.on_each.sum(1), torch.ones(K), atol=1e-5)
    assert torch.allclose(weights.on_segment, weights.on_each[torch.arange(K), weights.segment])
    # uniform attention puts the segment's share of the scene's area on it (the cells tile it)
    areas = torch.tensor([book.truth[s]["area"] for s in weights.segment.tolist()], dtype=torch.float)
    assert torch.allclose(weights.uniform, areas / book.scene.ids.size, atol=1e-6)
    # a found query is a thing query matched to a thing of its class, PQ's way
    assert (weights.thing[weights.found]).all() and (weights.iou[weights.found] > 0.5).all()
    assert "most weight on" in repr(weights).splitlines()[0]
    assert len(weights.names) == S and len(set(weights.names)) == S


def test_map_twins_pairs_each_unfound_thing_query_with_a_found_one(book):
    # the book's scene has two kept thing queries without a shape of their own for the shipped
    # model, a duplicate and a wrong class (book/03_attention_maps.ipynb shows them)
    weights = aa.segment_weights(book.traced)
    twins = aa.map_twins(book.traced, weights)
    unfound = weights.queries[weights.thing & ~weights.found].tolist()
    assert unfound and [t.query for t in twins] == unfound
    found = set(weights.queries[weights.found].tolist())
    assert all(t.nearest in found and 0 <= t.distance <= 1 and 0 <= t.mask_iou <= 1 for t in twins)
