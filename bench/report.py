"""What every benchmark prints: its options, progress, tables, one JSON line, medians and
ratios, and a backend's failure reported without stopping the others.

Nothing here times anything; each benchmark measures a baseline in the same run, because these
machines are shared and only ratios hold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from typing import Any, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parser(name: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m bench {name}", description=description)
    p.add_argument("--quick", action="store_true", help="a short run (under 60 s)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def machine() -> dict[str, Any]:
    """What the numbers were measured on (the load average says how shared it was)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                                capture_output=True, timeout=5).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, text=True,
                                    capture_output=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "commit": commit + ("+dirty" if dirty else ""),
            "note": "shared 2-core machine: compare ratios, not absolute numbers"}


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain, aligned text table (numbers right-aligned)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [title, line, "-" * len(line)]
    for row, raw in zip(cells, rows):
        out.append("  ".join(c.rjust(w) if isinstance(v, (int, float)) else c.ljust(w)
                             for c, w, v in zip(row, widths, raw)))
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def emit(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        sys.stdout.flush()
        print(json.dumps(result, sort_keys=False), flush=True)


def say(*parts: Any) -> None:
    """Progress goes to stderr, so stdout holds only the tables and the JSON line."""
    print(*parts, file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def guarded(backend: str, run: Any, *args: Any) -> dict[str, Any]:
    """Run one backend's part; a failure (say, another suite stopped PostgreSQL meanwhile) is
    reported as that backend's ``error`` and the other backends still run."""
    try:
        return run(backend, *args)
    except Exception as exc:  # noqa: BLE001 - reported, and the exit status says so
        say(f"{backend}: failed: {type(exc).__name__}: {exc}")
        return {"backend": backend, "error": f"{type(exc).__name__}: {exc}"}


def split_failed(results: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The results that have numbers, and an exit status (1 when a backend failed)."""
    for r in results:
        if "error" in r:
            print(f"{r['backend']}: FAILED: {r['error']}")
    return [r for r in results if "error" not in r], int(any("error" in r for r in results))
