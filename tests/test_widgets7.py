"""The ipywidgets 7.7.1 harness (tests/widgets7.py) and the widget API the explorers rely on there.

Colab readers get ipywidgets 7.7.1, Jupyter readers 8: detr_explained.explore must work under both.
These tests prove that run_under_ipywidgets7 really runs 7.7.1 (and refuses anything else), and
that what the explorers use behaves there as they expect. The explorers' own tests use the same
helper (see the docstring of tests/widgets7.py).
"""
from __future__ import annotations

import json

import pytest

import widgets7
from widgets7 import run_under_ipywidgets7


def test_the_child_imports_ipywidgets_7_7_1_from_dot_widgets7():
    result = run_under_ipywidgets7("""
        import json, ipywidgets, traitlets
        print(json.dumps({"version": ipywidgets.__version__, "file": ipywidgets.__file__}))
    """)
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert child["version"] == "7.7.1"
    assert child["file"].startswith(str(widgets7.WIDGETS7_DIR))


def test_this_process_keeps_ipywidgets_8():
    import ipywidgets
    assert ipywidgets.__version__.split(".")[0] == "8", ipywidgets.__file__


def test_the_harness_refuses_another_ipywidgets(tmp_path, monkeypatch):
    """A folder whose ipywidgets says 8.1.9 must not pass for 7.7.1."""
    (tmp_path / "ipywidgets").mkdir()
    (tmp_path / "ipywidgets" / "__init__.py").write_text('__version__ = "8.1.9"\n')
    monkeypatch.setattr(widgets7, "WIDGETS7_DIR", tmp_path)
    with pytest.raises(pytest.fail.Exception, match="expected ipywidgets 7.7.1"):
        run_under_ipywidgets7("print('this must not run')")


def test_a_failure_in_the_child_fails_with_its_stderr():
    with pytest.raises(pytest.fail.Exception, match="(?s)failed.*AssertionError: the child's message"):
        run_under_ipywidgets7("assert 1 == 2, \"the child's message\"")


def test_the_controls_the_explorers_use():
    run_under_ipywidgets7("""
        import ipywidgets as w

        layer = w.IntSlider(value=5, min=0, max=5, description="layer")
        query = w.Dropdown(options=[("query 3", 3), ("query 17", 17)], value=17, description="query")
        assert (query.value, query.label, query.index) == (17, "query 17", 1)
        mode = w.ToggleButtons(options=[("boxes", "boxes"), ("masks", "masks")], value="masks")
        assert (mode.value, mode.label) == ("masks", "masks")
        threshold = w.FloatSlider(value=0.85, min=0.0, max=1.0, step=0.05, description="threshold")
        assert abs(threshold.value - 0.85) < 1e-12
        show = w.Checkbox(value=True, description="show boxes")
        button = w.Button(description="next image", icon="refresh")
        out = w.Output()
        note = w.HTML("<b>query 17</b>")
        panel = w.VBox([w.HBox([layer, query, mode]), w.HBox([threshold, show, button]), note, out])
        assert len(panel.children) == 4 and panel.children[0].children[1] is query

        # values out of range are clamped, unknown options refused, as in ipywidgets 8
        layer.value = 9
        assert layer.value == 5
        try:
            query.value = 4
        except Exception as error:
            assert type(error).__name__ == "TraitError"
        else:
            raise AssertionError("Dropdown accepted a value that is not an option")
    """)


def test_observe_names_value_fires_synchronously_when_value_is_set():
    run_under_ipywidgets7("""
        import ipywidgets as w

        controls = {
            "IntSlider": (w.IntSlider(value=1, min=0, max=5), 3),
            "Dropdown": (w.Dropdown(options=[("a", 10), ("b", 20)], value=10), 20),
            "ToggleButtons": (w.ToggleButtons(options=[("boxes", "b"), ("masks", "m")], value="b"), "m"),
            "FloatSlider": (w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05), 0.75),
            "Checkbox": (w.Checkbox(value=False), True),
        }
        for name, (control, new) in controls.items():
            seen = []
            control.observe(lambda change: seen.append((change["name"], change["old"], change["new"])),
                            names="value")
            old = control.value
            control.value = new
            assert seen == [("value", old, new)], (name, seen)   # already there: synchronous
            control.value = new
            assert len(seen) == 1, (name, "setting the same value fired again", seen)

        button, clicks = w.Button(description="next"), []
        button.on_click(lambda b: clicks.append(b))
        button.click()
        assert clicks == [button]
    """)


def test_output_context_outside_a_kernel_does_not_crash():
    result = run_under_ipywidgets7("""
        import ipywidgets as w
        import matplotlib.pyplot as plt

        out = w.Output()
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(2, 2))
            ax.imshow([[0, 1], [1, 0]])
            plt.show()
            print("printed inside the Output")
        out.clear_output()
        plt.close(fig)
        assert out.outputs == ()          # nothing is captured without a kernel
    """)
    assert "printed inside the Output" in result.stdout


def test_replacing_dropdown_options():
    run_under_ipywidgets7("""
        import ipywidgets as w

        dropdown = w.Dropdown(options=[("a", 1), ("b", 2), ("c", 3)], value=2)
        seen = []
        dropdown.observe(lambda change: seen.append(change["new"]), names="value")
        dropdown.options = [("query 5", 5), ("query 9", 9)]
        assert (dropdown.value, dropdown.label, dropdown.index) == (5, "query 5", 0)
        assert seen == [5]
        # the value goes back to the first option even when the old value is still offered
        dropdown.value = 9
        dropdown.options = [("x", 7), ("y", 9)]
        assert dropdown.value == 7 and seen == [5, 9, 7]
        dropdown.value = 9
        assert dropdown.label == "y"
    """)
