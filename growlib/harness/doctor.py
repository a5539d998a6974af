"""``python -m growlib doctor``: is this machine ready for the notebooks? One line per item: OK, WARN or FAIL.

Each item is a small check function that returns a :class:`Check`; :func:`main` runs them in
order and prints one line each, with the fix where there is one. A FAIL is something the
notebooks cannot run with (a missing package, a kernel without growlib); a WARN is something
they run with, but worse (a smaller preset, the bundled stories instead of TinyStories). The
exit status is 1 when any item FAILs, else 0.

Nothing here has a rule of its own: the memory item asks growlib's run plan
(:func:`growlib.harness.memory.plan.plan_run`, the rule of ``--lean auto``), the disk item counts the
recipe's phase configs (:func:`growlib.budget.phase_configs`), the corpus item follows the
notebooks' choice (``GROWLIB_TINYSTORIES_SAMPLE``, else TinyStories from the hub or its cache,
else the bundled stories), and the version bounds are growlib's own (its installed metadata,
from pyproject.toml). Run alone: ``python -m growlib.harness.doctor``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import torch

from ..accounting import analytic_params
from ..budget import phase_configs
from ..config import get_preset
from ..device import accelerator_peak_flops, default_preset, pick_device
from ..memory import FITS_HEADROOM, GB, Overhead
from ..sources import HUB_HOST, TINYSTORIES, hub_reachable, offline_variable, tinystories_cached
from ..process_memory import current_rss
from .memory.heap import has_heap_controls
from .memory.machine import BUDGET_VAR, available_memory, budget_override
from .memory.plan import PhasePlan, plan_run
from .paths import RUNS_DIR, SAMPLE_VAR, shown_path, tinystories_sample
from .phases import PHASE_CHECKPOINT

OK, WARN, FAIL = "OK", "WARN", "FAIL"
PROBE_SECONDS = 1.0  # the matmul probe's length
HUB_TIMEOUT = 1.0  # seconds the hub has to answer a TCP connect
KERNEL_NAME = "python3"  # the kernelspec every notebook names (its metadata)
WIDGET_MANAGER = "@jupyter-widgets/jupyterlab-manager"  # jupyterlab_widgets' front-end extension
FALLBACK_PRESETS = ("cpu", "tiny")  # tried in this order when the recipe does not fit
# the checkpoints a run writes, each holding one phase's model: the three phases' ends and the
# upcycled MoE before phase 2 trains (growlib.harness.pipeline)
RUN_CHECKPOINTS = {**{name: phase for phase, name in PHASE_CHECKPOINT.items()}, "moe_model_init": 2}
BYTES_PER_PARAMETER = 4  # checkpoints hold fp32 weights


@dataclass(frozen=True)
class Check:
    """One item of the report."""

    status: str  # OK | WARN | FAIL
    item: str
    detail: str
    fix: str = ""


class Machine:
    """What several checks read, found once per doctor run: the device and the hub's answer."""

    @cached_property
    def device(self) -> str:
        return pick_device()

    @cached_property
    def hub_answers(self) -> bool:
        return hub_reachable(timeout=HUB_TIMEOUT)


# ---------------------------------------------------------------- packages and growlib's bounds

def installed_version(name: str) -> str | None:
    """The version of package ``name`` when it is installed and importable here, else None."""
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def growlib_bound(name: str) -> str | None:
    """growlib's version bound for ``name`` (e.g. ``>=2.6``; ``python`` for Requires-Python), None if it has none.

    Read from growlib's installed metadata, which pip wrote from pyproject.toml; None when growlib
    is not pip-installed (only on ``PYTHONPATH``).
    """
    from packaging.requirements import Requirement  # packaging: installed with datasets, a dependency
    from packaging.utils import canonicalize_name

    try:
        meta = importlib.metadata.metadata("growlib")
    except importlib.metadata.PackageNotFoundError:
        return None
    if name == "python":
        return meta.get("Requires-Python")
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if canonicalize_name(req.name) == canonicalize_name(name) and str(req.specifier):
            return str(req.specifier)
    return None


def outside_bound(name: str, version: str) -> str | None:
    """``growlib needs NAME BOUND`` when ``version`` is outside growlib's bound for ``name``, else None."""
    from packaging.specifiers import SpecifierSet

    bound = growlib_bound(name)
    if bound and not SpecifierSet(bound).contains(version, prereleases=True):
        return f"growlib needs {name}{bound}"
    return None


