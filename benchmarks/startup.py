"""How long `anymodal --help` and `anymodal tools list --json` take to start, in a fresh process.

Writes benchmarks/results/startup.json. Target for --help: well under a second.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from results_io import write_results

ROUNDS = 7


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "assistant.cli", *args], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    results = {}
    for name, args in {"help": ["--help"], "tools_list": ["tools", "list", "--json"]}.items():
        times = [timed(args) for _ in range(ROUNDS)]
        results[name] = {
            "median_ms": round(statistics.median(times) * 1000, 1),
            "min_ms": round(min(times) * 1000, 1),
            "rounds": ROUNDS,
        }
    write_results("startup", {"target_help_ms": 1000, "results": results})


if __name__ == "__main__":
    main()
