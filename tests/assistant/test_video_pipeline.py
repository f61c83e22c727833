"""The video tools through the whole graph with a scripted planner: three real photos and a
spoken narration (piper, real weights) become a slideshow video whose soundtrack transcribes
back to the narration (faster-whisper, real weights); bad video input fails its step clearly
and the session goes on with everything it had."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assistant import Assistant
from assistant.events import Final, StepFailed
from assistant.planners.llm import LLMPlanner
from tests.assistant.test_planner_llm import ScriptedChat
from tests.conftest import check_event_order
from tests.tools.test_asr import word_error_rate
from tests.video_clips import make_clip
from tools.video_io import frames_at, probe_path

pytest.importorskip("av")
pytest.importorskip("piper")
pytest.importorskip("faster_whisper")

PHOTOS = ("11135.jpg", "13426.jpg", "14095.jpg")
NARRATION = (
    "Here is our trip in three pictures. First the city street, then the police car, "
    "and last the bank on the corner."
)
SLIDESHOW_WITH_NARRATION = [
    {"id": "s1", "tool": "speak", "args": {"text": NARRATION}},
    {
        "id": "s2",
        "tool": "slideshow",
        "args": {"images": ["$a1", "$a2", "$a3"], "audio": "$s1"},
    },
    {"id": "s3", "tool": "transcribe", "args": {"audio": "$s2"}},
]


def thumb(rgb: np.ndarray) -> np.ndarray:
    """A 16x16 grey thumbnail of the picture inside any black letterbox bars, flattened."""
    img = Image.fromarray(rgb).convert("L")
    box = img.point(lambda v: 255 if v > 16 else 0).getbbox() or (0, 0, *img.size)
    return np.asarray(img.crop(box).resize((16, 16)), dtype=np.float64).ravel()


def _bot(reply: str = "Here is your video.") -> Assistant:
    return Assistant(planner=LLMPlanner(ScriptedChat([reply])), device="cpu", dtype="float32")


@pytest.mark.model
def test_a_slideshow_with_a_spoken_narration(media: Path) -> None:
    photos = [media / name for name in PHOTOS]
    events = list(
        _bot().stream(
            "make a video from these three photos with a spoken narration of this text: "
            + NARRATION,
            photos,
            plan=SLIDESHOW_WITH_NARRATION,
        )
    )
    check_event_order(events, {"steps": SLIDESHOW_WITH_NARRATION})
    result = events[-1].result
    assert isinstance(events[-1], Final) and result.ok, result.text

    speech = result.steps["s1"]["data"]["duration"]
    video = result.steps["s2"]["artifacts"][0]
    assert video["modality"] == "video" and video["mime"] == "video/mp4"
    info = probe_path(video["path"])
    assert info.has_audio and info.duration == pytest.approx(speech, abs=0.25)  # nothing cut

    # Each photo is on screen in its third of the video.
    middles = [speech * (i + 0.5) / 3 for i in range(3)]
    shown = [thumb(frame) for _, frame in frames_at(video["path"], middles)]
    wanted = [thumb(np.asarray(Image.open(p).convert("RGB"))) for p in photos]
    for i, got in enumerate(shown):
        scores = [np.corrcoef(got, w)[0, 1] for w in wanted]
        assert int(np.argmax(scores)) == i and scores[i] > 0.9, scores

    # The soundtrack is the narration: it transcribes back to the text.
    heard = result.steps["s3"]["data"]["text"]
    assert word_error_rate(NARRATION, heard) < 0.25, heard


def test_bad_video_fails_clearly_and_the_session_goes_on(tmp_path: Path) -> None:
    bot = _bot("ok")
    clip = make_clip(tmp_path / "clip.mp4", 2.0, 10.0)
    plan = [{"id": "s1", "tool": "extract_audio", "args": {"video": "$a1"}}]
    first = bot.run("take the sound out of this video", [clip], plan=plan)
    assert first.ok, first.text
    sound = first.artifacts[0]
    assert sound.modality.value == "audio" and sound.metadata["duration"] == pytest.approx(2.0, 0.1)

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clip.read_bytes()[:300])
    events = list(bot.stream("and this one", [broken], session=first.session, plan=plan))
    failed = [e for e in events if isinstance(e, StepFailed)]
    assert failed and "truncated or corrupt" in failed[0].error

    silent = make_clip(tmp_path / "silent.mp4", 1.0, 10.0, audio=False)
    events = list(bot.stream("and this one", [silent], session=first.session, plan=plan))
    failed = [e for e in events if isinstance(e, StepFailed)]
    assert failed and "has no audio track" in failed[0].error

    again = bot.run("once more", [clip], session=first.session, plan=plan)
    assert again.ok and again.session == first.session
    assert again.artifacts[0].id == sound.id  # the same soundtrack, kept in the store
    assert Path(sound.path).is_file()
    assert [m["role"] for m in bot.messages(first.session)] == ["user", "assistant"] * 4


def test_the_planner_sees_a_videos_facts(tmp_path: Path) -> None:
    from assistant.api import attach
    from assistant.planners.base import PlanRequest
    from prompts import render
    from tools import ArtifactStore

    clips = [
        make_clip(tmp_path / "talk.mp4", 2.0, 10.0, (96, 64)),
        make_clip(tmp_path / "silent.mp4", 1.0, 10.0, (64, 48), audio=False),
    ]
    atts = attach(ArtifactStore(tmp_path / "store"), clips)
    assert atts[0].metadata["fps"] == 10.0 and atts[0].metadata["has_audio"] is True
    text = render("planner_user.j2", r=PlanRequest("describe these", atts, []))
    assert "$a1: talk.mp4 (video, 96x64, 2.0 s)" in text
    assert "$a2: silent.mp4 (video, 64x48, 1.0 s, no audio track)" in text
