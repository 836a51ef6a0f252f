"""The figure helpers of detr_explained.figures, on small synthetic inputs."""
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from PIL import Image  # noqa: E402

from detr_explained import figures  # noqa: E402
from detr_explained.preprocessing import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

WHITE = (1.0, 1.0, 1.0, 1.0)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def saved_corner_pixel(fig):
    """The top-left pixel of the figure saved as PNG with default savefig arguments."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return Image.open(buffer).convert("RGBA").getpixel((0, 0))


def test_book_style_is_opaque_white_also_when_saved():
    fig, axes = figures.new_figure(1, 2)
    assert axes.shape == (1, 2)
    assert to_rgba(fig.get_facecolor()) == WHITE
    assert saved_corner_pixel(fig) == (255, 255, 255, 255)  # not transparent in a PNG


def test_pipeline_names_every_stage_with_its_shape():
    fig = figures.draw_pipeline()
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for stage in ["ResNet backbone", "input_proj", "encoder", "decoder", "multi-head attention maps",
                  "FPN-style CNN", "pixel-wise argmax", "panoptic map"]:
        assert stage in texts
    for shape in ["(B, N, M, H/32, W/32)", "(B, d, H/32, W/32)", "(B, N, H/4, W/4)", "(B, N, d)"]:
        assert shape in texts
    # The brief swaps them: the box embeddings are the query, the encoder memory the key.
    assert "QUERY: box embeddings" in texts and "KEY: memory" in texts
    assert to_rgba(fig.get_facecolor()) == WHITE
    assert saved_corner_pixel(fig) == (255, 255, 255, 255)


def test_show_image_undoes_imagenet_normalisation():
    rgb = torch.rand(3, 8, 10)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    ax = figures.show_image((rgb - mean) / std, title="normalised")
    shown = ax.images[0].get_array()
    assert shown.shape == (8, 10, 3)
    np.testing.assert_allclose(shown, rgb.permute(1, 2, 0).numpy(), atol=1e-5)
    assert ax.get_title() == "normalised"


def test_show_image_takes_uint8_arrays_and_an_axes():
    fig, axes = figures.new_figure()
    image = np.full((4, 6, 3), 255, dtype=np.uint8)
    ax = figures.show_image(image, ax=axes[0, 0])
    assert ax is axes[0, 0]
    assert np.allclose(ax.images[0].get_array(), 1.0)


def test_show_maps_has_one_axes_per_map():
    maps = torch.randn(5, 6, 7)
    fig = figures.show_maps(maps, titles=[f"head {i}" for i in range(5)], ncols=3,
                            suptitle="attention")
    assert len(fig.axes) == 5 + 1  # the sixth grid cell is removed, not left empty; one colour bar
    assert [ax.get_title() for ax in fig.axes[:5]] == [f"head {i}" for i in range(5)]
    assert fig._suptitle.get_text() == "attention"
    assert to_rgba(fig.get_facecolor()) == WHITE


def test_show_padding_masks_counts_padding():
    masks = np.zeros((2, 4, 5), dtype=bool)
    masks[1, :, 3:] = True  # the second image is padded on the right
    fig = figures.show_padding_masks(masks)
    assert len(fig.axes) == 2
    assert fig.axes[1].get_title() == "image 1: 8 of 20 padded"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["image", "padding (True)"]


def test_show_panoptic_one_colour_and_legend_entry_per_segment():
    id_map = np.zeros((6, 8), dtype=np.int64)
    id_map[:3] = 1
    id_map[3:, :4] = 2
    id_map[3:, 4:6] = 3  # columns 6..7 of the bottom rows stay VOID
    segments_info = [
        {"id": 1, "category_id": 187, "isthing": False, "area": 24},
        {"id": 2, "category_id": 17, "isthing": True, "area": 12},
        {"id": 3, "category_id": 17, "isthing": True, "area": 6},
    ]
    ax = figures.show_panoptic(id_map, segments_info, category_names={17: "cat", 187: "sky"})
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["sky (stuff, 24 px)", "cat (thing, 12 px)", "cat 2 (thing, 6 px)",
                      "VOID (unlabelled)"]  # class names, not ids (convention 3)
    with_ids = figures.show_panoptic(id_map, segments_info, category_names={17: "cat", 187: "sky"},
                                     show_ids=True)
    assert [t.get_text() for t in with_ids.get_legend().get_texts()][:2] == [
        "1: sky (stuff, 24 px)", "2: cat (thing, 12 px)"]
    rgb = ax.images[0].get_array()
    colours = {tuple(rgb[y, x]) for y, x in [(0, 0), (5, 0), (5, 4), (5, 7)]}
    assert len(colours) == 4  # two instances of the same class get different colours
    assert tuple(rgb[5, 7]) == figures.VOID_COLOR


def test_show_panoptic_keeps_legend_colours_true_and_blends_only_when_asked():
    id_map = np.ones((4, 4), dtype=np.int64)
    info = [{"id": 1, "category_id": 5, "isthing": True, "area": 16}]
    ax = figures.show_panoptic(id_map, info)
    legend_colour = ax.get_legend().legend_handles[0].get_facecolor()[:3]
    np.testing.assert_allclose(ax.images[0].get_array()[0, 0], legend_colour)  # convention 2
    with pytest.raises(ValueError, match="its own panel"):
        figures.show_panoptic(id_map, info, image=np.zeros((4, 4, 3)))
    ax = figures.show_panoptic(id_map, info, image=np.zeros((4, 4, 3)), alpha=0.5)
    assert ax.get_legend().get_texts()[0].get_text() == "class 5 (thing, 16 px)"
    np.testing.assert_allclose(ax.images[0].get_array()[0, 0], 0.5 * figures.segment_colors(1)[0])


def test_show_maps_shares_one_scale_and_one_colour_bar_by_default():
    maps = np.stack([np.full((3, 4), 0.1), np.full((3, 4), 0.9)])
    maps[0, 0, 0] = 0.0
    fig = figures.show_maps(maps, titles=["weak", "strong"])
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert [im.get_clim() for im in images] == [(0.0, 0.9)] * 2  # weak looks weak (convention 1)
    assert len(fig.axes) == 3  # two maps, one colour bar
    each = figures.show_maps(maps, scale="each")
    assert [ax.images[0].get_clim() for ax in each.axes if ax.images][0] == (0.0, 0.1)
    assert len(each.axes) == 4  # a bar per map
    logits = figures.show_maps(np.array([[[-1.0, 3.0]]]), cmap=figures.LOGIT_CMAP)
    assert logits.axes[0].images[0].get_clim() == (-3.0, 3.0)  # centred on 0
    with pytest.raises(ValueError, match="scale must be"):
        figures.show_maps(maps, scale="per panel")
    with pytest.raises(ValueError, match="one shape"):
        figures.show_maps([np.zeros((2, 2)), np.zeros((3, 3))])


def test_segment_labels_number_repeated_classes():
    info = [{"id": 7, "category_id": 1, "isthing": True, "area": 3},
            {"id": 9, "category_id": 1, "isthing": True, "area": 2},
            {"id": 4, "category_id": 2, "isthing": False}]
    assert figures.segment_labels(info, {1: "circle", 2: "sky"}) == [
        "circle (thing, 3 px)", "circle 2 (thing, 2 px)", "sky (stuff)"]


def test_matched_colors_give_a_prediction_its_ground_truths_colours():
    gt = np.zeros((4, 8), dtype=np.int64)
    gt[:, :4], gt[:, 4:] = 70, 80  # left: sky (stuff), right: a circle
    gt_info = [{"id": 70, "category_id": 4}, {"id": 80, "category_id": 1}]
    pred = np.zeros((4, 8), dtype=np.int64)
    pred[:, :3], pred[:, 3:], pred[0, 7] = 1, 2, 3
    pred_info = [{"id": 2, "category_id": 1},   # circle, IoU 4*4 / (4*5) = 0.8 with the circle
                 {"id": 1, "category_id": 4},   # sky, IoU 12/16 = 0.75
                 {"id": 3, "category_id": 2}]   # one pixel of a rectangle: no match
    pred_colors, gt_colors = figures.matched_colors(pred, pred_info, gt, gt_info)
    np.testing.assert_array_equal(gt_colors, figures.segment_colors(2))
    np.testing.assert_array_equal(pred_colors[0], gt_colors[1])
    np.testing.assert_array_equal(pred_colors[1], gt_colors[0])
    assert not any(np.array_equal(pred_colors[2], c) for c in gt_colors)
    # another class is no match, however large the overlap: a spare colour
    pred_info[1]["category_id"] = 5
    pred_colors, _ = figures.matched_colors(pred, pred_info, gt, gt_info)
    assert not any(np.array_equal(pred_colors[1], c) for c in gt_colors)
    info = [{**s, "isthing": s["category_id"] < 4, "area": int((pred == s["id"]).sum())} for s in pred_info]
    ax = figures.show_panoptic(pred, info, colors=pred_colors)
    np.testing.assert_allclose(ax.images[0].get_array()[0, 5], pred_colors[0])
    no_prediction, gt_colors = figures.matched_colors(np.zeros((4, 8), dtype=np.int64), [], gt, gt_info)
    assert no_prediction.shape == (0, 3) and len(gt_colors) == 2
    with pytest.raises(ValueError, match="one RGB colour per segment"):
        figures.show_panoptic(pred, info, colors=pred_colors[:2])


def test_shape_table_text_and_html():
    named = {"res5": torch.zeros(1, 2048, 2, 3), "hs": torch.Size([1, 100, 256]),
             "pred_masks": (1, 100, 16, 24)}
    table = figures.shape_table(named, input_size=(64, 96), strides={"pred_masks": 4})
    text = repr(table)
    assert text.splitlines()[0].split() == ["name", "shape", "stride"]
    assert "(1, 2048, 2, 3)" in text and "/32" in text
    assert "(1, 100, 256)" in text
    rows = {line.split()[0]: line.split()[-1] for line in text.splitlines()[2:]}
    assert rows == {"res5": "/32", "hs": "-", "pred_masks": "/4"}
    html = table._repr_html_()
    assert html.count("<tr>") == 4 and "(1, 100, 16, 24)" in html


def test_shape_table_strides_are_powers_of_two():
    """The ResNet rounds sizes up: 375 pixels give 12 cells at stride 32 (375 / 12 = 31.25)."""
    table = figures.shape_table({"res5": (1, 2048, 12, 11), "res2": (1, 256, 94, 88)}, input_size=(375, 350))
    assert [row[2] for row in table.rows] == ["/32", "/4"]


def test_show_cells_over_image_stretches_cells_over_pixels():
    image = np.full((64, 96, 3), 200, dtype=np.uint8)
    cells = torch.zeros(2, 3)
    cells[1, 2] = 1.0                                  # the bottom-right cell only
    outline = np.zeros((64, 96), dtype=bool)
    outline[40:60, 70:90] = True
    ax = figures.show_cells_over_image(image, cells, outline=outline, title="one cell", grid=False)
    grey, overlay = ax.images
    assert grey.get_array().shape == (64, 96)
    assert overlay.get_extent() == [-0.5, 95.5, 63.5, -0.5]   # 2 x 3 cells over 64 x 96 pixels
    alpha = overlay.get_array()[..., 3]
    assert alpha[1, 2] == pytest.approx(0.9) and alpha.sum() == pytest.approx(0.9)
    assert ax.get_title() == "one cell" and len(ax.collections) >= 1  # the outline
    with_grid = figures.show_cells_over_image(image, cells, grid=True, colorbar=True, vmax=2.0)
    assert len(with_grid.lines) == 1 + 2                        # 1 row line, 2 column lines
    assert with_grid.images[1].get_array()[1, 2, 3] == pytest.approx(0.45)  # opaque only at vmax
    assert len(with_grid.figure.axes) == 2                      # and its colour bar
    with pytest.raises(ValueError, match="one .h, w. map"):
        figures.show_cells_over_image(image, torch.zeros(8, 2, 3))
    plt.close("all")


def test_image_array_reads_16_bit_and_refuses_what_it_cannot_draw():
    """A uint16 image is 16-bit (not white), as load_image reads it; an empty or wider-range
    integer array is a clear error."""
    import numpy as np
    from detr_explained.figures import image_array
    assert image_array(np.full((2, 2), 32768, np.uint16)).max() == pytest.approx(0.5, abs=1e-4)
    assert image_array(np.full((2, 2, 3), 51, np.int64)).max() == pytest.approx(0.2)
    for bad in (np.zeros((0, 3)), np.full((2, 2), 300, np.int32), np.zeros((2, 2, 2, 2))):
        with pytest.raises(ValueError):
            image_array(bad)


def test_outline_of_a_segment_on_the_border_is_closed_and_keeps_the_image_limits():
    mask = np.zeros((20, 30), dtype=bool)
    mask[:5] = True                                   # the top band: touches three edges
    ax = figures.show_cells_over_image(np.zeros((20, 30, 3)), np.ones((2, 3)), outline=mask)
    assert ax.get_xlim() == (-0.5, 29.5) and ax.get_ylim() == (19.5, -0.5)
    (path,) = ax.collections[-1].get_paths()
    corners = path.vertices
    np.testing.assert_allclose(corners.min(0), [-0.5, -0.5])
    np.testing.assert_allclose(corners.max(0), [29.5, 4.5])   # along the edges, not an open line
    with pytest.raises(ValueError, match="one .H, W. mask"):
        figures.draw_outline(ax, np.zeros((2, 20, 30)))
    plt.close("all")


def test_padding_masks_show_their_cells_when_they_can_be_counted():
    fig = figures.show_padding_masks(np.zeros((1, 3, 4), dtype=bool))
    assert len(fig.axes[0].lines) == 2 + 3
    big = figures.show_padding_masks(np.zeros((1, 50, 60), dtype=bool))
    assert not big.axes[0].lines
    plt.close("all")


def test_a_listed_segment_id_0_is_a_segment_not_void():
    ids = np.zeros((2, 2), dtype=np.int64)
    ids[1] = 1
    info = [{"id": 0, "category_id": 1, "isthing": True, "area": 2},
            {"id": 1, "category_id": 2, "isthing": False, "area": 2}]
    ax = figures.show_panoptic(ids, info, category_names={1: "circle", 2: "sky"})
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["circle (thing, 2 px)", "sky (stuff, 2 px)"]
    np.testing.assert_allclose(ax.images[0].get_array()[0, 0], figures.segment_colors(2)[0])
    plt.close("all")


def test_show_maps_over_image_draws_one_scale_and_one_colour_bar():
    image = np.zeros((32, 32, 3))
    maps = torch.rand(3, 2, 2)
    maps[2] *= 0.1                                             # a weak map ...
    fig = figures.show_maps_over_image(image, maps, titles=["a", "b", "c"], ncols=2)
    panels = [ax for ax in fig.axes if ax.get_title() in ("a", "b", "c")]
    assert len(panels) == 3 and len(fig.axes) == 4             # three panels and one colour bar
    top = float(maps.max())
    alphas = [ax.images[1].get_array()[..., 3].max() for ax in panels]
    assert alphas[2] == pytest.approx(0.9 * float(maps[2].max()) / top)   # ... looks weak
    outline = np.zeros((32, 32), dtype=bool)
    outline[4:10, 4:10] = True
    one_mask = figures.show_maps_over_image([image] * 3, maps, outlines=outline, ncols=3)
    assert all(ax.collections for ax in one_mask.axes[:3])     # the same outline on every panel
    with pytest.raises(ValueError, match="one per map"):
        figures.show_maps_over_image([image] * 2, maps)
    with pytest.raises(ValueError, match="one mask, or one per map"):
        figures.show_maps_over_image(image, maps, outlines=[outline] * 2)
    with pytest.raises(ValueError, match="at least one"):
        figures.show_maps_over_image(image, [])
    plt.close("all")


def test_segment_colours_avoid_the_colours_that_mean_something_else():
    import colorsys

    from matplotlib.colors import to_rgb

    colours = figures.segment_colors(24)
    assert len({tuple(c) for c in colours}) == 24              # distinct
    meanings = [figures.ATTENTION_COLOR, to_rgb(figures.TRUTH_COLOR), to_rgb(figures.PREDICTION_COLOR)]
    for colour in colours:
        hue, light, saturation = colorsys.rgb_to_hls(*colour)
        assert saturation > 0.25, colour                       # no grey (padding)
        for meaning in meanings:
            other = colorsys.rgb_to_hls(*meaning)[0]
            distance = min(abs(hue - other), 1 - abs(hue - other)) * 360
            assert distance > 8 or saturation < 0.35, (colour, meaning)
