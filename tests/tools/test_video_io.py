"""tools/video_io: probing, decoding by timestamp, encoding, storing only valid video, and the
errors every video tool shares (empty, corrupt, truncated, not a video, over the limits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.video_clips import make_clip, make_vfr_clip, tone
from tools import ArtifactStore, ToolContext, ToolSettings
from tools.artifact import Modality
from tools.errors import ToolError
from tools.facts import probe as facts_of
from tools.ffmpeg import encode_frames, has_filter, run_ffmpeg
from tools.settings import VideoSettings
from tools.video_io import (
    count_frames,
    frames_at,
    iter_frames,
    probe,
    probe_path,
    require_audio,
    store_video,
    workdir,
)

pytest.importorskip("av")


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(store=ArtifactStore(tmp_path / "store"), workspace=tmp_path)


def test_probe_reads_the_headers(tmp_path: Path) -> None:
    info = probe_path(make_clip(tmp_path / "c.mp4", 2.0, 12.0, (96, 64)))
    assert (info.width, info.height, info.fps, info.frames) == (96, 64, 12.0, 24)
    assert info.duration == pytest.approx(2.0) and info.codec == "h264"
    assert info.has_audio and info.audio_codec == "aac" and info.sample_rate == 16000
    assert not info.variable_frame_rate
    silent = probe_path(make_clip(tmp_path / "s.mp4", 1.0, 8.0, audio=False))
    assert not silent.has_audio and "sample_rate" not in silent.to_dict()


def test_variable_frame_rate_is_told_and_sampled_by_time(tmp_path: Path) -> None:
    path = make_vfr_clip(tmp_path / "vfr.mp4")
    info = probe_path(path)
    assert info.variable_frame_rate and count_frames(path) == 60
    times = [t for t, _ in iter_frames(path)]
    assert np.diff(times[:15]) == pytest.approx([0.1] * 14, abs=1e-3)
    assert np.diff(times[-10:]) == pytest.approx([1 / 30] * 9, abs=1e-3)
    sampled = [t for t, _ in iter_frames(path, fps=5)]
    assert np.diff(sampled) == pytest.approx([0.2] * (len(sampled) - 1), abs=0.02)


def test_frames_are_decoded_small_and_at_given_times(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "c.mp4", 2.0, 10.0, (96, 64), scenes=2)
    small = [img.shape for _, img in iter_frames(path, max_side=48)]
    assert len(small) == 20 and set(small) == {(32, 48, 3)}
    got = frames_at(path, [0.0, 0.55, 1.5, 9.0])
    assert [round(t, 2) for t, _ in got] == [0.0, 0.5, 1.5, 1.9]  # the frame on screen then
    first, second = got[0][1], got[2][1]
    assert first[2, 2, 0] > 150 and second[2, 2, 1] > 120  # red scene, then green
    span = [round(t, 2) for t, _ in iter_frames(path, start=0.5, end=1.0)]
    assert span == [0.5, 0.6, 0.7, 0.8, 0.9]


def test_encode_with_audio_odd_sizes_and_store(tmp_path: Path, ctx: ToolContext) -> None:
    frames = [np.full((63, 81, 3), i * 20, np.uint8) for i in range(10)]
    out = tmp_path / "odd.mp4"
    assert (
        encode_frames(frames, out, 5.0, ToolSettings(), audio=tone(tmp_path / "t.wav", 3.0)) == 10
    )
    art, info = store_video(ctx, out, "odd.mp4", prompt="grey ramp")
    assert art.modality is Modality.VIDEO and art.mime == "video/mp4"
    assert (info.width, info.height) == (80, 62)  # even sides for yuv420p
    assert info.has_audio and info.duration == pytest.approx(2.0, abs=0.1)  # the shorter
    assert art.metadata["frames"] == 10 and art.metadata["prompt"] == "grey ramp"
    assert facts_of(art)["fps"] == 5.0


def test_frames_of_different_sizes_are_refused(tmp_path: Path) -> None:
    frames = [np.zeros((32, 32, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)]
    with pytest.raises(ToolError, match="frame 2 is 16x16, not 32x32"):
        encode_frames(frames, tmp_path / "x.mp4", 5.0, ToolSettings())
    with pytest.raises(ToolError, match="no frames"):
        encode_frames([], tmp_path / "y.mp4", 5.0, ToolSettings())


def test_a_broken_file_is_never_stored(tmp_path: Path, ctx: ToolContext) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(make_clip(tmp_path / "c.mp4").read_bytes()[:300])
    with pytest.raises(ToolError, match="the written video is broken, so nothing was stored"):
        store_video(ctx, broken, "broken.mp4")
    assert not ctx.store.root.exists() or not any(ctx.store.root.rglob("*.mp4"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty \\(0-byte\\) file"),
        (b"\x00\x00\x00\x18ftypmp42" + b"x" * 200, "not a video anymodal can read"),
        (b"just some text, not a video at all\n" * 20, "not a video anymodal can read"),
    ],
)
def test_bad_files_get_clear_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(ToolError, match=message):
        probe_path(path)


def test_truncated_and_audio_only_files(tmp_path: Path, ctx: ToolContext) -> None:
    whole = make_clip(tmp_path / "c.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[:300])  # cut inside the headers
    with pytest.raises(ToolError, match="no video stream .*truncated or corrupt"):
        probe_path(cut)
    cut.write_bytes(whole[: len(whole) // 2])  # the header is whole, half the frames gone
    with pytest.raises(ToolError, match="is truncated: its header lists 20 frames"):
        probe_path(cut)
    wav = ctx.store.add_file(tone(tmp_path / "t.wav", 1.0))
    with pytest.raises(ToolError, match=r"no video stream \(streams: audio\): it is not a video"):
        probe(wav, ToolSettings())
    assert "unreadable" in facts_of(ctx.store.add_file(cut, name="cut.mp4"))


def test_limits_name_their_setting(tmp_path: Path, ctx: ToolContext) -> None:
    art = ctx.store.add_file(make_clip(tmp_path / "c.mp4", 2.0, size=(96, 64)))
    small = ToolSettings(video=VideoSettings(max_input_side=64))
    with pytest.raises(ToolError, match="96x64, over the limit of 64.*max_input_side"):
        probe(art, small)
    short = ToolSettings(video=VideoSettings(max_input_seconds=1.0))
    with pytest.raises(ToolError, match="tools.video.max_input_seconds"):
        probe(art, short)
    silent = ctx.store.add_file(make_clip(tmp_path / "s.mp4", audio=False))
    with pytest.raises(ToolError, match="has no audio track, so there is nothing to transcribe"):
        require_audio(silent, probe(silent, ToolSettings()), "transcribe")


def test_ffmpeg_errors_and_workdir(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="probing failed in ffmpeg: .*No such file"):
        run_ffmpeg(["-i", str(tmp_path / "missing.mp4"), "x.mp4"], "probing", ToolSettings())
    with workdir() as folder:
        (folder / "frame.png").write_bytes(b"x")
    assert not folder.exists()
    assert has_filter("scale") and not has_filter("no-such-filter")


def test_the_decoder_can_skip_frames_and_seek(tmp_path: Path) -> None:
    from tools.video_io import seek_frames

    path = make_clip(tmp_path / "c.mp4", 4.0, 10.0, scenes=2)
    every = [t for t, _ in iter_frames(path)]
    keys = [t for t, _ in iter_frames(path, skip="NONKEY")]
    assert len(every) == 40 and keys[0] == 0.0 and len(keys) < len(every)
    sought = seek_frames(path, [0.25, 3.5], max_side=48)
    assert [round(t, 2) for t, _ in sought] == [0.2, 3.5]
    assert sought[1][1].shape == (32, 48, 3) and sought[1][1][2, 2, 1] > 120  # the green scene
