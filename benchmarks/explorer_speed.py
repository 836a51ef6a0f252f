"""How long a reader waits after moving a control of each explorer (detr_explained.explore).

    python benchmarks/explorer_speed.py [--repeats 20] [--threads 2]

One update is what a panel does when a control moves: compute the view from the kept trace (the
scene editor: render the edited scene and run the trained model on it first) and render the
figure to the PNG the panel's Image widget shows. The widgets are driven as a reader would
drive them (setting a control's value), outside a kernel, so the time to send the PNG to the
browser is not included. Targets (issue 11): under 0.2 s for a view, under 1 s for a scene edit, on 2
CPU cores. The script prints the median and the slowest update of each explorer.
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from detr_explained import build_model, explore, synthetic  # noqa: E402

VIEW_TARGET_S = 0.2
EDIT_TARGET_S = 1.0


def timed_updates(panel, moves, repeats: int) -> list[float]:
    """Seconds per update: each move (which must change the state) sets one control (or calls an editor method); the panel
    computes the view and renders its PNG into its Image widget."""
    seconds = []
    for move in itertools.islice(itertools.cycle(moves), repeats):
        start = time.perf_counter()
        before = panel.updates
        move(panel)
        seconds.append(time.perf_counter() - start)
        assert panel.updates > before, "the move did not update the panel"
    return seconds


def setter(name, value):
    def move(panel):
        panel.controls[name].value = value
    move.__name__ = f"{name}={value}"
    return move


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="updates per explorer (default 20)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = build_model("detr-tiny-synthetic", pretrained=True)
    start = time.perf_counter()
    traced = explore.trace_scene(model, synthetic.held_out_scene(synthetic.BOOK_SCENE))
    print(f"trace once (model + merge): {time.perf_counter() - start:.3f} s")
    kept = [r["query"] for r in explore.query_rows(traced) if r["kept"]]
    h, w = traced.grid

    layout = synthetic.held_out_layout(synthetic.BOOK_SCENE)
    editor = explore.SceneEditor(model, layout)
    last = len(layout.shapes) - 1
    edits = [lambda p: p.move(last, 40.0, 40.0), lambda p: p.move(last, 90.0, 70.0),
             lambda p: p.resize(last, 18.0), lambda p: p.add(synthetic.TRIANGLE, 30.0, 100.0, 12.0),
             lambda p: p.remove(len(p.layout.shapes) - 1), lambda p: p.undo()]

    cases = [
        ("encoder attention", explore.EncoderAttentionPanel(traced), VIEW_TARGET_S,
         [setter("row", (r + 1) % h) for r in range(h)] + [setter("col", (c + 1) % w) for c in range(w)]
         + [setter("layer", 0), setter("layer", 1)]),
        ("query inspector", explore.QueryPanel(traced), VIEW_TARGET_S,
         [setter("query", q) for q in kept[1:] + kept[:1]] + [setter("head", m) for m in (0, 3, "all")]),
        ("mask-head stages", explore.MaskStagePanel(traced), VIEW_TARGET_S,
         [setter("stage", s) for s in explore.MASK_STAGES]),
        ("merge", explore.MergePanel(traced), VIEW_TARGET_S,
         [setter("threshold", t) for t in (0.5, 0.7, 0.9, 0.99)] + [setter("small", False), setter("small", True),
                                                                    setter("stuff_merge", "official"),
                                                                    setter("stuff_merge", "union")]),
        ("scene editor", editor, EDIT_TARGET_S, edits),
    ]
    print(f"torch threads: {torch.get_num_threads()}; {args.repeats} updates each; PNG at {explore.PANEL_DPI} dpi")
    print(f"{'explorer':<20} {'median':>8} {'slowest':>8} {'target':>7}  within")
    for name, panel, target, moves in cases:
        timed_updates(panel, moves, 2)  # warm-up: first-time font and colour-map loading
        seconds = timed_updates(panel, moves, args.repeats)
        median, slowest = statistics.median(seconds), max(seconds)
        print(f"{name:<20} {median:8.3f} {slowest:8.3f} {target:7.1f}  {'yes' if median < target else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
