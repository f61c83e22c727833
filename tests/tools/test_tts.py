"""speak: the real piper joe voice (offline pack) for sound, speed, long texts and formats; tiny
random-weight VITS voices (saved with save_pretrained, loaded through the tool) for the rest:
text artifacts, repeatability, voice and language choice, and bad input."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.tiny_tts import build_tiny_vits
from tools import (
    ArtifactStore,
    Cancelled,
    MissingExtra,
    ModelManager,
    ToolContext,
    ToolError,
    ToolSettings,
)
from tools.models import ModelNotInstalled
from tools.tts import speak, split_sentences

torch = pytest.importorskip("torch")

FIFTEEN = (
    "The old lighthouse keeper walked slowly along the rocky shore every single morning "
    "before sunrise."
)
NOUNS = ["river", "garden", "window", "mountain", "letter", "candle", "forest", "bridge", "engine"]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny VITS voices: English at 16 kHz, German at 24 kHz."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny-tts")
    return {
        "eng": build_tiny_vits(root / "tiny-vits-eng"),
        "deu": build_tiny_vits(root / "tiny-vits-deu", language="deu", sampling_rate=24_000),
    }


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    """One model manager for the session, so each voice loads once."""
    return ModelManager(tmp_path_factory.mktemp("mm"), device="cpu", dtype="float32")


class Ctx:
    """A ToolContext that records progress events and can cancel after some of them."""

    def __init__(self, tmp_path: Path, models: Any, cancel_after: int | None = None, **audio: Any):
        self.events: list[tuple[float, str]] = []
        self.cancel_after = cancel_after
        self.ctx = ToolContext(
            store=ArtifactStore(tmp_path / "store"),
            workspace=tmp_path,
            settings=ToolSettings(audio=audio),
            models=models,
            progress_fn=self._progress,
            step_id="s1",
        )

    def _progress(self, fraction: float, message: str, preview: Any) -> None:
        self.events.append((fraction, message))
        if self.cancel_after is not None and len(self.sentences()) >= self.cancel_after:
            self.ctx.cancel_event.set()

    def sentences(self) -> list[str]:
        return [m for _, m in self.events if m.startswith("sentence ")]

    def speak(self, **args: Any) -> Any:
        return speak(self.ctx, **args)


@pytest.fixture
def piper_ctx(tmp_path: Path, models: ModelManager) -> Ctx:
    pytest.importorskip("piper")
    return Ctx(tmp_path, models)


@pytest.fixture
def vits_ctx(tmp_path: Path, models: ModelManager, tiny: dict[str, Path]) -> Ctx:
    return Ctx(tmp_path, models, voice=str(tiny["eng"]), voices={"german": str(tiny["deu"])})


def read(result: Any) -> tuple[np.ndarray, int]:
    (art,) = result.artifacts
    data, rate = sf.read(art.path, dtype="float32")
    return data, rate


def rms(data: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(data))))


# --- real weights: the piper joe voice --------------------------------------------------------


@pytest.mark.model
def test_piper_speaks_a_sentence(piper_ctx: Ctx) -> None:
    result = piper_ctx.speak(text=FIFTEEN)
    data, rate = read(result)
    assert rate == 22050 == result.data["sample_rate"]
    assert 15 * 0.2 < len(data) / rate < 15 * 0.6
    assert result.data["duration"] == pytest.approx(len(data) / rate, abs=0.01)
    assert rms(data) > 0.03  # speech, not silence
    assert result.data["backend"] == "piper" and result.data["language"] == "en"
    assert result.data["sentences"] == 1 and result.data["characters"] == len(FIFTEEN)
    assert result.summary.startswith("spoke 15 words (") and "piper voice joe" in result.summary
    assert result.artifacts[0].name == "speech-the-old-lighthouse-keeper-walked.wav"
    assert piper_ctx.sentences() == ["sentence 1/1"]


@pytest.mark.model
def test_piper_speed_two_is_clearly_shorter(piper_ctx: Ctx) -> None:
    normal = piper_ctx.speak(text=FIFTEEN).data["duration"]
    fast = piper_ctx.speak(text=FIFTEEN, speed=2.0).data["duration"]
    slow = piper_ctx.speak(text=FIFTEEN, speed=0.5).data["duration"]
    assert fast < 0.8 * normal < normal < 0.8 * slow


@pytest.mark.model
def test_piper_long_text_is_split_and_joined(piper_ctx: Ctx) -> None:
    sentences = [f"Dr. Lee saw {i} {NOUNS[i % len(NOUNS)]}s." for i in range(1, 31)]
    result = piper_ctx.speak(text=" ".join(sentences))
    assert result.data["sentences"] == 30 and len(result.artifacts) == 1
    assert piper_ctx.sentences() == [f"sentence {i}/30" for i in range(1, 31)]
    fractions = [f for f, _ in piper_ctx.events]
    assert fractions == sorted(fractions) and fractions[-1] > 0.9
    data, rate = read(result)
    assert len(data) / rate > 30 * 0.6  # thirty spoken sentences and the pauses between them


@pytest.mark.model
def test_piper_is_cancelled_between_sentences(tmp_path: Path, models: ModelManager) -> None:
    pytest.importorskip("piper")
    ctx = Ctx(tmp_path, models, cancel_after=2)
    with pytest.raises(Cancelled):
        ctx.speak(text="One. Two. Three. Four. Five. Six.")
    assert ctx.sentences() == ["sentence 1/6", "sentence 2/6"]
    assert not list(ctx.ctx.store.root.rglob("*.wav"))  # nothing half-spoken was stored


@pytest.mark.model
@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_piper_writes_other_formats(piper_ctx: Ctx, fmt: str) -> None:
    result = piper_ctx.speak(text="Good morning, and welcome aboard.", format=fmt)
    art = result.artifacts[0]
    assert art.name.endswith(f".{fmt}") and Path(art.path).suffix == f".{fmt}"
    data, rate = read(result)
    assert rate == 22050 and len(data) / rate == pytest.approx(result.data["duration"], abs=0.1)
    assert rms(data) > 0.03


@pytest.mark.model
def test_a_description_falls_back_to_the_default_voice(piper_ctx: Ctx) -> None:
    result = piper_ctx.speak(text="Hello there.", voice="calm female")
    assert result.data["backend"] == "piper" and result.data["voice_requested"] == "calm female"
    assert "no voice matches 'calm female'" in result.data["note"]
    assert "no voice matches 'calm female'" in result.summary


@pytest.mark.model
def test_the_piper_voice_loads_through_the_run_fixture(run: Any, tmp_path: Path) -> None:
    """Without a model manager (direct use) the catalog voice still resolves and speaks."""
    pytest.importorskip("piper")
    note = tmp_path / "note.txt"
    note.write_text("Remember to water the plants on Sunday.\n", encoding="utf-8")
    result = run("speak", [note], text="$a1")
    assert result.data["characters"] == len("Remember to water the plants on Sunday.")
    assert result.data["backend"] == "piper" and rms(read(result)[0]) > 0.03


def test_missing_piper_extra_says_what_to_install(
    piper_ctx: Ctx, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "piper", None)
    with pytest.raises(MissingExtra, match=r"pip install 'anymodal\[piper\]'"):
        piper_ctx.speak(text="Hello.")


# --- tiny random-weight VITS -------------------------------------------------------------------


def test_vits_voice_speaks_at_its_rate_and_repeats(vits_ctx: Ctx, tiny: dict[str, Path]) -> None:
    first = vits_ctx.speak(text="Hello world. This is a test.")
    torch.rand(1000)  # other work moves the global generator on
    again = vits_ctx.speak(text="Hello world. This is a test.")
    data, rate = read(first)
    assert rate == 16_000 == first.data["sample_rate"] and len(data) > 0.1 * rate
    assert np.array_equal(data, read(again)[0])  # seeded: the same text, the same audio
    assert first.data["backend"] == "vits" and first.data["model"] == str(tiny["eng"].resolve())
    assert first.data["sentences"] == 2 and first.data["language"] == "en"
    assert vits_ctx.sentences() == ["sentence 1/2", "sentence 2/2"] * 2
    fast = vits_ctx.speak(text="Hello world. This is a test.", speed=2.0)
    assert fast.data["duration"] < 0.8 * first.data["duration"]


def test_sentences_are_joined_with_pauses(vits_ctx: Ctx) -> None:
    """Each sentence is spoken alone (seeded) and joined with 0.25 s, or 0.6 s between
    paragraphs, of silence."""
    one, two = (read(vits_ctx.speak(text=t))[0] for t in ("Hello world.", "This is a test."))
    joined, rate = read(vits_ctx.speak(text="Hello world. This is a test."))
    gap = np.zeros(round(0.25 * rate), np.float32)
    assert np.array_equal(joined, np.concatenate([one, gap, two]))
    paragraphs, _ = read(vits_ctx.speak(text="Hello world.\n\nThis is a test."))
    assert len(paragraphs) == len(one) + round(0.6 * rate) + len(two)


def test_text_artifacts_are_read(run: Any, tmp_path: Path, tiny: dict[str, Path]) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Buy milk.\n\nAnd bread.", encoding="utf-8")
    settings = ToolSettings(audio={"voice": str(tiny["eng"])})
    attached = run("speak", [note], settings=settings, text="$a1")
    assert attached.data["characters"] == len("Buy milk.\n\nAnd bread.")
    assert attached.data["sentences"] == 2


def test_a_step_output_is_read(vits_ctx: Ctx) -> None:
    text = "A summary written by an earlier step."
    vits_ctx.ctx.refs["s0"] = [vits_ctx.ctx.store.add_text(text, name="summary.txt")]
    result = vits_ctx.speak(text="$s0")
    assert result.data["characters"] == len(text) and result.data["words"] == 7


def test_configured_voices_are_honoured(vits_ctx: Ctx) -> None:
    by_name = vits_ctx.speak(text="Guten Tag.", voice="German")
    assert by_name.data["sample_rate"] == 24_000 and by_name.data["language"] == "de"
    assert "note" not in by_name.data
    described = vits_ctx.speak(text="Guten Tag.", voice="a deep german voice")
    assert described.data["sample_rate"] == 24_000
    assert "matched 'a deep german voice' to the configured voice 'german'" in described.summary
    by_language = vits_ctx.speak(text="Guten Tag.", language="de")
    assert by_language.data["sample_rate"] == 24_000 and "to speak German" in by_language.summary
    english = vits_ctx.speak(text="Good day.", language="en_US")
    assert english.data["sample_rate"] == 16_000 and "note" not in english.data


def test_a_language_no_voice_speaks_is_refused(vits_ctx: Ctx) -> None:
    with pytest.raises(ToolError) as err:
        vits_ctx.speak(text="Bonjour.", language="French")
    msg = str(err.value)
    assert "no installed voice speaks French" in msg
    assert "English (vits voice tiny-vits-eng)" in msg and "German" in msg
    assert "[tools.audio] voices" in msg and "mms-tts-fra" in msg


def test_text_the_voice_cannot_pronounce_is_refused(vits_ctx: Ctx) -> None:
    with pytest.raises(ToolError, match="has no sound for any character"):
        vits_ctx.speak(text="你好，世界。")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("?! ... — 😀🎉", "nothing to say aloud"),
    ],
)
def test_unspeakable_text_is_refused(vits_ctx: Ctx, text: str, why: str) -> None:
    with pytest.raises(ToolError, match=why):
        vits_ctx.speak(text=text)


def test_too_long_text_names_the_setting(tmp_path: Path, tiny: dict[str, Path]) -> None:
    ctx = Ctx(tmp_path, None, voice=str(tiny["eng"]), max_speak_chars=50)
    with pytest.raises(ToolError) as err:
        ctx.speak(text="word " * 30)
    assert "149 characters" in str(err.value) and "tools.audio.max_speak_chars" in str(err.value)


def test_bad_voices_are_refused(vits_ctx: Ctx, tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="the voice file /no/such/voice.onnx does not exist"):
        vits_ctx.speak(text="Hello.", voice="/no/such/voice.onnx")
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(b"not a model")
    with pytest.raises(ToolError, match=r"needs its config lonely\.onnx\.json beside it"):
        vits_ctx.speak(text="Hello.", voice=str(lonely))
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ToolError, match="holds a bert model, not a VITS voice"):
        vits_ctx.speak(text="Hello.", voice=str(bert))
    with pytest.raises(ToolError, match="HF_HUB_OFFLINE is set"):
        vits_ctx.speak(text="Hello.", voice="facebook/mms-tts-deu")
    with pytest.raises(ModelNotInstalled, match="anymodal models pull mms-tts-eng"):
        vits_ctx.speak(text="Hello.", voice="mms-tts-eng")
    with pytest.raises(ToolError, match="speech-recognition model, not a voice"):
        vits_ctx.speak(text="Hello.", voice="faster-whisper-base")


def test_out_of_range_speed_is_refused(vits_ctx: Ctx) -> None:
    with pytest.raises(ToolError, match="speed"):
        vits_ctx.speak(text="Hello.", speed=3.0)


@pytest.mark.skipif(shutil.which("espeak-ng") is not None, reason="espeak-ng is installed")
def test_espeak_without_the_program_is_refused(vits_ctx: Ctx) -> None:
    with pytest.raises(ToolError, match="needs the espeak-ng program"):
        vits_ctx.speak(text="Hello.", voice="espeak-ng")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the espeak-ng binary is not on PATH")
def test_espeak_speaks(vits_ctx: Ctx) -> None:
    result = vits_ctx.speak(text="Hello there. How are you?", voice="espeak-ng:en")
    data, rate = read(result)
    assert result.data["backend"] == "espeak-ng" and rate == result.data["sample_rate"]
    assert result.data["sentences"] == 2 and rms(data) > 0.01


# --- sentence splitting ------------------------------------------------------------------------


def test_sentences_respect_abbreviations_numbers_and_ellipses() -> None:
    text = "Dr. Smith paid 3.5 dollars, e.g. for tea. Wait... and then? Yes! U.S. law applies."
    assert [s for s, _ in split_sentences(text)] == [
        "Dr. Smith paid 3.5 dollars, e.g. for tea.",
        "Wait... and then?",
        "Yes!",
        "U.S. law applies.",
    ]


def test_sentences_follow_lines_and_paragraphs() -> None:
    text = (
        "# Shopping\n- milk\n- bread\n\nThis paragraph is wrapped at a fixed width, like mail\n"
        "often is. It goes on.\n\n**Done**"
    )
    assert split_sentences(text) == [
        ("Shopping", False),
        ("milk", False),
        ("bread", False),
        ("This paragraph is wrapped at a fixed width, like mail often is.", True),
        ("It goes on.", False),
        ("Done", True),
    ]


def test_long_sentences_are_cut_at_commas_then_spaces() -> None:
    clauses = ", ".join(f"clause number {i} of many" for i in range(40))
    pieces = [s for s, _ in split_sentences(clauses, max_chars=120)]
    assert len(pieces) > 1 and all(len(p) <= 120 for p in pieces)
    assert all(p.endswith(",") for p in pieces[:-1])
    assert " ".join(pieces) == clauses
    words = [s for s, _ in split_sentences("x" * 50 + " " + "y" * 200, max_chars=120)]
    assert words == ["x" * 50, "y" * 120, "y" * 80]
