"""The ffmpeg video editing tools (tools/video_edit.py, tools/video_compose.py) on tiny
synthetic clips: each output's duration, frames, rate, size and sound are checked, and bad
inputs get clear errors that leave nothing behind."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.video_clips import make_clip, make_vfr_clip, tone
from tools import ArtifactStore, ToolContext, ToolSettings
from tools import ffmpeg as ff
from tools.artifact import Modality
from tools.base import Cancelled
from tools.errors import ToolError
from tools.ffmpeg import filter_escape
from tools.settings import VideoSettings
from tools.video_edit import atempo_chain, trim_video
from tools.video_io import count_frames, frames_at, iter_frames, probe_path

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Made once: a 2 s 10 fps 96x64 clip with a 440 Hz tone, a silent 1 s 128x64 clip at
    15 fps, a 3 s 880 Hz tone and a 1 s 660 Hz tone."""
    d = tmp_path_factory.mktemp("clips")
    return {
        "clip": make_clip(d / "clip.mp4", 2.0, 10.0, (96, 64)),
        "wide": make_clip(d / "wide.mp4", 1.0, 15.0, (128, 64), audio=False),
        "long_tone": tone(d / "long.wav", 3.0, freq=880.0),
        "short_tone": tone(d / "short.wav", 1.0, freq=660.0),
    }


