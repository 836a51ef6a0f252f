"""The explorers in a real Jupyter kernel, driven the way a browser drives them.

A panel is displayed in an ipykernel; the test then plays the front end: it sends the kernel the
comm message a browser sends when a reader moves a slider ({"method": "update", "state":
{"value": ...}}) and reads what the kernel sends back on iopub: the panel's caption (an HTML
widget) updated with the new state, and a new PNG of the figure as the value of its Image
widget. Under ipywidgets 8 (the venv's) and 7.7.1 (Colab's, from .widgets7; `make widgets7`).
"""
from __future__ import annotations

import os
import queue
import time
from pathlib import Path

import pytest

jupyter_client = pytest.importorskip("jupyter_client")

ROOT = Path(__file__).resolve().parents[1]
WIDGETS7 = ROOT / ".widgets7"
TIMEOUT = 120

SETUP = """
import ipywidgets
from detr_explained import build_model, explore, synthetic
model = build_model("detr-tiny-synthetic", pretrained=True)
traced = explore.trace_scene(model, synthetic.held_out_scene(synthetic.BOOK_SCENE))
panel = explore.EncoderAttentionPanel(traced, row=0, col=0)
print("ipywidgets", ipywidgets.__version__)
print("row slider", panel.controls["row"].model_id)
print("caption", panel.caption.model_id)
print("picture", panel.picture.model_id)
"""


def _run(client, code: str) -> tuple[str, list]:
    """Execute code; return its stdout and every iopub message up to idle."""
    msg_id = client.execute(code)
    stdout, messages = "", []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            msg = client.get_iopub_msg(timeout=5)
        except queue.Empty:
            continue
        messages.append(msg)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            stdout += msg["content"]["text"]
        if msg["msg_type"] == "error":
            raise AssertionError("\n".join(msg["content"]["traceback"]))
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return stdout, messages
    raise AssertionError(f"the kernel did not finish running {code!r} in {TIMEOUT} s")


def _collect(client, seconds: float) -> list:
    messages = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            messages.append(client.get_iopub_msg(timeout=0.5))
        except queue.Empty:
            if messages and messages[-1]["msg_type"] == "status" \
                    and messages[-1]["content"]["execution_state"] == "idle":
                break
    return messages


@pytest.mark.parametrize("version", ["8", "7.7.1"])
def test_moving_a_slider_in_the_browser_redraws_the_panel(version):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    if version == "7.7.1":
        if not (WIDGETS7 / "ipywidgets" / "__init__.py").is_file():
            if os.environ.get("CI"):
                pytest.fail("ipywidgets 7.7.1 is missing from .widgets7: run `make widgets7`", pytrace=False)
            pytest.skip("ipywidgets 7.7.1 is missing from .widgets7: run `make widgets7`")
        env["PYTHONPATH"] = os.pathsep.join([str(WIDGETS7), str(ROOT)])
    manager = jupyter_client.KernelManager(kernel_name="python3")  # this interpreter's ipykernel
    manager.start_kernel(env=env, cwd=str(ROOT))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        stdout, _ = _run(client, SETUP)
        printed = {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in stdout.splitlines()}
        assert printed["ipywidgets"].split(".")[0] == version.split(".")[0], printed
        assert version == "8" or printed["ipywidgets"] == version
        slider, caption, picture = printed["row slider"], printed["caption"], printed["picture"]

        # what the browser sends when the reader drags the row slider to 3
        message = client.session.msg("comm_msg", {"comm_id": slider, "data": {
            "method": "update", "state": {"value": 3}, "buffer_paths": []}})
        client.shell_channel.send(message)
        replies = _collect(client, TIMEOUT)

        updates = [m["content"]["data"]["state"] for m in replies
                   if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == caption
                   and m["content"]["data"].get("method") == "update"]
        assert any("cell (3, 0)" in state.get("value", "") for state in updates), updates
        # the new picture: an update of the Image widget's value, sent as a binary buffer
        pictures = [m for m in replies if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == picture
                    and ["value"] in m["content"]["data"].get("buffer_paths", [])]
        assert pictures, f"no new picture after the slider moved: {[m['msg_type'] for m in replies]}"
        png = bytes(pictures[-1]["buffers"][0])
        assert png.startswith(b"\x89PNG") and len(png) > 5_000

        stdout, _ = _run(client, "print(panel.updates, panel.view.data['attention'].shape)")
        assert stdout.split()[0] == "2"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