def package_check(item: str, name: str, why: str) -> Check:
    """``name`` installed, within growlib's bound; FAIL saying ``why`` it is needed otherwise."""
    version = installed_version(name)
    if version is None:
        return Check(FAIL, item, f"{name} is not installed ({why})", f"pip install {name}")
    problem = outside_bound(name, version)
    if problem:
        return Check(FAIL, item, f"{name} {version}: {problem} ({why})",
                     f"pip install -U '{name}{growlib_bound(name)}'")
    return Check(OK, item, f"{name} {version}")


# ---------------------------------------------------------------- Python, torch, the device

def check_python(m: Machine) -> Check:
    version = platform.python_version()
    detail = f"Python {version} ({sys.executable})"
    problem = outside_bound("python", version)
    if problem:
        return Check(FAIL, "python", f"{detail}: {problem}", f"install Python{growlib_bound('python')}")
    return Check(OK, "python", detail)


def torch_build() -> str:
    """What this torch was built for: CUDA (with its version), ROCm, or the CPU (with MPS on a Mac)."""
    if torch.version.cuda:
        return f"CUDA {torch.version.cuda} build"
    if getattr(torch.version, "hip", None):
        return f"ROCm {torch.version.hip} build"
    return "CPU build with MPS" if torch.backends.mps.is_built() else "CPU build"


def nvidia_gpus_present() -> bool:
    """True when the NVIDIA driver lists a GPU (Linux), whatever torch was built for."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def check_torch(m: Machine) -> Check:
    detail = f"torch {torch.__version__}, {torch_build()}"
    problem = outside_bound("torch", torch.__version__)
    if problem:
        return Check(FAIL, "torch", f"{detail}: {problem}", f"pip install -U 'torch{growlib_bound('torch')}'")
    if torch.version.cuda and not torch.cuda.is_available():
        return Check(WARN, "torch", f"{detail}, but no CUDA GPU answers: the notebooks run on the CPU",
                     "with an NVIDIA GPU, check its driver (nvidia-smi); without one, nothing to fix")
    if not torch.version.cuda and nvidia_gpus_present():
        return Check(WARN, "torch", f"{detail}, but this machine has an NVIDIA GPU that it cannot use",
                     "pip install a CUDA build of torch")
    if torch.backends.mps.is_built() and not torch.backends.mps.is_available():
        return Check(WARN, "torch", f"{detail}, but MPS is not available on this Mac: the notebooks run on the CPU",
                     "MPS needs an Apple-silicon Mac with macOS 12.3 or later")
    return Check(OK, "torch", detail)


def synchronize(device: str) -> None:
    """Wait for the device's queued work (CUDA and MPS run asynchronously)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    elif device == "mps":
        torch.mps.synchronize()


def matmul_rate(device: str, seconds: float = PROBE_SECONDS) -> tuple[float, torch.dtype]:
    """FLOP/s of square matmuls on ``device`` in the dtype training uses there (bf16 autocast on CUDA):
    the best batch of products over about ``seconds``."""
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    n = 1024 if device == "cpu" else 4096  # a CPU product of 1024 takes ~10 ms, a GPU's of 4096 ~1 ms
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # the first product loads the kernels
    synchronize(device)
    batch, best, start = 1, float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        for _ in range(batch):
            a @ b
        synchronize(device)
        took = time.perf_counter() - t0
        best = min(best, took / batch)
        if took < 0.05:  # batches of at least 50 ms, so the timer and the launches do not count
            batch *= 2
    return 2 * n**3 / best, dtype


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    if device == "mps":
        return "Apple GPU"
    return f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"


def check_device(m: Machine) -> Check:
    device = m.device
    rate, dtype = matmul_rate(device)
    dtype_name = str(dtype).removeprefix("torch.")
    detail = (f"{device} ({device_name(device)}): {dtype_name} matmul {rate / 1e9:,.0f} GFLOP/s in a "
              f"{PROBE_SECONDS:.0f} s probe")
    peak = accelerator_peak_flops(device)
    if peak:
        detail += f" ({rate / peak:.0%} of its {peak / 1e12:.0f} TFLOP/s peak)"
    return Check(OK, "device", f"{detail}; the notebooks train preset {default_preset(device)!r} here")


