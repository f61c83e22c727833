"""transcribe: real speech through the faster-whisper offline packs (tiny.en, base), and the
openai-whisper and transformers backends on tiny random-weight models saved in each library's
own format and loaded through the tool's real loading code. Nothing reaches the network."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.tiny_whisper import build_tiny_hf_whisper, build_tiny_openai_whisper
from tools import ArtifactStore, Cancelled, Modality, ModelManager, ToolContext, ToolError
from tools.asr import clock, language_code, speech_pieces, transcribe
from tools.settings import AudioSettings, ToolSettings

pytest.importorskip("faster_whisper")

LIBRISPEECH = {
    "1284-1180-0003": "FOR A LONG TIME HE HAD WISHED TO EXPLORE THE BEAUTIFUL LAND OF OZ IN WHICH "
    "THEY LIVED",
    "2300-131720-0000": "THE PARIS PLANT LIKE THAT AT THE CRYSTAL PALACE WAS A TEMPORARY EXHIBIT",
    "237-134500-0000": "FRANK READ ENGLISH SLOWLY AND THE MORE HE READ ABOUT THIS DIVORCE CASE THE "
    "ANGRIER HE GREW",
    "4446-2271-0000": "MAINHALL LIKED ALEXANDER BECAUSE HE WAS AN ENGINEER",
}
"""Reference transcripts of the media clips: LibriSpeech test-clean's own (its trans.txt
files, by utterance id); ../shared/media/README.md does not list them."""


def normalise_words(text: str) -> list[str]:
    """Lower-case words without punctuation (apostrophes kept), as WER is usually scored."""
    return re.sub(r"[^\w']+", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words: a Levenshtein distance over
    normalised words."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / max(len(ref), 1)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """transcribe never downloads: any connection attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("transcribe tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def models(model_cache: Path) -> ModelManager:
    """One model manager for the session (the shared model cache), so each model loads once."""
    import torch

    torch.set_num_threads(1)
    return ModelManager(model_cache, device="cpu", dtype="float32")


class Ctx:
    """A ToolContext that records progress events, with an attachment helper."""

    def __init__(self, tmp_path: Path, models: Any, **audio: Any):
        self.events: list[tuple[float, str]] = []
        self.ctx = ToolContext(
            store=ArtifactStore(tmp_path / "store"),
            workspace=tmp_path,
            settings=ToolSettings(audio=AudioSettings(**audio)),
            models=models,
            progress_fn=lambda f, m, p: self.events.append((f, m)),
            step_id="s1",
        )

    def attach(self, path: Path) -> str:
        ref = f"a{len(self.ctx.refs) + 1}"
        self.ctx.refs[ref] = [self.ctx.store.add_file(path)]
        return "$" + ref

    def transcribe(self, path: Path, **args: Any) -> Any:
        return transcribe(self.ctx, audio=self.attach(path), **args)


def clip_of(media: Path, tmp_path: Path, seconds: float, lead: float = 1.0) -> Path:
    """``lead`` s of silence, then the first ``seconds`` of a real recording (16 kHz wav)."""
    speech, rate = sf.read(media / "4446-2271-0000.flac", dtype="float32")
    data = np.concatenate([np.zeros(int(lead * rate), np.float32), speech[: int(seconds * rate)]])
    path = tmp_path / "clip.wav"
    sf.write(path, data, rate)
    return path


def check_words(segments: list[dict[str, Any]], duration: float) -> list[dict[str, Any]]:
    """Every segment and word lies within the clip, in order; returns all words."""
    words = [w for seg in segments for w in seg["words"]]
    for seg in segments:
        assert 0 <= seg["start"] <= seg["end"] <= duration
    for w in words:
        assert 0 <= w["start"] <= w["end"] <= duration, w
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    return words


def random_outcome(call: Any, duration: float) -> Any:
    """A random-weight model either transcribes something (times inside the clip) or finds no
    speech, with the documented error; anything else fails."""
    import torch

    torch.manual_seed(0)  # whisper samples at higher temperatures when greedy decoding fails
    try:
        result = call()
    except ToolError as exc:
        assert re.fullmatch(r"no speech found in \S+ \(\d+\.\d s of audio\)", str(exc)), exc
        return None
    assert result.data["segments"] and result.data["text"].strip()
    check_words(result.data["segments"], duration)
    assert result.artifacts[0].read_text() == result.data["text"]
    return result


# --- helpers ----------------------------------------------------------------------------------


def test_word_error_rate() -> None:
    assert word_error_rate("the cat sat", "The cat sat.") == 0
    assert word_error_rate("the cat sat", "the cat") == pytest.approx(1 / 3)  # a deletion
    assert word_error_rate("the cat sat", "a cat sat down") == pytest.approx(2 / 3)
    assert word_error_rate("mainhall liked him", "Main Hall liked him") == pytest.approx(2 / 3)


def test_language_names_and_codes() -> None:
    assert language_code("German") == language_code("de") == language_code("de-AT") == "de"
    assert language_code("deu") == language_code(" DEUTSCH ") == "de"
    assert language_code("Mandarin") == "zh" and language_code("EN") == "en"
    assert language_code(None) is None and language_code("auto") is None
    with pytest.raises(ValueError, match="unknown language 'Klingon'.*'en', 'de'"):
        language_code("Klingon")


def test_clock() -> None:
    assert clock(1.24) == "00:01.2" and clock(64.96) == "01:05.0"
    assert clock(3723.4) == "1:02:03.4"


def test_speech_pieces_split_long_audio_into_windows(media: Path) -> None:
    """Speech regions are joined into pieces of at most 30 s that cover every utterance."""
    rate = 16_000
    gap = np.zeros(4 * rate, np.float32)
    parts, spans, at = [], [], 0
    for flac in sorted(media.glob("*.flac")) * 2:
        speech, r = sf.read(flac, dtype="float32")
        assert r == rate
        parts += [speech, gap]
        spans.append((at, at + len(speech)))
        at += len(speech) + len(gap)
    audio = np.concatenate(parts)
    pieces = speech_pieces(audio, use_vad=True)
    assert pieces is not None and len(pieces) >= 2
    for (_, e0), (s1, _) in zip(pieces, pieces[1:], strict=False):
        assert e0 <= s1
    for start, end in pieces:
        assert 0 <= start < end <= len(audio) and end - start <= 30 * rate
    for start, end in spans:
        middle = (start + end) // 2
        assert any(s <= middle < e for s, e in pieces)
    assert speech_pieces(audio, use_vad=False) is None
    assert speech_pieces(np.zeros(3 * rate, np.float32), use_vad=True) == []


# --- real speech, real weights ------------------------------------------------------------------


@pytest.mark.model
def test_transcribes_every_recording(media: Path, tmp_path: Path, models: ModelManager) -> None:
    """tiny.en on each LibriSpeech clip: plausible English, word times inside the clip and in
    order, low word error rate, a timestamped transcript, progress per segment."""
    flacs = sorted(media.glob("*.flac"))
    assert flacs
    errors = total = 0.0
    for flac in flacs:
        ctx = Ctx(tmp_path, models)
        result = ctx.transcribe(flac, language="en", timestamps=True)
        data = result.data
        duration = sf.info(flac).duration
        assert data["duration"] == pytest.approx(duration, abs=0.01)
        assert data["backend"] == "faster-whisper" and data["model"] == "faster-whisper-tiny.en"
        assert data["language"] == "en" and data["language_probability"] is None
        assert "detected_with" not in data
        words = check_words(data["segments"], duration)
        assert 1.0 <= len(words) / duration <= 5.0, data["text"]
        assert all(w["word"] and 0 <= w["probability"] <= 1 for w in words)
        assert [w["word"] for w in words] == data["text"].split()
        if flac.stem in LIBRISPEECH:
            wer = word_error_rate(LIBRISPEECH[flac.stem], data["text"])
            assert wer <= 0.3, data["text"]
            n = len(normalise_words(LIBRISPEECH[flac.stem]))
            errors, total = errors + wer * n, total + n
        (art,) = result.artifacts
        assert art.modality is Modality.TEXT and art.name == f"{flac.stem}-transcript.txt"
        lines = art.read_text().splitlines()
        assert len(lines) == len(data["segments"])
        for line, seg in zip(lines, data["segments"], strict=True):
            assert line == f"[{clock(seg['start'])} -> {clock(seg['end'])}] {seg['text']}"
        assert re.fullmatch(
            rf"transcribed {duration:.1f} s of English speech from {re.escape(flac.name)} "
            rf"\(faster-whisper tiny\.en\): {len(words)} words",
            result.summary,
        )
        progress = [f for f, m in ctx.events if re.match(r"\d\d:\d\d\.\d: ", m)]
        assert len(progress) == len(data["segments"]) and progress == sorted(progress)
        assert 0.5 < progress[-1] <= 1.0 and ctx.events[-1] == (1.0, "done")
    assert total and errors / total <= 0.1


@pytest.mark.model
def test_english_model_detects_the_language_first(
    media: Path, tmp_path: Path, models: ModelManager
) -> None:
    """No language given: base (multilingual_recognizer) hears English, tiny.en transcribes."""
    ctx = Ctx(tmp_path, models)
    result = ctx.transcribe(media / "237-134500-0000.flac")
    data = result.data
    assert data["language"] == "en" and data["language_probability"] > 0.8
    assert data["detected_with"] == "faster-whisper-base"
    assert data["model"] == "faster-whisper-tiny.en"
    assert word_error_rate(LIBRISPEECH["237-134500-0000"], data["text"]) <= 0.2
    assert result.artifacts[0].read_text() == data["text"]  # no timestamps asked
    messages = [m for _, m in ctx.events]
    assert messages.index("detecting the language") < messages.index("transcribing English speech")


@pytest.mark.model
def test_base_detects_english(media: Path, tmp_path: Path, models: ModelManager) -> None:
    ctx = Ctx(tmp_path, models, recognizer="faster-whisper-base")
    result = ctx.transcribe(media / "2300-131720-0000.flac")
    data = result.data
    assert data["model"] == "faster-whisper-base" and data["backend"] == "faster-whisper"
    assert data["language"] == "en" and data["language_probability"] > 0.9
    assert "detected_with" not in data
    assert word_error_rate(LIBRISPEECH["2300-131720-0000"], data["text"]) <= 0.2
    assert "(faster-whisper base)" in result.summary


@pytest.mark.model
def test_transcribes_a_videos_soundtrack(media: Path, tmp_path: Path, models: ModelManager) -> None:
    from tools.ffmpeg import ffmpeg_exe

    flac = media / "1284-1180-0003.flac"
    video = tmp_path / "talk.mp4"
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "lavfi", "-i",
           "color=c=black:s=64x64:r=10", "-i", str(flac), "-shortest", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "-c:a", "aac", str(video)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    ctx = Ctx(tmp_path, models)
    ref = ctx.attach(video)
    assert ctx.ctx.refs[ref[1:]][0].modality is Modality.VIDEO
    result = transcribe(ctx.ctx, audio=ref)
    assert word_error_rate(LIBRISPEECH["1284-1180-0003"], result.data["text"]) <= 0.2
    assert result.artifacts[0].name == "talk-transcript.txt"
    check_words(result.data["segments"], result.data["duration"])


@pytest.mark.model
@pytest.mark.parametrize("language", [None, "en"])
def test_silence_is_no_speech(
    tmp_path: Path, models: ModelManager, wav: Path, language: str | None
) -> None:
    """Silence and a steady tone: no speech, whether detection (None) or faster-whisper's own
    VAD ('en') is the first to listen."""
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(3 * 16_000, np.float32), 16_000)
    for path, seconds in ((quiet, 3.0), (wav, 2.0)):
        with pytest.raises(ToolError, match=rf"^no speech found in {path.name} \({seconds} s"):
            Ctx(tmp_path, models).transcribe(path, language=language)


