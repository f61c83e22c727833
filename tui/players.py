"""Artifacts that play inline: audio (a waveform strip, play/stop through sounddevice when
there is an output device) and video (a poster frame and a frame strip that steps through).
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import HorizontalGroup
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Button, Static

from tools.artifact import Artifact
from tui import media
from tui.artifact_view import MAX_IMAGE_ROWS, PLAY_FPS, ArtifactView
from tui.files import shown_path


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
