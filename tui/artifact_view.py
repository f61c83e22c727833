"""The frame every inline artifact shares: a one-line header (name, modality, key facts)
with small open / save / copy / attach buttons and keys, posting ``ArtifactAction``; loading in
thread workers with "cannot show: <reason>" for broken files; images fitted to the width.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import HorizontalGroup, VerticalGroup
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Static
from textual_image._terminal import get_cell_size

from tools.artifact import Artifact
from tui import media

T = TypeVar("T")
Action = Literal["open", "save", "copy", "attach"]
ACTIONS: tuple[Action, ...] = ("open", "save", "copy", "attach")
MAX_IMAGE_ROWS = 20
"""Tallest an inline image gets, in terminal rows."""
PLAY_FPS = 4.0
"""Frames a second when a video widget plays its frames."""

_ICONS = {"image": "▣", "audio": "♪", "video": "▶", "mesh": "◆", "text": "¶", "file": "▤"}


class ArtifactAction(Message):
    """The user asked to ``action`` (open / save / copy / attach) ``art``; the app does it."""

    def __init__(self, art: Artifact, action: Action) -> None:
        super().__init__()
        self.art = art
        self.action: Action = action


class ArtifactView(VerticalGroup, can_focus=True):
    """The frame every artifact widget shares: header, action buttons and keys, error line."""

    DEFAULT_CSS = """
    ArtifactView { height: auto; margin: 0 0 1 0; padding: 0 1; border-left: tall $panel; }
    ArtifactView:focus-within { border-left: tall $accent; }
    ArtifactView .artifact-header { height: 1; }
    ArtifactView .artifact-title {
        width: 1fr; height: 1; text-wrap: nowrap; text-overflow: ellipsis;
    }
    ArtifactView .artifact-button { margin: 0 0 0 1; min-width: 6; }
    ArtifactView .artifact-error { color: $error; }
    ArtifactView .artifact-note { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "artifact('open')", "Open", id="artifact.open"),
        Binding("s", "artifact('save')", "Save as", id="artifact.save"),
        Binding("c", "artifact('copy')", "Copy path", id="artifact.copy"),
        Binding("a", "artifact('attach')", "Attach", id="artifact.attach"),
    ]

    def __init__(self, art: Artifact, config: Any = None) -> None:
        super().__init__(classes=f"artifact artifact-{art.modality.value}")
        self.art = art
        self.config = config
        self.settings = media.tool_settings(config)
        self._fitted: list[tuple[Widget, tuple[int, int]]] = []
        self._fit_width = 0
        self.facts: dict[str, Any] = dict(art.metadata)
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        with HorizontalGroup(classes="artifact-header"):
            yield Static(self.header_text(), classes="artifact-title")
            for action in ACTIONS:
                yield Button(
                    action,
                    name=action,
                    compact=True,
                    tooltip=f"{action} ({action[0]})",
                    classes=f"artifact-button artifact-{action}",
                )
        yield from self.compose_body()

    def compose_body(self) -> ComposeResult:
        """The widgets under the header; none for a plain file row."""
        yield from ()

    def header_text(self) -> Text:
        icon = _ICONS.get(self.art.modality.value, "▤")
        text = Text(f"{icon} ")
        text.append(self.art.label(), style="bold")
        text.append(f" · {self.art.modality.value}", style="dim")
        for fact in media.header_facts(self.facts):
            text.append(f" · {fact}", style="italic" if fact == "procedural" else "dim")
        return text

    def update_facts(self, **facts: Any) -> None:
        """Add facts learned while loading (a decoded duration, a probed size) to the header."""
        self.facts.update({k: v for k, v in facts.items() if v is not None})
        if self.is_mounted:
            self.query_one(".artifact-title", Static).update(self.header_text())

    def action_artifact(self, action: Action) -> None:
        self.post_message(ArtifactAction(self.art, action))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.name in ACTIONS:
            event.stop()
            self.action_artifact(event.button.name)

    def show_error(self, why: str) -> None:
        """Replace what is loading with "cannot show: <why>"."""
        self.error = why
        for pending in self.query(".artifact-pending"):
            pending.remove()
        self.mount(Static(Text(f"cannot show: {why}"), classes="artifact-error"))

    def pending(self, what: str) -> Static:
        """A placeholder line that ``load`` removes when its work is done."""
        return Static(Text(what), classes="artifact-note artifact-pending")

    def load(self, work: Callable[[], T], done: Callable[[T], None]) -> None:
        """Run ``work`` in a thread worker, then ``done(result)`` on the UI thread; an
        exception shows as "cannot show"."""

        def finish(result: T) -> None:
            if not self.is_attached:
                return
            for pending in self.query(".artifact-pending"):
                pending.remove()
            try:
                done(result)
            except Exception as exc:  # a widget that cannot be built still must not crash
                self.show_error(media.reason(exc))

        def fail(exc: Exception) -> None:
            if self.is_attached:
                self.show_error(media.reason(exc))

        def job() -> None:
            try:
                result = work()
            except Exception as exc:
                self.app.call_from_thread(fail, exc)
                return
            self.app.call_from_thread(finish, result)

        self.run_worker(job, thread=True, group="artifact-load", exit_on_error=False)

    def image_widget(
        self, image: Any, rows: tuple[int, int] = (6, MAX_IMAGE_ROWS)
    ) -> Widget | None:
        """A textual-image widget for a PIL image, between ``rows`` (min, max) tall and at
        most the view's width; None when images are off."""
        cls = media.image_class(self.config)
        if cls is None:
            return None
        widget = cls(image)
        self._fitted.append((widget, rows))
        self.fit(widget, image.size, rows)
        return widget

    def fit(self, widget: Widget, pixels: tuple[int, int], rows: tuple[int, int]) -> None:
        """Size ``widget`` in cells for an image of ``pixels``; ``on_resize`` fits it again
        when the view's width changes."""
        width = max(1, self.content_size.width or self.app.size.width - 4)
        cell = get_cell_size()
        cols, height = media.fit_cells(pixels, (cell.width, cell.height), width, rows[1], rows[0])
        widget.styles.width = cols
        widget.styles.height = height

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width == self._fit_width:
            return
        self._fit_width = event.size.width
        for widget, rows in self._fitted:
            image = getattr(widget, "image", None)
            if image is not None and hasattr(image, "size"):
                self.fit(widget, image.size, rows)