# --- openai-whisper on a tiny random checkpoint -----------------------------------------------


@pytest.fixture(scope="session")
def tiny_pt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-openai-whisper")
    return {
        "en": build_tiny_openai_whisper(root / "tiny-en.pt"),
        "multi": build_tiny_openai_whisper(root / "tiny-multi.pt", multilingual=True),
    }


def test_openai_whisper_checkpoint(
    media: Path, tmp_path: Path, tiny_pt: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A random English-only .pt checkpoint runs through whisper.load_model and
    whisper.transcribe, once per model manager however many calls; the speech starts after a
    second of silence, so the VAD piece's offset moves the times."""
    import whisper

    loads = []
    real_load = whisper.load_model
    monkeypatch.setattr(
        whisper, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k)
    )
    clip = clip_of(media, tmp_path, 2.5)
    models = ModelManager(tmp_path / "mm", device="cpu", dtype="float32")
    ctx = Ctx(tmp_path, models, recognizer=str(tiny_pt["en"]), multilingual_recognizer=None)
    first = random_outcome(lambda: ctx.transcribe(clip), 3.5)
    second = random_outcome(lambda: ctx.transcribe(clip), 3.5)
    for result in (first, second):
        if result is not None:
            assert result.data["backend"] == "openai-whisper" and result.data["language"] == "en"
            assert min(s["start"] for s in result.data["segments"]) >= 0.5  # after the silence
            assert "(openai-whisper tiny-en)" in result.summary
    # Without VAD whisper windows the whole clip itself; the model is still loaded only once.
    whole = Ctx(tmp_path, models, recognizer=str(tiny_pt["en"]), multilingual_recognizer=None)
    whole.ctx.settings.audio.vad = False
    third = random_outcome(lambda: whole.transcribe(clip), 3.5)
    assert third is None or third.data["backend"] == "openai-whisper"
    assert loads == [(str(tiny_pt["en"]),)]
    assert models.loaded() == [f"openai-whisper:{tiny_pt['en']}"]


