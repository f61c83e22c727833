"""The message input: a multi-line ``TextArea`` that sends on a key and remembers prompts.

Sending and new lines are bindings with ids ("send", "newline"), so the app's keymap can move
them (``Config.tui.keys``; ``enter_sends = false`` moves "send" to Ctrl+Enter). A ``TextArea``
swallows Enter before ordinary bindings are checked, and priority bindings would run ahead of
the keys still queued for the widget (text typed or pasted with its Enter in one go would be
sent without its last characters), so the composer runs these two itself, in key order.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TextArea


class Composer(TextArea):
    """Where the user writes; Up/Down on an empty input walk earlier prompts."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "send", "Send", id="send"),
        Binding("shift+enter,ctrl+j", "newline", "New line", id="newline"),
    ]
    OWN_ACTIONS = ("send", "newline")

    class Submitted(Message):
        """The user asked to send ``text`` (not yet checked for commands or paths)."""

        def __init__(self, composer: Composer, text: str) -> None:
            super().__init__()
            self.composer = composer
            self.text = text

        @property
        def control(self) -> Composer:
            return self.composer

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(
            id=id,
            soft_wrap=True,
            show_line_numbers=False,
            tab_behavior="focus",
            placeholder="Ask anything, or name files to work on; /help lists commands and keys",
        )
        self.prompts: list[str] = []
        """Sent prompts, oldest first (``history`` is the TextArea's undo history)."""
        self._browsing: int | None = None
        """Index into ``prompts`` of the prompt being shown, while walking it."""

    # --- sending -----------------------------------------------------------------------------

    async def _on_key(self, event: events.Key) -> None:
        keymap = getattr(self.app, "_keymap", {})  # what App.set_keymap was given
        bindings = self._bindings.copy()
        if keymap:
            bindings.apply_keymap(keymap)
        for binding in bindings.key_to_bindings.get(event.key, []):
            if binding.action in self.OWN_ACTIONS:
                event.stop()
                event.prevent_default()
                await self.run_action(binding.action)
                return
        await super()._on_key(event)

    def action_send(self) -> None:
        self.post_message(self.Submitted(self, self.text))

    def action_newline(self) -> None:
        start, end = self.selection
        self.replace("\n", start, end, maintain_selection_offset=False)

    def remember(self, text: str) -> None:
        """Add a sent prompt to the history (not twice in a row) and stop browsing."""
        text = text.strip()
        if text and (not self.prompts or self.prompts[-1] != text):
            self.prompts.append(text)
        self._browsing = None

    def restore(self, text: str) -> None:
        """Put ``text`` back (a cancelled or refused send), cursor at its end."""
        self.load_text(text)
        self.move_cursor(self.document.end)
        self._browsing = None

    # --- history -----------------------------------------------------------------------------

    def _walking(self) -> bool:
        """True when Up/Down should walk the history: the input is empty, or it still holds
        the unedited prompt the walk put there."""
        if not self.prompts:
            return False
        if self._browsing is not None and self.text == self.prompts[self._browsing]:
            return True
        self._browsing = None
        return self.text == ""

    def action_cursor_up(self, select: bool = False) -> None:
        if select or not self._walking():
            super().action_cursor_up(select)
            return
        index = len(self.prompts) - 1 if self._browsing is None else max(0, self._browsing - 1)
        self._show(index)

    def action_cursor_down(self, select: bool = False) -> None:
        if select or not self._walking() or self._browsing is None:
            super().action_cursor_down(select)
            return
        if self._browsing + 1 >= len(self.prompts):
            self.load_text("")
            self._browsing = None
            return
        self._show(self._browsing + 1)

    def _show(self, index: int) -> None:
        self.load_text(self.prompts[index])
        self.move_cursor(self.document.end)
        self._browsing = index
