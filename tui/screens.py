"""Modal screens: approving steps, yes or no, one line of input, reading help."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Markdown, Static


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


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; y or the Yes button says yes, n or Esc says no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", show=False),
        Binding("n,escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str) -> None:
        super().__init__(classes="dialog-screen")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm"):
            yield Static(self.question, markup=False, classes="dialog-title")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class PathScreen(ModalScreen[str | None]):
    """One line of input (a path, a title); Enter gives it, Esc gives None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Back")]

    def __init__(self, title: str, placeholder: str = "", *, value: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.placeholder = placeholder
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="path-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(self.value, placeholder=self.placeholder, id="path-input")

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
