"""The `anymodal` command in a subprocess: run, exit codes, --json, --out, tools, sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO

PLAN = {
    "steps": [
        {"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 256}},
        {"id": "s2", "tool": "resize_image", "args": {"image": "$a2", "width": 256}},
        {
            "id": "s3",
            "tool": "stitch_images",
            "args": {"images": ["$s1", "$s2"], "layout": "vertical"},
        },
    ]
}


def anymodal(*args: str, stdin: str | None = None, env: dict | None = None):
    exe = Path(sys.executable).with_name("anymodal")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "assistant.cli"]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [*cmd, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        cwd=REPO,
    )


@pytest.fixture
def plan_file(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(PLAN))
    return path


def test_run_plan_json_and_out(plan_file, images, tmp_path):
    out = tmp_path / "out"
    proc = anymodal(
        "run",
        "--plan",
        str(plan_file),
        "-a",
        str(images[0]),
        "-a",
        str(images[1]),
        "--json",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["status"] == "ok" and data["session"]
    assert [a["modality"] for a in data["artifacts"]] == ["image"] * 3
    assert set(data["artifacts"][0]) >= {"id", "modality", "path", "mime", "metadata"}
    stitched = data["artifacts"][-1]
    with Image.open(stitched["path"]) as img:
        assert img.size == (256, 192 + 171)
    copies = sorted(p.name for p in out.iterdir())
    assert len(copies) == 3 and any(n.startswith("stitched-vertical") for n in copies)


def test_prompt_from_stdin_and_sessions_commands(plan_file, images, tmp_path):
    proc = anymodal(
        "run",
        "-",
        "--plan",
        str(plan_file),
        "-a",
        str(images[0]),
        "-a",
        str(images[1]),
        "--json",
        stdin="put them together\n",
    )
    assert proc.returncode == 0, proc.stderr
    session = json.loads(proc.stdout)["session"]
    listed = anymodal("sessions", "list", "--json")
    rows = json.loads(listed.stdout)
    assert rows[0]["id"] == session and rows[0]["title"] == "put them together"
    shown = json.loads(anymodal("sessions", "show", session, "--json").stdout)
    assert shown[0]["content"] == "put them together" and shown[1]["role"] == "assistant"
    export = tmp_path / "export"
    files = anymodal("sessions", "export", session, "--out", str(export)).stdout.split()
    md = Path(files[0]).read_text()
    assert "## User" in md and "![stitched-vertical.png](artifacts/" in md
    assert len(list((export / "artifacts").iterdir())) == 5  # 2 attachments + 3 outputs
    assert json.loads(Path(files[1]).read_text())["session"]["id"] == session
    assert anymodal("sessions", "delete", session).returncode == 0
    gone = anymodal("sessions", "show", session)
    assert gone.returncode == 2 and "no session" in gone.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "give a prompt"),
        (["run", "x", "-a", "/no/such/file.png"], "attachment not found: /no/such/file.png"),
        (["run", "--plan", "/no/plan.json"], "cannot read plan file"),
        (["run", "--resume", "nope"], "no session 'nope'"),
        (["run", "--bogus"], "unrecognized arguments"),
    ],
)
def test_usage_errors_exit_2(args, message):
    proc = anymodal(*args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_failed_task_exits_1_with_the_reason(images, tmp_path):
    plan = tmp_path / "p.json"
    plan.write_text(
        json.dumps(
            [
                {
                    "id": "s1",
                    "tool": "crop_image",
                    "args": {"image": "$a1", "left": 0, "top": 0, "width": 9999, "height": 5},
                }
            ]
        )
    )
    proc = anymodal("run", "--plan", str(plan), "-a", str(images[0]), "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["status"] == "failed" and "falls outside a.png" in data["text"]


def test_tools_list_json():
    proc = anymodal("tools", "list", "--json")
    specs = {t["name"]: t for t in json.loads(proc.stdout)}
    assert specs["stitch_images"]["input_schema"]["properties"]["layout"]["enum"] == [
        "horizontal",
        "vertical",
        "grid",
    ]
    assert specs["trim_audio"]["input_modalities"] == ["audio"]
    assert "trim_audio" in anymodal("tools", "list").stdout


def test_config_file_env_and_flags_in_order(tmp_path, monkeypatch, home):
    from assistant.config import load_config

    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(
        "step_timeout = 11\nmax_workers = 3\n[tools]\nmax_image_pixels = 123\n"
    )
    monkeypatch.setenv("ANYMODAL_MAX_WORKERS", "5")
    monkeypatch.setenv("ANYMODAL_TOOLS__ALLOW_LOCAL_NETWORK", "true")
    cfg = load_config(step_timeout=None)
    assert (cfg.step_timeout, cfg.max_workers, cfg.tools.max_image_pixels) == (11, 5, 123)
    assert cfg.tools.allow_local_network is True
    assert load_config(step_timeout=2.5).step_timeout == 2.5
    shown = json.loads(anymodal("config", "--json", env={"ANYMODAL_HOME": str(home)}).stdout)
    assert shown["paths"]["data"] == str(home / "data")
    assert shown["config"]["step_timeout"] == 11


def test_help_imports_nothing_heavy():
    code = (
        "import sys, contextlib, io\n"
        "from assistant import cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['--help'])\n"
        "heavy = {'langgraph', 'langchain_core', 'pydantic', 'torch', 'PIL', 'numpy'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert proc.stdout.strip() == "[]", proc.stderr
