"""Planner evaluation: the configured planner (the embedded default unless config says
otherwise) plans every request of planner_eval/tasks.jsonl against the tool catalog
planner_eval/tools.json; plans are scored against the gold plans.

Writes benchmarks/results/planner_eval.json (figures) and planner_eval_predictions.jsonl.
Usage: cd benchmarks && python planner_eval.py [--limit N] [--category image]
Targets on a 2-core CPU: valid-plan rate 1.0, tool F1 >= 0.75, median warm latency <= 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from results_io import write_results

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "planner_eval"))

import metrics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="only the first N tasks")
    parser.add_argument("--category", help="only tasks of this category")
    args = parser.parse_args()
    os.environ.setdefault("ANYMODAL_HOME", tempfile.mkdtemp(prefix="anymodal-eval-"))

    from assistant import Assistant
    from assistant.catalog_tools import load_catalog
    from assistant.plan import PlanError
    from assistant.planners.base import make_planner
    from assistant.planning import described_attachment, make_plan

    tools = metrics.load_tools()
    registry = load_catalog(metrics.TOOLS_PATH)
    tasks = [
        t for t in metrics.load_tasks() if not args.category or t["category"] == args.category
    ][: args.limit]
    assistant = Assistant()
    t0 = time.perf_counter()
    planner = make_planner(assistant.config, assistant.models)
    load = getattr(getattr(planner, "backend", None), "load", None)
    if load:
        load()
    load_s = time.perf_counter() - t0

    records, predictions = [], []
    for i, task in enumerate(tasks):
        atts = [described_attachment(a["name"], a["modality"]) for a in task["attachments"]]
        start = time.perf_counter()
        try:
            plan = make_plan(planner, task["request"], atts, registry).model_dump(exclude_none=True)
            error = None
        except PlanError as exc:
            plan, error = None, str(exc)
        latency = time.perf_counter() - start
        record = metrics.score_prediction(task, plan, tools, latency)
        record["first"] = i == 0  # the cold request: the prompt prefix is not cached yet
        records.append(record)
        predictions.append(
            {
                "id": task["id"],
                "request": task["request"],
                "plan": plan,
                "error": error,
                **{k: record[k] for k in ("valid", "tool_f1", "edge_f1", "exact")},
                "latency_s": round(latency, 2),
            }
        )
        print(
            f"{task['id']:<10} f1={record['tool_f1']:.2f} edge={record['edge_f1']:.2f} "
            f"{latency:5.1f}s {'' if record['valid'] else 'INVALID ' + str(error)}",
            flush=True,
        )
    warm = [r for r in records if not r["first"]]
    summary = metrics.summarize(records)
    summary["warm"] = {k: v for k, v in metrics.summarize(warm).items() if not k.startswith("by_")}
    write_results(
        "planner_eval",
        {
            "planner": planner.name,
            "model": assistant.config.llama.model if planner.name == "llama.cpp" else None,
            "tasks": len(records),
            "model_load_s": round(load_s, 2),
            "targets": {"valid_plan_rate": 1.0, "tool_f1": 0.75, "median_warm_latency_s": 3.0},
            "summary": summary,
        },
    )
    out = HERE / "results" / "planner_eval_predictions.jsonl"
    out.write_text("".join(json.dumps(p) + "\n" for p in predictions))


if __name__ == "__main__":
    main()
