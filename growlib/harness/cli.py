"""``python -m growlib``: run the recipe's three phases, prepare a corpus, print parameter budgets, compare, benchmark.

Bad arguments give one clear ``error:`` line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from ..config import PLACEMENTS, PRESETS, PRESET_ALIASES
from ..device import default_preset
from ..parallel.group import PARALLEL_MODES, process_rank
from .compare.setup import LR_FACTORS
from .spec import LEAN_MODES
from .stops import NotEnoughMemory, RunInterrupted


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2 (argparse prints usage too)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not > 0")
    return value


DATA_HELP = ("auto | bundled | world | tinystories | a .txt/.jsonl/.json/.parquet file | a folder written by "
             "save_to_disk")
MAX_DOCS_HELP = "keep only the first N training documents of the corpus"
WORKERS_HELP = "processes that tokenize when the token files are made (default: the CPU count, at most 8)"


def _data_options(parser: argparse.ArgumentParser, default: str = "auto", help: str = DATA_HELP) -> None:
    parser.add_argument("--data", default=default, help=help)
    parser.add_argument("--max-docs", type=_positive_int, default=None, help=MAX_DOCS_HELP)
    parser.add_argument("--workers", type=_positive_int, default=None, help=WORKERS_HELP)


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="train dense -> MoE -> grown, with the recipe's console output")
    run.add_argument("--preset", default=None, help=f"one of {sorted(PRESETS)} (aliases: {PRESET_ALIASES}; default: recipe on CUDA/MPS, cpu otherwise)")
    _data_options(run)
    run.add_argument("--steps", type=_positive_int, default=None, help="steps for every phase (overrides the preset)")
    run.add_argument("--out", default="checkpoints", help="output folder (default: checkpoints/)")
    run.add_argument("--device", default=None, help="cpu | cuda | mps (default: the best available)")
    run.add_argument("--scale-factor", type=float, default=None, help="width growth factor (recipe: 2; fallback 1.5)")
    run.add_argument("--extra-layers", type=int, default=None, help="layers added in phase 3 (recipe: 4; fallback 2)")
    run.add_argument("--placement", choices=PLACEMENTS, default=None, help="where the new layers go (recipe: end)")
    run.add_argument("--checkpoint-every", type=_positive_int, default=None,
                     help="also checkpoint (with optimizer state) every N steps, for --resume")
    run.add_argument("--lean", nargs="?", const="always", default="auto", choices=LEAN_MODES,
                     help="memory-light training (Adafactor stepped inside backward, gradient checkpointing): "
                          "auto (default) for each phase that would not fit otherwise, always (also --lean "
                          "alone), never")
    run.add_argument("--compile", action="store_true", help="torch.compile each block (CUDA only)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    run.add_argument("--parallel", choices=PARALLEL_MODES, default=None,
                     help="under torchrun: fsdp (default; weights, gradients and optimizer sharded) or ddp "
                          "(replicated)")
    run.add_argument("--overwrite", action="store_true", help="replace a run already in --out")


def _add_prepare_and_budget(sub) -> None:
    prep = sub.add_parser("prepare", help="tokenize a corpus once into token files under data/cache (run reuses them)")
    prep.add_argument("--preset", default="cpu", help=f"whose tokenizer (vocabulary size): one of {sorted(PRESETS)}")
    _data_options(prep)
    prep.add_argument("--json", default=None, help="write tokens, tokens_per_second and peak_rss_gb to this JSON file")
    budget = sub.add_parser("budget", help="parameter table of every phase (meta device: instant)")
    budget.add_argument("--preset", default="recipe")
    budget.add_argument("--scale-factor", type=float, default=None)
    budget.add_argument("--extra-layers", type=int, default=None)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} is not > 0")
    return value


def _add_compare(sub) -> None:
    comp = sub.add_parser("compare", help="when does growth pay: the grown path against its baselines over a sweep "
                                           "of budgets, in FLOPs, over several seeds (notebook 04)")
    comp.add_argument("--preset", default="sweep")
    comp.add_argument("--data", default="world:100000",
                      help="the corpus (default: the story world, 100,000 stories); " + DATA_HELP)
    comp.add_argument("--budgets", type=_positive_float, nargs="+", default=None,
                      help="tokens per active parameter of the grown architecture, one budget each "
                           "(default: 0.5 1.25 3 8 20)")
    comp.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    comp.add_argument("--variants", action="store_true",
                      help="also the transition variants (middle budget) and the symmetry and gentler-growth "
                           "variants (largest budget)")
    comp.add_argument("--transition-variants-at", type=_positive_float, default=None, metavar="BUDGET",
                      help="with --variants: the budget of the transition variants (default: the middle one)")
    comp.add_argument("--growth-variants-at", type=_positive_float, default=None, metavar="BUDGET",
                      help="with --variants: the budget of the symmetry and gentler-growth variants "
                           "(default: the largest)")
    comp.add_argument("--processes", type=_positive_int, default=None,
                      help="tasks run in this many single-threaded processes (default: 2 on 2 or more cores)")
    comp.add_argument("--lr-factors", type=float, nargs="+", default=list(LR_FACTORS),
                      help="every swept path's first learning rates (the grown path's and the baselines'), as multiples of the dense phase's (a best rate "
                           "at an edge adds rates by factors of 2)")
    comp.add_argument("--json", default=None, help="the results file, resumed if it exists (default: "
                                                   "runs/growth_sweep.json; results/growth_sweep.json is the "
                                                   "committed one)")
    # earlier options, kept for the scripts that use them
    comp.add_argument("--token-budget", type=_positive_int, default=None,
                      help="(earlier option) training tokens of the grown path: one budget")
    comp.add_argument("--steps", type=_positive_int, default=None,
                      help="(earlier option) steps of every phase of the grown path: one budget")
    comp.add_argument("--ablations", "--upcycling", dest="variants", action="store_true",
                      help="(earlier names of --variants)")
    comp.add_argument("--eval-every", type=_positive_int, default=None,
                      help="(earlier option, no longer used: every phase is evaluated at 20 points)")


def _add_tools(sub) -> None:
    sub.add_parser("doctor", help="is this machine ready for the notebooks? one OK/WARN/FAIL line per item "
                                  "(exit 1 on a FAIL)")
    sub.add_parser("book", help="build the notebooks into a static website in build/book/ (scripts/build_book.sh)")
    export = sub.add_parser("export", help="a run's dense checkpoint as a Hugging Face GPT-NeoX folder "
                                            "(AutoModelForCausalLM / AutoTokenizer.from_pretrained)")
    export.add_argument("run_dir", help="the run's folder (the --out of python -m growlib run)")
    export.add_argument("--checkpoint", default="dense_model",
                        help="which checkpoint of the run (default: dense_model; MoE ones are refused)")
    export.add_argument("--out", required=True, help="the folder to write (new or empty, or an earlier export)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m growlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_run(sub)
    _add_prepare_and_budget(sub)
    _add_compare(sub)
    _add_tools(sub)
    bench = sub.add_parser("bench", help="benchmarks (figures, not tests)")
    bench.add_argument("which", nargs="?", default="all", choices=["all", "peak", "steps", "moe", "grow", "memory", "dist"])
    bench.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return parser


def _resume_command(argv: list[str] | None, lean: bool = False) -> str:
    """The command that continues this run: its own options plus --resume (and --lean, if asked)."""
    words = [a for a in (argv or sys.argv[1:]) if a not in ("--overwrite", "--resume")]
    if lean:
        words = [w for i, w in enumerate(words) if w != "--lean" and not (i and words[i - 1] == "--lean"
                                                                          and w in LEAN_MODES)] + ["--lean"]
    return f"python -m growlib {' '.join(words)} --resume"


def run_spec(args: argparse.Namespace):
    """The one :class:`~growlib.harness.spec.RunSpec` of ``python -m growlib run``, from its options."""
    from .spec import RunSpec

    growth = {k: v for k, v in (("scale_factor", args.scale_factor), ("extra_layers", args.extra_layers),
                                ("placement", args.placement)) if v is not None}
    return RunSpec.build(args.preset or default_preset(args.device), data=args.data, steps=args.steps, growth=growth,
                         max_docs=args.max_docs, device=args.device, out=args.out, lean=args.lean,
                         compile=args.compile, checkpoint_every=args.checkpoint_every or 0, parallel=args.parallel,
                         workers=args.workers)


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    from pathlib import Path

    from .checkpoints.pointer import out_dir_has_run
    from .pipeline import run

    try:
        run(run_spec(args), resume=args.resume, overwrite=args.overwrite)
    except RunInterrupted as stop:
        print(f"\ninterrupted in phase {stop.phase} before step {stop.next_step}; a checkpoint is in "
              f"{args.out}. Continue with the same options plus --resume:\n"
              f"  {_resume_command(argv)}", file=sys.stderr)
        return 130
    except NotEnoughMemory as exc:
        print(f"error: {exc}", file=sys.stderr)
        if Path(args.out).is_dir() and out_dir_has_run(Path(args.out)):  # stopped mid-run: say how to go on
            print(f"what is trained so far is saved in {args.out}; continue with:\n  "
                  f"{_resume_command(argv, lean=True)}", file=sys.stderr)
        return 2
    return 0


def _dispatch(args: argparse.Namespace, argv: list[str] | None) -> int:
    if args.command == "run":
        return _run(args, argv)
    if args.command == "prepare":
        from .prepare import prepare_command
        prepare_command(args.preset, args.data, args.max_docs, args.workers, args.json)
    elif args.command == "budget":
        from ..budget import print_budget
        print_budget(args.preset, args.scale_factor, args.extra_layers)
    elif args.command == "compare":
        _compare(args)
    elif args.command == "bench":
        from .bench import run_bench
        run_bench(args.which, args.json)
    else:
        return _dispatch_tool(args)
    return 0


def _compare(args: argparse.Namespace) -> None:
    from .compare import DEFAULT_BUDGETS, compare
    from .compare.setup import Setup

    budgets = list(args.budgets or ())
    setup = Setup(args.preset, args.data)  # an unknown preset fails here
    t = setup.train
    if args.token_budget is not None:  # the grown path's tokens, at the preset's phase lengths -> its FLOPs
        steps = args.token_budget / (t.batch_size * t.seq_len) / (t.steps_phase1 + t.steps_phase2 + t.steps_phase3)
        budgets.append(_budget_of(setup, steps * t.steps_phase1, steps * t.steps_phase2, steps * t.steps_phase3))
    if args.steps is not None:
        budgets.append(_budget_of(setup, args.steps, args.steps, args.steps))
    compare(args.preset, args.data, tuple(budgets) or DEFAULT_BUDGETS, tuple(args.seeds), args.variants, args.json,
            args.processes, tuple(args.lr_factors), transitions_at=args.transition_variants_at,
            growths_at=args.growth_variants_at)


def _budget_of(setup, *steps: float) -> float:
    """The budget (tokens per active parameter of the grown architecture) of a grown path of these phase lengths."""
    flops = sum(n * setup.step_flops(p) for p, n in enumerate(steps, start=1))
    return round(flops / setup.budget_flops(1.0), 4)


def _dispatch_tool(args: argparse.Namespace) -> int:
    if args.command == "doctor":
        from .doctor import main as doctor
        return doctor()
    if args.command == "book":
        from .book import build_book
        return build_book()
    from .export import export_command
    export_command(args.run_dir, args.out, args.checkpoint)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args, argv)
    except ValueError as exc:  # every input error of growlib is a ValueError with a full sentence
        if process_rank() == 0:  # under torchrun every process refuses; one says why
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
