"""Sphinx configuration of the book: the executed notebooks as chapters, plus the markdown pages.

The source folder is the repository root (``scripts/build_book.sh`` runs ``sphinx-build -c book .``)
so that every relative link and image path in ``notebooks/`` and ``docs/`` resolves as it does on
disk; ``include_patterns`` keeps everything else out. The table of contents is made at build time
from what exists (``contents_toctrees`` below): every ``notebooks/*.ipynb`` is a chapter, every
``notebooks/*.md`` and ``docs/*.md`` a page, so a new one needs no edit here.

Everything the pages load is served from the built site: MathJax comes from the
``sphinx-mathjax-offline`` package, the theme's fonts and scripts from the theme itself, and no
ipywidgets manager (which myst-nb would fetch from a CDN) is added.
"""

from __future__ import annotations

from pathlib import Path

project = "growlib: grow a language model without starting over"
author = "the growlib authors"
copyright = "the growlib authors, MIT licence"

REPO = Path(__file__).resolve().parents[1]
# the book's sections: caption, then the files in it (globbed at every build)
SECTIONS = [("Chapters", "notebooks/*.ipynb"), ("Glossary and references", "notebooks/*.md"), ("Notes", "docs/*.md")]

root_doc = "book/index"
# only the book's own files; the rest of the repository (README, code, tests) is not a page
include_patterns = [f"{root_doc}.md", *(pattern for _, pattern in SECTIONS)]
# folders never walked: build outputs, caches, the corpus (speed only: include_patterns decides)
exclude_patterns = [".git", "build", "data", "checkpoints", "runs", "**/.ipynb_checkpoints", "**/__pycache__"]

extensions = [
    "myst_nb",  # reads .ipynb and .md (MyST)
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # copies MathJax 3 into _static/mathjax and points mathjax_path there
]

# the committed notebooks carry the full-length run's outputs: never execute them
nb_execution_mode = "off"
# myst-nb adds require.js and the widget manager from a CDN for pages with widget state; none here
nb_ipywidgets_js = {}

myst_enable_extensions = ["dollarmath", "amsmath"]  # $...$ and $$...$$ in the markdown cells
myst_heading_anchors = 3  # [text](#a-heading) links inside a page

html_theme = "sphinx_book_theme"
html_title = "growlib"
html_favicon = "_static/favicon.svg"  # without one the browser asks for /favicon.ico and gets a 404
html_context = {"default_mode": "auto"}  # the theme's script calls an empty mode invalid, in the console
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,  # the .ipynb, served from the site itself
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}
html_show_sourcelink = False

html_additional_pages = {"index": "redirect.html"}  # the site's root index.html leads to book/index.html
templates_path = ["_templates"]


def contents_toctrees(repo: Path = REPO) -> str:
    """One MyST toctree per section that has files, each entry a document name from the repository root."""
    blocks = []
    for caption, pattern in SECTIONS:
        docs = sorted("/" + p.relative_to(repo).with_suffix("").as_posix() for p in repo.glob(pattern))
        if docs:
            blocks.append("\n".join([f"```{{toctree}}", f":caption: {caption}", ":maxdepth: 1", "", *docs, "```"]))
    return "\n\n".join(blocks)


def _append_contents(app, docname: str, source: list[str]) -> None:
    if docname == root_doc:
        source[0] += "\n\n" + contents_toctrees() + "\n"


def _reread_contents(app, env, added, changed, removed) -> list[str]:
    return [root_doc]  # a page added or removed since the last build changes the contents


def setup(app):
    app.connect("source-read", _append_contents)
    app.connect("env-get-outdated", _reread_contents)