def audio_of(path: str | Path) -> tuple[np.ndarray, int]:
    """A file's first audio stream, decoded to mono float samples."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        parts = [
            f.to_ndarray().reshape(f.layout.nb_channels, -1, order="F")
            for f in container.decode(stream)
        ]
        rate = stream.codec_context.sample_rate
    data = np.concatenate(parts, axis=1)
    return data.mean(axis=0), rate


def level_at(samples: np.ndarray, rate: int, freq: float) -> float:
    """How strong ``freq`` is in ``samples`` (spectrum magnitude, normalised by length)."""
    spectrum = np.abs(np.fft.rfft(samples)) / len(samples)
    bins = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(spectrum[np.abs(bins - freq) < 5].max())


def check_video(art: Any, duration: float, frames: int, fps: float, size: tuple[int, int]) -> Any:
    """Assert what the file itself says, not just what the tool claims."""
    assert art.modality is Modality.VIDEO and art.mime == "video/mp4"
    info = probe_path(art.path)
    assert info.duration == pytest.approx(duration, abs=0.06)
    assert count_frames(art.path) == frames
    assert info.fps == pytest.approx(fps) and (info.width, info.height) == size
    assert not info.variable_frame_rate
    return info


def test_extract_audio(run: Any, clips: dict[str, Path]) -> None:
    wav = run("extract_audio", [clips["clip"]], video="$a1").artifacts[0]
    assert wav.modality is Modality.AUDIO and wav.name == "clip-audio.wav"
    assert wav.metadata["sample_rate"] == 16000 and wav.metadata["channels"] == 1
    assert wav.metadata["duration"] == pytest.approx(2.0, abs=0.05)
    samples, rate = audio_of(wav.path)
    assert len(samples) / rate == pytest.approx(2.0, abs=0.05)
    assert level_at(samples, rate, 440) > 10 * level_at(samples, rate, 880)
    with pytest.raises(
        ToolError, match="wide.mp4 has no audio track, so there is nothing to extract"
    ):
        run("extract_audio", [clips["wide"]], video="$a1")


@pytest.mark.parametrize(
    ("fmt", "mime", "codec"),
    [
        ("m4a", "audio/mp4", "copied"),
        ("flac", "audio/flac", "converted from aac"),
        ("mp3", "audio/mpeg", "converted from aac"),
        ("ogg", "audio/ogg", "converted from aac"),
    ],
)
def test_extract_audio_formats(
    run: Any, clips: dict[str, Path], fmt: str, mime: str, codec: str
) -> None:
    res = run("extract_audio", [clips["clip"]], video="$a1", format=fmt)
    art = res.artifacts[0]
    assert art.modality is Modality.AUDIO and art.mime == mime and res.data["codec"] == codec
    samples, rate = audio_of(art.path)
    assert art.metadata["duration"] == pytest.approx(2.0, abs=0.1)
    assert len(samples) / rate == pytest.approx(2.0, abs=0.1)


def test_extract_frames_evenly_and_every(run: Any, clips: dict[str, Path]) -> None:
    from PIL import Image

    res = run("extract_frames", [clips["clip"]], video="$a1", count=4)
    # Centres of four 0.5 s spans (0.25, 0.75, ...): the frames on screen then, at 10 fps.
    assert res.data["times"] == pytest.approx([0.2, 0.7, 1.2, 1.7])
    assert [a.name for a in res.artifacts] == [
        f"clip-t{t}.png" for t in ("0.2", "0.7", "1.2", "1.7")
    ]
    assert [a.metadata["time"] for a in res.artifacts] == pytest.approx([0.2, 0.7, 1.2, 1.7])
    pics = [np.asarray(Image.open(a.path).convert("RGB"), dtype=float) for a in res.artifacts]
    assert {p.shape for p in pics} == {(64, 96, 3)}
    for a, b in zip(pics, pics[1:], strict=False):  # the white square moved
        assert np.abs(a - b).mean() > 5
    every = run("extract_frames", [clips["clip"]], video="$a1", every=0.5)
    assert every.data["times"] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    dense = run("extract_frames", [clips["wide"]], video="$a1", count=40)  # 15 frames there
    assert len(dense.artifacts) == 15 and dense.data["notes"]
    few = ToolSettings(video=VideoSettings(max_extract_frames=3))
    with pytest.raises(
        ToolError, match="4 frames; the limit is 3 .*tools.video.max_extract_frames"
    ):
        run("extract_frames", [clips["clip"]], few, video="$a1", count=4)
    with pytest.raises(ToolError, match="20 frames; the limit is 3"):
        run("extract_frames", [clips["clip"]], few, video="$a1", every=0.1)


@pytest.mark.parametrize(("factor", "duration", "frames"), [(2.0, 1.0, 10), (0.5, 4.0, 40)])
def test_change_speed(
    run: Any, clips: dict[str, Path], factor: float, duration: float, frames: int
) -> None:
    res = run("change_speed", [clips["clip"]], video="$a1", factor=factor)
    info = check_video(res.artifacts[0], duration, frames, 10.0, (96, 64))
    assert info.has_audio and res.data["factor"] == factor
    samples, rate = audio_of(res.artifacts[0].path)
    assert len(samples) / rate == pytest.approx(duration, abs=0.1)
    assert level_at(samples, rate, 440) > 10 * level_at(samples, rate, 440 * factor)  # same pitch


def test_change_speed_without_sound(run: Any, clips: dict[str, Path]) -> None:
    res = run("change_speed", [clips["wide"]], video="$a1", factor=4)
    assert not check_video(res.artifacts[0], 0.25, 4, 15.0, (128, 64)).has_audio
    res = run("change_speed", [clips["clip"]], video="$a1", factor=2, keep_audio=False)
    assert not probe_path(res.artifacts[0].path).has_audio
    short = ToolSettings(video=VideoSettings(max_output_seconds=3))
    with pytest.raises(ToolError, match="last 20.0s; the limit is 3s .*max_output_seconds"):
        run("change_speed", [clips["clip"]], short, video="$a1", factor=0.1)
    assert atempo_chain(16) == "atempo=2,atempo=2,atempo=2,atempo=2"
    assert atempo_chain(0.1) == "atempo=0.5,atempo=0.5,atempo=0.5,atempo=0.8"


def test_trim_is_frame_accurate(run: Any, clips: dict[str, Path]) -> None:
    res = run("trim_video", [clips["clip"]], video="$a1", start=0.5, end=1.5)
    art = res.artifacts[0]
    assert art.name == "clip-0.5-1.5s.mp4" and art.metadata["source"]
    assert check_video(art, 1.0, 10, 10.0, (96, 64)).has_audio
    (_, first), (_, wanted) = frames_at(art.path, [0.0])[0], frames_at(clips["clip"], [0.5])[0]
    assert np.abs(first.astype(float) - wanted).mean() < 4  # the square where it was at 0.5 s
    with pytest.raises(ToolError, match="start 5s is past the end of clip.mp4, which lasts 2.00s"):
        run("trim_video", [clips["clip"]], video="$a1", start=5)
    with pytest.raises(ToolError, match=r"end \(0.5s\) must be after start \(1.0s\)"):
        run("trim_video", [clips["clip"]], video="$a1", start=1, end=0.5)


def test_variable_frame_rate_comes_out_constant(run: Any, tmp_path: Path) -> None:
    res = run("trim_video", [make_vfr_clip(tmp_path / "vfr.mp4")], video="$a1", start=0.0)
    info = probe_path(res.artifacts[0].path)
    assert not info.variable_frame_rate and info.duration == pytest.approx(3.0, abs=0.1)
    assert count_frames(res.artifacts[0].path) == round(3.0 * info.fps)
    assert "variable frame rate; re-encoded at a constant" in res.data["notes"][0]
    dubbed = run(
        "add_audio", [tmp_path / "vfr.mp4", tone(tmp_path / "t.wav", 1.0)], video="$a1", audio="$a2"
    )
    assert dubbed.data["video_stream"] == "re-encoded"  # a stream copy would keep the VFR
    info = probe_path(dubbed.artifacts[0].path)
    assert info.has_audio and not info.variable_frame_rate
    assert info.duration == pytest.approx(3.0, abs=0.1)


def test_concat_fits_sizes_and_fills_missing_sound(run: Any, clips: dict[str, Path]) -> None:
    res = run("concat_videos", [clips["clip"], clips["wide"]], videos=["$a1", "$a2"])
    art = res.artifacts[0]
    info = check_video(art, 3.0, 30, 10.0, (96, 64))
    assert info.has_audio and len(art.metadata["sources"]) == 2
    assert any("fitted to 96x64" in n for n in res.data["notes"])
    assert any("silence fills" in n for n in res.data["notes"])
    ((_, frame),) = frames_at(art.path, [2.5])  # the wide clip, letterboxed: black bars
    assert frame[:6].mean() < 20 and frame[30:34, :, 0].mean() > 100
    samples, rate = audio_of(art.path)
    assert len(samples) / rate == pytest.approx(3.0, abs=0.1)
    assert np.abs(samples[: rate * 2 - 800]).mean() > 0.1  # the tone, then silence
    assert np.abs(samples[rate * 2 + 800 :]).max() < 0.01


def test_concat_of_silent_clips_stays_silent(run: Any, clips: dict[str, Path]) -> None:
    res = run("concat_videos", [clips["wide"], clips["wide"]], videos=["$a1", "$a2"])
    assert not check_video(res.artifacts[0], 2.0, 30, 15.0, (128, 64)).has_audio
    assert res.data["notes"] == []


def test_concat_crossfade_overlaps(run: Any, clips: dict[str, Path]) -> None:
    res = run(
        "concat_videos",
        [clips["clip"], clips["clip"], clips["wide"]],
        videos=["$a1", "$a2", "$a3"],
        transition="crossfade",
    )
    # 2 + 2 + 1 s, overlapping 0.5 s, then a third of the 1 s clip.
    assert res.data["overlap"] == pytest.approx(0.5 + 1 / 3)
    check_video(res.artifacts[0], 5 - 0.5 - 1 / 3, 42, 10.0, (96, 64))
    samples, rate = audio_of(res.artifacts[0].path)
    assert len(samples) / rate == pytest.approx(5 - 0.5 - 1 / 3, abs=0.1)


def shaky_clip(path: Path) -> Path:
    """2 s at 15 fps of a 160x120 window on a blotchy texture, jumping up to 8 px a frame."""
    from PIL import Image, ImageFilter

    from tools.ffmpeg import encode_frames

    rng = np.random.default_rng(0)
    blotches = Image.fromarray(rng.integers(0, 255, (50, 60, 3), dtype=np.uint8))
    scene = np.asarray(
        blotches.resize((240, 200), Image.Resampling.NEAREST).filter(ImageFilter.GaussianBlur(2))
    )
    shifts = rng.integers(-8, 9, (30, 2))
    frames = [scene[40 + dy : 160 + dy, 40 + dx : 200 + dx] for dx, dy in shifts]
    encode_frames(frames, path, 15.0, ToolSettings())
    return path


def jitter(path: str | Path) -> float:
    """Mean change between consecutive frames, away from the borders."""
    frames = [f[16:-16, 16:-16].astype(float) for _, f in iter_frames(path)]
    return float(np.mean([np.abs(a - b).mean() for a, b in zip(frames, frames[1:], strict=False)]))


def test_stabilize_with_vidstab_deshake_or_neither(
    run: Any, clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shaky = shaky_clip(tmp_path / "shaky.mp4")
    res = run("stabilize_video", [shaky], video="$a1", smoothing=20)
    assert res.data["filter"] == "vidstab" and res.artifacts[0].metadata["filter"] == "vidstab"
    check_video(res.artifacts[0], 2.0, 30, 15.0, (160, 120))
    assert jitter(res.artifacts[0].path) < jitter(shaky) / 4
    with_sound = run("stabilize_video", [clips["clip"]], video="$a1")
    assert check_video(with_sound.artifacts[0], 2.0, 20, 10.0, (96, 64)).has_audio
    real = ff.has_filter
    monkeypatch.setattr(ff, "has_filter", lambda name: "vidstab" not in name and real(name))
    res = run("stabilize_video", [shaky], video="$a1")
    assert res.data["filter"] == "deshake" and "deshake ran" in res.data["notes"][0]
    check_video(res.artifacts[0], 2.0, 30, 15.0, (160, 120))
    assert jitter(res.artifacts[0].path) < jitter(shaky) * 0.8
    monkeypatch.setattr(ff, "has_filter", lambda name: False)
    with pytest.raises(ToolError, match="neither the vidstab filters nor deshake.*imageio-ffmpeg"):
        run("stabilize_video", [clips["clip"]], video="$a1")
    assert filter_escape("/a b/it's:x,y") == "/a b/it\\\\\\'s\\\\:x\\,y"


def test_add_audio_replace_and_mix(run: Any, clips: dict[str, Path]) -> None:
    replaced = run("add_audio", [clips["clip"], clips["long_tone"]], video="$a1", audio="$a2")
    art = replaced.artifacts[0]
    info = check_video(art, 2.0, 20, 10.0, (96, 64))
    assert info.has_audio and replaced.data["video_stream"] == "copied"
    assert any("cut to the video's 2.00s" in n for n in replaced.data["notes"])
    samples, rate = audio_of(art.path)
    assert len(samples) / rate == pytest.approx(2.0, abs=0.1)
    assert level_at(samples, rate, 880) > 10 * level_at(samples, rate, 440)
    mixed = run(
        "add_audio",
        [clips["clip"], clips["long_tone"]],
        video="$a1",
        audio="$a2",
        mode="mix",
        volume=0.5,
    )
    samples, rate = audio_of(mixed.artifacts[0].path)
    old, new = level_at(samples, rate, 440), level_at(samples, rate, 880)
    assert new == pytest.approx(old / 2, rel=0.2)  # the added tone at half its level
    padded = run(
        "add_audio", [clips["clip"], clips["short_tone"]], video="$a1", audio="$a2", mode="mix"
    )
    samples, rate = audio_of(padded.artifacts[0].path)
    assert len(samples) / rate == pytest.approx(2.0, abs=0.1)
    assert level_at(samples[rate + 800 :], rate, 660) < 0.01  # silence after the 1 s tone
    onto_silent = run(
        "add_audio", [clips["wide"], clips["short_tone"]], video="$a1", audio="$a2", mode="mix"
    )
    assert (
        onto_silent.data["mode"] == "replace"
        and "had no soundtrack" in onto_silent.data["notes"][0]
    )
    assert check_video(onto_silent.artifacts[0], 1.0, 15, 15.0, (128, 64)).has_audio


def test_video_to_gif(run: Any, clips: dict[str, Path]) -> None:
    from PIL import Image

    res = run("video_to_gif", [clips["clip"]], video="$a1", fps=5, width=48)
    art = res.artifacts[0]
    assert art.modality is Modality.IMAGE and art.mime == "image/gif" and art.name == "clip.gif"
    with Image.open(art.path) as gif:
        assert gif.size == (48, 32) and getattr(gif, "n_frames", 1) == 10
        assert gif.info["duration"] == 200
    part = run("video_to_gif", [clips["clip"]], video="$a1", start=0.5, end=1.5, fps=5)
    assert part.data["frames"] == 5 and part.artifacts[0].metadata["duration"] == 1.0
    with Image.open(part.artifacts[0].path) as gif:
        assert gif.size == (96, 64) and getattr(gif, "n_frames", 1) == 5
    with pytest.raises(ToolError, match=r"end \(1.0s\) must be after start \(1.5s\)"):
        run("video_to_gif", [clips["clip"]], video="$a1", start=1.5, end=1)
    few = ToolSettings(video=VideoSettings(max_extract_frames=5))
    with pytest.raises(ToolError, match="10 frames; the limit is 5 .*max_extract_frames"):
        run("video_to_gif", [clips["clip"]], few, video="$a1", fps=5)


def test_slideshow_spreads_the_audio_over_the_images(run: Any, tmp_path: Path) -> None:
    from PIL import Image

    colours = [(220, 30, 30), (30, 200, 40), (40, 60, 220)]
    paths = []
    for i, (size, colour) in enumerate(zip([(96, 64), (64, 64), (120, 40)], colours, strict=True)):
        paths.append(tmp_path / f"img{i}.png")
        Image.new("RGB", size, colour).save(paths[-1])
    audio = tone(tmp_path / "voice.wav", 4.0)
    res = run("slideshow", [*paths, audio], images=["$a1", "$a2", "$a3"], audio="$a4")
    art = res.artifacts[0]
    info = check_video(art, 4.0, 96, 24.0, (96, 64))
    assert info.has_audio and res.data["seconds_per_image"] == pytest.approx(4 / 3)
    samples, rate = audio_of(art.path)
    assert len(samples) / rate == pytest.approx(4.0, abs=0.1)
    centres = [(k + 0.5) * 4 / 3 for k in range(3)]
    for (_, frame), colour in zip(frames_at(art.path, centres), colours, strict=True):
        middle = frame[28:36, 44:52].reshape(-1, 3).mean(axis=0)
        assert np.abs(middle - colour).max() < 20
    ((_, bars),) = frames_at(art.path, [3.5])  # the 3:1 image, letterboxed on the 3:2 canvas
    assert bars[:6].mean() < 10
    ((_, fading),) = frames_at(art.path, [4 / 3])  # halfway through the first crossfade
    halfway = (np.array(colours[0]) + colours[1]) / 2
    assert np.abs(fading[28:36, 44:52].reshape(-1, 3).mean(axis=0) - halfway).max() < 20
    plain = run(
        "slideshow",
        paths[:2],
        images=["$a1", "$a2"],
        seconds_per_image=1,
        transition="none",
        fps=10,
    )
    info = check_video(plain.artifacts[0], 2.0, 20, 10.0, (96, 64))
    assert not info.has_audio
    (_, a), (_, b) = frames_at(plain.artifacts[0].path, [0.9, 1.0])  # a cut, not a fade
    assert np.abs(a[32, 48].astype(int) - colours[0]).max() < 20
    assert np.abs(b[32, 48].astype(int) - colours[1]).max() < 20
    short = ToolSettings(video=VideoSettings(max_output_seconds=5))
    with pytest.raises(ToolError, match="last 6.0s; the limit is 5s"):
        run("slideshow", paths[:2], short, images=["$a1", "$a2"])


def bad_file(tmp_path: Path, kind: str, clip: Path) -> Path:
    path = tmp_path / f"{kind}.mp4"
    whole = clip.read_bytes()
    content = {
        "empty": b"",
        "truncated": whole[: len(whole) // 2],  # the header survives, half the frames do not
        "text": b"just some notes, not a video at all\n" * 30,
    }[kind]
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("empty", "empty.mp4 is an empty \\(0-byte\\) file"),
        ("truncated", "truncated.mp4 is truncated: its header lists 20 frames .* only 10"),
        ("text", "text.mp4 is not a video anymodal can read"),
    ],
)
@pytest.mark.parametrize("tool", ["trim_video", "extract_audio", "video_to_gif"])
def test_bad_inputs_get_clear_errors(
    run: Any, clips: dict[str, Path], tmp_path: Path, kind: str, message: str, tool: str
) -> None:
    with pytest.raises(ToolError, match=message):
        run(tool, [bad_file(tmp_path, kind, clips["clip"])], video="$a1")


def test_oversize_input_names_the_setting(run: Any, clips: dict[str, Path]) -> None:
    small = ToolSettings(video=VideoSettings(max_input_side=64))
    with pytest.raises(ToolError, match="wide.mp4 is 128x64, over the limit of 64 .*input_side"):
        run("concat_videos", [clips["wide"], clips["clip"]], small, videos=["$a1", "$a2"])


@pytest.fixture
def ctx(tmp_path: Path, clips: dict[str, Path]) -> ToolContext:
    ctx = ToolContext(store=ArtifactStore(tmp_path / "store"), workspace=tmp_path)
    ctx.refs["a1"] = [ctx.store.add_file(clips["clip"])]
    return ctx


def stored(ctx: ToolContext) -> list[Path]:
    return sorted(p for p in ctx.store.root.rglob("*") if p.is_file())


def test_a_failed_encode_stores_nothing_and_cleans_up(
    ctx: ToolContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    real = ff.run_ffmpeg

    def crashing(args: list[str], what: str, settings: ToolSettings, **kw: Any) -> None:
        real(args, what, settings, **kw)
        Path(args[-1]).write_bytes(Path(args[-1]).read_bytes()[:200])  # killed mid-write

    monkeypatch.setattr(ff, "run_ffmpeg", crashing)
    before = stored(ctx)
    with pytest.raises(ToolError, match="the written video is broken, so nothing was stored"):
        trim_video(ctx, video="$a1", start=0.5)
    assert stored(ctx) == before and list(temp.iterdir()) == []
    monkeypatch.setattr(ff, "run_ffmpeg", real)
    trim_video(ctx, video="$a1", start=0.5)
    assert len(stored(ctx)) == len(before) + 1 and list(temp.iterdir()) == []


def test_progress_and_cancellation(ctx: ToolContext) -> None:
    events: list[tuple[float, str]] = []
    ctx.progress_fn = lambda fraction, message, preview: events.append((fraction, message))
    trim_video(ctx, video="$a1", end=1.0)
    assert events[0][0] == 0.0 and "trimming clip.mp4" in events[0][1] and events[-1][0] == 1.0
    before = stored(ctx)

    def cancel(fraction: float, message: str, preview: Any) -> None:
        ctx.cancel_event.set()

    ctx.progress_fn = cancel
    with pytest.raises(Cancelled):
        trim_video(ctx, video="$a1", start=0.2)
    assert stored(ctx) == before
