"""A run killed with SIGKILL mid-way resumes without redoing finished steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.assistant.test_cli import anymodal
from tests.conftest import REPO


def _wait_for(path, seconds=60.0):
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)


def test_kill_9_then_resume(tmp_path, images):
    log, marker, release = tmp_path / "ran.log", tmp_path / "gate.log", tmp_path / "go"
    plan = [
        {"id": "s1", "tool": "count", "args": {"label": "s1", "log": str(log)}},
        {"id": "s3", "tool": "resize_image", "args": {"image": "$a1", "width": 64}},
        {
            "id": "s2",
            "tool": "gate",
            "args": {"marker": str(marker), "release": str(release), "after": "$s1"},
        },
        {"id": "s4", "tool": "count", "args": {"label": "s4", "log": str(log), "after": "$s2"}},
    ]
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    env = {**os.environ, "PYTHONPATH": str(REPO), "ANYMODAL_TOOL_MODULES": '["tests.plugin_tools"]'}
    cmd = [
        sys.executable,
        "-m",
        "assistant.cli",
        "run",
        "first turn",
        "--plan",
        str(plan_file),
        "-a",
        str(images[0]),
        "--session",
        "crashy",
        "--json",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(marker)  # s1 and s3 are done and checkpointed; s2 is blocking
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert log.read_text() == "s1\n"

    listed = json.loads(anymodal("sessions", "list", "--json", env=env).stdout)
    assert listed[0]["id"] == "crashy" and listed[0]["status"] == "running"

    release.touch()
    resumed = anymodal("run", "--resume", "crashy", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(resumed.stdout)
    assert data["status"] == "ok"
    assert log.read_text() == "s1\ns4\n"  # s1 was not run again; s4 ran once
    assert marker.read_text() == "started\nstarted\n"  # only the unfinished step re-ran
    names = [a["metadata"].get("source_step") for a in data["artifacts"]]
    assert names == ["s1", "s3", "s2", "s4"]  # earlier outputs kept, in plan order

    shown = json.loads(anymodal("sessions", "show", "crashy", "--json", env=env).stdout)
    assert [m["role"] for m in shown] == ["user", "assistant"]
    assert shown[0]["content"] == "first turn"
    again = anymodal("run", "--resume", "crashy", "--json", env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "ok"
