"""The audio tools through the whole graph, on real weights (the offline packs): a scripted plan
transcribes a real recording (faster-whisper tiny.en), summarises the transcript, speaks the
summary (piper, joe voice) and puts the spoken summary after the original; bad audio input
fails its step clearly and the session goes on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from assistant import Assistant
from assistant.events import Final, StepFailed, StepProgress
from assistant.planners.llm import LLMPlanner
from tests.assistant.test_planner_llm import ScriptedChat
from tests.conftest import check_event_order

pytest.importorskip("faster_whisper")
pytest.importorskip("piper")

SUMMARY = "A man remembers an old story."

TRANSCRIBE_SUMMARISE_SPEAK_JOIN = [
    {"id": "s1", "tool": "transcribe", "args": {"audio": "$a1"}},
    {"id": "s2", "tool": "summarize_text", "args": {"text": "$s1"}},
    {"id": "s3", "tool": "speak", "args": {"text": "$s2"}},
    {"id": "s4", "tool": "concat_audio", "args": {"audios": ["$a1", "$s3"], "gap": 0.5}},
]


@pytest.mark.model
def test_transcribe_summarise_speak_and_join(media: Path) -> None:
    recording = media / "1284-1180-0003.flac"
    chat = ScriptedChat([SUMMARY])
    bot = Assistant(planner=LLMPlanner(chat), device="cpu", dtype="float32")
    events = list(
        bot.stream(
            "transcribe this recording, speak a one-line summary, put the summary audio "
            "after the original",
            [recording],
            plan=TRANSCRIBE_SUMMARISE_SPEAK_JOIN,
        )
    )
    check_event_order(events, {"steps": TRANSCRIBE_SUMMARISE_SPEAK_JOIN})
    result = events[-1].result
    assert isinstance(events[-1], Final) and result.ok, result.text

    transcript = result.steps["s1"]["data"]["text"]
    assert len(transcript.split()) >= 5
    asked = chat.calls[0]["messages"][1]["content"]
    assert transcript.strip() in asked  # the summary was asked of the transcript itself
    assert result.steps["s2"]["artifacts"][0]["path"]
    reply_prompt = chat.calls[-1]["messages"][1]["content"]
    assert transcript.strip() in reply_prompt and SUMMARY in reply_prompt  # quotable, not guessed

    spoken = result.steps["s3"]["data"]
    assert spoken["backend"] == "piper" and spoken["duration"] > 1.0
    joined = result.steps["s4"]["artifacts"][0]
    info = sf.info(joined["path"])
    original = sf.info(recording).duration
    assert info.samplerate == max(16000, spoken["sample_rate"]) and info.channels == 1
    assert info.duration == pytest.approx(original + 0.5 + spoken["duration"], abs=0.05)
    data, rate = sf.read(joined["path"])
    tail = data[round((original + 0.5) * rate) :]
    assert np.sqrt(np.mean(tail**2)) > 0.01  # the summary is really there, after the original
    assert any(isinstance(e, StepProgress) and e.step == "s1" for e in events)


@pytest.mark.model
def test_bad_audio_fails_clearly_and_the_session_goes_on(tmp_path: Path, media: Path) -> None:
    bot = Assistant(planner=LLMPlanner(ScriptedChat(["ok"])), device="cpu", dtype="float32")
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16000 * 3, dtype=np.float32), 16000)
    plan = [{"id": "s1", "tool": "transcribe", "args": {"audio": "$a1"}}]
    first = bot.run("transcribe this", [silence], plan=plan)
    assert not first.ok and "no speech found" in first.text

    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"fLaC" + b"\0" * 10)  # a header and nothing else
    events = list(bot.stream("and this", [empty], session=first.session, plan=plan))
    failed = [e for e in events if isinstance(e, StepFailed)]
    assert failed and "not audio anymodal can decode" in failed[0].error

    again = bot.run(
        "now a real one", [media / "237-134500-0000.flac"], session=first.session, plan=plan
    )
    assert again.ok and again.session == first.session
    assert again.artifacts[0].read_text().strip()
    messages = bot.messages(first.session)
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
