"""The device check: what the recipe does on this machine's accelerator, in one JSON file.

    python scripts/device_check.py                                   # the best device here, its preset
    python scripts/device_check.py --device cpu --preset tiny --json device_check.json

See growlib.harness.device_check for what is measured. On a GPU at the recipe preset it takes a
few minutes; on a CPU at the tiny preset, seconds (CI runs it so that it cannot rot).
"""

from __future__ import annotations

import argparse
import json
import sys

from growlib.harness.device_check import device_check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu | cuda | mps (default: the best available)")
    parser.add_argument("--preset", default=None, help="default: recipe on a GPU, tiny on a CPU")
    parser.add_argument("--steps", type=int, default=3, help="training steps timed per phase (after one warm-up)")
    parser.add_argument("--json", default="device_check.json", help="where the figures go")
    args = parser.parse_args(argv)
    try:
        figures = device_check(args.device, args.preset, args.steps, args.json)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
