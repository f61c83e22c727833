"""Server throughput for small runs and time to first event over SSE.

A server process (this script with ``--serve``: ``create_app`` on uvicorn, one trivial
``noop`` tool) and a client process (this script) on the same machine. N clients at once each
start runs of a one-step noop plan with ``POST /v1/runs`` (``stream: true``) and read the SSE
stream to the final event. Reported per N: runs per second, time to the first event of the run
(``plan_ready``, from sending the request; queue wait included when N > max_running) and to
the final event, p50 and p95; and, as the baseline, the same runs one after another through the
Python API in one process.

Writes benchmarks/results/server_throughput.json. No target: reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx
from results_io import write_results

TOKEN = "benchmark-token-0123456789"
CLIENTS = (1, 4, 16)
RUNS_PER_CLIENT = 25
MAX_RUNNING = 8
PLAN = {"steps": [{"id": "s1", "tool": "noop", "args": {"value": 1}}]}


def noop_assistant() -> Any:
    from assistant import Assistant
    from tools import Registry, function_tool

    @function_tool(name="noop")
    def noop(value: int = 0) -> dict:
        """Return its input as data."""
        return {"value": value}

    return Assistant(registry=Registry([noop]))


def direct() -> float:
    """Runs per second through the Python API, one after another: the baseline."""
    os.environ["ANYMODAL_HOME"] = tempfile.mkdtemp(prefix="anymodal-bench-")
    os.environ["ANYMODAL_MEMORY__ENABLED"] = "false"
    assistant = noop_assistant()
    for _ in range(3):
        assistant.run(plan=PLAN)
    t0 = time.perf_counter()
    for _ in range(RUNS_PER_CLIENT):
        assistant.run(plan=PLAN)
    return round(RUNS_PER_CLIENT / (time.perf_counter() - t0), 1)


def serve() -> None:
    from assistant.config import ServeSettings
    from assistant.server import bind, create_app, make_server

    settings = ServeSettings(max_running=MAX_RUNNING, max_queued=1000)
    assistant = noop_assistant()
    sock = bind("127.0.0.1", 0)
    print(sock.getsockname()[1], flush=True)
    make_server(create_app(assistant, settings, TOKEN), settings, "warning").run(sockets=[sock])


async def one_run(http: httpx.AsyncClient) -> tuple[float, float]:
    """Seconds to the run's first event and to its final event."""
    t0 = time.perf_counter()
    first = None
    async with http.stream("POST", "/v1/runs", json={"plan": PLAN, "stream": True}) as r:
        if r.status_code != 200:
            sys.exit(f"run refused: {r.status_code} {await r.aread()!r}")
        async for line in r.aiter_lines():
            if line.startswith("event: ") and line != "event: run" and first is None:
                first = time.perf_counter() - t0
            if line == "event: final":
                break
            if line == "event: error":
                sys.exit("a benchmark run failed")
    assert first is not None
    return first, time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def load(url: str, clients: int) -> dict:
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=120,
        trust_env=False,
        limits=limits,
    ) as http:
        for _ in range(3):  # warm: graph built, SQLite open, connections made
            await one_run(http)
        times: list[tuple[float, float]] = []

        async def client() -> None:
            for _ in range(RUNS_PER_CLIENT):
                times.append(await one_run(http))

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - t0
    first = [t[0] * 1000 for t in times]
    total = [t[1] * 1000 for t in times]
    return {
        "clients": clients,
        "runs": len(times),
        "runs_per_s": round(len(times) / wall, 1),
        "first_event_ms_p50": round(statistics.median(first), 1),
        "first_event_ms_p95": round(pct(first, 0.95), 1),
        "final_ms_p50": round(statistics.median(total), 1),
        "final_ms_p95": round(pct(total, 0.95), 1),
    }


def main() -> None:
    home = tempfile.mkdtemp(prefix="anymodal-bench-")
    env = {**os.environ, "ANYMODAL_HOME": home, "ANYMODAL_MEMORY__ENABLED": "false"}
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        results = [asyncio.run(load(url, n)) for n in CLIENTS]
    finally:
        server.terminate()
        server.wait(30)
    write_results(
        "server_throughput",
        {
            "plan": "one noop step (graph, SQLite checkpoints, SSE), server and client processes",
            "max_running": MAX_RUNNING,
            "runs_per_client": RUNS_PER_CLIENT,
            "direct_api_runs_per_s": direct(),
            "results": results,
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="be the server process")
    if parser.parse_args().serve:
        serve()
    else:
        main()
