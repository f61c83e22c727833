"""Orchestration overhead per step: a 20-step plan of trivial tools through the whole graph
(planning checks, scheduling, a worker thread per step, SQLite checkpoints after every node),
against calling the same tool functions directly.

Writes benchmarks/results/orchestration.json. Target: under 5 ms per step on a 2-core CPU.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from results_io import write_results

from assistant import Assistant
from tools import ArtifactStore, Registry, TextInput, ToolContext, function_tool

STEPS = 20
ROUNDS = 7


def trivial(label: str, after: str | None = None) -> str:
    return f"{label} after {after or 'nothing'}"


@function_tool(name="trivial")
def trivial_tool(label: str, after: TextInput | None = None, ctx: ToolContext = None) -> str:  # type: ignore[assignment]
    """Return a short text (the wrapper stores it as a text artifact)."""
    return trivial(label, after.name if after else None)


def build(shape: str) -> dict:
    steps = []
    for i in range(1, STEPS + 1):
        args = {"label": f"s{i}"}
        if shape == "chain" and i > 1:
            args["after"] = f"$s{i - 1}"
        steps.append({"id": f"s{i}", "tool": "trivial", "args": args})
    return {"steps": steps}


def main() -> None:
    home = tempfile.mkdtemp(prefix="anymodal-bench-")
    os.environ["ANYMODAL_HOME"] = home
    assistant = Assistant(registry=Registry([trivial_tool]))
    store = ArtifactStore(Path(home) / "direct")
    figures: dict[str, dict] = {}
    for shape in ("chain", "parallel"):
        plan = build(shape)
        graph_times, direct_times = [], []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            result = assistant.run("bench", plan=plan)
            graph_times.append(time.perf_counter() - t0)
            if not result.ok:
                sys.exit(f"benchmark run failed: {result.text}")
            t0 = time.perf_counter()
            prev = None
            for i in range(1, STEPS + 1):
                prev = store.add_text(
                    trivial(f"s{i}", prev.name if prev else None), name="trivial.txt"
                )
            direct_times.append(time.perf_counter() - t0)
        per_step = [(g - d) / STEPS * 1000 for g, d in zip(graph_times, direct_times, strict=True)]
        figures[shape] = {
            "steps": STEPS,
            "rounds": ROUNDS,
            "overhead_ms_per_step_median": round(statistics.median(per_step), 3),
            "overhead_ms_per_step_min": round(min(per_step), 3),
            "graph_run_ms_median": round(statistics.median(graph_times) * 1000, 2),
            "direct_ms_median": round(statistics.median(direct_times) * 1000, 3),
        }
    write_results(
        "orchestration",
        {"target_ms_per_step": 5.0, "durability": assistant.config.durability, "results": figures},
    )


if __name__ == "__main__":
    main()
