"""The explorers (detr_explained.explore): each view is a pure function of a traced image and
the control values, and each panel redraws from the kept trace when a control moves.

These run under the venv's ipywidgets (8); tests/test_explore_widgets7.py drives the same
panels under ipywidgets 7.7.1, the version Colab ships.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from detr_explained import build_model, explore, figures, synthetic


@pytest.fixture(scope="module")
def model():
    return build_model("detr-tiny-synthetic", pretrained=True)


@pytest.fixture(scope="module")
def traced(model):
    return explore.trace_scene(model, synthetic.held_out_scene(synthetic.BOOK_SCENE))


@pytest.fixture
def no_model_runs(model, monkeypatch):
    """After this, any forward pass of the model fails the test: views must read the trace."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model ran again, but only the view changed")
    monkeypatch.setattr(model, "forward", refuse)
    monkeypatch.setattr(model.detr, "forward", refuse)
    yield


def kept_queries(traced):
    return [r["query"] for r in explore.query_rows(traced) if r["kept"]]


# ---------------------------------------------------------------------------- the state

def test_trace_scene_keeps_the_trace_the_truth_and_the_default_merge(traced):
    assert traced.trace.pred_logits.shape[:2] == (1, traced.num_queries)
    assert traced.image.shape == (128, 128, 3) and 0 <= traced.image.min() and traced.image.max() <= 1
    ids, segments = traced.truth
    assert ids.shape == (128, 128) and {s["id"] for s in segments} == set(np.unique(ids).tolist())
    assert traced.result.segments_info, "the shipped model keeps queries on the book's scene"
    assert traced.name(traced.trace.pred_logits.shape[-1] - 1) == "no object"
    assert traced.name(synthetic.CIRCLE) == "circle"


def test_trace_scene_keeps_a_trace_it_is_given(model, traced):
    scene = synthetic.held_out_scene(synthetic.BOOK_SCENE)
    kept = explore.trace_scene(model, scene, trace=traced.trace)
    assert kept.trace is traced.trace
    np.testing.assert_array_equal(kept.result.id_map, traced.result.id_map)
    other = synthetic.make_scene(0, 0, size=(96, 160))
    with pytest.raises(ValueError, match="not of this one image"):
        explore.trace_scene(model, other, trace=traced.trace)
    with pytest.raises(TypeError, match="DETRTrace"):
        explore.trace_scene(model, scene, trace={"pred_logits": None})


