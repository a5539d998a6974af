"""The notebook pairs are in sync, clean, and carry the outputs of a full-length run."""

import re
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


# ---------------------------------------------------------------- the course's scaffolding

PAGES = {name: NOTEBOOKS / f"{name}.md" for name in ("glossary", "references", "rules")}


def _markdown(source):
    return [c.source for c in jupytext.read(source).cells if c.cell_type == "markdown"]


def _sections(source) -> list[str]:
    """The notebook's "## " headings, in order (code cells' comments are not headings)."""
    return [line.strip() for text in _markdown(source) for line in text.splitlines() if line.startswith("## ")]


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_each_chapter_opens_with_its_learning_objectives(source):
    first = jupytext.read(source).cells[:3]
    box = [c.source for c in first if c.cell_type == "markdown" and "Learning objectives" in c.source]
    assert box, f"{source.name}: no markdown cell with 'Learning objectives' among its first three cells"
    assert "Prerequisites" in box[0] and "Time" in box[0], "the box gives prerequisites and the time too"


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_each_chapter_ends_with_a_summary_before_its_exercises(source):
    sections = _sections(source)
    if sections and sections[-1] == "## Exercises":
        sections = sections[:-1]
    assert sections and sections[-1] == "## Summary", \
        f"{source.name}: its last section{' before the Exercises' if '## Exercises' in _sections(source) else ''} " \
        f"is {sections[-1] if sections else None!r}, not '## Summary'"


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_each_chapter_links_the_glossary_and_the_references(source):
    text = "\n".join(_markdown(source))
    for page in ("glossary.md", "references.md"):
        assert f"]({page}" in text, f"{source.name} does not link {page}"


@pytest.mark.parametrize("name", ["00", "02", "03"])
def test_the_rule_table_is_linked_where_the_rules_are_taught(name):
    source = next(p for p in CHAPTERS if p.stem[:2] == name)
    assert "](rules.md" in "\n".join(_markdown(source)), f"{source.name} does not link rules.md"


def test_the_glossary_defines_at_least_15_terms_each_with_the_notebook_that_teaches_it():
    text = PAGES["glossary"].read_text()
    terms = text.split("\n## ")[1:]
    assert len(terms) >= 15, f"{len(terms)} terms"
    for term in terms:
        assert ".ipynb)" in term, f"the glossary's {term.splitlines()[0]!r} names no notebook that teaches it"


def test_the_references_list_every_paper_the_notebooks_link():
    references = PAGES["references"].read_text()
    for paper in ("MIDAS", "Drop-Upcycling"):
        assert paper in references, f"references.md does not list {paper}"
    for source in SOURCES:
        for arxiv_id in re.findall(r"arxiv\.org/abs/(\d{4}\.\d{4,5})", source.read_text()):
            assert f"arxiv.org/abs/{arxiv_id}" in references, f"{source.name} cites arXiv {arxiv_id}, not in references.md"


def test_the_scaffolding_pages_exist_and_link_each_other():
    for name, page in PAGES.items():
        assert page.exists(), f"notebooks/{name}.md is missing"
        others = [f"]({other}.md" for other in PAGES if other != name]
        if name != "rules":  # the rule table links the glossary; glossary and references link both others
            assert all(o in page.read_text() for o in others), f"{name}.md does not link {others}"
    assert "](glossary.md" in PAGES["rules"].read_text()
