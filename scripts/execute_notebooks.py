"""Re-execute the book's notebooks in place so their stored outputs are current.

    .venv/bin/python scripts/execute_notebooks.py [book/01_backbone.ipynb ...]   (default: all)

Run it after changing the package or a chapter: nbval (`make test`) fails on any chapter whose
stored outputs no longer match what its code prints, e.g. a chapter that shows a function's
source with inspect.getsource. Cells run with the chapter's folder as working directory, as in
the book build; no execution timings are stored, so a re-run changes only what the code prints.
"""
import glob
import sys
import time

import nbformat
from nbclient import NotebookClient

CELL_TIMEOUT = 300  # seconds, as in _config.yml


def execute(path: str) -> float:
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": "book"}}).execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(notebook, path)
    return time.perf_counter() - start


if __name__ == "__main__":
    paths = sys.argv[1:] or sorted(glob.glob("book/*.ipynb"))
    for path in paths:
        print(f"{path}: {execute(path):.1f} s", flush=True)
