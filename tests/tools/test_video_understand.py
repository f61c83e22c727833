"""describe_video and ask_video: keyframe selection on synthetic clips with known cuts, the
timeline on a real slideshow (photos over a LibriSpeech recording) with the real faster-whisper
pack and a tiny random-weight LLaVA loaded through ``from_pretrained``, and the answers with a
scripted language model and without one. Random weights write gibberish, so captions are checked
for where they come from and how many there are, not for what they say."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from prompts import render
from tests.video_clips import COLOURS, frame, make_clip
from tools import ArtifactStore, Cancelled, Modality, ModelManager, ToolContext, ToolError
from tools import keyframes as kf
from tools.settings import AudioSettings, ImageSettings, ToolSettings
from tools.timeline import SPEECH_CHARS, shown_speech
from tools.video_io import probe_path, seek_frames
from tools.video_understand import ask_video, describe_video, mentioned_times

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("av")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def models(model_cache: Path) -> ModelManager:
    """One model manager for the session, so the tiny LLaVA and Whisper load once."""
    return ModelManager(model_cache, device="cpu", dtype="float32")


class Ctx:
    """A tool context with the tiny LLaVA as the vision model, recording progress, and an
    optional scripted language model that records the messages it gets."""

    def __init__(
        self,
        tmp_path: Path,
        models: Any,
        vlm: Path,
        answer: str | None = None,
        audio: AudioSettings | None = None,
    ):
        self.events: list[tuple[float, str]] = []
        self.prompts: list[list[dict[str, Any]]] = []
        self.answer = answer
        self.ctx = ToolContext(
            store=ArtifactStore(tmp_path / "store"),
            workspace=tmp_path,
            settings=ToolSettings(
                image=ImageSettings(vision_language=str(vlm)),
                audio=audio or AudioSettings(),
            ),
            models=models,
            progress_fn=lambda f, m, p: self.events.append((f, m)),
            llm=self.llm if answer is not None else None,
            step_id="s1",
        )

    def llm(self, messages: list[dict[str, Any]], on_token: Any) -> str:
        self.prompts.append(messages)
        return self.answer or ""

    def attach(self, path: Path) -> str:
        ref = f"a{len(self.ctx.refs) + 1}"
        self.ctx.refs[ref] = [self.ctx.store.add_file(path)]
        return "$" + ref


def keyframes_of(path: Path, budget: int, threshold: float = 0.3) -> list[kf.Keyframe]:
    """Scan and choose, as describe_video does."""
    info = probe_path(path)
    cands = kf.scan(path, info.duration, skip_nonref=kf.may_skip(info.fps, False))
    gap = max(cands.interval, info.duration / (4 * budget))
    return kf.choose(cands.times, cands.scores, info.duration, budget, threshold, gap)


def av_clip(path: Path, times: list[float], cut: float, gop: int = 0) -> Path:
    """An H.264 clip written frame by frame with PyAV: frames at ``times`` (seconds, any
    spacing), red until ``cut`` and blue from it; no B-frames; a keyframe every ``gop``
    frames (0: x264's default)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"bframes": "0"})
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        if gop:
            stream.codec_context.gop_size = gop
        for i, t in enumerate(times):
            rgb = frame(i, len(times), (96, 64), COLOURS[0] if t < cut else COLOURS[2])
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts, f.time_base = round(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def vfr_clip(path: Path) -> list[float]:
    """A clip whose frame rate changes: 20 fps for 1 s, 2 fps to 3 s, then 30 fps to 4 s, with
    a cut from red to blue at 3.0 s. Returns the frame times."""
    times = [i / 20 for i in range(20)] + [1 + i / 2 for i in range(4)]
    times += [3 + i / 30 for i in range(30)]
    av_clip(path, times, cut=3.0)
    return times


# --- keyframe selection -----------------------------------------------------------------------


def test_cuts_are_found_at_scene_boundaries(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", seconds=9, fps=20, scenes=3, audio=False)
    chosen = keyframes_of(clip, budget=12)
    cuts = [k for k in chosen if k.reason == kf.SCENE]
    assert len(cuts) == 2
    for k, boundary in zip(cuts, (3.0, 6.0), strict=True):
        assert boundary <= k.time <= boundary + 0.5 + 0.1  # the first candidate after the cut
        assert k.score is not None and k.score > 0.5
    uniform = [k.time for k in chosen if k.reason == kf.UNIFORM]
    assert uniform == pytest.approx([1.125, 7.875])  # 3.375 and 5.625 lie too near the cuts


def test_choose_keeps_the_budget_dropping_uniform_frames_near_cuts_first() -> None:
    times = [i * 0.5 for i in range(41)]  # 20 s of candidates
    scores = [0.0] * 41
    for i, s in ((5, 0.9), (20, 0.4), (30, 0.6), (31, 0.95)):  # 2.5 s, 10 s, 15 s, 15.5 s
        scores[i] = s
    full = kf.choose(times, scores, 20.0, 10, 0.3, 1.0)
    assert [k.time for k in full if k.reason == kf.SCENE] == [2.5, 10.0, 15.5]  # 15.0 weaker
    assert len(full) == 10
    # uniform times are 1, 3, ... 19: 3 and 15 lie within 1 s of a cut, then 9 is the nearest
    assert [k.time for k in full if k.reason == kf.UNIFORM] == [1, 5, 7, 11, 13, 17, 19]
    two = kf.choose(times, scores, 20.0, 2, 0.3, 1.0)
    assert [(k.time, k.reason) for k in two] == [(2.5, kf.SCENE), (15.5, kf.SCENE)]
    assert kf.choose(times, scores, 20.0, 10, 0.3, 1.0) == full  # deterministic


def test_choose_keeps_coverage_even_when_uniform_frames_tie() -> None:
    """Every uniform time lies 2.5 s from a cut: the ones dropped are those whose going
    leaves the smallest gap, so each 10 s scene keeps two frames."""
    times = [i * 0.5 for i in range(121)]
    scores = [0.6 if t in (10, 20, 30, 40, 50) else 0.05 for t in times]
    chosen = kf.choose(times, scores, 60.0, 12, 0.3, 1.25)
    assert [k.time for k in chosen] == [2.5, 10, 17.5, 20, 27.5, 30, 37.5, 40, 47.5, 50, 52.5, 57.5]


def test_budget_and_uniform_coverage_on_a_clip(tmp_path: Path) -> None:
    still = make_clip(tmp_path / "still.mp4", seconds=20, fps=10, scenes=1, audio=False)
    chosen = keyframes_of(still, budget=4)
    assert [(k.time, k.reason) for k in chosen] == [
        (2.5, kf.UNIFORM),
        (7.5, kf.UNIFORM),
        (12.5, kf.UNIFORM),
        (17.5, kf.UNIFORM),
    ]
    busy = make_clip(tmp_path / "busy.mp4", seconds=20, fps=10, scenes=8, audio=False)
    first = keyframes_of(busy, budget=5)
    assert len(first) == 5 and all(k.reason == kf.SCENE for k in first)  # 7 cuts, 5 kept
    assert keyframes_of(busy, budget=5) == first
    assert len(keyframes_of(busy, budget=12)) == 12


def test_very_short_clip(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "one.mp4", seconds=0.1, fps=10, audio=False)
    assert probe_path(clip).frames == 1
    chosen = keyframes_of(clip, budget=12)
    assert [(k.time, k.reason) for k in chosen] == [(0.05, kf.UNIFORM)]
    [(t, rgb)] = seek_frames(clip, [0.05], max_side=48)
    assert t == 0.0 and rgb.shape == (32, 48, 3)


def test_variable_frame_rate_goes_by_timestamps(tmp_path: Path) -> None:
    clip = tmp_path / "vfr.mp4"
    times = vfr_clip(clip)
    info = probe_path(clip)
    assert info.variable_frame_rate
    cands = kf.scan(clip, info.duration, skip_nonref=kf.may_skip(info.fps, True))
    assert cands.times == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5], abs=1e-3)
    chosen = kf.choose(cands.times, cands.scores, info.duration, 4, 0.3, 0.5)
    assert [k.time for k in chosen if k.reason == kf.SCENE] == pytest.approx([3.0], abs=1e-3)
    grabbed = seek_frames(clip, [0.52, 1.9, 3.2], max_side=64)
    assert [t for t, _ in grabbed] == pytest.approx([0.5, 1.5, 3.2], abs=1e-3)
    assert all(min(abs(t - s) for s in times) < 1e-3 for t, _ in grabbed)


def test_long_videos_decode_keyframes_only(tmp_path: Path) -> None:
    """Candidates 4 s apart come from the codec's keyframes alone; a file with too few
    keyframes is decoded frame by frame instead."""
    times = [i / 10 for i in range(200)]
    keyed = av_clip(tmp_path / "keyed.mp4", times, cut=10.0, gop=20)  # a keyframe every 2 s
    cands = kf.scan(keyed, 20.0, interval=4.0)
    assert cands.keyframes_only and cands.times == pytest.approx([0, 4, 8, 12, 16])
    assert [s > 0.3 for s in cands.scores] == [False, False, False, True, False]
    still = make_clip(tmp_path / "still.mp4", seconds=20, fps=10, scenes=1, audio=False)
    cands = kf.scan(still, 20.0, interval=4.0)  # one keyframe in 20 s
    assert not cands.keyframes_only and cands.times == pytest.approx([0, 4, 8, 12, 16])


def test_grab_seeks_and_matches_a_full_decode(tmp_path: Path) -> None:
    from tools.video_io import frames_at

    clip = make_clip(tmp_path / "c.mp4", seconds=12, fps=10, scenes=4, audio=False)
    wanted = [0.0, 0.35, 5.0, 5.1, 11.95, 30.0]
    fast, slow = seek_frames(clip, wanted), frames_at(clip, wanted)
    assert (
        [t for t, _ in fast]
        == [t for t, _ in slow]
        == pytest.approx([0.0, 0.3, 5.0, 5.1, 11.9, 11.9])
    )
    assert all((a == b).all() for (_, a), (_, b) in zip(fast, slow, strict=True))
    near = seek_frames(clip, wanted, skip_nonref=True)  # a reference frame at most 2 frames before
    assert all(w - 0.25 <= t <= w + 1e-6 for w, (t, _) in zip(wanted[:5], near, strict=False))


# --- helpers ----------------------------------------------------------------------------------


def test_mentioned_times() -> None:
    assert mentioned_times("what is shown at 0:30 and at 1:02:03?") == [30.0, 3723.0]
    assert mentioned_times("after 12 s, or 2.5 seconds, or 2 minutes") == [12.0, 2.5, 120.0]
    assert mentioned_times("how many dogs are there?") == []


def test_long_transcripts_are_shortened_evenly() -> None:
    segments = [
        {"start": i, "end": i + 1.0, "text": f"segment {i} " + "word " * 20} for i in range(90)
    ]
    notes: list[str] = []
    shown = shown_speech(segments, notes)
    assert sum(len(s["text"]) for s in shown) <= SPEECH_CHARS
    assert shown[0]["start"] == 0 and shown[-1]["start"] == 89  # the end is kept too
    assert notes and f"of {len(segments)} speech segments shown" in notes[0]


# --- the tools on synthetic clips -------------------------------------------------------------


def test_no_audio_track(tmp_path: Path, models: ModelManager, tiny_llava: Path) -> None:
    c = Ctx(tmp_path, models, tiny_llava)
    clip = make_clip(tmp_path / "silent.mp4", seconds=4, fps=10, scenes=2, audio=False)
    result = describe_video(c.ctx, video=c.attach(clip), detail="detailed")
    text = result.artifacts[0].read_text()
    assert "audio: no audio track" in text.splitlines()[0] and "(no audio track)" in text
    assert result.data["transcript"]["status"] == "no audio track"
    assert result.data["models"] == {"vision": str(tiny_llava), "speech": None}
    frames = [e for e in result.data["timeline"] if e["kind"] == "frame"]
    assert len(frames) == len(result.artifacts) - 1 == len(result.data["keyframes"])
    assert all(e["text"] and f"frame: {e['text']}" in text for e in frames)
    assert result.data["scene_changes"] and 2.0 <= result.data["scene_changes"][0] <= 2.6
    image = result.artifacts[1]
    assert image.modality is Modality.IMAGE and image.name.startswith("silent-t")
    assert image.metadata["source"] == result.artifacts[0].metadata["source"]
    fractions = [f for f, _ in c.events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    for i in range(1, len(frames) + 1):
        assert any(f"captioning frame {i}/{len(frames)}" in m for _, m in c.events)


def test_variable_frame_rate_is_said(
    tmp_path: Path, models: ModelManager, tiny_llava: Path
) -> None:
    c = Ctx(tmp_path, models, tiny_llava, answer="A red square turns blue.")
    clip = tmp_path / "vfr.mp4"
    times = vfr_clip(clip)
    result = describe_video(c.ctx, video=c.attach(clip))
    lines = result.artifacts[0].read_text().splitlines()
    assert "fps, variable frame rate; audio: no audio track" in lines[0]
    assert lines[1] == "Summary: A red square turns blue."  # from the language model
    [messages] = c.prompts
    assert messages[0]["content"] == render("describe_video_summary.j2").strip()
    assert messages[1]["content"].startswith(lines[0]) and "] frame: " in messages[1]["content"]
    assert "variable frame rate" in result.data["notes"][0]
    assert all(min(abs(k["time"] - t) for t in times) < 1e-3 for k in result.data["keyframes"])


def test_missing_recognizer_is_a_note(
    tmp_path: Path, models: ModelManager, tiny_llava: Path
) -> None:
    c = Ctx(tmp_path, models, tiny_llava, audio=AudioSettings(recognizer="whisper-tiny"))
    clip = make_clip(tmp_path / "tone.mp4", seconds=2, fps=10)
    result = describe_video(c.ctx, video=c.attach(clip), max_frames=2)
    text = result.artifacts[0].read_text()
    assert "audio: yes, not transcribed (see notes)" in text
    assert "whisper-tiny" in result.data["notes"][0] and "Notes:" in text
    assert len(result.data["keyframes"]) == 1  # 2 s: one uniform frame, no cut


def test_no_vision_model_is_a_note(tmp_path: Path, models: ModelManager) -> None:
    c = Ctx(tmp_path, models, tmp_path / "no-such-vlm")
    clip = make_clip(tmp_path / "silent.mp4", seconds=4, fps=10, scenes=2, audio=False)
    result = describe_video(c.ctx, video=c.attach(clip))
    text = result.artifacts[0].read_text()
    assert "frame: (not captioned)" in text and "no-such-vlm" in result.data["notes"][0]
    assert result.data["models"]["vision"] is None
    assert len(result.artifacts) == 1 + len(result.data["keyframes"]) >= 2  # frames still there


@pytest.mark.model
def test_a_soundtrack_without_speech(
    tmp_path: Path, models: ModelManager, tiny_llava: Path
) -> None:
    c = Ctx(tmp_path, models, tiny_llava)
    clip = make_clip(tmp_path / "tone.mp4", seconds=2, fps=10)  # a 440 Hz tone
    result = describe_video(c.ctx, video=c.attach(clip))
    assert "audio: yes, no speech found" in result.artifacts[0].read_text()
    assert result.data["transcript"]["status"] == "no speech"
    assert result.data["notes"] == ["the soundtrack holds no speech"]


def test_cancelled_between_frames(tmp_path: Path, models: ModelManager, tiny_llava: Path) -> None:
    c = Ctx(tmp_path, models, tiny_llava)
    clip = make_clip(tmp_path / "c.mp4", seconds=6, fps=10, scenes=3, audio=False)

    def progress(fraction: float, message: str, preview: Any) -> None:
        c.events.append((fraction, message))
        if "captioning frame 2/" in message:
            c.ctx.cancel_event.set()

    c.ctx.progress_fn = progress
    with pytest.raises(Cancelled):
        describe_video(c.ctx, video=c.attach(clip))
    assert not any("captioning frame 3/" in m for _, m in c.events)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "empty (0-byte) file"),
        (b"this is not a video at all" * 40, "not a video anymodal can read"),
        ("half", "is truncated: its header lists 20 frames"),
        ("head", "not a video anymodal can read (End of file)"),
    ],
)
def test_bad_video(run: Any, tmp_path: Path, content: Any, error: str) -> None:
    path = tmp_path / "bad.mp4"
    if content in ("half", "head"):  # cut in the middle of the frames, or of the header
        whole = make_clip(tmp_path / "whole.mp4", seconds=2).read_bytes()
        content = whole[: len(whole) // 2] if content == "half" else whole[:600]
    path.write_bytes(content)
    for tool, args in (("describe_video", {}), ("ask_video", {"question": "what happens?"})):
        with pytest.raises(ToolError, match=re.escape(error)):
            run(tool, [path], video="$a1", **args)


def test_blank_question_is_refused(run: Any, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", seconds=1)
    with pytest.raises(ToolError, match="question"):
        run("ask_video", [clip], video="$a1", question="   ")


def test_ask_with_a_language_model(tmp_path: Path, models: ModelManager, tiny_llava: Path) -> None:
    c = Ctx(tmp_path, models, tiny_llava, answer="It turns blue at 00:04.")
    clip = make_clip(tmp_path / "colours.mp4", seconds=6, fps=10, scenes=3, audio=False)
    result = ask_video(c.ctx, video=c.attach(clip), question="When does the colour change?")
    [messages] = c.prompts
    prompt = messages[-1]["content"]
    assert "Question: When does the colour change?" in prompt
    assert prompt.startswith("Video colours.mp4: 6.0 s, 96x64, 10 fps; audio: no audio track")
    assert prompt.count("] frame: ") == len(result.data["keyframes"]) >= 3
    assert result.artifacts[0].read_text() == "It turns blue at 00:04."
    assert result.data["answered_by"] == "language model"
    [used] = result.data["evidence"]["frames"]
    assert abs(used["time"] - 4.0) < 0.6 and result.artifacts[1].id == used["image"]


def test_ask_without_a_language_model(
    tmp_path: Path, models: ModelManager, tiny_llava: Path
) -> None:
    c = Ctx(tmp_path, models, tiny_llava)
    clip = make_clip(tmp_path / "colours.mp4", seconds=6, fps=10, scenes=3, audio=False)
    ref = c.attach(clip)
    result = ask_video(c.ctx, video=ref, question="What colour is it at 0:05?")
    [used] = result.data["evidence"]["frames"]
    assert abs(used["time"] - 5.0) < 0.6
    text = result.artifacts[0].read_text()
    assert text.startswith(f"[00:0{int(used['time'])}.") and "] frame: " in text
    assert result.data["answered_by"] == f"vision-language model {tiny_llava}"
    assert "no language model" in result.data["notes"][-1]
    assert all(e["text"] == "" for e in result.data["timeline"])  # frames were not captioned
    spread = ask_video(c.ctx, video=ref, question="What happens?")
    times = [f["time"] for f in spread.data["evidence"]["frames"]]
    assert len(times) == 3 and times == sorted(times)


# --- real media -------------------------------------------------------------------------------


def slideshow_video(tmp_path: Path, media: Path) -> Path:
    """Three real photos over a LibriSpeech recording, made by the slideshow tool (the
    recording is spread over the photos, which change without a transition)."""
    from tools import Registry

    ctx = ToolContext(store=ArtifactStore(tmp_path / "made"), workspace=tmp_path)
    files = [media / n for n in ("11135.jpg", "13426.jpg", "14095.jpg", "1284-1180-0003.flac")]
    for i, f in enumerate(files, 1):
        ctx.refs[f"a{i}"] = [ctx.store.add_file(f)]
    made = Registry.discover().get("slideshow")(
        ctx, images=["$a1", "$a2", "$a3"], audio="$a4", transition="none"
    )
    video = tmp_path / "slideshow.mp4"
    video.write_bytes(Path(made.artifacts[0].path).read_bytes())
    return video


@pytest.mark.model
def test_describes_a_real_slideshow(
    tmp_path: Path, media: Path, models: ModelManager, tiny_llava: Path
) -> None:
    from tests.tools.test_asr import LIBRISPEECH, word_error_rate  # (skips without whisper)

    video = slideshow_video(tmp_path, media)
    info = probe_path(video)
    c = Ctx(tmp_path, models, tiny_llava)
    result = describe_video(c.ctx, video=c.attach(video))
    data, text = result.data, result.artifacts[0].read_text()
    assert data["models"] == {"vision": str(tiny_llava), "speech": "faster-whisper-tiny.en"}
    transcript = data["transcript"]
    assert transcript["status"] == "speech" and transcript["language"] == "en"
    assert word_error_rate(LIBRISPEECH["1284-1180-0003"], transcript["text"]) <= 0.2
    speech = [e for e in data["timeline"] if e["kind"] == "speech"]
    assert speech and all(0 <= e["start"] <= e["end"] <= info.duration + 0.1 for e in speech)
    assert all(f"speech: {e['text']}" in text for e in speech)
    frames = [e for e in data["timeline"] if e["kind"] == "frame"]
    images = result.artifacts[1:]
    assert len(frames) == len(images) == len(data["keyframes"]) >= 3
    for entry, image in zip(frames, images, strict=True):
        assert entry["text"] and entry["image"] == image.id
        assert 0 <= entry["start"] < info.duration and image.metadata["time"] == entry["start"]
    per = info.duration / 3
    cuts = data["scene_changes"]
    assert len(cuts) == 2
    for cut, boundary in zip(cuts, (per, 2 * per), strict=True):
        assert boundary - 0.05 <= cut <= boundary + 0.6
    first = text.splitlines()[0]
    assert (
        first.startswith("Video slideshow.mp4: 4.8 s, ")
        and "audio: yes, speech in English" in first
    )
    assert len(text) < 4000

    answer = ask_video(c.ctx, video="$a1", question="Which land did he wish to explore?")
    quoted = answer.data["evidence"]["speech"]
    assert quoted and "explore" in answer.artifacts[0].read_text().lower()
