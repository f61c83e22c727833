"""Pickers: the sessions screen (open, rename, delete, export) and the file picker (Ctrl+O).

Both are modal screens that hand their choice back through ``dismiss``; the sessions screen
also changes the store itself (rename, delete) since those need no further context.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from tui.files import split_words
from tui.screens import ConfirmScreen, PathScreen


class SessionsScreen(ModalScreen[str | None]):
    """Earlier sessions, newest first. Enter opens one; r renames, d deletes (after asking),
    e exports it; Esc goes back. Dismisses with the id to open, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Back"),
        Binding("r", "rename", "Rename"),
        Binding("d,delete", "delete", "Delete"),
        Binding("e", "export", "Export"),
    ]

    def __init__(self, assistant: Any, current: str | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.assistant = assistant
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="sessions"):
            yield Label(
                "Sessions: Enter opens, r renames, d deletes, e exports, Esc goes back",
                classes="dialog-title",
            )
            yield Static("no sessions yet: they start with your first message", id="no-sessions")
            yield OptionList(id="session-list")

    def on_mount(self) -> None:
        self.refill()

    @property
    def options(self) -> OptionList:
        return self.query_one("#session-list", OptionList)

    def refill(self, highlight: str | None = None) -> None:
        """List the sessions again (after a rename or delete), keeping the place."""
        sessions = self.assistant.list_sessions()
        was = self.options.highlighted or 0
        self.options.clear_options()
        for s in sessions:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.updated))
            mark = "* " if s.id == self.current else "  "
            title = s.title or "(untitled)"
            text = f"{mark}{when}  {title[:60]}  [{s.status}, {s.turns} turn(s)]"
            self.options.add_option(Option(Content(text), id=s.id))  # plain text, not markup
        self.query_one("#no-sessions").display = not sessions
        if sessions:
            ids = [s.id for s in sessions]
            self.options.highlighted = (
                ids.index(highlight) if highlight in ids else min(was, len(ids) - 1)
            )
        self.options.focus()

    def selected(self) -> str | None:
        index = self.options.highlighted
        if index is None or self.options.option_count == 0:
            return None
        return self.options.get_option_at_index(index).id

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_rename(self) -> None:
        session = self.selected()
        if session is None:
            return
        info = self.assistant.sessions.get(session)

        def renamed(title: str | None) -> None:
            if title:
                self.assistant.rename(session, title)
                self.refill(highlight=session)

        self.app.push_screen(
            PathScreen("New title", "a few words", value=info.title if info else ""), renamed
        )

    def action_delete(self) -> None:
        session = self.selected()
        if session is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.assistant.delete(session)
                self.app.notify(f"deleted session {session}")
                self.app.post_message(SessionDeleted(session))
                self.refill()

        question = f"Delete session {session} with its messages and files?"
        self.app.push_screen(ConfirmScreen(question), confirmed)

    def action_export(self) -> None:
        session = self.selected()
        if session is None:
            return

        def chosen(folder: str | None) -> None:
            if folder:
                self.app.export_session(Path(folder).expanduser(), session)  # type: ignore[attr-defined]

        self.app.push_screen(
            PathScreen("Export to folder", "a folder", value=str(Path.cwd())), chosen
        )


class SessionDeleted(Message):
    """A session was deleted from the sessions screen (the app forgets it if it was open)."""

    def __init__(self, session: str) -> None:
        super().__init__()
        self.session = session


class FilePickerScreen(ModalScreen[list[Path] | None]):
    """Pick files to attach: a folder tree (Enter on a file picks it) and a line to type or
    paste paths into (Enter picks them; a folder there shows that folder in the tree)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Back"),
        Binding("down", "focus_tree", "Browse", show=False),
    ]

    def __init__(self, root: Path | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.root = (root or Path.cwd()).expanduser()

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="file-picker"):
            yield Label(
                "Attach: type or paste paths (a folder opens it), or Down to browse; Esc back",
                classes="dialog-title",
            )
            yield Input(placeholder=f"paths, or a folder (now {self.root})", id="file-input")
            yield FileTree(self.root, id="file-tree")

    def on_mount(self) -> None:
        self.query_one(Input).focus()  # typing or pasting paths is the quick way

    def action_focus_tree(self) -> None:
        self.query_one(FileTree).focus()

    @on(DirectoryTree.FileSelected)
    def _file(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss([Path(event.path)])

    @on(Input.Submitted, "#file-input")
    def _typed(self, event: Input.Submitted) -> None:
        words = split_words(event.value)
        if len(words) == 1 and Path(words[0]).expanduser().is_dir():
            self.query_one(FileTree).path = Path(words[0]).expanduser()
            event.input.clear()
            self.query_one(FileTree).focus()
            return
        self.dismiss([Path(w).expanduser() for w in words] or None)


class FileTree(DirectoryTree):
    """A folder tree without hidden files (dot files), folders first."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".")]