def test_openai_whisper_detects_with_a_multilingual_checkpoint(
    media: Path, tmp_path: Path, tiny_pt: dict[str, Path]
) -> None:
    ctx = Ctx(tmp_path, None, recognizer=str(tiny_pt["multi"]))
    result = random_outcome(lambda: ctx.transcribe(clip_of(media, tmp_path, 2.0)), 3.0)
    if result is not None:
        assert result.data["backend"] == "openai-whisper"
        assert language_code(result.data["language"]) == result.data["language"]
        assert 0 < result.data["language_probability"] <= 1
    assert any(m == "detecting the language" for _, m in ctx.events)


def test_english_only_model_refuses_other_languages(
    media: Path, tmp_path: Path, tiny_pt: dict[str, Path], run: Any
) -> None:
    settings = ToolSettings(
        audio=AudioSettings(recognizer=str(tiny_pt["en"]), multilingual_recognizer=None)
    )
    with pytest.raises(ToolError, match="understands only English.*to transcribe German, set"):
        run("transcribe", [clip_of(media, tmp_path, 1.0)], settings, audio="$a1", language="de")


def test_cancelled_before_decoding(media: Path, tmp_path: Path, tiny_pt: dict[str, Path]) -> None:
    ctx = Ctx(tmp_path, None, recognizer=str(tiny_pt["en"]), multilingual_recognizer=None)
    ctx.ctx.progress_fn = lambda f, m, p: ctx.ctx.cancel_event.set()
    with pytest.raises(Cancelled):
        ctx.transcribe(clip_of(media, tmp_path, 1.0))