def test_trace_scene_refuses_what_is_not_a_scene(model):
    with pytest.raises(TypeError, match="synthetic.Scene"):
        explore.trace_scene(model, torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        explore.trace_image(model, torch.zeros(64, 64))
    model.train()
    try:
        with pytest.raises(ValueError, match="eval"):
            explore.trace_scene(model, synthetic.held_out_scene(0))
    finally:
        model.eval()


# ---------------------------------------------------------------------------- 1. encoder

def test_encoder_view_is_the_cells_row_of_the_attention(traced):
    h, w = traced.grid
    view = explore.encoder_attention_view(traced, row=1, col=2, layer=0)
    expected = traced.trace.encoder_attention[0, 0, 1 * w + 2].view(h, w).numpy()
    np.testing.assert_array_equal(view.data["attention"], expected)
    assert view.data["attention"].sum() == pytest.approx(1.0, abs=1e-5)
    # the figure draws exactly that map, on the shared scale
    drawn = view.figure.axes[1].images[0]
    np.testing.assert_array_equal(np.asarray(drawn.get_array()), expected)
    assert drawn.get_clim() == (0.0, view.data["vmax"])


def test_encoder_view_shares_one_scale_across_layers(traced):
    views = [explore.encoder_attention_view(traced, 2, 1, layer)
             for layer in range(traced.trace.encoder_attention.shape[0])]
    assert len({v.data["vmax"] for v in views}) == 1
    assert max(v.data["attention"].max() for v in views) == pytest.approx(views[0].data["vmax"])
    assert explore.encoder_attention_view(traced, 2, 1, -1).data["layer"] == len(views) - 1


@pytest.mark.parametrize("kwargs, message", [
    ({"row": 99}, "row must be a whole number from 0 to 7"),      # the 8 x 8 grid of the DC5 model
    ({"col": -1}, "col must be"),
    ({"layer": 7}, "layer must be"),
    ({"row": 1.5}, "row must be"),
])
def test_encoder_view_refuses_cells_outside_the_grid(traced, kwargs, message):
    args = {"row": 0, "col": 0, "layer": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        explore.encoder_attention_view(traced, **args)


# ---------------------------------------------------------------------------- 2. query inspector

def test_query_rows_list_every_query_and_mark_the_kept(traced):
    rows = explore.query_rows(traced)
    assert [r["query"] for r in rows] == list(range(traced.num_queries))
    kept = [r for r in rows if r["kept"]]
    assert kept and all(r["score"] > traced.keep_threshold and r["class"] != "no object" for r in kept)
    assert len(kept_queries(traced)) == sum(len(s["queries"]) for s in traced.result.segments_info)


def test_query_view_shows_the_maps_of_the_chosen_head(traced):
    q = kept_queries(traced)[0]
    maps = traced.trace.attention_maps[0, q]                                    # (M, h, w)
    summed = explore.query_view(traced, q, "all")
    np.testing.assert_allclose(summed.data["attention"], maps.sum(0).numpy())
    assert summed.data["attention"].sum() == pytest.approx(1.0, abs=1e-4)    # one softmax per query
    top = int(maps.sum((1, 2)).argmax())
    one = explore.query_view(traced, q, top)
    np.testing.assert_array_equal(one.data["attention"], maps[top].numpy())
    assert one.data["vmax"] == pytest.approx(float(maps.max()))             # one scale for all heads
    assert not np.array_equal(one.data["attention"], summed.data["attention"]) or maps.shape[0] == 1
    assert one.data["probabilities"].sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(one.data["mask_logits"], traced.trace.pred_masks[0, q].numpy())


def test_query_view_shows_the_segment_only_of_a_kept_query(traced):
    q = kept_queries(traced)[0]
    segment = explore.segment_of_query(traced, q)
    view = explore.query_view(traced, q)
    assert view.data["segment"].sum() == segment["area"]
    dropped = next(r["query"] for r in explore.query_rows(traced) if not r["kept"])
    assert explore.segment_of_query(traced, dropped) is None
    assert not explore.query_view(traced, dropped).data["segment"].any()
    assert "not kept" in explore.query_view(traced, dropped).text


def test_query_view_refuses_bad_queries_and_heads(traced):
    with pytest.raises(ValueError, match=f"from 0 to {traced.num_queries - 1}"):
        explore.query_view(traced, traced.num_queries)
    with pytest.raises(ValueError, match='"all" or a head index'):
        explore.query_view(traced, 0, head=traced.num_heads)


# ---------------------------------------------------------------------------- 3. mask-head stages

def test_mask_stage_view_shows_each_stage_at_its_resolution(traced):
    q = kept_queries(traced)[0]
    seen = {}
    for stage in explore.MASK_STAGES:
        view = explore.mask_stage_view(traced, q, stage)
        features = traced.trace.mask_head_stages[stage][q]
        assert view.data["shape"] == tuple(features.shape)
        assert view.data["channel"].shape == tuple(features.shape[-2:])
        assert view.data["stride"] == 128 // features.shape[-1]
        np.testing.assert_allclose(view.data["mean_abs"], features.abs().mean(0).numpy())
        np.testing.assert_array_equal(view.data["channel"], features[view.data["channel_index"]].numpy())
        assert abs(view.data["r"]) <= 1 + 1e-5          # a correlation, up to rounding
        seen[stage] = view.data["stride"]
    # the book's model is DC5: its head starts on Res5's grid at stride 16, the size of Res4
    assert seen["input"] == 16 and seen["+res4"] == 16 and seen["+res3"] == 8 and seen["out_lay"] == 4
    with pytest.raises(ValueError, match="stage must be one of"):
        explore.mask_stage_view(traced, q, "lay9")


# ---------------------------------------------------------------------------- 4. merge

def test_merge_view_at_the_defaults_is_the_kept_merge(traced):
    view = explore.merge_view(traced)
    np.testing.assert_array_equal(view.data["id_map"], traced.result.id_map.numpy())
    assert [row["segment"] for row in view.table] == [s["id"] for s in traced.result.segments_info]
    assert 0 < view.data["pq"]["All"]["pq"] <= 1


def test_merge_view_threshold_keeps_fewer_queries_as_it_rises(traced):
    counts = [explore.merge_view(traced, t).data["kept"] for t in (0.5, 0.85, 0.99)]
    assert counts[0] >= counts[1] >= counts[2]
    assert counts[0] > counts[2], "on the book's scene some queries score between 0.5 and 0.99"


def test_merge_view_options_reach_the_merge(traced):
    union = explore.merge_view(traced, 0.5, 4, "union")
    official = explore.merge_view(traced, 0.5, 4, "official")
    kept_all = explore.merge_view(traced, 0.5, 0, "union")
    for view in (union, official, kept_all):
        assert len(view.table) == len(np.setdiff1d(np.unique(view.data["id_map"]), [0]))
    # with the rule off, no segment is removed: at least as many segments as with it
    assert len(kept_all.table) >= len(union.table)
    assert "<= 0 px removed" in kept_all.figure.axes[0].get_title()
    with pytest.raises(ValueError, match="stuff_merge must be one of"):
        explore.merge_view(traced, 0.85, 4, "majority")
    with pytest.raises(ValueError, match="max_removed_area"):
        explore.merge_view(traced, 0.85, -1)
    with pytest.raises(ValueError, match="threshold"):
        explore.merge_view(traced, 1.0)


def test_merge_view_legends_name_classes_and_the_table_uses_their_names(traced):
    """Legends by class name, no segment ids (convention 3); each table row under its name in the
    merged map's legend, and the name of the ground-truth segment it matches (same colour)."""
    view = explore.merge_view(traced)
    merged, truth = (ax.get_legend() for ax in view.figure.axes[:2])
    labels = [t.get_text() for t in merged.get_texts()]
    truth_labels = [t.get_text() for t in truth.get_texts()]
    assert labels == figures.segment_labels(traced.result.segments_info, traced.category_names)
    assert not any(label[0].isdigit() for label in labels + truth_labels)     # no ids
    assert any(label.startswith("circle") for label in truth_labels)
    assert [f"{row['legend']} ({row['kind']}, {row['area']} px)" for row in view.table] == labels
    colours = {label: tuple(np.round(p.get_facecolor()[:3], 4)) for label, p in
               zip(labels + truth_labels, merged.legend_handles + truth.legend_handles)}
    for row, label in zip(view.table, labels):
        if row["matches"] == "no match":
            assert colours[label] not in {colours[t] for t in truth_labels}
        else:
            truth_label = next(t for t in truth_labels if t.rsplit(" (", 1)[0] == row["matches"])
            assert colours[label] == colours[truth_label]
    assert "matches" not in explore.merge_view(_no_truth(traced)).table[0]


def _no_truth(traced):
    import dataclasses
    return dataclasses.replace(traced, truth=None)


def test_views_use_the_books_colours(traced):
    """Convention 4 of figures: orange for what is predicted or chosen, never red for anything
    but attention over an image; the colour maps are the book's."""
    from matplotlib.colors import to_rgba
    assert explore.ATTENTION_CMAP == figures.ATTENTION_CMAP and explore.LOGIT_CMAP == figures.LOGIT_CMAP
    orange = to_rgba(figures.PREDICTION_COLOR)
    encoder = explore.encoder_attention_view(traced, 1, 2, 0)
    assert encoder.drawing.artists["image_cell"].get_edgecolor() == orange
    assert encoder.figure.axes[1].images[0].get_cmap().name == figures.ATTENTION_CMAP
    q = kept_queries(traced)[0]
    view = explore.query_view(traced, q)
    bars = view.drawing.artists["bars"]
    best = int(view.data["probabilities"].argmax())
    assert bars[best].get_facecolor() == orange
    assert all(bar.get_facecolor() != orange for k, bar in enumerate(bars) if k != best)
    assert view.drawing.artists["box"].get_edgecolor() == orange
    red = to_rgba("#d62728")
    for line in view.figure.axes[2].lines:             # the threshold: black, not red
        assert to_rgba(line.get_color()) != red


def test_mask_stage_view_draws_magnitudes_from_0_and_signed_channels_centred(traced):
    q = kept_queries(traced)[0]
    for stage in ("lay3", "+res2"):
        view = explore.mask_stage_view(traced, q, stage)
        channel, mean_abs = view.figure.axes[0].images[0], view.figure.axes[1].images[0]
        assert mean_abs.get_cmap().name == figures.ATTENTION_CMAP and mean_abs.get_clim()[0] == 0
        low, high = channel.get_clim()
        if view.data["channel"].min() >= 0:             # after a ReLU: a magnitude
            assert channel.get_cmap().name == figures.ATTENTION_CMAP and low == 0
        else:                                            # signed: 0 in the middle
            assert channel.get_cmap().name == figures.LOGIT_CMAP and low == -high
    assert explore.mask_stage_view(traced, q, "lay3").data["channel"].min() >= 0   # after gn3 + ReLU


# ---------------------------------------------------------------------------- panels

def test_encoder_panel_redraws_from_the_trace_when_a_control_moves(traced, no_model_runs):
    panel = explore.EncoderAttentionPanel(traced, row=0, col=0)
    before = panel.view.data["attention"].copy()
    panel.controls["row"].value = 3
    assert panel.updates == 2
    h, w = traced.grid
    np.testing.assert_array_equal(panel.view.data["attention"],
                                  traced.trace.encoder_attention[-1, 0, 3 * w + 0].view(h, w).numpy())
    assert not np.array_equal(before, panel.view.data["attention"])
    panel.controls["layer"].value = 0
    assert panel.view.data["layer"] == 0 and panel.updates == 3
    assert "cell (3, 0)" in panel.caption.value
    assert panel.picture.value == panel.view.png()        # the panel shows this state's picture


def test_query_panel_lists_the_kept_queries_and_follows_the_head(traced, no_model_runs):
    panel = explore.QueryPanel(traced)
    values = [v for _, v in panel.controls["query"].options]
    assert values == kept_queries(traced)
    labels = [label for label, _ in panel.controls["query"].options]
    assert all(traced.name(synthetic.CIRCLE) in label or ":" in label for label in labels)
    q = values[-1]
    dropped = next(r["query"] for r in explore.query_rows(traced) if not r["kept"])
    starting_on_dropped = explore.QueryPanel(traced, query=dropped)
    assert starting_on_dropped.controls["query"].options[-1] == (
        f"{dropped}: {explore.query_rows(traced)[dropped]['class']} "
        f"{explore.query_rows(traced)[dropped]['score']:.2f} (dropped)", dropped)
    assert starting_on_dropped.view.data["segment"].sum() == 0
    panel.controls["query"].value = q
    panel.controls["head"].value = 0
    np.testing.assert_array_equal(panel.view.data["attention"], traced.trace.attention_maps[0, q, 0].numpy())


def test_mask_stage_panel_follows_the_stage(traced, no_model_runs):
    panel = explore.MaskStagePanel(traced)
    panel.controls["stage"].value = "+res2"
    assert panel.view.data["stride"] == 4
    panel.controls["stage"].value = "+res3"
    assert panel.view.data["stride"] == 8
    panel.controls["stage"].value = "lay1"
    assert panel.view.data["stride"] == 16                       # Res5's stride in the DC5 model


def test_merge_panel_follows_threshold_rule_and_stuff_merge(traced, no_model_runs):
    panel = explore.MergePanel(traced)
    at_default = panel.view.data["kept"]
    panel.controls["threshold"].value = 0.99
    assert panel.view.data["kept"] <= at_default
    panel.controls["threshold"].value = 0.5
    assert panel.view.data["kept"] >= at_default
    panel.controls["small"].value = False
    assert "<= 0 px removed" in panel.view.figure.axes[0].get_title()
    panel.controls["stuff_merge"].value = "official"
    assert "official" in panel.view.figure.axes[0].get_title()
    assert panel.updates == 5
    assert "<pre" in panel.table.value and "segment" in panel.table.value   # the segments table


@pytest.mark.parametrize("make, message", [
    (lambda t: explore.EncoderAttentionPanel(t, row=9), "row must be"),
    (lambda t: explore.EncoderAttentionPanel(t, layer=5), "layer must be"),
    (lambda t: explore.QueryPanel(t, query=99), "query must be"),
    (lambda t: explore.QueryPanel(t, head=8), "head must be"),
    (lambda t: explore.MaskStagePanel(t, stage="lay9"), "stage must be one of"),
    (lambda t: explore.MergePanel(t, threshold=0.05), "runs from 0.1 to 0.99"),
    (lambda t: explore.MergePanel(t, stuff_merge="all"), "stuff_merge must be"),
])
def test_panels_refuse_a_first_state_their_controls_cannot_show(traced, make, message):
    """A slider would clamp such a value silently, a dropdown fail with a trait error."""
    with pytest.raises(ValueError, match=message):
        make(traced)
    assert explore.EncoderAttentionPanel(traced, layer=-1).controls["layer"].value == \
        traced.trace.encoder_attention.shape[0] - 1


def test_a_view_renders_to_png(traced):
    png = explore.merge_view(traced).png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


# ---------------------------------------------------------------------------- 5. scene editor

@pytest.fixture
def editor(model):
    return explore.SceneEditor(model, synthetic.held_out_layout(synthetic.BOOK_SCENE))


def test_scene_editor_starts_on_the_books_scene(editor, traced):
    np.testing.assert_array_equal(editor.view.data["id_map"], traced.result.id_map.numpy())
    assert editor.view.data["kept"] == kept_queries(traced)[:explore.EDITOR_QUERIES]
    labels = [label for label, _ in editor.controls["shape"].options]
    assert len(labels) == len(editor.layout.shapes) and any("triangle" in label for label in labels)


def test_scene_view_compares_the_kept_queries_on_one_scale_with_one_colour_bar(editor, traced):
    view = editor.view
    bars = [ax for ax in view.figure.axes if hasattr(ax, "_colorbar")]
    assert len(bars) == 1                                   # one, for all the kept queries' maps
    assert bars[0]._colorbar.norm.vmax == pytest.approx(view.data["vmax"])
    assert view.data["vmax"] == pytest.approx(view.data["attention"].max())
    legend = next(ax.get_legend() for ax in view.figure.axes if ax.get_legend() is not None)
    labels = [t.get_text() for t in legend.get_texts()]
    named = figures.segment_labels(traced.truth[1], traced.category_names)
    layout = editor.layout
    for label, expected, segment in zip(labels, named, traced.truth[1]):   # things: + their shape number
        shape = [k for k, s in enumerate(layout.shapes) if s.segment_id == segment["id"]]
        assert label == (f"{expected}: shape {shape[0]}" if shape else expected)
    assert sum(": shape " in label for label in labels) == sum(s["isthing"] for s in traced.truth[1])
    assert all(row["matches"] == "no match" or row["matches"] in [t.rsplit(" (", 1)[0] for t in labels]
               for row in view.table)


def test_moving_a_shape_runs_the_model_again_and_the_maps_follow(editor):
    k = len(editor.layout.shapes) - 1                    # the front shape: nothing hides it
    shape = editor.layout.shapes[k]
    before = editor.view
    after = editor.move(k, 30.0, 30.0)
    truth_ids = editor.traced.truth[0]
    moved = editor.layout.shapes[k]
    assert (moved.cy, moved.cx) == (30.0, 30.0) and (shape.cy, shape.cx) != (30.0, 30.0)
    assert truth_ids[30, 30] == moved.segment_id          # the ground truth moved with it
    assert not np.array_equal(before.data["id_map"], after.data["id_map"])   # and the prediction too
    # the model ran on the edited scene: the kept maps are those of the new trace
    np.testing.assert_allclose(after.data["attention"],
                               editor.traced.trace.attention_maps[0].sum(1)[after.data["kept"]].numpy())
    # the sliders show the moved shape
    assert (editor.controls["row"].value, editor.controls["col"].value) == (30, 30)


def test_sliders_move_and_resize_the_selected_shape(editor):
    k = editor.controls["shape"].value
    editor.controls["row"].value = 20
    assert editor.layout.shapes[k].cy == 20.0
    editor.controls["size"].value = 10
    assert editor.layout.shapes[k].size == 10.0
    assert len(editor.history) == 2


def test_add_remove_and_undo(editor):
    count = len(editor.layout.shapes)
    segments_before = len(editor.traced.truth[1])
    editor.add(synthetic.CIRCLE, 24.0, 100.0, 10.0)
    assert len(editor.layout.shapes) == count + 1
    assert editor.controls["shape"].value == count          # the new shape is selected
    assert len(editor.traced.truth[1]) == segments_before + 1
    assert editor.traced.truth[0][24, 100] == editor.layout.shapes[-1].segment_id
    editor.remove()
    assert len(editor.layout.shapes) == count
    editor.undo()
    assert len(editor.layout.shapes) == count + 1
    editor.undo()
    editor.undo()
    assert len(editor.layout.shapes) == count and editor.history == []
    assert editor.undo() is editor.view                    # nothing left to undo: no change


def test_buttons_edit_the_scene(editor):
    count = len(editor.layout.shapes)
    editor.controls["category"].value = synthetic.TRIANGLE
    editor.controls["add"].click()
    assert len(editor.layout.shapes) == count + 1
    assert editor.layout.shapes[-1].category == synthetic.TRIANGLE
    editor.controls["remove"].click()
    editor.controls["remove"].click()
    assert len(editor.layout.shapes) == count - 1
    editor.controls["undo"].click()
    assert len(editor.layout.shapes) == count


def test_shapes_found_follows_pq_matches(editor):
    layout, traced = editor.layout, editor.traced
    found, extra = explore.shapes_found(traced, layout)
    assert sorted(found) == [k for k in range(len(layout.shapes)) if k not in layout.hidden()]
    things = [s for s in traced.truth[1] if s["isthing"]]
    matched = explore.pq_of(traced, traced.result)
    tp = sum(matched.per_class[c]["tp"] for c in synthetic.THING_IDS if c in matched.per_class)
    fp = sum(matched.per_class[c]["fp"] for c in synthetic.THING_IDS if c in matched.per_class)
    assert sum(found.values()) == tp and len(found) == len(things)
    assert sum(extra.values()) <= fp          # an unmatched thing on stuff alone counts on no shape
    editor.remove(0)
    assert len(explore.shapes_found(editor.traced, editor.layout)[0]) == len(found) - 1


def test_a_shape_moved_behind_another_is_reported_hidden(editor):
    layout = editor.layout
    back = 0
    front = len(layout.shapes) - 1
    view = editor.move(back, layout.shapes[front].cy, layout.shapes[front].cx)
    if back in editor.layout.hidden():
        assert f"[{back}]" in view.text and "hidden" in view.text
    with pytest.raises(IndexError, match="no shape"):
        editor.move(99, 10.0, 10.0)


@pytest.mark.parametrize("view, first, second", [
    (explore.encoder_attention_view, (1, 2, 0), (3, 0, 1)),
    (explore.query_view, (None, "all"), (-1, 2)),
    (explore.mask_stage_view, (None, "lay1"), (-1, "+res2")),
    (explore.mask_stage_view, (-1, "input"), (None, "lay4")),
    (explore.merge_view, (0.85, 4, "union"), (0.5, 0, "official")),
])
def test_a_panel_updating_its_drawing_draws_what_a_fresh_view_draws(traced, view, first, second):
    """Panels update the artists of the last figure; the picture must be the fresh one's."""
    import io
    from PIL import Image

    kept = kept_queries(traced)
    fill = {None: kept[0], -1: kept[-1]}
    first = tuple(fill.get(a, a) if not isinstance(a, str) else a for a in first)
    second = tuple(fill.get(a, a) if not isinstance(a, str) else a for a in second)
    updated = view(traced, *second, drawing=view(traced, *first).drawing)
    fresh = view(traced, *second)
    assert updated.figure is not fresh.figure
    pixels = [np.asarray(Image.open(io.BytesIO(v.png()))) for v in (updated, fresh)]
    assert pixels[0].shape == pixels[1].shape
    assert (pixels[0] != pixels[1]).any(-1).mean() == 0
    assert updated.text == fresh.text


def test_a_photo_without_ground_truth(model):
    """trace_image: a real photo, no ground truth: the merge view has no PQ and one panel."""
    import matplotlib.cbook
    from detr_explained import prepare_image

    photo = prepare_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg"), shorter=128, max_longer=192)
    traced = explore.trace_image(model, photo, synthetic.CATEGORY_NAMES, synthetic.is_thing)
    assert traced.truth is None and traced.image.shape[:2] == tuple(photo.shape[-2:])
    view = explore.merge_view(traced, 0.5)
    assert view.data["pq"] is None and "PQ" not in view.text
    assert len([ax for ax in view.figure.axes if ax.images]) == 1
    q = int(traced.probabilities[:, :-1].max(-1).values.argmax())
    assert explore.query_view(traced, q).data["probabilities"].shape == (synthetic.NUM_CLASSES + 1,)
    assert explore.encoder_attention_view(traced, 0, 0).data["attention"].shape == traced.grid
    with pytest.raises(ValueError, match="at its size"):
        explore.trace_image(model, photo, truth=(np.zeros((5, 5), dtype=np.int64), []))
