"""wrk, the HTTP load generator, replaying a request file (bench/wrk/replay.lua) and read back
as one result: rate, latency percentiles, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "replay.lua"


def require_wrk() -> str:
    found = shutil.which("wrk")
    if not found:
        print("wrk (the HTTP load generator) is not installed.\n"
              "Install it with: apt-get install -y wrk   (Debian/Ubuntu package `wrk`)",
              file=sys.stderr)
        sys.exit(2)
    return found


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # connect/read/write/timeout errors and non-2xx/3xx answers
    non_2xx: int
    wrapped: int  # times the request file was replayed from the start
    consumed: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_wrk(port: int, requests_file: Path, seconds: float, *, connections: int = 64,
            threads: int = 1, timeout_s: int = 10) -> WrkResult:
    cmd = [require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
           f"--timeout={timeout_s}s", "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}/"]
    env = {**os.environ, "BENCH_REQUESTS": str(requests_file), "BENCH_THREADS": str(threads)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=seconds + 120)
    line = next((l for l in done.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    data = json.loads(line.split(" ", 1)[1])
    seconds_run = data["duration_us"] / 1e6
    errors = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts",
                                   "status_errors"))
    return WrkResult(requests=data["requests"], seconds=seconds_run,
                     rps=data["requests"] / seconds_run if seconds_run else 0.0,
                     p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000,
                     p99_ms=data["p99_us"] / 1000, max_ms=data["max_us"] / 1000,
                     errors=errors, non_2xx=data["status_errors"], wrapped=data["wrapped"],
                     consumed=data["consumed"])
