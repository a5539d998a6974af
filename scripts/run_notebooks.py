"""Execute the notebooks in order and commit-ready: real outputs, volatile metadata stripped.

    python scripts/run_notebooks.py            # full length at the default preset (cpu on a CPU)
    python scripts/run_notebooks.py --fresh    # delete the notebooks' checkpoints first (not compare-*.json)

Never run with GROWLIB_STEPS set: committed outputs come from full-length runs. The kernels get
the variables of scripts/env.sh (the course's TinyStories sample, where it is found).
Each notebook's wall time is printed (the README's table).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
VOLATILE_OUTPUT = "application/vnd.jupyter.widget-view+json"


def strip(nb: nbformat.NotebookNode) -> None:
    """Drop what changes on every run without meaning anything: counts, timings, widget state."""
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("language_info", None)
    for cell in nb.cells:
        cell.metadata = {}
        if cell.cell_type != "code":
            continue
        cell.execution_count = None
        for out in cell.outputs:
            if "execution_count" in out:  # only execute_result outputs carry one
                out.execution_count = None
            out.get("data", {}).pop(VOLATILE_OUTPUT, None)
            if "metadata" in out:  # display and result outputs; a stream output has none (nbformat rejects one)
                out.metadata = {}


def course_environment() -> None:
    """Set what scripts/env.sh sets (GROWLIB_TINYSTORIES_SAMPLE) for the kernels started here."""
    script = f'source "{ROOT / "scripts" / "env.sh"}" && printf %s "${{GROWLIB_TINYSTORIES_SAMPLE:-}}"'
    sample = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    if sample:
        os.environ["GROWLIB_TINYSTORIES_SAMPLE"] = sample


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fresh", action="store_true",
                        help="delete the checkpoint folders in runs/ first, so every phase trains; the "
                             "comparison results (runs/compare-*.json, an hour of compute) are kept")
    parser.add_argument("names", nargs="*", help="notebook stems (default: all, in order)")
    args = parser.parse_args()
    if os.environ.get("GROWLIB_STEPS"):
        print("error: GROWLIB_STEPS is set; committed outputs must come from full-length runs", file=sys.stderr)
        return 2
    if args.fresh and (ROOT / "runs").is_dir():
        for run in (ROOT / "runs").iterdir():
            if run.is_dir():
                shutil.rmtree(run)
    course_environment()
    # no browser here: each explorer draws its figure once, at its controls' starting values
    os.environ["GROWLIB_HEADLESS"] = "1"
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    if args.names:
        paths = [p for p in paths if p.stem in args.names]
    for path in paths:
        nb = jupytext.read(path)
        start = time.perf_counter()
        NotebookClient(nb, timeout=3600, startup_timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        seconds = time.perf_counter() - start
        strip(nb)
        jupytext.write(nb, path.with_suffix(".ipynb"))
        jupytext.write(nb, path)  # keeps the pair in sync (the text is unchanged)
        print(f"{path.stem}: {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
