#!/usr/bin/env bash
# Builds the book: the committed, executed notebooks (never re-run) plus notebooks/*.md and docs/*.md,
# as a static website that needs no network to build or to view. Configuration: book/conf.py.
#   bash scripts/build_book.sh          -> build/book/   (open build/book/index.html)
#   bash scripts/build_book.sh FOLDER   -> FOLDER/, which must be new, empty or an earlier book build
# myst-nb writes the notebooks' images to a folder jupyter_execute/ beside the output folder too.
# $PYTHON names the interpreter (default: python). A warning fails the build: a broken link or
# image in a page, or a page outside the contents.
set -euo pipefail
if [ "$#" -gt 1 ]; then
    echo "error: at most one argument (the output folder), got $#: $*" >&2
    exit 2
fi
out="$(realpath -m "${1:-$(dirname "$0")/../build/book}")"
cd "$(dirname "$0")/.."
if [ -e "$out" ] && [ ! -d "$out" ]; then
    echo "error: the output folder $out is a file; give a new, empty or earlier book's folder" >&2
    exit 2
fi
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -f "$out/.buildinfo" ]; then
    # .buildinfo is what Sphinx leaves in every HTML build: without it this is not ours to delete
    echo "error: the output folder $out is not empty and holds no earlier book build (no .buildinfo);" \
         "give a new, empty or earlier book's folder" >&2
    exit 2
fi
python="${PYTHON:-python}"
if ! "$python" -c "import sphinx, myst_nb, sphinx_book_theme, importlib; importlib.import_module('sphinx-mathjax-offline')" 2>/dev/null; then
    echo "error: the book needs the 'book' extra: pip install -e \".[book]\"" >&2
    exit 2
fi
rm -rf "$out"  # a fresh build each time: no page of a deleted source is left behind
start=$SECONDS
"$python" -m sphinx -b html -c book -W --keep-going --quiet . "$out"
echo "book built in $((SECONDS - start)) s: open $out/index.html"
