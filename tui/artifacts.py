"""Artifacts inline in the transcript: one widget per modality, made by ``artifact_widget``.

Every widget has a one-line header (name, modality, key facts) with small buttons, and the
keys o / s / c / a while focused; both post ``ArtifactAction`` for the app to open, save, copy
the path of, or attach the artifact. Decoding and rendering (``tui/media.py``) run in thread
workers, so mounting never blocks the UI, and a broken file shows "cannot show: <reason>"
instead of raising. Images go through textual-image: Kitty or Sixel graphics where the terminal
has them, half-cells otherwise (``Config.tui.images`` can force one, or "none").
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Collapsible, Markdown, Static

from tools.artifact import Artifact, Modality
from tui import media
from tui.artifact_view import MAX_IMAGE_ROWS, ArtifactAction, ArtifactView
from tui.players import AudioArtifact, Playable, VideoArtifact, Waveform

__all__ = [
    "MAX_IMAGE_ROWS",
    "ArtifactAction",
    "ArtifactView",
    "AudioArtifact",
    "ImageArtifact",
    "MeshArtifact",
    "Playable",
    "TextArtifact",
    "VideoArtifact",
    "Waveform",
    "artifact_widget",
]


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
