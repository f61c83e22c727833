"""The plain chat loop: commands, attachments, plans, and errors that lose nothing."""

from __future__ import annotations

import io
import json

from rich.console import Console

from assistant import Assistant
from assistant.chat import ChatLoop
from assistant.planners.base import NoPlanner
from tests.assistant.test_cli import PLAN, anymodal


def _loop():
    out = io.StringIO()
    no_model = Assistant(planner=NoPlanner("no planner model in this test"))
    return ChatLoop(no_model, Console(file=out, width=200)), out


def test_attach_plan_and_session_commands(images, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    loop, out = _loop()
    assert loop.handle(f"/attach {images[0]} {images[1]}")
    assert loop.handle(f"/plan {plan}")
    text = out.getvalue()
    assert "attached $a1" in text and "attached $a2" in text
    assert "stitched 2 images (vertical)" in text
    assert loop.session is not None and loop.pending == []
    first = loop.session
    # A bad plan path is an error message; the session and its history stay.
    loop.handle(f"/attach {images[0]}")
    loop.handle("/plan /no/such/plan.json")
    assert "cannot read plan file" in out.getvalue()
    assert loop.session == first and loop.pending == [str(images[0])]
    assert len(loop.assistant.messages(first)) == 2
    loop.handle("/attach /no/such.png")
    assert "not a file" in out.getvalue()
    assert loop.handle("/nonsense") and "unknown command /nonsense" in out.getvalue()
    assert loop.handle("/quit") is False


def test_free_text_gets_an_answer_not_a_crash():
    loop, out = _loop()
    loop.handle("draw me a cat")
    assert "anymodal:" in out.getvalue() and "--plan" in out.getvalue()
    assert len(loop.assistant.messages(loop.session)) == 2


def test_chat_reads_piped_input_until_quit(images, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    script = f"/attach {images[0]}\n/attach {images[1]}\n/plan {plan}\n/session\n/quit\n"
    proc = anymodal("chat", stdin=script)
    assert proc.returncode == 0, proc.stderr
    assert "stitched-vertical.png (image): " in proc.stdout
    assert "session " in proc.stdout
