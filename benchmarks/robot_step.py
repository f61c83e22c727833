"""``Assistant.step`` latency, the robot's slow loop: two 224x224 cameras (a real photo) and a
7-value state per observation.

- scripted: 200 steps of one episode following a list of subtasks (no model): the overhead of
  parsing, storing the frames, recording the step; p50 / p95 and each phase's median.
- embedded: the default model (Qwen2.5-Coder-1.5B, llama.cpp) deciding: the first call (model
  load and the uncached prompt) and then warm calls that each ask the model; p50 / p95.

The load average is recorded before and after: on a shared two-core machine the model's
figures move with it. Writes benchmarks/results/robot_step.json.
Usage: cd benchmarks && python robot_step.py [--model-calls N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from results_io import write_results

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
SUBTASKS = [
    "pick up the cup",
    "place the cup in the sink",
    "pick up the plate",
    "place it in the sink",
]


def observation(photo: np.ndarray, i: int, outcome: str | None) -> dict:
    moved = np.roll(photo, i, axis=1)  # a new frame each step, as a moving robot sees
    obs = {
        "observation.images.front": moved,
        "observation.images.wrist": moved[::-1],
        "observation.state": np.linspace(0.0, 1.0, 7) + 0.01 * i,
        "task": "clear the table: put the cup and the plate in the sink",
    }
    if outcome:
        obs["outcome"] = outcome
    return obs


def percentiles(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2), "p95_ms": round(p95, 2)}


def scripted(assistant, photo: np.ndarray, steps: int = 200) -> dict:
    totals, phases = [], {}
    first = assistant.step(observation(photo, 0, None), plan=SUBTASKS)
    cycle = ["running", "running", "success", "failure"]
    for i in range(1, steps):
        d = assistant.step(observation(photo, i, cycle[i % len(cycle)]))
        totals.append(d.timing["total"])
        for phase, ms in d.timing.items():
            phases.setdefault(phase, []).append(ms)
    return {
        "first_call_ms": first.timing["total"],
        **percentiles(totals),
        "phase_median_ms": {k: round(statistics.median(v), 3) for k, v in phases.items()},
    }


def embedded(assistant, photo: np.ndarray, calls: int) -> dict:
    from assistant.robot import DecisionError

    try:
        backend = assistant._chat_backend()
    except Exception as exc:  # no model installed: say so in the figures
        return {"skipped": f"no embedded model: {exc}"}
    assistant.robot.new_episode()
    t0 = time.perf_counter()
    first = assistant.step(observation(photo, 0, None))
    cold_ms = (time.perf_counter() - t0) * 1000
    warm, decide, decisions = [], [], [first.subtask or "(done)"]
    for i in range(1, calls + 1):
        # 'success' each time, so every call asks the model (a running subtask would be kept).
        t0 = time.perf_counter()
        try:
            d = assistant.step(observation(photo, i, "success"))
        except DecisionError as exc:  # counted: the model's answers were unusable twice
            warm.append((time.perf_counter() - t0) * 1000)
            decisions.append(f"(no decision: {exc})")
            continue
        warm.append(d.timing["total"])
        decide.append(d.timing["decide"])
        decisions.append(d.subtask or "(done)")
        if d.done:
            assistant.robot.new_episode()
    return {
        "backend": backend.name,
        "first_call_ms": round(cold_ms, 1),
        **percentiles(warm),
        "decide_median_ms": round(statistics.median(decide), 1),
        "decisions": decisions,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-calls", type=int, default=5, help="warm calls to the model")
    args = parser.parse_args()
    os.environ.setdefault("ANYMODAL_HOME", tempfile.mkdtemp(prefix="anymodal-bench-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from assistant import Assistant

    source = MEDIA / "11135.jpg"
    if source.is_file():
        photo = np.asarray(Image.open(source).convert("RGB").resize((224, 224)))
    else:  # outside this checkout's layout: a synthetic picture
        photo = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    load_before = os.getloadavg()[0]
    assistant = Assistant()
    figures = {
        "observation": "2 cameras 224x224 HWC uint8, 7-value state, LeRobot keys",
        "scripted": scripted(assistant, photo),
        "embedded": embedded(assistant, photo, args.model_calls),
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    write_results("robot_step", figures)


if __name__ == "__main__":
    main()
