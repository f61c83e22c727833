"""Transcript widgets: the user's and the assistant's messages, and the attachment chips.

An assistant message streams its reply into a ``Markdown`` widget through a
``MarkdownStream`` (which batches fragments when tokens come faster than the widget renders);
text a tool writes while it runs (``Token`` events with a step) shows as a draft under the
message until the step's artifact replaces it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Markdown, Static
from textual.widgets.markdown import MarkdownStream

from tools.artifact import Artifact
from tui.artifacts import artifact_widget

Attachment = Path | Artifact
"""What a chip holds: a file on disk, or an artifact (one the user chose to attach)."""


def attachment_label(item: Attachment | dict[str, Any]) -> str:
    if isinstance(item, Artifact):
        return item.label()
    if isinstance(item, dict):
        return str(item.get("name") or item.get("modality") or "attachment")
    return item.name


class UserMessage(Vertical):
    """What the user sent, with the names of what they attached."""

    def __init__(self, text: str, attachments: list[Any] | tuple[Any, ...] = ()) -> None:
        super().__init__(classes="message user")
        self.text = text
        self.attachments = [attachment_label(a) for a in attachments]

    def compose(self) -> ComposeResult:
        yield Static(self.text or "(no text)", classes="body", markup=False)
        if self.attachments:
            names = ", ".join(self.attachments)
            yield Static(f"attached: {names}", classes="attached", markup=False)


class AssistantMessage(Vertical):
    """One assistant turn: the reply (Markdown), notes, drafts and the artifacts made."""

    def __init__(self, text: str = "") -> None:
        super().__init__(classes="message assistant")
        self._initial = text
        self._stream: MarkdownStream | None = None
        self.streamed = ""
        """The reply text received as tokens so far."""
        self.artifacts: list[Artifact] = []
        self.notes: list[str] = []
        self._drafts: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Markdown(self._initial, classes="reply")
        yield Vertical(classes="notes")
        yield Vertical(classes="drafts")
        yield Vertical(classes="artifacts")

    @property
    def reply(self) -> Markdown:
        return self.query_one(".reply", Markdown)

    async def add_token(self, text: str, step: str | None = None) -> None:
        """Stream a reply token (``step`` None) or a tool's draft text."""
        if step is not None:
            await self._draft(step, text)
            return
        if self._stream is None:
            self._stream = Markdown.get_stream(self.reply)
        self.streamed += text
        await self._stream.write(text)

    async def _draft(self, step: str, text: str) -> None:
        drafts = self.query_one(".drafts", Vertical)
        self._drafts[step] = self._drafts.get(step, "") + text
        shown = f"{step}: {self._drafts[step]}"
        found = drafts.query(f"#draft-{step}")
        if found:
            found.first(Static).update(shown)
        else:
            await drafts.mount(Static(shown, id=f"draft-{step}", classes="draft", markup=False))

    async def end_draft(self, step: str) -> None:
        self._drafts.pop(step, None)
        await self.query(f"#draft-{step}").remove()

    def draft(self, step: str) -> str:
        return self._drafts.get(step, "")

    async def add_artifacts(self, artifacts: list[Artifact], config: Any) -> None:
        """Mount a widget for each artifact (image inline, audio row, text, ...)."""
        new = [a for a in artifacts if a.id not in {b.id for b in self.artifacts}]
        if not new:
            return
        self.artifacts += new
        await self.query_one(".artifacts", Vertical).mount_all(
            [artifact_widget(a, config) for a in new]
        )

    async def note(self, text: str, *, error: bool = False) -> None:
        """A line under the reply: a failure, a cancellation, a re-plan."""
        self.notes.append(text)
        classes = "note error" if error else "note"
        await self.query_one(".notes", Vertical).mount(Static(text, classes=classes, markup=False))

    async def finish(self, text: str | None = None) -> None:
        """End the reply: stop the stream, or show ``text`` when no token came; without the
        list of artifact paths when the artifacts show below."""
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        shown = self.streamed if self.streamed.strip() else text
        if shown is not None:
            trimmed = without_artifact_list(shown, self.artifacts)
            if trimmed != self.streamed:
                await self.reply.update(trimmed)
        await self.query_one(".drafts", Vertical).remove_children()
        self._drafts.clear()


def without_artifact_list(text: str, shown: list[Artifact]) -> str:
    """``text`` without its closing "Artifacts:" list of paths (prompts/facts.md.j2) when
    every artifact listed there is among ``shown``: the list is for plain-text callers, and
    the app shows the artifacts themselves below the reply."""
    lines = text.rstrip().split("\n")
    heads = [i for i, line in enumerate(lines) if line.strip() == "Artifacts:"]
    if not heads:
        return text
    listed = lines[heads[-1] + 1 :]
    ends = tuple(f": {a.path}" for a in shown)
    if not listed or not all(line.startswith("- ") and line.endswith(ends) for line in listed):
        return text
    return "\n".join(lines[: heads[-1]]).rstrip()


class Chip(Horizontal):
    """One pending attachment with a button that removes it."""

    class Removed(Message):
        def __init__(self, chip: Chip) -> None:
            super().__init__()
            self.chip = chip

    def __init__(self, item: Attachment) -> None:
        super().__init__(classes="chip")
        self.item = item

    def compose(self) -> ComposeResult:
        yield Static(attachment_label(self.item), classes="chip-name", markup=False)
        yield Button("x", classes="chip-remove", compact=True, tooltip="remove this attachment")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.Removed(self))


class AttachmentChips(Horizontal):
    """The attachments the next message will carry; hidden while there are none."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.display = False

    @property
    def items(self) -> list[Attachment]:
        return [chip.item for chip in self.query(Chip)]

    async def add(self, item: Attachment) -> bool:
        """Add ``item`` unless it is already there; True if it was added."""
        if any(_same(item, other) for other in self.items):
            return False
        await self.mount(Chip(item))
        self.display = True
        return True

    async def clear(self) -> None:
        await self.remove_children()
        self.display = False

    async def on_chip_removed(self, event: Chip.Removed) -> None:
        await event.chip.remove()
        self.display = bool(self.query(Chip))


def _same(a: Attachment, b: Attachment) -> bool:
    if isinstance(a, Artifact) and isinstance(b, Artifact):
        return a.id == b.id
    if isinstance(a, Path) and isinstance(b, Path):
        return a.resolve() == b.resolve()
    return False