# ---------------------------------------------------------------- memory and disk, from growlib's plans

def run_overhead(device: str) -> Overhead:
    """What a training process holds besides its tensors, as the pipeline counts it: this process's
    resident memory (Python, torch) off CUDA, and on a glibc CPU the C heap's slack."""
    if device.startswith("cuda"):
        return Overhead()
    return Overhead(runtime=current_rss(), heap_slack=device == "cpu" and has_heap_controls())


def preset_plan(name: str, available: float, overhead: Overhead) -> dict[int, PhasePlan]:
    """The run plan of preset ``name`` under ``--lean auto`` (the default), against ``available`` bytes."""
    p = get_preset(name)
    return plan_run(phase_configs(p.model, p.growth), p.train.batch_size, p.train.seq_len, overhead,
                    available, "auto")


def plan_fits(plans: dict[int, PhasePlan], available: float) -> bool:
    return all(p.chosen.fits(available) for p in plans.values())


def largest_phase(plans: dict[int, PhasePlan]) -> PhasePlan:
    return max(plans.values(), key=lambda p: p.chosen.total)


def recipe_fit_detail(plans: dict[int, PhasePlan]) -> str:
    """How the recipe fits: with AdamW everywhere, or which phases ``--lean auto`` trains lean."""
    lean = [p for p in plans.values() if p.lean_chosen]
    if not lean:
        big = largest_phase(plans)
        return f"preset 'recipe' fits with AdamW (phase {big.phase}: {big.chosen.total / GB:.1f} GB)"
    return "preset 'recipe' fits: --lean auto trains " + ", ".join(
        f"phase {p.phase} lean ({p.lean.total / GB:.1f} GB; with AdamW {p.adamw.total / GB:.1f} GB)" for p in lean)


def memory_source(available: float, device: str) -> str:
    if budget_override() is not None:
        return f"{available / GB:.1f} GB ({BUDGET_VAR}={os.environ[BUDGET_VAR].strip()})"
    return f"{available / GB:.1f} GB available now ({device})"


def smaller_preset_fix(name: str, device: str) -> str:
    """How to train preset ``name`` instead of the recipe, from the command line and in the notebooks."""
    notebooks = ("the notebooks use it on this device already" if default_preset(device) == name
                 else f"in a notebook, gl.notebook_session({name!r})")
    return f"train preset {name!r} (python -m growlib run --preset {name}; {notebooks}), or free memory"


def check_memory(m: Machine) -> Check:
    device = m.device
    try:
        available = available_memory(device)
    except ValueError as exc:  # a bad GROWLIB_MEMORY_BUDGET_GB
        return Check(FAIL, "memory", str(exc), f"set {BUDGET_VAR} to a number of GB, or unset it")
    overhead, where = run_overhead(device), memory_source(available, device)
    recipe = preset_plan("recipe", available, overhead)
    if plan_fits(recipe, available):
        return Check(OK, "memory", f"{where}; {recipe_fit_detail(recipe)}")
    big = largest_phase(recipe)
    short = (f"{where}; preset 'recipe' does not fit even lean (phase {big.phase}: {big.chosen.total / GB:.1f} GB, "
             f"a plan may use {FITS_HEADROOM:.0%} = {FITS_HEADROOM * available / GB:.1f} GB)")
    for name in FALLBACK_PRESETS:
        plans = preset_plan(name, available, overhead)
        if plan_fits(plans, available):
            top = largest_phase(plans)
            return Check(WARN, "memory", f"{short}; preset {name!r} fits (phase {top.phase}: "
                                         f"{top.chosen.total / GB:.2f} GB)", smaller_preset_fix(name, device))
    return Check(FAIL, "memory", f"{short}; no smaller preset ({', '.join(FALLBACK_PRESETS)}) fits either",
                 "close other programs, or use a machine with more memory")


def checkpoint_bytes(preset: str) -> int:
    """Disk taken by a run's checkpoints of ``preset``: each file's phase's parameters in fp32."""
    p = get_preset(preset)
    configs = phase_configs(p.model, p.growth)
    return sum(BYTES_PER_PARAMETER * analytic_params(configs[phase])[0] for phase in RUN_CHECKPOINTS.values())


