"""The inline artifact widgets, each mounted in a tiny app through Textual's Pilot: images,
audio (waveform, playback, a corrupt file), video (poster, strip, playing), meshes (stored and
rendered previews), text (collapsing), plain files, and the actions every widget posts."""

from __future__ import annotations

import io
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
from PIL import Image
from textual.app import App, ComposeResult
from textual.widgets import Button, Collapsible, Static
from textual_image.widget import HalfcellImage, SixelImage, TGPImage
from textual_image.widget import Image as AutoImage
from textual_image.widget._base import Image as ImageWidget

from assistant.config import Config, TuiSettings
from tests.conftest import make_wav
from tests.video_clips import make_clip
from tools.artifact import Artifact, ArtifactStore
from tools.base import ToolContext
from tools.mesh_io import store_mesh
from tui import media
from tui.artifacts import (
    MAX_IMAGE_ROWS,
    ArtifactAction,
    ArtifactView,
    AudioArtifact,
    VideoArtifact,
    Waveform,
    artifact_widget,
)

pytestmark = [
    pytest.mark.anyio,
    # textual-image 0.12 still calls Pillow's getdata (deprecated in Pillow 12).
    pytest.mark.filterwarnings("ignore:Image.Image.getdata is deprecated:DeprecationWarning"),
]
SIZE = (100, 60)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


class Harness(App[None]):
    """Shows one artifact widget and keeps every ArtifactAction it posts."""

    def __init__(self, art: Artifact, config: Any = None) -> None:
        super().__init__()
        self.art = art
        self.config = config if config is not None else Config()
        self.actions: list[ArtifactAction] = []

    def compose(self) -> ComposeResult:
        yield artifact_widget(self.art, self.config)

    def on_artifact_action(self, message: ArtifactAction) -> None:
        self.actions.append(message)


async def settle(app: Harness, pilot: Any) -> ArtifactView:
    """Wait for the widget's workers, then for what they mount."""
    await app.workers.wait_for_complete()
    await pilot.pause()
    return app.query_one(ArtifactView)


def header(view: ArtifactView) -> str:
    return str(view.query_one(".artifact-title", Static).content)


def images_in(view: ArtifactView) -> list[ImageWidget]:
    return list(view.query(ImageWidget).results(ImageWidget))


def pil(widget: ImageWidget) -> Image.Image:
    """The PIL image a textual-image widget shows."""
    assert isinstance(widget.image, Image.Image)
    return widget.image


def with_images(mode: Any) -> Config:
    return Config(tui=TuiSettings(images=mode))


# --- images -------------------------------------------------------------------------------------


async def test_image_mounts_a_sized_image_renderable(store: ArtifactStore) -> None:
    art = store.add_image(Image.new("RGB", (320, 200), (200, 30, 30)), name="red.png")
    app = Harness(art)
    async with app.run_test(size=SIZE) as pilot:
        view = await settle(app, pilot)
        assert view.error is None
        [shown] = images_in(view)
        assert isinstance(shown.image, Image.Image) and shown.image.size == (320, 200)
        assert shown.image.getpixel((5, 5)) == (200, 30, 30)
        assert 0 < shown.size.height <= 40 and shown.size.width <= SIZE[0]
        assert shown.render() is not None and shown._renderable is not None
        assert "red.png" in header(view) and "320x200" in header(view)


async def test_image_mode_picks_the_renderable_or_none(store: ArtifactStore) -> None:
    art = store.add_image(Image.new("RGB", (64, 64), (0, 90, 0)), name="g.png")
    app = Harness(art, with_images("halfcell"))
    async with app.run_test(size=SIZE) as pilot:
        view = await settle(app, pilot)
        assert [type(w) for w in images_in(view)] == [HalfcellImage]
    app = Harness(art, with_images("none"))
    async with app.run_test(size=SIZE) as pilot:
        view = await settle(app, pilot)
        assert images_in(view) == [] and "64x64" in header(view)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


