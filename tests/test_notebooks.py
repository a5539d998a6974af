"""The notebook pairs are in sync, clean, and carry the outputs of a full-length run."""

from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def test_there_are_notebooks_and_each_has_its_pair():
    assert [p.stem[:2] for p in SOURCES] == ["00", "01", "02", "03", "04", "05", "99"]
    for p in SOURCES:
        assert p.with_suffix(".ipynb").exists(), f"{p.name} has no paired .ipynb"
    for p in NOTEBOOKS.glob("*.ipynb"):
        assert p.with_suffix(".py").exists(), f"{p.name} has no paired .py"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync(source):
    # `jupytext --diff` exits 0 even on drift: compare the texts ourselves
    nb = jupytext.read(source.with_suffix(".ipynb"))
    assert jupytext.writes(nb, "py:percent") == source.read_text(), f"{source.name} and its .ipynb differ"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_clean_metadata_and_python3_kernel(source):
    nb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "widgets" not in nb.metadata, "widget state is committed"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is None
            for out in cell.outputs:
                assert "application/vnd.jupyter.widget-state+json" not in out.get("data", {})


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_committed_outputs_are_from_a_full_run(source):
    nb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source.startswith("%matplotlib inline") or "%matplotlib inline" in code[0].source
    texts = "".join(o.get("text", "") for c in code for o in c.outputs)
    assert "GROWLIB_STEPS" not in texts, "outputs come from a shortened CI run"
    assert all(c.outputs for c in code if "import" not in c.source.splitlines()[-1]), "a code cell was not run"
    images = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert images >= {"00": 3, "01": 1, "02": 4, "03": 4, "04": 2, "05": 2, "99": 0}[source.stem[:2]]
    assert "Traceback" not in texts and "Error" not in texts


CHAPTERS = [p for p in SOURCES if p.stem[:2] != "99"]


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_each_chapter_derives_and_ends_with_exercises_answered_in_the_solutions(source):
    nb = jupytext.read(source)
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert any("$$" in m for m in markdown), "no display-math derivation"
    if source.stem[:2] == "00":
        return
    assert "## Exercises" in markdown[-1], "the notebook does not end with its Exercises"
    exercises = markdown[-1].split("## Exercises", 1)[1]
    numbered = [line for line in exercises.splitlines() if line[:3] in {f"{i}. " for i in range(1, 10)}]
    assert numbered, "Exercises without numbered items"
    solutions = (NOTEBOOKS / "99_solutions.py").read_text()
    assert f"## {source.stem[:2]} · " in solutions, f"no solutions for {source.stem}"
    for line in numbered:  # every exercise's title appears as a solution's heading
        title = line.split("**")[1]
        assert f"**{line[0]}. {title}**" in solutions, f"no solution for {title!r}"


def test_nothing_cites_a_file_outside_the_repository():
    root = NOTEBOOKS.parent
    for path in [*root.glob("growlib/**/*.py"), *NOTEBOOKS.glob("*.py"), *NOTEBOOKS.glob("*.ipynb")]:
        text = path.read_text()
        assert "growth-math.md" not in text and "../shared" not in text, path
