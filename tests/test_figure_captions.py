"""Every figure of the book has a caption that says what to look at (figures convention 6).

A figure is a code cell whose stored outputs hold a PNG. Its caption is the markdown cell right
after it, which starts with an italic sentence (``*...*``, not a bold ``**`` line or a heading).
The chapters are checked as stored: `make test` re-executes them in the book build and nbval.
"""
import json
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
CHAPTERS = sorted(BOOK.glob("*.ipynb"))


def figure_cells(notebook):
    cells = notebook["cells"]
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code" and any(
                "image/png" in output.get("data", {}) for output in cell.get("outputs", [])):
            yield i, cells[i + 1] if i + 1 < len(cells) else None


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_every_figure_has_an_italic_caption_after_it(chapter):
    notebook = json.loads(chapter.read_text())
    missing = []
    for i, after in figure_cells(notebook):
        text = "".join(after["source"]).lstrip() if after and after["cell_type"] == "markdown" else ""
        if not (text.startswith("*") and not text.startswith("**")):
            missing.append(f"cell {i}: followed by {text[:60]!r}")
    assert not missing, f"{chapter.name}: figures without a caption right after them:\n" + "\n".join(missing)


def test_the_check_sees_figures():
    assert sum(1 for c in CHAPTERS for _ in figure_cells(json.loads(c.read_text()))) >= 30