async def test_huge_image_is_capped_at_max_rows(store: ArtifactStore) -> None:
    # Stored as bare bytes, as an attachment may be: the header learns the size on loading.
    art = store.add_bytes(png_bytes(Image.new("RGB", (300, 3000), (9, 9, 9))), name="tall.png")
    app = Harness(art)
    async with app.run_test(size=(100, 80)) as pilot:
        view = await settle(app, pilot)
        [shown] = images_in(view)
        assert shown.size.height == MAX_IMAGE_ROWS == 20
        assert pil(shown).size[1] <= media.MAX_IMAGE_SIDE
        assert "300x3000" in header(view)


async def test_truncated_image_says_cannot_show(store: ArtifactStore) -> None:
    data = png_bytes(Image.effect_noise((200, 200), 50).convert("RGB"))
    app = Harness(store.add_bytes(data[: len(data) // 2], name="cut.png"))
    async with app.run_test(size=SIZE) as pilot:
        view = await settle(app, pilot)
        assert images_in(view) == [] and view.error
        assert str(view.query_one(".artifact-error", Static).content).startswith("cannot show")


async def test_image_fits_again_when_the_terminal_narrows(store: ArtifactStore) -> None:
    art = store.add_image(Image.new("RGB", (2000, 500), (9, 9, 9)), name="wide.png")
    app = Harness(art)
    async with app.run_test(size=(120, 60)) as pilot:
        [shown] = images_in(await settle(app, pilot))
        assert shown.size.width > 100
        await pilot.resize_terminal(50, 60)
        await pilot.pause()
        assert shown.size.width <= 50 and shown.size.height < 10


# --- audio --------------------------------------------------------------------------------------


def strip_of(view: ArtifactView) -> str:
    wave = view.query_one(Waveform)
    return str(wave.render())


async def test_audio_shows_duration_and_a_waveform_of_a_tone(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media, "output_device", lambda: None)
    art = store.add_file(make_wav(tmp_path / "tone.wav", 2.0))
    app = Harness(art)
    async with app.run_test(size=SIZE) as pilot:
        view = await settle(app, pilot)
        assert "2.0 s" in header(view) and "16 kHz" in header(view)
        strip = strip_of(view)
        assert len(strip) == view.query_one(Waveform).size.width > 40
        assert set(strip) <= set(media.BLOCKS) and min(strip) > media.BLOCKS[0]
        saved = str(view.query_one(".artifact-saved", Static).content)
        assert f"saved to {art.path}" in saved
        assert not view.query(".artifact-play")


async def test_audio_waveform_is_flat_for_silence_and_follows_a_fade(
    store: ArtifactStore, tmp_path: Path
) -> None:
    silence = store.add_audio(np.zeros(16000, np.float32), 16000, name="quiet.wav")
    app = Harness(silence)
    async with app.run_test(size=SIZE) as pilot:
        strip = strip_of(await settle(app, pilot))
        assert strip and set(strip) == {media.BLOCKS[0]}
    t = np.arange(32000) / 16000
    fade = (np.linspace(0, 1, len(t)) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    app = Harness(store.add_audio(fade, 16000, name="fade.wav"))
    async with app.run_test(size=SIZE) as pilot:
        levels = [media.BLOCKS.index(c) for c in strip_of(await settle(app, pilot))]
        assert levels[0] < 3 and levels[-1] == len(media.BLOCKS) - 1
        assert levels == sorted(levels)


async def test_audio_plays_and_stops_through_sounddevice(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, Any]] = []
    fake = types.SimpleNamespace(
        query_devices=lambda kind=None: {"name": "speaker", "kind": kind},
        play=lambda data, rate: calls.append(("play", (data.shape, rate))),
        stop=lambda: calls.append(("stop", None)),
    )
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    app = Harness(store.add_file(make_wav(tmp_path / "tone.wav", 1.0)))
    async with app.run_test(size=SIZE) as pilot:
        view = await settle(app, pilot)
        assert isinstance(view, AudioArtifact) and not view.query(".artifact-saved")
        button = view.query_one(".artifact-play", Button)
        view.focus()
        await pilot.press("p")
        await app.workers.wait_for_complete()
        assert calls == [("play", ((16000, 1), 16000))]
        assert view.playing and str(button.label) == "■ stop"
        await pilot.press("p")
        await app.workers.wait_for_complete()
        assert calls[-1] == ("stop", None)
        assert not view.playing and str(button.label) == "▶ play"
        await pilot.click(".artifact-play")  # the button toggles once, like the key
        await app.workers.wait_for_complete()
        assert [c[0] for c in calls] == ["play", "stop", "play"] and view.playing


async def test_long_audio_is_streamed_for_its_waveform_and_not_kept(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media, "PLAY_MAX_SECONDS", 1.0)
    monkeypatch.setattr(media, "output_device", lambda: types.SimpleNamespace())
    t = np.arange(48000) / 16000
    fade = (np.linspace(1, 0, len(t)) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    app = Harness(store.add_audio(fade, 16000, name="long.wav"))
    async with app.run_test(size=SIZE) as pilot:
        view = await settle(app, pilot)
        assert isinstance(view, AudioArtifact) and view.audio is not None
        assert view.audio.samples is None and view.audio.duration == 3.0
        levels = [media.BLOCKS.index(c) for c in strip_of(view)]
        assert levels[0] == len(media.BLOCKS) - 1 and levels == sorted(levels, reverse=True)
        assert not view.query(".artifact-play")
        assert "too long to play inline" in str(view.query_one(".artifact-saved", Static).content)


async def test_corrupt_audio_says_cannot_show(store: ArtifactStore) -> None:
    bad = store.add_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" * 4, name="broken.wav")
    app = Harness(bad)
    async with app.run_test(size=SIZE) as pilot:
        view = await settle(app, pilot)
        error = str(view.query_one(".artifact-error", Static).content)
        assert error.startswith("cannot show: ") and "broken.wav" in error
        assert not view.query(Waveform) and not view.query(".artifact-pending")
        await pilot.press("tab", "p")  # playing a file that cannot be shown does nothing
        assert view.error is not None


# --- video --------------------------------------------------------------------------------------


async def test_video_shows_a_poster_a_strip_and_plays_frames(
    store: ArtifactStore, tmp_path: Path
) -> None:
    art = store.add_file(make_clip(tmp_path / "clip.mp4", seconds=2.0, fps=10.0))
    app = Harness(art)
    async with app.run_test(size=SIZE) as pilot:
        view = await settle(app, pilot)
        assert isinstance(view, VideoArtifact) and view.video is not None
        assert "96x64" in header(view) and "2.0 s" in header(view) and "10 fps" in header(view)
        poster = view.query_one(".artifact-poster", ImageWidget)
        strip = view.query_one(".artifact-strip", ImageWidget)
        assert poster.image is view.video.poster and poster.image.size == (96, 64)
        frames = view.video.frames
        assert pil(strip).width > len(frames) * pil(strip).height  # side by side
        # The square moves left to right: frames differ and the poster is an early one.
        assert np.abs(np.asarray(frames[0], int) - np.asarray(frames[-1], int)).max() > 100
        view.focus()
        await pilot.press("p")
        assert poster.image is frames[0] and view.frame_index == 0
        for i in range(1, len(frames)):
            view._step()
            assert poster.image is frames[i]
        view._step()  # past the last frame: back to the poster, the timer stopped
        assert poster.image is view.video.poster and view.frame_index is None


async def test_broken_video_says_cannot_show(store: ArtifactStore) -> None:
    art = store.add_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, name="bad.mp4")
    app = Harness(art)
    async with app.run_test(size=SIZE) as pilot:
        view = await settle(app, pilot)
        assert str(view.query_one(".artifact-error", Static).content).startswith("cannot show")


# --- meshes -------------------------------------------------------------------------------------


def box_mesh(store: ArtifactStore, tmp_path: Path, **meta: Any) -> Artifact:
    ctx = ToolContext(store=store, workspace=tmp_path / "work")
    return store_mesh(ctx, trimesh.creation.box(), "box", "glb", **meta)


async def test_mesh_shows_its_stored_preview(store: ArtifactStore, tmp_path: Path) -> None:
    preview = store.add_image(Image.new("RGB", (128, 128), (0, 200, 0)), name="box-preview.png")
    art = box_mesh(store, tmp_path, preview=preview.id)
    app = Harness(art)
    async with app.run_test(size=SIZE) as pilot:
        view = await settle(app, pilot)
        [shown] = images_in(view)
        assert pil(shown).size == (128, 128) and pil(shown).getpixel((64, 64)) == (0, 200, 0)
        assert "12 faces" in header(view) and "watertight" in header(view)
        assert not media.preview_cache(art).exists()  # nothing was rendered


async def test_mesh_without_preview_renders_and_caches_one(
    store: ArtifactStore, tmp_path: Path
) -> None:
    art = box_mesh(store, tmp_path, procedural=True)
    media.preview_cache(art).unlink(missing_ok=True)
    app = Harness(art)
    async with app.run_test(size=SIZE) as pilot:
        view = await settle(app, pilot)
        [shown] = images_in(view)
        assert pil(shown).size == (2 * 256 + 2, 2 * 256 + 2)  # four views on a 2x2 grid
        colours = np.asarray(shown.image).reshape(-1, 3)
        assert len(np.unique(colours, axis=0)) > 4  # shaded faces, not a blank sheet
        assert "procedural" in header(view)
    cached = media.preview_cache(art)
    assert cached.is_file() and Image.open(cached).size == pil(shown).size


# --- text, files, actions -----------------------------------------------------------------------


async def test_long_text_is_collapsed_and_short_text_open(store: ArtifactStore) -> None:
    long = store.add_text("\n".join(f"line {i}" for i in range(40)), name="notes.md")
    app = Harness(long)
    async with app.run_test(size=SIZE) as pilot:
        view = await settle(app, pilot)
        box = view.query_one(Collapsible)
        assert box.collapsed and "40 lines" in box.title
    app = Harness(store.add_text("# Title\n\nshort", name="short.md"))
    async with app.run_test(size=SIZE) as pilot:
        assert not (await settle(app, pilot)).query_one(Collapsible).collapsed


async def test_text_over_the_limit_shows_its_head(store: ArtifactStore) -> None:
    app = Harness(store.add_text("word " * 2000, name="big.txt"))
    async with app.run_test(size=SIZE) as pilot:
        box = (await settle(app, pilot)).query_one(Collapsible)
        assert box.collapsed and "first 4,000 characters" in box.title


async def test_every_action_key_and_button_posts_an_artifact_action(
    store: ArtifactStore, tmp_path: Path
) -> None:
    pdf = store.add_bytes(b"%PDF-1.4 not really", name="paper.pdf")
    wav = store.add_file(make_wav(tmp_path / "tone.wav", 0.5))  # a view with its own keys
    for art in (pdf, wav):
        app = Harness(art)
        async with app.run_test(size=SIZE) as pilot:
            view = await settle(app, pilot)
            assert art.name in header(view)
            view.focus()
            await pilot.press("o", "s", "c", "a")
            await pilot.click(".artifact-attach")
            await pilot.click(".artifact-open")
            await pilot.pause()
            actions = [m.action for m in app.actions]
            assert actions == ["open", "save", "copy", "attach", "attach", "open"]
            assert all(m.art == art for m in app.actions)
    assert type(artifact_widget(pdf, None)) is ArtifactView  # a plain file row


def test_waveform_strip_and_cell_fitting() -> None:
    peaks = media.envelope(np.r_[np.zeros(500), np.ones(500)][:, None])
    assert media.waveform_strip(peaks, 10) == media.BLOCKS[0] * 5 + media.BLOCKS[-1] * 5
    assert media.waveform_strip(peaks, 0) == "" and media.waveform_strip(np.zeros(0), 9) == ""
    assert media.fit_cells((100, 100), (10, 20), 80, 40) == (12, 6)  # tiny: grown to 6 rows
    assert media.fit_cells((4000, 1000), (10, 20), 80, 40) == (80, 10)  # wide: fits the width
    assert media.header_facts({"duration": 125.0, "faces": 1200}) == ["2:05", "1,200 faces"]


def test_image_modes_and_output_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert media.image_class(with_images("kitty")) is TGPImage
    assert media.image_class(with_images("sixel")) is SixelImage
    assert media.image_class(with_images("none")) is None
    assert media.image_class(None) is AutoImage  # textual-image picks
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # not installed
    assert media.output_device() is None

    def no_device(kind: str | None = None) -> Any:
        raise OSError("no output device")

    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(query_devices=no_device))
    assert media.output_device() is None
