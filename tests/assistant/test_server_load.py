"""A bounded load: 20 sessions at once, each a 3-step plan, over real HTTP. All finish with
their own artifacts (no cross-talk), and the 21st run, beyond the queue, gets 429."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.assistant.server_harness import read_sse, serving, wait_for
from tests.conftest import plugin_assistant

SESSIONS = 20
RUNNING, QUEUED = 5, 15  # together exactly the 20: the queue is full while the gates hold


def _plan(tmp_path, name: str) -> dict:
    log = str(tmp_path / f"{name}.log")
    gate = {"marker": str(tmp_path / f"{name}.started"), "release": str(tmp_path / "go")}
    return {
        "steps": [
            {"id": "s1", "tool": "gate", "args": gate},
            {"id": "s2", "tool": "count", "args": {"label": name, "log": log, "after": "$s1"}},
            {
                "id": "s3",
                "tool": "count",
                "args": {"label": f"{name}-again", "log": log, "after": "$s2"},
            },
        ]
    }


async def _final(http: httpx.AsyncClient, run: dict) -> dict:
    async with http.stream("GET", run["links"]["events"]) as response:
        lines = [line async for line in response.aiter_lines()]
    events = [json.loads(e["data"]) for e in read_sse(iter(lines))]
    assert events[-1]["type"] == "final", events[-1]
    assert {e["session"] for e in events} == {run["session"]}  # only this session's events
    return events[-1]["result"]


async def _load(srv, tmp_path) -> None:
    names = [f"load-{i:02d}" for i in range(SESSIONS)]
    async with httpx.AsyncClient(
        base_url=srv.url, headers=srv.headers, timeout=120, trust_env=False
    ) as http:
        posted = await asyncio.gather(
            *(
                http.post("/v1/runs", json={"session": n, "prompt": n, "plan": _plan(tmp_path, n)})
                for n in names
            )
        )
        assert [r.status_code for r in posted] == [202] * SESSIONS
        runs = [r.json() for r in posted]
        assert [r["session"] for r in runs] == names

        full = await http.post(
            "/v1/runs", json={"session": "one-too-many", "plan": _plan(tmp_path, "x")}
        )
        assert full.status_code == 429, full.text
        assert full.headers["retry-after"] == "2"
        error = full.json()["error"]
        assert error["code"] == "queue_full" and "20 runs are running or queued" in error["message"]

        # The gates hold: 5 run, 15 wait.
        def statuses() -> list[str]:
            return [srv.app.state.anymodal.runs.get(r["run"]).status for r in runs]

        wait_for(lambda: sum(s == "running" for s in statuses()) == RUNNING, "5 running")
        assert sorted(statuses()) == ["queued"] * QUEUED + ["running"] * RUNNING
        wait_for(lambda: len(list(tmp_path.glob("*.started"))) == RUNNING, "the first gates")

        followers = [asyncio.create_task(_final(http, r)) for r in runs]
        (tmp_path / "go").touch()
        results = await asyncio.gather(*followers)

        for name, result in zip(names, results, strict=True):
            assert result["session"] == name and result["status"] == "ok", result["text"]
            released, first, again = result["artifacts"]
            for art in result["artifacts"]:
                assert art["url"].startswith(f"/v1/sessions/{name}/artifacts/")
            texts = [(await http.get(a["url"])).text for a in (released, first, again)]
            assert texts == ["released", f"{name} done", f"{name}-again done"]
            assert (tmp_path / f"{name}.log").read_text() == f"{name}\n{name}-again\n"
            # The session's store holds its own outputs and nothing of the others'.
            stored = sorted(
                p.read_text() for p in srv.assistant.store(name).root.rglob("*") if p.is_file()
            )
            assert stored == sorted(["released", f"{name} done", f"{name}-again done"])
        # The refused run left no trace: no session, no store, its gate never started.
        assert srv.assistant.sessions.get("one-too-many") is None
        assert not srv.assistant.store("one-too-many").root.exists()
        assert not (tmp_path / "x.started").exists()

        again = await http.post("/v1/runs", json={"plan": _plan(tmp_path, "after")})
        assert again.status_code == 202  # room again once the load has drained


def test_twenty_sessions_at_once_and_the_twenty_first_is_429(tmp_path):
    a = plugin_assistant(max_replans=0)
    with serving(a, max_running=RUNNING, max_queued=QUEUED) as srv:
        asyncio.run(_load(srv, tmp_path))
