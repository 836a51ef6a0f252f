"""Run a piece of code under ipywidgets 7.7.1, the version Colab ships (a helper, not a test module).

The venv has ipywidgets 8 (what Jupyter readers have). `make widgets7` installs ipywidgets 7.7.1
into .widgets7/ with `pip install --target --no-deps`, with ipython_genutils 0.2.0, the one thing
it imports that the venv lacks (widgetsnbextension and jupyterlab_widgets are never imported; traitlets,
ipykernel, IPython and comm are shared with ipywidgets 8). `make test` runs it first.

run_under_ipywidgets7(code) runs `code` (dedented) in a child interpreter of the venv with .widgets7
first on PYTHONPATH. Before the code runs, the child asserts that it imported ipywidgets 7.7.1 from
.widgets7, so a test can never pass under 8 by accident. The child runs in the repository root
(detr_explained imports from the checkout) with MPLBACKEND=Agg. A failing assert or any exception
in the child fails the calling test with the child's stderr and stdout; otherwise the
subprocess.CompletedProcess comes back (text stdout and stderr), e.g. to parse what the code
printed. Without .widgets7 the calling test is skipped locally and fails under CI (CI=true), as
tests/test_site.py does without chromium.

    from widgets7 import run_under_ipywidgets7

    def test_explorer_under_colab_widgets():
        run_under_ipywidgets7('''
            from detr_explained import explore
            panel = explore.some_explorer(...)
            panel.slider.value = 3              # observers run synchronously, as in a kernel
            assert ...
        ''')

Outside a kernel (here and under pytest), under 7.7.1 as under 8: widgets are created and their
observers fire synchronously when `.value` is set; `with Output(): ...` does not capture anything
(prints go to stdout, plt.show() draws nothing, `.outputs` stays empty), and `clear_output()`
writes terminal erase codes to stdout. So check an explorer's figure through the matplotlib Figure
it keeps, not through the Output widget. Replacing `Dropdown.options` resets `.value` to the first
option in both versions (and fires the value observers).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WIDGETS7_DIR = ROOT / ".widgets7"
VERSION = "7.7.1"

# Runs in the child before the caller's code: the version check, then the code itself, compiled
# under its own name so that tracebacks show the caller's line numbers.
_PRELUDE = """
import os, sys
import ipywidgets
if (ipywidgets.__version__ != {version!r}
        or not os.path.realpath(ipywidgets.__file__).startswith({folder!r})):
    raise SystemExit("run_under_ipywidgets7: expected ipywidgets {version} from {folder}, imported "
                     + ipywidgets.__version__ + " from " + ipywidgets.__file__)
_code = sys.argv.pop(1)
exec(compile(_code, "<run_under_ipywidgets7>", "exec"), {{"__name__": "__main__"}})
"""


def _missing(message: str):
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _text(output) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def run_under_ipywidgets7(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `code` in a child interpreter with ipywidgets 7.7.1; fail the test if it fails."""
    folder = Path(WIDGETS7_DIR)
    if not (folder / "ipywidgets" / "__init__.py").is_file():
        _missing(f"ipywidgets {VERSION} is missing from {folder}: run `make widgets7`")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(ROOT)]
                                        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["MPLBACKEND"] = "Agg"
    env.pop("PYTHONHOME", None)
    prelude = _PRELUDE.format(version=VERSION, folder=os.path.realpath(folder) + os.sep)
    command = [sys.executable, "-c", prelude, textwrap.dedent(code)]
    try:
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired as error:
        stderr, stdout = (_text(error.stderr), _text(error.stdout))
        pytest.fail(f"code under ipywidgets {VERSION} ran past {timeout} s\n"
                    f"--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}", pytrace=False)
    if result.returncode != 0:
        pytest.fail(f"code under ipywidgets {VERSION} failed (exit {result.returncode})\n"
                    f"--- stderr ---\n{result.stderr}\n--- stdout ---\n{result.stdout}",
                    pytrace=False)
    return result
