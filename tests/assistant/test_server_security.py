"""Bad requests get the right status, a clear message in ``{"error": {...}}``, and leave the
store as it was: no token, a wrong one, oversized bodies, ids that try to leave the store,
malformed JSON, unknown sessions, a busy session. Plus the token file and ``anymodal serve``."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import httpx
import pytest

from tests.assistant.server_harness import TOKEN, serving, store_snapshot, wait_for
from tests.conftest import REPO, make_png, plugin_assistant

NOOP = {"steps": [{"id": "s1", "tool": "noop", "args": {"value": 1}}]}


def _error(response: httpx.Response, status: int, code: str, *words: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["status"] == status
    for word in words:
        assert word in error["message"], error["message"]
    return error["message"]


@pytest.fixture
def served(tmp_path):
    """A server with one finished session (``served.session``) holding one uploaded image."""
    photo = make_png(tmp_path / "p.png", (64, 48), (1, 2, 3))
    with serving(plugin_assistant(max_replans=0), max_upload_mb=0.25) as srv:
        with srv.client() as http:
            run = http.post(
                "/v1/runs",
                data={"prompt": "keep this", "plan": json.dumps(NOOP)},
                files={"files": ("p.png", photo.read_bytes())},
            ).json()
            wait_for(lambda: http.get(run["links"]["self"]).json()["status"] == "ok", "setup")
        srv.session = run["session"]  # type: ignore[attr-defined]
        yield srv


def _unchanged(srv, home, before):
    assert store_snapshot(home) == before
    with srv.client() as http:
        sessions = http.get("/v1/sessions").json()["sessions"]
    assert [(s["id"], s["turns"], s["status"]) for s in sessions] == [(srv.session, 1, "ok")]


def test_no_token_or_a_wrong_one_is_401(served, home, tmp_path):
    before = store_snapshot(home)
    anonymous = served.client(token=False)
    body = {"plan": NOOP, "session": served.session}
    missing = anonymous.post("/v1/runs", json=body)
    _error(missing, 401, "unauthorized", "missing bearer token", "Authorization: Bearer")
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = anonymous.post("/v1/runs", json=body, headers={"Authorization": f"Bearer {TOKEN}x"})
    _error(wrong, 401, "unauthorized", "wrong bearer token")
    basic = anonymous.get("/v1/sessions", headers={"Authorization": f"Basic {TOKEN}"})
    _error(basic, 401, "unauthorized")
    # Every route is covered, unknown ones included; health alone is open.
    for path in (
        "/v1/tools",
        "/v1/models",
        "/v1/openapi.json",
        f"/v1/sessions/{served.session}",
        "/v1/nothing-here",
    ):
        _error(anonymous.get(path), 401, "unauthorized")
    assert anonymous.get("/v1/health").status_code == 200
    _unchanged(served, home, before)


def test_oversized_bodies_are_413(served, home):
    before = store_snapshot(home)
    big = os.urandom(400_000)  # over the 0.25 MB limit
    with served.client() as http:
        upload = http.post(
            "/v1/runs",
            data={"plan": json.dumps(NOOP), "session": served.session},
            files={"files": ("big.bin", big)},
        )
        _error(upload, 413, "request_too_large", "0.25 MB", "max_upload_mb")

        def chunks():  # no Content-Length: counted as it arrives
            for i in range(0, len(big), 16_384):
                yield big[i : i + 16_384]

        streamed = http.post(
            "/v1/runs", content=chunks(), headers={"Content-Type": "application/json"}
        )
        _error(streamed, 413, "request_too_large", "limit is 0.25 MB")
        inline = http.post(
            "/v1/chat/completions",
            json={"model": "anymodal", "messages": [{"role": "user", "content": "x" * 300_000}]},
        )
        _error(inline, 413, "request_too_large")
    _unchanged(served, home, before)


def test_ids_that_try_to_leave_the_store(served, home, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    store = served.assistant.store(served.session)
    # A link planted inside the store that points outside it is never followed.
    fake_id = "ab" * 32
    (store.root / "ab").mkdir(parents=True, exist_ok=True)
    (store.root / "ab" / f"{fake_id}.txt").symlink_to(secret)
    before = store_snapshot(home)
    s = served.session
    with served.client() as http:
        _error(http.get(f"/v1/sessions/{s}/artifacts/{fake_id}"), 404, "artifact_not_found")
        _error(http.get(f"/v1/sessions/{s}/artifacts/{'0' * 64}"), 404, "artifact_not_found")
        _error(http.get(f"/v1/sessions/{s}/artifacts/..%2F..%2Fsecret.txt"), 404, "not_found")
        _error(http.get(f"/v1/sessions/{s}/artifacts/..secret"), 400, "invalid_artifact_id")
        _error(http.get(f"/v1/sessions/%2E%2E/artifacts/{fake_id}"), 400, "invalid_session_id")
        _error(http.get("/v1/sessions/..%2F..%2Fdata"), 404, "not_found")
        _error(
            http.post("/v1/runs", json={"session": s, "artifacts": ["../../secret.txt"]}),
            400,
            "invalid_artifact_id",
            "sha256",
        )
        _error(
            http.post("/v1/runs", json={"session": "../escape", "plan": NOOP}),
            400,
            "invalid_session_id",
        )
        _error(
            http.post("/v1/runs", json={"artifacts": [fake_id], "plan": NOOP}),
            400,
            "session_required",
        )
    assert store_snapshot(home) == before
    assert not (home / "data" / "escape").exists()


def test_malformed_and_wrongly_shaped_requests(served, home):
    before = store_snapshot(home)
    with served.client() as http:
        _error(
            http.post(
                "/v1/runs", content=b'{"plan": ', headers={"Content-Type": "application/json"}
            ),
            400,
            "invalid_json",
            "not valid JSON",
        )
        _error(http.post("/v1/runs", json={"prompt": ["a"]}), 422, "invalid_request", "prompt")
        _error(http.post("/v1/runs", json={"promt": "typo"}), 422, "invalid_request", "promt")
        _error(http.post("/v1/runs", json={}), 400, "empty_request", "prompt, a plan")
        _error(http.post("/v1/runs", json={"plan": {"stepz": []}}), 400, "bad_plan")
        _error(
            http.post("/v1/runs", content=b"x", headers={"Content-Type": "text/plain"}),
            415,
            "unsupported_media_type",
        )
        _error(http.get("/v1/sessions?limit=0"), 422, "invalid_request", "limit")
        _error(http.put("/v1/tools"), 405, "method_not_allowed")
        bad_b64 = {"plan": NOOP, "attachments": [{"name": "x.png", "data": "!!not base64!!"}]}
        _error(http.post("/v1/runs", json=bad_b64), 400, "bad_base64", "attachment 1")
        remote = {"plan": NOOP, "attachments": [{"data": "https://example.com/cat.png"}]}
        _error(http.post("/v1/runs", json=remote), 400, "remote_url_refused", "offline")
        empty = http.post(
            "/v1/runs", data={"plan": json.dumps(NOOP)}, files={"files": ("e.png", b"")}
        )
        _error(empty, 400, "empty_file", "e.png")
    _unchanged(served, home, before)


def test_unknown_sessions_and_runs_are_404(served, home):
    before = store_snapshot(home)
    with served.client() as http:
        for response in (
            http.get("/v1/sessions/nope"),
            http.delete("/v1/sessions/nope"),
            http.get("/v1/sessions/nope/export"),
            http.post("/v1/sessions/nope/approve", json={"approve": True}),
            http.post("/v1/sessions/nope/cancel"),
            http.get(f"/v1/sessions/nope/artifacts/{'a' * 64}"),
        ):
            _error(response, 404, "session_not_found", "no session 'nope'")
        _error(http.get("/v1/runs/deadbeef"), 404, "run_not_found")
    _unchanged(served, home, before)
    assert not (home / "data" / "sessions" / "nope").exists()


def test_a_second_run_on_a_busy_session_is_409(served, home, tmp_path):
    gate = {"marker": str(tmp_path / "m"), "release": str(tmp_path / "go")}
    plan = {"steps": [{"id": "s1", "tool": "gate", "args": gate}]}
    s = served.session
    with served.client() as http:
        busy = http.post("/v1/runs", json={"session": s, "plan": plan}).json()
        wait_for(lambda: (tmp_path / "m").exists(), "the gate")
        before = store_snapshot(home)
        photo = make_png(tmp_path / "new.png", (10, 10), (9, 9, 9))
        second = http.post(
            "/v1/runs",
            data={"session": s, "plan": json.dumps(NOOP)},
            files={"files": ("new.png", photo.read_bytes())},
        )
        _error(second, 409, "session_busy", s, "already running")
        _error(http.delete(f"/v1/sessions/{s}"), 409, "session_busy")
        assert store_snapshot(home) == before  # the refused upload was not stored
        (tmp_path / "go").touch()
        wait_for(lambda: http.get(busy["links"]["self"]).json()["status"] == "ok", "the gate run")
        info = http.get(f"/v1/sessions/{s}").json()["session"]
        assert info["turns"] == 2  # the setup turn and the gate turn, not the refused one


def test_token_file_is_made_once_and_owner_only(tmp_path):
    from assistant.server.security import load_or_create_token

    path = tmp_path / "cfg" / "server-token"
    token, created = load_or_create_token(path)
    assert created and len(token) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(path) == (token, False)
    path.chmod(0o644)
    assert load_or_create_token(path) == (token, False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_create_app_refuses_a_short_token():
    from assistant.server import create_app

    with pytest.raises(ValueError, match="at least 16"):
        create_app(plugin_assistant(), token="short")


def _serve(home, *args: str) -> subprocess.Popen:
    env = {**os.environ, "ANYMODAL_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "serve", "--port", "0", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _url_of(proc: subprocess.Popen) -> tuple[str, list[str]]:
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, f"anymodal serve exited: {proc.stderr.read()}"
        lines.append(line.strip())
        if line.startswith("anymodal serving on "):
            return line.split()[3].removesuffix("/v1"), lines
    raise AssertionError("anymodal serve printed no URL")


def test_anymodal_serve_prints_the_token_once(home):
    token_file = home / "config" / "server-token"
    proc = _serve(home)
    try:
        url, lines = _url_of(proc)
        token = token_file.read_text().strip()
        assert lines[1] == token and str(token_file) in lines[0]
        assert f"token in {token_file}" in lines[2]
        http = httpx.Client(base_url=url, trust_env=False)
        ok = http.get("/v1/tools", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)
    proc = _serve(home)  # the second start reuses the file and does not show the token
    try:
        url, lines = _url_of(proc)
        assert len(lines) == 1 and token not in lines[0]
        health = httpx.Client(base_url=url, trust_env=False).get("/v1/health")
        assert health.json()["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(30)
    short = _serve(home, "--token", "abc")
    _, err = short.communicate(timeout=60)
    assert short.returncode == 2 and "at least 16" in err