# --- transformers on a tiny random WhisperForConditionalGeneration -----------------------------


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """English-only, with alignment heads (word timestamps) and a copy without them."""
    import json

    from tools.models import ModelManager as Manager

    tokenizer = Manager().path("faster-whisper-tiny.en") / "tokenizer.json"
    root = tmp_path_factory.mktemp("tiny-hf-whisper")
    words = build_tiny_hf_whisper(root / "words", tokenizer)
    plain = Path(shutil.copytree(words, root / "plain"))
    gen = json.loads((plain / "generation_config.json").read_text())
    del gen["alignment_heads"]
    (plain / "generation_config.json").write_text(json.dumps(gen))
    return {"words": words, "plain": plain}


@pytest.mark.parametrize("kind", ["words", "plain"])
def test_transformers_whisper_folder(
    media: Path, tmp_path: Path, tiny_hf: dict[str, Path], kind: str
) -> None:
    ctx = Ctx(tmp_path, None, recognizer=str(tiny_hf[kind]), multilingual_recognizer=None)
    result = random_outcome(lambda: ctx.transcribe(clip_of(media, tmp_path, 2.5)), 3.5)
    if result is None:
        return
    data = result.data
    assert data["backend"] == "transformers" and data["language"] == "en"
    assert data["model"] == str(tiny_hf[kind])
    has_words = any(seg["words"] for seg in data["segments"])
    if kind == "words":
        assert has_words and not any("alignment_heads" in n for n in data.get("notes", []))
    else:
        assert not has_words and any("no alignment_heads" in n for n in data["notes"])


