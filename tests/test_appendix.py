"""The appendix page, book/appendix_side_topics.ipynb: the targets the chapters link to.

Chapters link its sections with {ref}`appendix-...`; the book is built with -W, so a label that
moved or changed breaks the build far from its cause. These checks say where.
"""
import json
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
APPENDIX = BOOK / "appendix_side_topics.ipynb"
LABELS = ["appendix-dc5", "appendix-fast-path", "appendix-stand-in", "appendix-official-bugs"]


def cells():
    return json.loads(APPENDIX.read_text())["cells"]


def text(cell):
    return "".join(cell["source"])


def section_starts():
    """Index of the markdown cell that opens each labelled section, in page order."""
    starts = {}
    for i, cell in enumerate(cells()):
        first_line = text(cell).split("\n", 1)[0]
        if cell["cell_type"] == "markdown" and first_line.startswith("(") and first_line.endswith(")="):
            starts[first_line[1:-2]] = i
    return starts


def test_the_four_labels_open_their_sections_in_order():
    starts = section_starts()
    assert list(starts) == LABELS


@pytest.mark.parametrize("label", LABELS)
def test_each_section_is_a_heading_then_question_then_answer(label):
    source = text(cells()[section_starts()[label]])
    lines = source.split("\n")
    assert lines[1].startswith("## "), f"{label}: the label must be followed by the section's heading"
    question, answer = source.find("**Question.**"), source.find("**Answer.**")
    assert 0 < question < answer, f"{label}: the question, then the answer, in the opening cell"


def test_the_colab_cell_is_chapter_1s():
    ours = cells()[0]
    chapter_1 = json.loads((BOOK / "01_backbone.ipynb").read_text())["cells"][0]
    assert text(ours) == text(chapter_1)
    assert ours["metadata"].get("tags") == chapter_1["metadata"].get("tags")


def test_one_exercise_per_section_with_a_solution_and_a_checking_cell():
    all_cells = cells()
    exercises = [i for i, c in enumerate(all_cells)
                 if c["cell_type"] == "markdown" and "### Exercise A." in text(c)]
    assert len(exercises) == len(LABELS)
    for i in exercises:
        after = all_cells[i + 1:i + 4]
        solution = next(c for c in after if c["cell_type"] == "markdown")
        assert ":::{admonition} Solution" in text(solution) and ":class: dropdown" in text(solution)
        checks = [c for c in after if c["cell_type"] == "code"
                  and "hide-cell" in c["metadata"].get("tags", [])]
        assert checks and "assert" in text(checks[-1])