def nearest_existing(path: Path) -> Path:
    """``path``, or its nearest parent that exists (where a folder not yet made will be)."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def check_disk(m: Machine) -> Check:
    free = shutil.disk_usage(nearest_existing(RUNS_DIR)).free
    recipe = checkpoint_bytes("recipe")
    detail = (f"{free / GB:.1f} GB free for {shown_path(RUNS_DIR)}/ (the notebooks' checkpoints); the recipe's "
              f"{len(RUN_CHECKPOINTS)} checkpoints take {recipe / GB:.1f} GB")
    if free > recipe:
        return Check(OK, "disk", detail)
    for name in FALLBACK_PRESETS:
        need = checkpoint_bytes(name)
        if free > need:
            return Check(WARN, "disk", f"{detail}, preset {name!r}'s {need / GB:.2f} GB",
                         f"free {(recipe - free) / GB:.1f} GB for the recipe, or train preset {name!r}")
    smallest = checkpoint_bytes(FALLBACK_PRESETS[-1])
    return Check(FAIL, "disk", f"{detail}, even preset {FALLBACK_PRESETS[-1]!r}'s {smallest / GB:.2f} GB do not fit",
                 f"free {(smallest - free) / GB:.2f} GB or more")


# ---------------------------------------------------------------- Jupyter: the front end, the widgets, the kernel

def check_jupyterlab(m: Machine) -> Check:
    return package_check("jupyterlab", "jupyterlab", "the notebooks' front end")


def check_ipywidgets(m: Machine) -> Check:
    return package_check("ipywidgets", "ipywidgets", "the explorers of notebooks 00, 02 and 03")


def widget_manager_dir() -> Path | None:
    """Where JupyterLab finds the widget manager's front-end extension, or None."""
    from jupyter_core.paths import jupyter_path

    found = (Path(d) / WIDGET_MANAGER for d in jupyter_path("labextensions"))
    return next((d for d in found if (d / "package.json").is_file()), None)


def check_widget_manager(m: Machine) -> Check:
    version = installed_version("jupyterlab_widgets")
    if version is None:
        return Check(FAIL, "widget manager", "jupyterlab_widgets is not installed: widgets show as text",
                     "pip install jupyterlab_widgets")
    if installed_version("jupyter_core") is None:  # it knows where JupyterLab looks for extensions
        return Check(FAIL, "widget manager", "jupyter_core is not installed: JupyterLab cannot run",
                     "pip install jupyterlab")
    where = widget_manager_dir()
    if where is None:
        return Check(FAIL, "widget manager", f"jupyterlab_widgets {version} is installed, but JupyterLab finds no "
                                             f"{WIDGET_MANAGER} extension: widgets show as text",
                     "pip install --force-reinstall jupyterlab_widgets")
    return Check(OK, "widget manager", f"jupyterlab_widgets {version}, its front-end extension in {where}")


# the kernel's Python, asked where it lives and whether it finds growlib
PYTHON_PROBE = ("import importlib.util, json, sys; s = importlib.util.find_spec('growlib'); "
                "print(json.dumps([sys.prefix, s.origin if s else None]))")


def same_python_names() -> set[str]:
    """argv[0] names that jupyter_client replaces with the Python running Jupyter (format_kernel_cmd)."""
    major, minor = sys.version_info[:2]
    return {"python", f"python{major}", f"python{major}.{minor}"}


def kernel_python_answer(python: str) -> tuple[str, str | None] | None:
    """(sys.prefix, where growlib is found or None) of interpreter ``python``; None when it does not run."""
    try:
        # in a neutral folder: started here, it would find a checkout's growlib only because it is the working folder
        done = subprocess.run([python, "-c", PYTHON_PROBE], capture_output=True, text=True, timeout=10,
                              cwd=tempfile.gettempdir())
        return tuple(json.loads(done.stdout)) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None


