"""The explorers' panels under ipywidgets 7.7.1, the version Colab ships (tests/widgets7.py runs
the code in a child interpreter with .widgets7 first on the path; `make widgets7` installs it).

Each explorer is built, a control is set as a reader would set it, and the view must change as
it should, the same checks as tests/test_explore.py makes under ipywidgets 8.
"""
from __future__ import annotations

from widgets7 import run_under_ipywidgets7

SETUP = """
import numpy as np
import ipywidgets
from detr_explained import build_model, explore, synthetic
assert ipywidgets.__version__ == "7.7.1"
model = build_model("detr-tiny-synthetic", pretrained=True)
traced = explore.trace_scene(model, synthetic.held_out_scene(synthetic.BOOK_SCENE))
kept = [r["query"] for r in explore.query_rows(traced) if r["kept"]]
"""


def test_view_panels_under_ipywidgets_7():
    result = run_under_ipywidgets7(SETUP + """
def refuse(*args, **kwargs):
    raise AssertionError("the model ran again, but only the view changed")
model.forward = refuse

panel = explore.EncoderAttentionPanel(traced)
h, w = traced.grid
panel.controls["row"].value = 2
panel.controls["col"].value = 3
panel.controls["layer"].value = 0
np.testing.assert_array_equal(panel.view.data["attention"],
                              traced.trace.encoder_attention[0, 0, 2 * w + 3].view(h, w).numpy())
assert panel.updates == 4 and isinstance(panel.widget, ipywidgets.VBox)

panel = explore.QueryPanel(traced)
assert [v for _, v in panel.controls["query"].options] == kept
panel.controls["query"].value = kept[-1]
panel.controls["head"].value = 1
np.testing.assert_array_equal(panel.view.data["attention"],
                              traced.trace.attention_maps[0, kept[-1], 1].numpy())

panel = explore.MaskStagePanel(traced)
panel.controls["stage"].value = "+res3"
assert panel.view.data["stride"] == 8

panel = explore.MergePanel(traced)
before = panel.view.data["kept"]
panel.controls["threshold"].value = 0.99
assert panel.view.data["kept"] < before
panel.controls["small"].value = False
panel.controls["stuff_merge"].value = "official"
assert "official, <= 0 px removed" in panel.view.figure.axes[0].get_title()
print("view panels ok")
""")
    assert "view panels ok" in result.stdout


def test_scene_editor_under_ipywidgets_7():
    result = run_under_ipywidgets7(SETUP + """
editor = explore.SceneEditor(model, synthetic.held_out_layout(synthetic.BOOK_SCENE))
count = len(editor.layout.shapes)
k = editor.controls["shape"].value
editor.controls["row"].value = 20
assert editor.layout.shapes[k].cy == 20.0
assert editor.traced.truth[0][20, int(round(editor.layout.shapes[k].cx))] == editor.layout.shapes[k].segment_id
editor.controls["category"].value = synthetic.RECTANGLE
editor.controls["add"].click()
assert len(editor.layout.shapes) == count + 1 and editor.controls["shape"].value == count
editor.controls["remove"].click()
editor.controls["undo"].click()
assert len(editor.layout.shapes) == count + 1
print("scene editor ok", editor.view.text)
""")
    assert "scene editor ok" in result.stdout
