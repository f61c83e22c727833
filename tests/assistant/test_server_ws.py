"""The WebSocket chat: turns with events and a final result, errors that keep the connection,
cancel, and a disconnect that cancels the running turn."""

from __future__ import annotations

import base64
import json

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.assistant.server_harness import gate_plan, serving, wait_for
from tests.conftest import make_png, plugin_assistant


def _ws(srv, query: str = "", token: bool = True) -> ClientConnection:
    headers = srv.headers if token else None
    url = srv.url.replace("http://", "ws://") + "/v1/chat" + query
    return connect(url, additional_headers=headers, proxy=None, open_timeout=30)


def _recv(ws: ClientConnection) -> dict:
    return json.loads(ws.recv(timeout=60))


def _until(ws: ClientConnection, kind: str) -> list[dict]:
    got = []
    while True:
        got.append(_recv(ws))
        if got[-1]["type"] == kind:
            return got
        assert got[-1]["type"] != "error", got[-1]


@pytest.fixture
def served():
    with serving(plugin_assistant(max_replans=0)) as srv:
        yield srv


def test_chat_turns_stream_events_and_results(served, tmp_path):
    with _ws(served, "?session=ws-chat") as ws:
        assert _recv(ws) == {"type": "session", "session": "ws-chat"}
        ws.send(json.dumps({"type": "run", "prompt": "first", "plan": gate_plan(tmp_path, "a")}))
        head = _recv(ws)
        assert head["type"] == "run" and head["session"] == "ws-chat"
        started = _until(ws, "step_started")
        assert [e["type"] for e in started] == ["plan_ready", "step_started"]
        # While the turn runs, a second one is refused and the connection stays usable.
        ws.send(json.dumps({"type": "run", "prompt": "too soon", "plan": gate_plan(tmp_path, "b")}))
        busy = _recv(ws)
        assert busy["type"] == "error" and busy["error"]["status"] == 409
        ws.send("{not json")
        assert _recv(ws)["error"]["code"] == "invalid_json"
        ws.send(json.dumps({"type": "dance"}))
        assert "run, cancel or approve" in _recv(ws)["error"]["message"]
        (tmp_path / "a.go").touch()
        events = _until(ws, "final")
        assert {"step_finished", "token"} <= {e["type"] for e in events}
        result = events[-1]["result"]
        assert result["status"] == "ok" and (tmp_path / "a.log").read_text() == "a\n"
        assert result["artifacts"][0]["url"].startswith("/v1/sessions/ws-chat/artifacts/")

        # A second turn on the same connection, with an inline image.
        png = make_png(tmp_path / "p.png", (40, 20), (200, 0, 0)).read_bytes()
        plan = {
            "steps": [{"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 10}}]
        }
        inline = {"name": "p.png", "data": base64.b64encode(png).decode()}
        ws.send(json.dumps({"type": "run", "plan": plan, "attachments": [inline]}))
        final = _until(ws, "final")[-1]["result"]
        assert final["status"] == "ok" and final["artifacts"][0]["metadata"]["height"] == 5
    assert served.assistant.sessions.get("ws-chat").turns == 2
    assert not (tmp_path / "b").exists()  # the refused turn never ran


def test_cancel_message_stops_the_turn(served, tmp_path):
    with _ws(served) as ws:
        session = _recv(ws)["session"]
        ws.send(json.dumps({"type": "run", "plan": gate_plan(tmp_path, "c")}))
        _until(ws, "step_started")
        ws.send(json.dumps({"type": "cancel"}))
        messages = _until(ws, "final")
        assert {"type": "cancelled", "cancelled": True} in messages
        result = messages[-1]["result"]
        assert result["steps"]["s1"]["error"] == "cancelled"
        assert result["steps"]["s2"]["status"] == "skipped"
    assert served.assistant.sessions.get(session).status == "failed"


def test_disconnect_cancels_the_running_turn(served, tmp_path):
    with _ws(served) as ws:
        session = _recv(ws)["session"]
        ws.send(json.dumps({"type": "run", "plan": gate_plan(tmp_path, "d")}))
        _until(ws, "step_started")
    # The client left while s1 waited on its gate: the turn is cancelled, s2 never runs.
    a = served.assistant
    wait_for(lambda: a.sessions.get(session).status != "running", "the turn to stop")
    assert a.running() == []
    result = a.messages(session)[-1]
    assert result["role"] == "assistant" and "cancelled" in result["content"]
    assert not (tmp_path / "d.log").exists()


def test_token_is_required(served):
    with pytest.raises(InvalidStatus) as err:
        _ws(served, token=False)
    assert err.value.response.status_code == 403
    with _ws(served, f"?token={served.token}", token=False) as ws:
        assert _recv(ws)["type"] == "session"
    with _ws(served, "?session=../up") as ws:
        error = _recv(ws)
        assert error["error"]["code"] == "invalid_session_id"
