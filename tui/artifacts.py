"""Artifacts inline in the transcript: one widget per modality, made by ``artifact_widget``.

Every widget has a one-line header (name, modality, key facts) with small buttons, and the
keys o / s / c / a while focused; both post ``ArtifactAction`` for the app to open, save, copy
the path of, or attach the artifact. Decoding and rendering (``tui/media.py``) run in thread
workers, so mounting never blocks the UI, and a broken file shows "cannot show: <reason>"
instead of raising. Images go through textual-image: Kitty or Sixel graphics where the terminal
has them, half-cells otherwise (``Config.tui.images`` can force one, or "none").
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
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Button, Collapsible, Markdown, Static
from textual_image._terminal import get_cell_size

from tools.artifact import Artifact, Modality
from tui import media
from tui.files import shown_path

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


class Playable(ArtifactView):
    """A view with a play/stop button and the key p."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "toggle_play", "Play/stop", id="artifact.play")
    ]

    def play_button(self) -> Button:
        return Button("▶ play", name="play", compact=True, classes="artifact-play")

    def show_playing(self, playing: bool) -> None:
        for button in self.query(".artifact-play").results(Button):
            button.label = "■ stop" if playing else "▶ play"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        # Textual calls ArtifactView's handler too (it walks the MRO): no super() here.
        if event.button.name == "play":
            event.stop()
            self.action_toggle_play()

    def action_toggle_play(self) -> None:
        """Start or stop; each playable view says how."""
        raise NotImplementedError


class ImageArtifact(ArtifactView):
    """An image through textual-image, decoded and scaled down in a worker."""

    waiting = "loading image…"

    def compose_body(self) -> ComposeResult:
        if media.image_class(self.config) is not None:
            yield self.pending(self.waiting)

    def on_mount(self) -> None:
        if media.image_class(self.config) is not None:
            self.load(self.picture, self.show_picture)

    def picture(self) -> Any:
        """The PIL image to show (runs in a thread worker)."""
        return media.load_image(self.art.path)

    def show_picture(self, image: Any) -> None:
        if self.art.modality is Modality.IMAGE and not self.facts.get("width"):
            width, height = image.info.get("source_size", image.size)  # a bare attachment
            self.update_facts(width=width, height=height)
        widget = self.image_widget(image)
        if widget is not None:
            widget.add_class(f"artifact-{self.art.modality.value}-picture")
            self.mount(widget)


class Waveform(Static):
    """A strip of block characters, one per column, redrawn to the width it is given."""

    DEFAULT_CSS = "Waveform { height: 1; width: 1fr; color: $accent; }"

    def __init__(self, peaks: Any) -> None:
        super().__init__(classes="artifact-waveform")
        self.peaks = peaks

    def render(self) -> Text:
        return Text(media.waveform_strip(self.peaks, self.content_size.width or 60))


class AudioArtifact(Playable):
    """Duration, rate, a waveform strip, and play/stop when there is a speaker to play on;
    without one, where the file is (o opens it in the system's player)."""

    def __init__(self, art: Artifact, config: Any = None) -> None:
        super().__init__(art, config)
        self.audio: media.DecodedAudio | None = None
        self.device: Any = None
        self.playing = False
        self._stop_timer: Timer | None = None

    def compose_body(self) -> ComposeResult:
        yield self.pending("decoding audio…")

    def on_mount(self) -> None:
        def work() -> tuple[media.DecodedAudio, Any]:
            return media.decode_for_display(self.art, self.settings), media.output_device()

        self.load(work, self.show_audio)

    def show_audio(self, loaded: tuple[media.DecodedAudio, Any]) -> None:
        self.audio, self.device = loaded
        audio = self.audio
        self.update_facts(
            duration=round(audio.duration, 3), sample_rate=audio.rate, channels=audio.channels
        )
        self.mount(Waveform(audio.peaks))
        if self.device is not None and audio.samples is not None:
            self.mount(self.play_button())
        else:
            why = "no audio output here" if self.device is None else "too long to play inline"
            note = Text(f"saved to {shown_path(self.art.path)} ({why}; o opens it)")
            self.mount(Static(note, classes="artifact-note artifact-saved"))

    def action_toggle_play(self) -> None:
        """Start or stop playback. sounddevice plays in the background; even so the device
        calls go through a worker, in case a driver is slow to open."""
        if self.device is None or self.audio is None or self.audio.samples is None:
            if self.error is None:
                self.notify("not playable here; press o to open the file", timeout=3)
            return
        sd, audio, samples = self.device, self.audio, self.audio.samples
        if self.playing:
            self.run_worker(sd.stop, thread=True, group="artifact-play", exit_on_error=False)
            self._finished()
            return

        def start() -> None:
            try:
                sd.play(samples, audio.rate)
            except Exception as exc:  # a busy or vanished device
                self.app.call_from_thread(self._failed, media.reason(exc))

        self.playing = True
        self.run_worker(start, thread=True, group="artifact-play", exit_on_error=False)
        self._stop_timer = self.set_timer(audio.duration + 0.2, self._finished)
        self.show_playing(True)

    def _failed(self, why: str) -> None:
        self._finished()
        self.notify(f"cannot play {self.art.label()}: {why}", severity="warning")

    def _finished(self) -> None:
        self.playing = False
        if self._stop_timer is not None:
            self._stop_timer.stop()
            self._stop_timer = None
        self.show_playing(False)

    def on_unmount(self) -> None:
        if self.playing and self.device is not None:
            self.device.stop()