@pytest.mark.model
def test_transformers_multilingual_detects_a_language(
    media: Path, tmp_path: Path, models: ModelManager
) -> None:
    """A random multilingual transformers Whisper (the base pack's tokenizer) detects some
    language itself and transcribes in it."""
    folder = build_tiny_hf_whisper(
        tmp_path / "multi", models.path("faster-whisper-base") / "tokenizer.json"
    )
    ctx = Ctx(tmp_path, models, recognizer=str(folder))
    result = random_outcome(lambda: ctx.transcribe(clip_of(media, tmp_path, 2.0)), 3.0)
    assert models.loaded()[-1] == f"transformers:{folder}"
    if result is not None:
        assert result.data["backend"] == "transformers"
        assert language_code(result.data["language"]) == result.data["language"]
        assert 0 < result.data["language_probability"] <= 1


# --- bad input ------------------------------------------------------------------------------


def test_unknown_language_is_refused(run: Any, wav: Path) -> None:
    with pytest.raises(ToolError, match=r"language: unknown language 'Klingonese'.*e\.g\. 'en'"):
        run("transcribe", [wav], audio="$a1", language="Klingonese")


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("empty.wav", b"", "empty \\(0-byte\\) file"),
        ("broken.flac", b"fLaC" + bytes(range(256)) * 4, "not audio anymodal can decode"),
    ],
)
def test_undecodable_audio(run: Any, tmp_path: Path, name: str, content: bytes, error: str) -> None:
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(ToolError, match=error):
        run("transcribe", [bad], audio="$a1")


def test_max_transcribe_seconds(run: Any, wav: Path) -> None:
    settings = ToolSettings(audio=AudioSettings(max_transcribe_seconds=1.5))
    with pytest.raises(ToolError, match=r"at most 1\.5 s \(tools\.audio\.max_transcribe_seconds\)"):
        run("transcribe", [wav], settings, audio="$a1")


@pytest.mark.parametrize(
    ("recognizer", "error"),
    [
        ("/nowhere/model", "neither a catalog name, nor an existing file or folder"),
        ("whisper:base", r"'base' is not downloaded .*whisper\.load_model\('base'\)"),
        ("whisper:huge", "openai-whisper has no model 'huge'; it has tiny.en, tiny"),
        ("whisper-tiny", "model 'whisper-tiny' is not installed"),
    ],
)
def test_bad_recognizer(
    run: Any,
    wav: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    recognizer: str,
    error: str,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # no whisper downloads there
    settings = ToolSettings(audio=AudioSettings(recognizer=recognizer))
    with pytest.raises(ToolError, match=error):
        run("transcribe", [wav], settings, audio="$a1")


def test_folder_without_a_model(run: Any, wav: Path, tmp_path: Path) -> None:
    (tmp_path / "empty-model").mkdir()
    settings = ToolSettings(audio=AudioSettings(recognizer=str(tmp_path / "empty-model")))
    with pytest.raises(ToolError, match="holds no Whisper model anymodal can run"):
        run("transcribe", [wav], settings, audio="$a1")
