"""``python -m bench NAME [options]``: each NAME is a module ``bench/NAME.py`` with ``main(argv)``.

``python -m bench all [--quick]`` runs every benchmark in turn (not the reliability run).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCHMARKS = ("ingest", "e2e", "growth", "peers")
OTHERS = ("torture",)


def main(argv: list[str]) -> int:
    names = sorted(p.stem for p in Path(__file__).parent.glob("*.py") if not p.stem.startswith("_"))
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m bench NAME [--quick] [--json]\n  NAME: all, {', '.join(names)}")
        return 0
    name, rest = argv[0], argv[1:]
    if name == "all":
        status = 0
        for bench in BENCHMARKS:
            if bench in names:
                status |= importlib.import_module(f"bench.{bench}").main(rest) or 0
        return status
    if name not in names:
        print(f"no benchmark {name!r}; have: {', '.join(names)}", file=sys.stderr)
        return 2
    return importlib.import_module(f"bench.{name}").main(rest) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