class VideoArtifact(Playable):
    """A poster frame, facts, and a strip of frames that p plays in place of the poster."""

    def __init__(self, art: Artifact, config: Any = None) -> None:
        super().__init__(art, config)
        self.video: media.VideoFrames | None = None
        self.poster: Widget | None = None
        self.frame_index: int | None = None
        self._timer: Timer | None = None

    def compose_body(self) -> ComposeResult:
        yield self.pending("decoding frames…")

    def on_mount(self) -> None:
        self.load(lambda: media.video_frames(self.art, self.settings), self.show_video)

    def show_video(self, video: media.VideoFrames) -> None:
        self.video = video
        info = video.info
        self.update_facts(
            width=info.width, height=info.height, duration=info.duration, fps=round(info.fps, 2)
        )
        self.poster = self.image_widget(video.poster, rows=(12, MAX_IMAGE_ROWS - 6))
        if self.poster is None:  # images are off: the header's facts are all there is
            return
        self.poster.add_class("artifact-poster")
        self.mount(self.poster)
        strip = self.image_widget(video.strip, rows=(5, 5))
        if strip is not None:
            strip.add_class("artifact-strip")
            self.mount(strip)
        note = f"{len(video.frames)} frames; p plays them here, o opens the video"
        self.mount(
            HorizontalGroup(
                self.play_button(),
                Static(Text(note), classes="artifact-note"),
            )
        )

    def action_toggle_play(self) -> None:
        """Step the poster through the strip's frames on a timer; again stops."""
        if self.video is None or self.poster is None:
            return
        if self._timer is not None:
            self._stop()
            return
        self.frame_index = -1
        self._timer = self.set_interval(1 / PLAY_FPS, self._step)
        self._step()
        self.show_playing(True)

    def _step(self) -> None:
        if self.video is None or self.poster is None or self.frame_index is None:
            return
        self.frame_index += 1
        if self.frame_index >= len(self.video.frames):
            self._stop()
            return
        self.poster.image = self.video.frames[self.frame_index]  # type: ignore[attr-defined]

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.frame_index = None
        if self.video is not None and self.poster is not None:
            self.poster.image = self.video.poster  # type: ignore[attr-defined]
        self.show_playing(False)


class MeshArtifact(ImageArtifact):
    """The mesh's turntable preview: the stored one its metadata names, else one rendered
    (and cached) in the worker."""

    waiting = "loading preview…"

    def picture(self) -> Any:
        path = media.stored_preview(self.art)
        if path is None:
            self.app.call_from_thread(self._rendering)
            path = media.render_preview(self.art, self.settings)
        return media.load_image(path)

    def _rendering(self) -> None:
        for pending in self.query(".artifact-pending").results(Static):
            pending.update("rendering preview…")


class TextArtifact(ArtifactView):
    """The text as Markdown in a Collapsible, collapsed when long."""

    def compose_body(self) -> ComposeResult:
        try:
            markdown, title, collapsed = media.text_view(self.art)
        except OSError as exc:
            yield Static(Text(f"cannot show: {exc.strerror or exc}"), classes="artifact-error")
            return
        yield Collapsible(Markdown(markdown), title=title, collapsed=collapsed)


def artifact_widget(art: Artifact, config: Any) -> Widget:
    """The widget that shows ``art`` inline, chosen by its modality (a file row otherwise)."""
    views: dict[Modality, type[ArtifactView]] = {
        Modality.IMAGE: ImageArtifact,
        Modality.AUDIO: AudioArtifact,
        Modality.VIDEO: VideoArtifact,
        Modality.MESH: MeshArtifact,
        Modality.TEXT: TextArtifact,
    }
    return views.get(art.modality, ArtifactView)(art, config)
