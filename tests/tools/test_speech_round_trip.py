"""Real weights end to end: piper (joe voice) says a sentence, faster-whisper tiny.en hears it
back, through the tools and the model manager, as a user's plan would run them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools.test_asr import word_error_rate
from tools import ArtifactStore, ModelManager, ToolContext
from tools.asr import transcribe
from tools.tts import speak

pytest.importorskip("faster_whisper")
pytest.importorskip("piper")

SENTENCES = [
    # 15 words each
    "The farmer watches the quick brown fox jump over the lazy dog near the barn.",
    "Please remember to water the tomato plants in the garden before you leave for work.",
]


@pytest.mark.model
@pytest.mark.parametrize("sentence", SENTENCES)
def test_speak_then_transcribe_gets_the_words_back(tmp_path: Path, sentence: str) -> None:
    assert len(sentence.split()) == 15
    ctx = ToolContext(
        store=ArtifactStore(tmp_path / "store"), workspace=tmp_path, models=ModelManager()
    )
    spoken = speak(ctx, text=sentence)
    assert spoken.data["backend"] == "piper" and spoken.data["voice"]
    ctx.refs["s1"] = spoken.artifacts
    heard = transcribe(ctx, audio="$s1", language="en")
    assert heard.data["model"] == "faster-whisper-tiny.en"
    wer = word_error_rate(sentence, heard.data["text"])
    assert wer <= 0.10, f"WER {wer:.2f}: said {sentence!r}, heard {heard.data['text']!r}"
    words = [w for seg in heard.data["segments"] for w in seg["words"]]
    assert words and words[-1]["end"] <= spoken.data["duration"] + 0.05