def check_kernel(m: Machine) -> Check:
    install = f"python -m pip install ipykernel && python -m ipykernel install --user --name {KERNEL_NAME}"
    if installed_version("jupyter_client") is None:
        return Check(FAIL, "kernel", "jupyter_client is not installed: no kernel can start", install)
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        return Check(FAIL, "kernel", f"no {KERNEL_NAME!r} kernelspec (the kernel every notebook names)", install)
    python, named = spec.argv[0], f"kernel {KERNEL_NAME!r} ({spec.resource_dir})"
    if python in same_python_names():
        return Check(OK, "kernel", f"{named} runs the Python that runs Jupyter: this one when started from here "
                                   f"(python -m jupyterlab)")
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        return Check(OK, "kernel", f"{named} runs this Python")
    answer = kernel_python_answer(python)
    if answer is None:
        return Check(FAIL, "kernel", f"{named} runs {python}, which does not start", install)
    prefix, growlib_at = answer
    if os.path.abspath(prefix) == os.path.abspath(sys.prefix):
        return Check(OK, "kernel", f"{named} runs {python}, this environment's Python")
    if growlib_at is None:
        return Check(FAIL, "kernel", f"{named} runs {python} (another environment), which has no growlib", install)
    return Check(WARN, "kernel", f"{named} runs {python} (another environment), whose growlib is {growlib_at}",
                 f"to run this growlib, with this Python: {install}")


# ---------------------------------------------------------------- the corpus and the hub

def check_hub(m: Machine) -> Check:
    var = offline_variable()
    if var:
        return Check(OK, "hub", f"not tried: {var}={os.environ[var].strip()} says offline")
    if m.hub_answers:
        return Check(OK, "hub", f"{HUB_HOST} answered within {HUB_TIMEOUT:.0f} s")
    detail = f"{HUB_HOST} did not answer within {HUB_TIMEOUT:.0f} s"
    if os.environ.get(SAMPLE_VAR, "").strip():
        return Check(OK, "hub", f"{detail}; not needed: the notebooks read {SAMPLE_VAR}")
    return Check(WARN, "hub", detail, "check the network or proxy; offline, set HF_HUB_OFFLINE=1 so no tool waits")


def why_hub_unused(m: Machine) -> str:
    """Why the notebooks will not read TinyStories from the hub (called only when they will not)."""
    var = offline_variable()
    return f"the hub is not tried ({var} is set)" if var else "the hub did not answer"


def check_corpus(m: Machine) -> Check:
    """The corpus the notebooks read: as :func:`growlib.harness.notebook.notebook_session` and
    :func:`growlib.sources.open_source` choose it."""
    try:
        sample = tinystories_sample()
    except ValueError as exc:
        return Check(FAIL, "corpus", str(exc), f"point {SAMPLE_VAR} at a TinyStories .txt or .jsonl file, or unset it")
    if sample:
        size = Path(sample).stat().st_size
        return Check(OK, "corpus", f"the TinyStories file {SAMPLE_VAR} names: {sample} ({size / 1e6:.1f} MB)")
    if m.hub_answers:
        return Check(OK, "corpus", f"TinyStories ({TINYSTORIES}) from the hub, tokenized on first use")
    if tinystories_cached():
        return Check(OK, "corpus", f"TinyStories ({TINYSTORIES}) from its local cache ({why_hub_unused(m)})")
    return Check(WARN, "corpus", f"the bundled synthetic stories (growlib.storygen; not TinyStories): "
                                 f"{why_hub_unused(m)} and TinyStories is not cached",
                 f"set {SAMPLE_VAR} to a TinyStories .txt or .jsonl file, or run once online")


CHECKS: list[Callable[[Machine], Check]] = [
    check_python, check_torch, check_device, check_memory, check_disk,
    check_jupyterlab, check_ipywidgets, check_widget_manager, check_kernel,
    check_hub, check_corpus,
]


def run_check(check: Callable[[Machine], Check], m: Machine) -> Check:
    """``check``'s answer; a check that raises is a FAIL of its own item, so the others still run."""
    try:
        return check(m)
    except Exception as exc:  # anything: the report must go on
        return Check(FAIL, check.__name__.removeprefix("check_").replace("_", " "),
                     f"the check itself failed: {type(exc).__name__}: {exc}", "report this with the line above")


def format_check(c: Check) -> str:
    return f"{c.status:<4}  {c.item:<14}  {c.detail}" + (f"  -> fix: {c.fix}" if c.fix else "")


def main() -> int:
    """Run every check, print one line each; 1 if any FAILed, else 0."""
    m = Machine()
    failed = False
    for check in CHECKS:
        result = run_check(check, m)
        print(format_check(result), flush=True)
        failed = failed or result.status == FAIL
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
