"""Modal screens: approving steps, picking a session, asking for a path, reading help."""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Markdown, OptionList, Static
from textual.widgets.option_list import Option


class ApprovalScreen(ModalScreen[bool]):
    """Asks before steps of tools marked as needing approval run; Esc refuses."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Approve", show=False),
        Binding("n,escape", "answer(False)", "Refuse", show=False),
    ]

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        super().__init__(classes="dialog-screen")
        self.steps = steps

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="approval"):
            yield Label("Run these steps?", classes="dialog-title")
            for step in self.steps:
                args = json.dumps(step.get("args") or {}, ensure_ascii=False)
                if len(args) > 200:
                    args = args[:199] + "..."
                yield Static(f"{step['id']}  {step['tool']}  {args}", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Approve (y)", id="approve", variant="success")
                yield Button("Refuse (n)", id="refuse", variant="error")

    def on_mount(self) -> None:
        self.query_one("#approve", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "approve")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class SessionsScreen(ModalScreen[str | None]):
    """Earlier sessions, newest first; Enter opens one, Esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Back")]

    def __init__(self, sessions: list[Any], current: str | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.sessions = sessions
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="sessions"):
            yield Label("Sessions (Enter opens, Esc goes back)", classes="dialog-title")
            if not self.sessions:
                yield Static("no sessions yet: they start with your first message")
            options = []
            for s in self.sessions:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.updated))
                mark = "* " if s.id == self.current else "  "
                title = s.title or "(untitled)"
                text = f"{mark}{when}  {title[:60]}  [{s.status}, {s.turns} turn(s)]"
                options.append(Option(Content(text), id=s.id))  # plain text, not markup
            yield OptionList(*options, id="session-list")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class PathScreen(ModalScreen[str | None]):
    """One line of input (paths to attach); Enter gives it, Esc gives None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Back")]

    def __init__(self, title: str, placeholder: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="path-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(placeholder=self.placeholder, id="path-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)


class TextScreen(ModalScreen[None]):
    """A page of Markdown (help, the tool list); Esc or q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss(None)", "Close")]

    def __init__(self, title: str, markdown: str, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(classes="dialog-screen", id=id)
        self.title_text = title
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(f"{self.title_text} (Esc closes)", classes="dialog-title")
            with VerticalScroll():
                yield Markdown(self.markdown)
