"""The README is a front door a newcomer reads in two minutes, and no link in it or in docs/ is broken.

The README stays short (the measured material lives in the pages under ``docs/``, which the book
renders), its first code block is still the two set-up-and-run commands, and every relative link
in ``README.md`` and ``docs/*.md`` names a file (or, in the README, a folder) that exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
MAX_LINES = 160
FIRST_COMMANDS = ['pip install torch==2.13.0 && pip install -e ".[dev]"', "python -m growlib run"]

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(text: str) -> list[str]:
    """The targets of the markdown links in ``text`` that name a path, outside code."""
    prose = INLINE_CODE.sub("", FENCE.sub("", text))
    targets = [m.group(1) for m in LINK.finditer(prose)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I) and not t.startswith("#")]


def first_code_block(text: str) -> list[str]:
    """The commands of the first fenced code block: its lines without comments or blank lines."""
    block = FENCE.search(text)
    assert block, "README.md has no code block"
    lines = block.group(0).splitlines()[1:-1]
    return [line.split("  #")[0].strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines, at most {MAX_LINES}: move detail into a page under docs/"


def test_readme_opens_with_the_two_commands():
    assert first_code_block(README.read_text()) == FIRST_COMMANDS


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_names_a_file_that_exists(page):
    missing = []
    for target in relative_links(page.read_text()):
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists() or (page != README and not path.is_file()):
            missing.append(target)
    assert not missing, f"{page.relative_to(REPO)} links to paths that do not exist: {missing}"


def test_the_readme_links_every_docs_page():
    linked = {(REPO / t.split("#")[0]).resolve() for t in relative_links(README.read_text())}
    unlinked = [p.relative_to(REPO).as_posix() for p in DOCS if p.resolve() not in linked]
    assert not unlinked, f"README.md does not link these pages: {unlinked}"


def test_the_link_reader_sees_links_and_skips_code():
    text = "see [a](docs/a.md#x) and ![img](b.png), not `[c](c.md)` nor [d](https://e.org)\n```\n[f](f.md)\n```\n"
    assert relative_links(text) == ["docs/a.md#x", "b.png"]
