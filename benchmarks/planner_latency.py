"""Planner latency with the embedded default (llama.cpp), on a long tool list (the whole
evaluation catalog, no shortlist): the first (cold) request, then warm requests, with the
prompt-prefix cache on and off. The warm cached request should be at least 3x faster.

Writes benchmarks/results/planner_latency.json. Usage: cd benchmarks && python planner_latency.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from results_io import write_results

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "planner_eval"))

import metrics  # noqa: E402

REQUESTS = [
    ("make this photo 512 pixels wide", [("photo.jpg", "image")]),
    ("transcribe the recording", [("memo.wav", "audio")]),
    ("turn this picture into a 3d model", [("chair.png", "image")]),
    ("cut the first ten seconds of the clip", [("talk.mp4", "video")]),
]


def measure(prefix_cache: bool) -> dict:
    from assistant import Assistant
    from assistant.catalog_tools import load_catalog
    from assistant.planners.base import model_file
    from assistant.planners.llamacpp import LlamaCppBackend
    from assistant.planners.llm import LLMPlanner
    from assistant.planning import described_attachment, make_plan

    assistant = Assistant()
    c = assistant.config.llama
    backend = LlamaCppBackend(
        model_file(c.model, assistant.models),
        n_ctx=c.n_ctx,
        threads=c.threads,
        prefix_cache=prefix_cache,
    )
    t0 = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - t0
    planner = LLMPlanner(backend, max_tokens=c.max_tokens)  # no shortlist: the long list
    registry = load_catalog(metrics.TOOLS_PATH)
    times = []
    for prompt, files in REQUESTS:
        atts = [described_attachment(n, m) for n, m in files]
        t0 = time.perf_counter()
        try:
            make_plan(planner, prompt, atts, registry)
        except Exception as exc:  # a bad plan still took its time; note it
            print(f"  ({prompt!r}: {exc})")
        times.append(time.perf_counter() - t0)
        print(f"prefix_cache={prefix_cache} {times[-1]:.2f}s {prompt}", flush=True)
    return {
        "load_s": round(load_s, 2),
        "cold_s": round(times[0], 2),
        "warm_s": [round(t, 2) for t in times[1:]],
        "warm_median_s": round(statistics.median(times[1:]), 2),
    }


def main() -> None:
    os.environ.setdefault("ANYMODAL_HOME", tempfile.mkdtemp(prefix="anymodal-lat-"))
    cached = measure(True)
    uncached = measure(False)
    write_results(
        "planner_latency",
        {
            "tools": len(metrics.load_tools()),
            "with_prefix_cache": cached,
            "without_prefix_cache": uncached,
            "warm_speedup": round(uncached["warm_median_s"] / cached["warm_median_s"], 2),
            "target_warm_speedup": 3.0,
        },
    )


if __name__ == "__main__":
    main()
