"""The HTTP API end to end over real HTTP on 127.0.0.1: uploads, runs, SSE, artifacts,
sessions, approvals, cancel on disconnect."""

from __future__ import annotations

import io
import json
import zipfile

import httpx
from PIL import Image

from assistant import Assistant
from tests.assistant.server_harness import gate_plan, read_sse, serving, wait_for
from tests.conftest import check_event_order, make_png, plugin_assistant

RESIZE_CROP = {
    "steps": [
        {"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 320}},
        {
            "id": "s2",
            "tool": "crop_image",
            "args": {"image": "$s1", "left": 10, "top": 20, "width": 100, "height": 50},
        },
    ]
}


def _events(response: httpx.Response) -> list[dict]:
    return [
        {**e, "data": json.loads(e["data"])} for e in read_sse(response.iter_lines()) if "data" in e
    ]


def test_upload_run_stream_and_download(tmp_path):
    photo = make_png(tmp_path / "photo.png", (640, 480), (200, 30, 30))
    with serving(Assistant()) as srv, srv.client() as http:
        with http.stream(
            "POST",
            "/v1/runs",
            data={"prompt": "shrink and crop", "plan": json.dumps(RESIZE_CROP), "stream": "true"},
            files={"files": ("photo.png", photo.read_bytes(), "image/png")},
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            sse = _events(response)
        head, events = sse[0], sse[1:]
        assert head["event"] == "run"
        session = head["data"]["session"]
        # Each SSE event carries its index as id and its type as event name.
        assert [int(e["id"]) for e in events] == list(range(len(events)))
        assert all(e["event"] == e["data"]["type"] for e in events)
        from assistant.events import EVENT_ADAPTER

        typed = [EVENT_ADAPTER.validate_python(e["data"]) for e in events]
        check_event_order(typed, RESIZE_CROP)
        final = events[-1]["data"]
        assert final["result"]["status"] == "ok", final["result"]["text"]
        crop = final["result"]["artifacts"][-1]
        assert crop["url"] == f"/v1/sessions/{session}/artifacts/{crop['id']}"

        download = http.get(crop["url"])
        assert download.status_code == 200
        assert download.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(download.content)) as img:
            img.load()
            assert img.size == (100, 50)
            assert img.getpixel((5, 5))[0] > 150  # red, from the upload
        # The uploaded file is an artifact of the session too, under its own name.
        messages = http.get(f"/v1/sessions/{session}").json()["messages"]
        upload = messages[0]["artifacts"][0]
        assert upload["name"] == "photo.png"
        assert http.get(upload["url"]).content == photo.read_bytes()


def test_run_by_artifact_id_then_follow_events_and_status(tmp_path):
    photo = make_png(tmp_path / "p.png", (200, 100), (10, 200, 10))
    plan = {"steps": [{"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 50}}]}
    with serving(Assistant()) as srv, srv.client() as http:
        first = http.post(
            "/v1/runs",
            data={"plan": json.dumps(plan)},
            files=[("files", ("p.png", photo.read_bytes(), "image/png"))],
        )
        assert first.status_code == 202
        started = first.json()
        with http.stream("GET", started["links"]["events"]) as response:
            events = _events(response)
        assert events[-1]["event"] == "final"
        session = started["session"]
        status = http.get(started["links"]["self"]).json()
        assert (
            status["status"] == "ok" and status["result"]["artifacts"][0]["metadata"]["width"] == 50
        )
        source = http.get(f"/v1/sessions/{session}").json()["messages"][0]["artifacts"][0]["id"]

        # A second turn in the same session uses the stored upload by id (JSON body).
        crop = {"image": "$a1", "left": 0, "top": 0, "width": 20, "height": 10}
        plan2 = {"steps": [{"id": "s1", "tool": "crop_image", "args": crop}]}
        second = http.post(
            "/v1/runs", json={"session": session, "artifacts": [source], "plan": plan2}
        )
        assert second.status_code == 202
        run = second.json()
        # Replaying after an event id gives only the later events.
        with http.stream("GET", run["links"]["events"], headers={"Last-Event-ID": "0"}) as r:
            later = _events(r)
        assert int(later[0]["id"]) == 1 and later[-1]["event"] == "final"
        result = later[-1]["data"]["result"]
        assert result["status"] == "ok", result["text"]
        assert result["artifacts"][0]["metadata"]["width"] == 20
        info = http.get(f"/v1/sessions/{session}").json()["session"]
        assert info["turns"] == 2 and info["run"] is None


def test_sessions_list_export_rename_delete(tmp_path):
    a = plugin_assistant()
    with serving(a) as srv, srv.client() as http:
        plan = {
            "steps": [
                {
                    "id": "s1",
                    "tool": "count",
                    "args": {"label": "zip me", "log": str(tmp_path / "log")},
                }
            ]
        }
        run = http.post("/v1/runs", json={"prompt": "count once", "plan": plan}).json()
        wait_for(lambda: http.get(run["links"]["self"]).json()["status"] == "ok", "the run")
        session = run["session"]
        listed = http.get("/v1/sessions").json()["sessions"]
        assert [s["id"] for s in listed] == [session] and listed[0]["title"] == "count once"

        renamed = http.patch(f"/v1/sessions/{session}", json={"title": "counting"})
        assert renamed.status_code == 200 and renamed.json()["title"] == "counting"

        export = http.get(f"/v1/sessions/{session}/export")
        assert export.status_code == 200
        assert export.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(export.content)) as zf:
            names = zf.namelist()
            assert f"{session}/{session}.md" in names and f"{session}/{session}.json" in names
            texts = [n for n in names if n.startswith(f"{session}/artifacts/")]
            assert [zf.read(n).decode() for n in texts] == ["zip me done"]
            exported = json.loads(zf.read(f"{session}/{session}.json"))
            assert exported["session"]["title"] == "counting"

        assert http.delete(f"/v1/sessions/{session}").status_code == 204
        assert http.get(f"/v1/sessions/{session}").status_code == 404
        assert http.get("/v1/sessions").json()["sessions"] == []


def test_tools_models_and_health():
    with serving(plugin_assistant()) as srv, srv.client() as http:
        tools = {t["name"]: t for t in http.get("/v1/tools").json()["tools"]}
        assert {"resize_image", "crop_image", "gate", "noop"} <= tools.keys()
        assert tools["resize_image"]["input_schema"]["properties"]["width"]
        models = http.get("/v1/models").json()
        assert models["object"] == "list"
        assert [m["id"] for m in models["data"]] == ["anymodal"]
        assert all({"name", "task", "installed"} <= m.keys() for m in models["catalog"])
        health = srv.client(token=False).get("/v1/health")  # no token needed
        assert health.status_code == 200 and health.json()["status"] == "ok"


def test_approval_over_http(tmp_path, monkeypatch):
    from tools.image_ops import ResizeImage

    monkeypatch.setattr(ResizeImage, "needs_approval", True)
    photo = make_png(tmp_path / "p.png", (120, 80), (0, 0, 200))
    plan = {"steps": [{"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 30}}]}
    with serving(Assistant()) as srv, srv.client() as http:

        def waiting_run() -> str:
            started = http.post(
                "/v1/runs",
                data={"plan": json.dumps(plan), "stream": "1"},
                files={"files": ("p.png", photo.read_bytes())},
            )
            events = _events(started)
            assert events[-2]["event"] == "approval_required"
            assert events[-2]["data"]["steps"][0]["tool"] == "resize_image"
            assert events[-1]["data"]["result"]["status"] == "interrupted"
            return events[0]["data"]["session"]

        session = waiting_run()
        assert http.get(f"/v1/sessions/{session}").json()["session"]["status"] == "waiting"
        yes = http.post(f"/v1/sessions/{session}/approve", json={"approve": True, "stream": True})
        result = _events(yes)[-1]["data"]["result"]
        assert result["status"] == "ok" and result["artifacts"][0]["metadata"]["width"] == 30
        again = http.post(f"/v1/sessions/{session}/approve", json={"approve": True})
        assert again.status_code == 409 and "not waiting" in again.json()["error"]["message"]

        refused = waiting_run()
        no = http.post(f"/v1/sessions/{refused}/approve", json={"approve": False, "stream": True})
        result = _events(no)[-1]["data"]["result"]
        assert result["status"] == "failed" and "did not approve" in result["text"]


def test_closing_the_event_stream_cancels_the_run(tmp_path):
    with serving(plugin_assistant(max_replans=0)) as srv, srv.client() as http:
        with http.stream(
            "POST", "/v1/runs", json={"plan": gate_plan(tmp_path, "g"), "stream": True}
        ) as response:
            lines = response.iter_lines()
            run = None
            for event in read_sse(lines):
                if event.get("event") == "run":
                    run = json.loads(event["data"])
                if event.get("event") == "step_started":
                    break
        # The client went away while s1 was waiting: the run is cancelled, s2 never runs.
        assert run is not None
        status = wait_for(
            lambda: (s := http.get(f"/v1/runs/{run['run']}").json())["status"] != "running" and s,
            "the run to stop",
        )
        assert status["status"] == "failed"
        assert status["result"]["steps"]["s1"]["error"] == "cancelled"
        assert status["result"]["steps"]["s2"]["status"] == "skipped"
        assert not (tmp_path / "g.log").exists()


def test_cancel_endpoint_and_keep_running_without_followers(tmp_path):
    a = plugin_assistant(max_replans=0)
    with serving(a, cancel_on_disconnect=False) as srv, srv.client() as http:
        kept = http.post("/v1/runs", json={"plan": gate_plan(tmp_path, "k")}).json()
        with http.stream("GET", kept["links"]["events"]) as response:
            for event in read_sse(response.iter_lines()):
                if event.get("event") == "step_started":
                    break
        # Disconnecting did not cancel (config off); releasing the gate finishes the run.
        (tmp_path / "k.go").touch()
        wait_for(lambda: http.get(kept["links"]["self"]).json()["status"] == "ok", "kept")
        assert (tmp_path / "k.log").read_text() == "k\n"

        stopped = http.post("/v1/runs", json={"plan": gate_plan(tmp_path, "c")}).json()
        wait_for(lambda: (tmp_path / "c").exists(), "the gate to start")
        cancel = http.post(f"/v1/sessions/{stopped['session']}/cancel")
        assert cancel.json() == {"session": stopped["session"], "cancelled": True}
        wait_for(lambda: http.get(stopped["links"]["self"]).json()["status"] == "failed", "c")
        assert not (tmp_path / "c.log").exists()


def test_stopping_the_server_cancels_its_runs(tmp_path):
    a = plugin_assistant(max_replans=0)
    with serving(a) as srv, srv.client() as http:
        run = http.post("/v1/runs", json={"plan": gate_plan(tmp_path, "s")}).json()
        wait_for(lambda: (tmp_path / "s").exists(), "the gate to start")
    assert a.running() == []
    assert a.sessions.get(run["session"]).status == "failed"
    assert not (tmp_path / "s.log").exists()


def test_cors_is_off_unless_origins_are_configured():
    preflight = {
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    with serving(plugin_assistant()) as srv, srv.client(token=False) as http:
        response = http.options("/v1/runs", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    with (
        serving(plugin_assistant(), cors_origins=["http://localhost:3000"]) as srv,
        srv.client(token=False) as http,
    ):
        response = http.options("/v1/runs", headers=preflight)
        assert response.status_code == 200  # a preflight needs no token
        assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
        other = http.options("/v1/runs", headers={**preflight, "Origin": "http://evil.test"})
        assert other.status_code == 400
        # A real request from an allowed origin still needs the token.
        assert http.get("/v1/tools", headers={"Origin": "http://localhost:3000"}).status_code == 401
