"""The sessions screen (open, rename, delete, export a past session), the file picker, /model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DirectoryTree, Input, OptionList

from tests.conftest import make_png
from tests.tui.pilot import (
    SIZE,
    finished,
    make_assistant,
    notes,
    one_step,
    send,
    until,
)
from tui.app import AnymodalApp
from tui.chat import AssistantMessage, UserMessage
from tui.pickers import FilePickerScreen, SessionsScreen
from tui.screens import ConfirmScreen, PathScreen, TextScreen

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _titles(app: AnymodalApp) -> list[str]:
    return [s.title for s in app.assistant.list_sessions()]


async def _two_sessions(pilot: Any, png: Path) -> tuple[str, str]:
    """Run two one-turn sessions (resize to 20 and to 10 wide); returns their ids."""
    app = pilot.app
    await send(pilot, f"small {png}")
    await finished(pilot)
    first = app.session
    await send(pilot, "/new")
    await send(pilot, f"smaller {png}")
    await finished(pilot)
    return first, app.session


async def test_open_rename_export_and_delete_past_sessions(tmp_path):
    png = make_png(tmp_path / "cat.png", (40, 30), (200, 30, 30))
    plans = [one_step("resize_image", image="$a1", width=w) for w in (20, 10)]
    app = AnymodalApp(make_assistant(), plans=plans)
    async with app.run_test(size=SIZE) as pilot:
        first, second = await _two_sessions(pilot, png)

        await pilot.press("ctrl+r")
        assert isinstance(app.screen, SessionsScreen)
        sessions = app.screen.query_one(OptionList)
        assert sessions.option_count == 2 and sessions.highlighted == 0  # newest first
        await pilot.press("down", "enter")  # open the older one
        await until(pilot, lambda: app.session == first and bool(app.query(UserMessage)))
        assert app.query_one(UserMessage).text == f"small {png}"
        (reply,) = app.query(AssistantMessage)
        assert reply.artifacts[0].metadata["width"] == 20

        await pilot.press("ctrl+r", "down", "r")  # rename the first session
        assert isinstance(app.screen, PathScreen)
        assert app.screen.query_one(Input).value == f"small {png}"  # the old title, to edit
        app.screen.query_one(Input).value = "the red cat"
        await pilot.press("enter")
        await until(pilot, lambda: "the red cat" in _titles(app))
        assert isinstance(app.screen, SessionsScreen)
        assert "the red cat" in str(app.screen.query_one(OptionList).get_option(first).prompt)

        await pilot.press("e")  # export the highlighted (renamed) session
        app.screen.query_one(Input).value = str(tmp_path / "export")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        md = (tmp_path / "export" / f"{first}.md").read_text()
        assert md.startswith("# the red cat") and f"small {png}" in md
        exported = sorted((tmp_path / "export" / "artifacts").iterdir())
        assert [p.suffix for p in exported] == [".png", ".png"]  # the photo and the result

        await pilot.press("d")  # delete the open session, refusing first
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert len(app.assistant.list_sessions()) == 2
        await pilot.press("d", "y")
        await until(pilot, lambda: [s.id for s in app.assistant.list_sessions()] == [second])
        assert app.screen.query_one(OptionList).option_count == 1
        await pilot.press("escape")
        await until(pilot, lambda: app.session is None)  # its transcript went with it
        assert not app.query(UserMessage) and any(first in n for n in notes(app))
        assert all(p.exists() for p in exported)  # the export stays


async def test_the_file_picker_attaches_from_the_tree_or_typed_paths(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    png = make_png(photos / "dog.png", (20, 20), (10, 200, 10))
    (photos / ".hidden.png").write_bytes(png.read_bytes())
    monkeypatch.chdir(tmp_path)
    app = AnymodalApp(make_assistant())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, FilePickerScreen)
        tree = app.screen.query_one(DirectoryTree)
        app.screen.query_one(Input).value = str(photos)  # a folder: the tree shows it
        app.screen.query_one(Input).focus()
        await pilot.press("enter")
        await until(pilot, lambda: Path(tree.path) == photos and tree.root.children)
        assert [n.label.plain for n in tree.root.children] == ["dog.png"]  # no dot files
        tree.move_cursor(tree.root.children[0])
        await pilot.press("enter")
        await until(pilot, lambda: app.chips.items == [png])

        await pilot.press("ctrl+o")
        app.screen.query_one(Input).value = f"{png} {tmp_path / 'gone.png'}"
        app.screen.query_one(Input).focus()
        await pilot.press("enter")
        await until(pilot, lambda: any("not a file" in n for n in notes(app)))
        assert app.chips.items == [png]  # the same file is not attached twice


async def test_model_lists_planning_models_and_switches(tmp_path):
    app = AnymodalApp(make_assistant(planner=None))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "/model")
        await until(pilot, lambda: app.screen.id == "models")
        assert isinstance(app.screen, TextScreen)
        page = app.screen.markdown
        assert "In use: **qwen2.5-coder-1.5b-instruct-q4_k_m** (llama)" in page
        assert "| `llava-interleave-qwen-0.5b` | transformers |" in page
        await pilot.press("escape")

        await send(pilot, "/model llava-interleave-qwen-0.5b")
        assert app.assistant.config.planner == "auto" and "not installed" in notes(app)[-1]
        await send(pilot, "/model openai:qwen2.5:7b")
        assert app.assistant.config.planner == "openai"
        assert notes(app)[-1] == "planning with qwen2.5:7b at http://127.0.0.1:11434/v1"
        await send(pilot, "/model nonsense")
        assert "'nonsense' is not a planning model" in notes(app)[-1]
