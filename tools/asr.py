"""Speech recognition: the transcribe tool, on Whisper run by one of three libraries.

The recognizer (``tools.audio.recognizer``) is a catalog name, a local folder or file, a Hub
id, or ``whisper:NAME``; with ``recognizer_backend = "auto"`` its files say which library runs
it: a folder with ``model.bin`` is faster-whisper (CTranslate2), a ``.pt`` file or
``whisper:NAME`` is openai-whisper, a folder or Hub id whose config.json says ``whisper`` is
transformers. Every model loads through the model manager, once.

Long audio is split on voice activity: faster-whisper does it itself (``vad_filter``); for the
other two, faster-whisper's bundled Silero VAD cuts the speech into pieces of at most 30 s
when faster-whisper is installed, else the library windows the audio itself.

The default recognizer (tiny.en) knows only English. With no language given, the multilingual
recognizer (``tools.audio.multilingual_recognizer``) listens to the first 30 s of speech: English
goes to the fast English model, anything else to the multilingual one.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools import languages
from tools.artifact import Artifact, Modality
from tools.audio_io import audio_facts, decode_audio
from tools.audio_ops import resample
from tools.base import Tool, ToolContext, ToolResult, artifact_input
from tools.errors import ToolError, require
from tools.hf import HUB_ID, check_cached, first_line, load_pretrained, not_found, offline
from tools.models import ModelManager, ModelNotInstalled, manager_of

SAMPLE_RATE = 16_000
"""Whisper listens at 16 kHz, mono."""
WINDOW_S = 30.0
"""Whisper's window: the longest piece one decoding sees."""
SCAN_S = 120.0
"""Language detection looks for speech this many seconds at a time, until it has 30 s."""
PARAGRAPH_GAP_S = 2.0
"""A pause this long between segments starts a new paragraph in the transcript."""
SETTING = "tools.audio.recognizer"
NO_WORD_TIMES = (
    "word timestamps unavailable: the model's generation config has no alignment_heads; "
    "the segments have timestamps, their words none"
)
BACKENDS = ("faster-whisper", "openai-whisper", "transformers")

AUTO = {"", "auto", "detect", "any", "default", "unknown"}


def language_code(value: str | None) -> str | None:
    """Whisper's code for a language given as a code ('de', 'de-AT', 'deu') or an English
    name ('German'); None to detect it. Raises ``ValueError`` naming examples otherwise."""
    if value is None or value.strip().lower() in AUTO:
        return None
    code = languages.lookup(value)
    if code is None:
        raise ValueError(
            f"unknown language {value!r}; give an ISO code or an English name Whisper knows, "
            "e.g. 'en', 'de', 'fr', 'ja', 'German', 'Spanish', 'Mandarin' "
            f"({len(languages.LANGUAGES)} languages), or leave it unset to detect the language"
        )
    return code


def language_name(code: str | None) -> str:
    return languages.name(code) if code else "Unknown"


class TranscribeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audio: artifact_input(  # type: ignore[valid-type]
        Modality.AUDIO, Modality.VIDEO, description="the recording, or a video with sound"
    )
    language: str | None = Field(None, description="the spoken language (default: detect it)")
    timestamps: bool = Field(False, description="put a timestamp before every segment")

    @field_validator("language")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        return language_code(value)


@dataclasses.dataclass
class Recognizer:
    """A loaded model and what the rest of this module needs to know about it."""

    backend: str
    """'faster-whisper', 'openai-whisper' or 'transformers'."""
    spec: str
    """The model as the settings name it."""
    model: Any
    processor: Any = None
    """transformers only: the WhisperProcessor."""

    @property
    def label(self) -> str:
        """A short name for summaries: 'tiny.en' for faster-whisper-tiny.en, a folder's name."""
        name = self.spec.removeprefix("whisper:")
        name = Path(name).name if ("/" in name or os.sep in name) else name
        return Path(name).stem if name.endswith(".pt") else name.removeprefix("faster-whisper-")

    @property
    def multilingual(self) -> bool:
        if self.backend == "faster-whisper":
            return bool(self.model.model.is_multilingual)
        if self.backend == "openai-whisper":
            return bool(self.model.is_multilingual)
        gen = self.model.generation_config
        return bool(getattr(gen, "is_multilingual", False) and getattr(gen, "lang_to_id", None))


# --- finding and loading models -----------------------------------------------------------


def locate(spec: str, backend: str, models: ModelManager, setting: str) -> tuple[str, str]:
    """``(backend, source)`` for a recognizer spec: the library to run it, and what that
    library loads (a folder, a file, a Hub id, or an openai-whisper model name)."""
    if spec.startswith("whisper:"):
        if backend not in ("auto", "openai-whisper"):
            raise ToolError(
                f"{spec!r} is an openai-whisper model, but tools.audio.recognizer_backend is "
                f"{backend!r}; set it to 'auto' or 'openai-whisper'"
            )
        return "openai-whisper", spec.removeprefix("whisper:")
    if spec in models.catalog:
        source = str(models.path(spec))  # ModelNotInstalled says how to install it
    elif Path(spec).expanduser().exists():
        source = str(Path(spec).expanduser().resolve())
    elif HUB_ID.match(spec) and "/" in spec:
        source = spec
    else:
        raise ToolError(
            f"the recognizer {spec!r} is neither a catalog name, nor an existing file or folder, "
            f"nor a Hub id; set {setting} to one of those, or to 'whisper:NAME' for openai-whisper"
        )
    if backend != "auto":
        return backend, source
    return _tell_backend(spec, source, setting), source


def _tell_backend(spec: str, source: str, setting: str) -> str:
    """Which library runs ``source``, told from its files (cached ones for a Hub id)."""
    path = Path(source)
    if path.is_file():
        if path.suffix == ".pt":
            return "openai-whisper"
        raise ToolError(
            f"{source} is a single file but not an openai-whisper .pt checkpoint; "
            f"set {setting} to a model folder or a .pt file"
        )
    if path.is_dir():
        if (path / "model.bin").is_file():
            return "faster-whisper"
        config = path / "config.json"
        if config.is_file() and _model_type(config) == "whisper":
            return "transformers"
        raise ToolError(
            f"{source} holds no Whisper model anymodal can run: a faster-whisper folder has "
            "model.bin, a transformers one a config.json with model_type 'whisper'; for "
            f"openai-whisper set {setting} to the .pt file"
        )
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(source, "model.bin"), str):
        return "faster-whisper"
    config_file = try_to_load_from_cache(source, "config.json")
    if not isinstance(config_file, str):
        if offline():
            raise not_found(spec, "its config.json is not in the Hugging Face cache", setting)
        try:
            config_file = hf_hub_download(source, "config.json")
        except Exception as exc:  # huggingface_hub raises many kinds for a missing repo
            raise not_found(spec, exc, setting) from exc
    kind = _model_type(Path(config_file))
    if kind == "whisper":
        return "transformers"
    if kind is None:  # CTranslate2 conversions write a config.json without a model_type
        return "faster-whisper"
    raise ToolError(f"{spec!r} is a {kind} model, not Whisper; set {setting} to a Whisper model")


def _model_type(config: Path) -> str | None:
    try:
        return json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def load_recognizer(ctx: ToolContext, spec: str, setting: str = SETTING) -> Recognizer:
    """The recognizer ``spec``, loaded through the model manager (once per process)."""
    models = manager_of(ctx)
    backend, source = locate(spec, ctx.settings.audio.recognizer_backend, models, setting)
    if backend == "faster-whisper":
        faster_whisper = require("faster_whisper", "speech")

        def load_ct2() -> Recognizer:
            try:
                model = faster_whisper.WhisperModel(
                    source,
                    device="cpu",
                    compute_type="int8",
                    cpu_threads=cpu_threads(),
                    local_files_only=offline(),
                )
            except (OSError, ValueError, RuntimeError) as exc:
                if not Path(source).exists():
                    raise not_found(spec, exc, setting) from exc
                raise ToolError(f"faster-whisper cannot load {source}: {first_line(exc)}") from exc
            return Recognizer("faster-whisper", spec, model)

        check_cached(spec, source, marker="model.bin", setting=setting)
        size = _file_size(Path(source) / "model.bin")
        return models.load(f"faster-whisper:{source}", load_ct2, size_bytes=size)
    if backend == "openai-whisper":
        checkpoint = _whisper_checkpoint(source)
        whisper = import_whisper()

        def load_pt() -> Recognizer:
            try:
                name = checkpoint if Path(source).is_file() else source
                root = str(Path(checkpoint).parent)
                model = whisper.load_model(name, device=models.device, download_root=root)
            except (OSError, RuntimeError, KeyError, TypeError) as exc:
                raise ToolError(
                    f"openai-whisper cannot load {checkpoint}: {first_line(exc)}; it must be a "
                    "checkpoint saved by openai-whisper ({'dims', 'model_state_dict'})"
                ) from exc
            return Recognizer("openai-whisper", spec, model.eval())

        key = f"openai-whisper:{checkpoint}"
        return models.load(key, load_pt, size_bytes=_file_size(Path(checkpoint)))
    if backend == "transformers":
        require("transformers", "vlm")
        with_models = dataclasses.replace(ctx, models=models)
        model, processor = load_pretrained(
            with_models,
            source,
            setting,
            "Whisper speech recognizer",
            "WhisperForConditionalGeneration",
        )
        return Recognizer("transformers", spec, model, processor)
    raise ToolError(f"unknown recognizer backend {backend!r}; use one of {', '.join(BACKENDS)}")


def _whisper_checkpoint(source: str) -> str:
    """The checkpoint file of an openai-whisper model: ``source`` itself when it is a file,
    else the named model's file in whisper's download folder, which must already be there
    (loading it would download, and anymodal never downloads while transcribing)."""
    if Path(source).is_file():
        return source
    whisper = import_whisper()
    names = whisper.available_models()
    if source not in names:
        raise ToolError(f"openai-whisper has no model {source!r}; it has {', '.join(names)}")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    url = whisper._MODELS[source]
    path = Path(cache) / "whisper" / os.path.basename(url)
    if not path.is_file():
        raise ToolError(
            f"the openai-whisper model {source!r} is not downloaded ({path} is missing); get it "
            f'where the internet can be reached with: python -c "import whisper; '
            f"whisper.load_model('{source}')\", or download {url} and set {SETTING} to the "
            ".pt file"
        )
    return str(path)


def import_whisper() -> Any:
    """The openai-whisper package. It is not in the 'speech' extra: its dependency list pulls
    triton (about 1 GB, useless on a CPU), so it is installed without dependencies."""
    require("tiktoken", "speech")
    try:
        import whisper
    except ImportError as exc:
        raise ToolError(
            "the openai-whisper backend needs the package openai-whisper, which is not "
            "installed; install it with: pip install 'anymodal[speech]' && pip install "
            "--no-deps openai-whisper"
        ) from exc
    return whisper


def _file_size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def cpu_threads() -> int:
    """CPU threads for CTranslate2: OMP_NUM_THREADS when set, else the cores (at most 8)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else min(os.cpu_count() or 1, 8)


# --- voice activity --------------------------------------------------------------------------


def _vad() -> Any:
    """faster-whisper's Silero VAD module, or None when faster-whisper is not installed."""
    try:
        from faster_whisper import vad
    except ImportError:
        return None
    return vad


def speech_start(samples: Any, use_vad: bool) -> Any:
    """Up to the first 30 s of speech (silence cut out), for language detection; empty when
    the VAD hears none. Looks ``SCAN_S`` at a time, so long audio is not scanned whole."""
    import numpy as np

    limit = int(WINDOW_S * SAMPLE_RATE)
    vad = _vad() if use_vad else None
    if vad is None:
        return samples[:limit]
    parts, total, step = [], 0, int(SCAN_S * SAMPLE_RATE)
    for offset in range(0, len(samples), step):
        block = samples[offset : offset + step]
        for region in vad.get_speech_timestamps(block, vad.VadOptions()):
            parts.append(block[region["start"] : region["end"]])
            total += region["end"] - region["start"]
        if total >= limit:
            break
    return np.concatenate(parts)[:limit] if parts else samples[:0]


def speech_pieces(samples: Any, use_vad: bool) -> list[tuple[int, int]] | None:
    """``(start, end)`` sample ranges of speech, joined into pieces of at most 30 s; None when
    there is no VAD (the backend windows the audio itself), [] when it hears no speech."""
    vad = _vad() if use_vad else None
    if vad is None:
        return None
    options = vad.VadOptions(max_speech_duration_s=WINDOW_S - 1)
    regions = vad.get_speech_timestamps(samples, options)
    pieces: list[tuple[int, int]] = []
    for r in regions:
        if pieces and r["end"] - pieces[-1][0] <= WINDOW_S * SAMPLE_RATE:
            pieces[-1] = (pieces[-1][0], r["end"])
        else:
            pieces.append((r["start"], r["end"]))
    return pieces


# --- language and decoding ---------------------------------------------------------------


def detect_language(rec: Recognizer, speech: Any) -> tuple[str, float | None]:
    """The language of ``speech`` (at most 30 s, 16 kHz) and its probability, by a
    multilingual model."""
    if rec.backend == "faster-whisper":
        code, prob, _ = rec.model.detect_language(audio=speech)
        return code, float(prob)
    if rec.backend == "openai-whisper":
        import whisper

        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(speech), rec.model.dims.n_mels)
        _, probs = rec.model.detect_language(mel.to(rec.model.device))
        code = max(probs, key=probs.get)
        return code, float(probs[code])
    import torch

    gen = rec.model.generation_config
    tokens = {tok.strip("<|>"): i for tok, i in gen.lang_to_id.items()}
    feats = rec.processor.feature_extractor(speech, sampling_rate=SAMPLE_RATE, return_tensors="pt")
    features = feats.input_features.to(rec.model.device, rec.model.dtype)
    start = torch.tensor([[gen.decoder_start_token_id]], device=rec.model.device)
    with torch.inference_mode():
        logits = rec.model(input_features=features, decoder_input_ids=start).logits[0, -1]
    probs = logits[list(tokens.values())].float().softmax(-1)
    best = int(probs.argmax())
    return list(tokens)[best], float(probs[best])


def _word(start: float, end: float, word: str, probability: float | None) -> dict[str, Any]:
    prob = None if probability is None else round(float(probability), 4)
    return {"start": start, "end": end, "word": word.strip(), "probability": prob}


def faster_whisper_segments(
    rec: Recognizer, samples: Any, language: str, vad: bool, beam_size: int = 1
) -> Iterator[dict[str, Any]]:
    """Segments as faster-whisper decodes them (lazily: one per iteration)."""
    segments, _ = rec.model.transcribe(
        samples, language=language, word_timestamps=True, vad_filter=vad, beam_size=beam_size
    )
    for seg in segments:
        words = [_word(w.start, w.end, w.word, w.probability) for w in seg.words or []]
        yield {"start": seg.start, "end": seg.end, "text": seg.text.strip(), "words": words}


def openai_whisper_segments(
    rec: Recognizer, piece: Any, language: str, beam_size: int = 1
) -> list[dict[str, Any]]:
    """Segments of one piece of audio (times from its start), by openai-whisper."""
    import whisper

    fp16 = str(rec.model.device).startswith("cuda")
    result = whisper.transcribe(
        rec.model,
        piece,
        language=language,
        word_timestamps=True,
        fp16=fp16,
        verbose=None,
        beam_size=beam_size if beam_size > 1 else None,  # None: whisper's greedy decoder
    )
    return [
        {
            "start": seg["start"],
            "end": seg["end"],
            "text": seg["text"].strip(),
            "words": [
                _word(w["start"], w["end"], w["word"], w.get("probability"))
                for w in seg.get("words", [])
            ],
        }
        for seg in result["segments"]
    ]


def transformers_segments(
    rec: Recognizer, piece: Any, language: str, notes: list[str]
) -> list[dict[str, Any]]:
    """Segments of one piece of audio (times from its start), by a transformers Whisper through
    the ASR pipeline: word timestamps when the model has alignment heads, else segments."""
    transformers = require("transformers", "vlm")
    hf_logging = transformers.utils.logging
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    words_too = bool(getattr(rec.model.generation_config, "alignment_heads", None))
    if not words_too and NO_WORD_TIMES not in notes:
        notes.append(NO_WORD_TIMES)
    kwargs: dict[str, Any] = {"return_timestamps": "word" if words_too else True}
    if rec.multilingual:
        kwargs["generate_kwargs"] = {"language": language, "task": "transcribe"}
    if len(piece) > WINDOW_S * SAMPLE_RATE:
        kwargs["chunk_length_s"] = WINDOW_S
    try:
        pipe = transformers.pipeline(
            "automatic-speech-recognition",
            model=rec.model,
            tokenizer=rec.processor.tokenizer,
            feature_extractor=rec.processor.feature_extractor,
            device=rec.model.device,
        )
        out = pipe(piece, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
    length = len(piece) / SAMPLE_RATE
    chunks = []
    for chunk in out.get("chunks", []):
        start, end = chunk["timestamp"]
        start = 0.0 if start is None else float(start)
        chunks.append((start, length if end is None else float(end), chunk["text"]))
    if not words_too:
        return [{"start": s, "end": e, "text": t.strip(), "words": []} for s, e, t in chunks]
    segments: list[dict[str, Any]] = []
    first = 0
    for i, (_, end, text) in enumerate(chunks):
        pause = chunks[i + 1][0] - end if i + 1 < len(chunks) else 0.0
        if i + 1 == len(chunks) or text.rstrip().endswith((".", "?", "!")) or pause > 1.0:
            group = chunks[first : i + 1]
            segments.append(
                {
                    "start": group[0][0],
                    "end": group[-1][1],
                    "text": "".join(t for _, _, t in group).strip(),
                    "words": [_word(s, e, t, None) for s, e, t in group],
                }
            )
            first = i + 1
    return segments


def _place(seg: dict[str, Any], offset: float, limit: float) -> dict[str, Any]:
    """``seg`` moved by ``offset`` seconds, every time kept within [offset, limit], rounded."""

    def at(t: float) -> float:
        return round(min(max(offset + float(t), offset), limit), 3)

    words = [w | {"start": at(w["start"]), "end": at(w["end"])} for w in seg["words"]]
    return seg | {"start": at(seg["start"]), "end": at(seg["end"]), "words": words}


def recognize(
    ctx: ToolContext, rec: Recognizer, samples: Any, language: str, notes: list[str]
) -> Iterator[dict[str, Any]]:
    """Every segment of ``samples`` in order, times in seconds of the whole audio."""
    duration = len(samples) / SAMPLE_RATE
    use_vad, beam = ctx.settings.audio.vad, ctx.settings.audio.beam_size
    if rec.backend == "faster-whisper":
        for seg in faster_whisper_segments(rec, samples, language, use_vad, beam):
            yield _place(seg, 0.0, duration)
        return
    pieces = speech_pieces(samples, use_vad)
    for start, end in pieces if pieces is not None else [(0, len(samples))]:
        ctx.check_cancelled()
        piece = samples[start:end]
        if rec.backend == "openai-whisper":
            found = openai_whisper_segments(rec, piece, language, beam)
        else:
            found = transformers_segments(rec, piece, language, notes)
        for seg in found:
            yield _place(seg, start / SAMPLE_RATE, end / SAMPLE_RATE)


class _Choice(NamedTuple):
    rec: Recognizer
    language: str
    probability: float | None
    detected_with: str | None
    """The multilingual model that detected the language, when it is not ``rec``."""


def choose_model(
    ctx: ToolContext, rec: Recognizer, language: str | None, samples: Any, notes: list[str]
) -> _Choice | None:
    """Which model transcribes, in which language (detected when ``language`` is None); None
    when detection hears no speech. An English-only ``rec`` hands speech in other languages
    to ``tools.audio.multilingual_recognizer``, which also detects the language."""
    other = ctx.settings.audio.multilingual_recognizer
    if rec.multilingual or language == "en":
        detector = rec if language is None else None
    elif not other:
        if language is not None:
            raise ToolError(
                f"the recognizer {rec.spec} understands only English and no multilingual "
                f"recognizer is set; to transcribe {language_name(language)}, set "
                f"tools.audio.multilingual_recognizer (e.g. 'faster-whisper-base') or {SETTING} "
                "to a multilingual model"
            )
        notes.append(f"{rec.spec} is English-only and no multilingual_recognizer is set")
        return _Choice(rec, "en", None, None)
    else:
        ctx.report(0.02, f"loading {other}")
        try:
            detector = load_recognizer(ctx, other, "tools.audio.multilingual_recognizer")
        except ModelNotInstalled as exc:
            if language is not None:
                raise
            notes.append(f"the language was not detected, English assumed: {exc}")
            return _Choice(rec, "en", None, None)
        if not detector.multilingual:
            raise ToolError(
                f"tools.audio.multilingual_recognizer ({other}) is English-only; set it to a "
                "multilingual model such as 'faster-whisper-base'"
            )
        if language is not None:
            return _Choice(detector, language, None, None)
    if detector is None or language is not None:
        return _Choice(rec, language or "en", None, None)
    ctx.check_cancelled()
    ctx.report(0.04, "detecting the language")
    speech = speech_start(samples, ctx.settings.audio.vad)
    if len(speech) == 0:
        return None
    code, probability = detect_language(detector, speech)
    if detector is rec:
        return _Choice(rec, code, probability, None)
    return _Choice(rec if code == "en" else detector, code, probability, detector.spec)


# --- the tool ----------------------------------------------------------------------------


def clock(seconds: float) -> str:
    """'01:02.3', or '1:02:03.4' from an hour on."""
    tenths = round(seconds * 10)
    hours, rest = divmod(tenths, 36_000)
    minutes, rest = divmod(rest, 600)
    text = f"{minutes:02d}:{rest // 10:02d}.{rest % 10}"
    return f"{hours}:{text}" if hours else text


def transcript_text(segments: list[dict[str, Any]], timestamps: bool) -> str:
    """One line per segment with timestamps; else paragraphs, broken at long pauses."""
    if timestamps:
        return "\n".join(
            f"[{clock(s['start'])} -> {clock(s['end'])}] {s['text']}" for s in segments
        )
    paragraphs: list[list[str]] = []
    last_end = None
    for seg in segments:
        if last_end is None or seg["start"] - last_end >= PARAGRAPH_GAP_S:
            paragraphs.append([])
        paragraphs[-1].append(seg["text"])
        last_end = seg["end"]
    return "\n\n".join(" ".join(p) for p in paragraphs)


def load_samples(art: Artifact, ctx: ToolContext) -> Any:
    """16 kHz mono float32 samples of an audio file or a video's soundtrack, within
    ``tools.audio.max_transcribe_seconds``."""
    import numpy as np

    limit = ctx.settings.audio.max_transcribe_seconds

    def check(seconds: float) -> None:
        if seconds > limit:
            raise ToolError(
                f"{art.label()} lasts {clock(seconds)} ({seconds:.1f} s); transcribe takes at "
                f"most {limit:g} s (tools.audio.max_transcribe_seconds): cut it with "
                "trim_audio first, or raise the setting"
            )

    check(float(audio_facts(art).get("duration") or 0.0))  # the header, before decoding
    data, rate = decode_audio(art, ctx.settings)
    check(len(data) / rate)
    mono = data.mean(axis=1, keepdims=True) if data.shape[1] > 1 else data
    return np.ascontiguousarray(resample(mono, rate, SAMPLE_RATE)[:, 0], dtype=np.float32)


class Transcribe(Tool):
    name = "transcribe"
    description = "Transcribe speech in audio or a video's soundtrack to text."
    inputs = TranscribeArgs
    outputs = (Modality.TEXT,)

    def run(self, args: TranscribeArgs, ctx: ToolContext) -> ToolResult:
        settings = ctx.settings.audio
        samples = load_samples(args.audio, ctx)
        duration = len(samples) / SAMPLE_RATE
        where = args.audio.label()
        no_speech = ToolError(f"no speech found in {where} ({duration:.1f} s of audio)")
        ctx.report(0.0, f"loading {settings.recognizer}")
        rec = load_recognizer(ctx, settings.recognizer)
        notes: list[str] = []
        choice = choose_model(ctx, rec, args.language, samples, notes)
        if choice is None:
            raise no_speech
        rec, language, probability, detected_with = choice
        ctx.check_cancelled()
        ctx.report(0.05, f"transcribing {language_name(language)} speech")
        segments = []
        try:
            for seg in recognize(ctx, rec, samples, language, notes):
                ctx.check_cancelled()
                if seg["text"]:
                    segments.append(seg)
                    snippet = seg["text"] if len(seg["text"]) <= 60 else seg["text"][:57] + "..."
                    ctx.report(seg["end"] / duration, f"{clock(seg['end'])}: {snippet}")
        except ValueError as exc:  # e.g. a language this particular model does not know
            raise ToolError(f"{rec.backend} cannot transcribe {where}: {first_line(exc)}") from exc
        text = transcript_text(segments, args.timestamps)
        words = len(" ".join(s["text"] for s in segments).split())
        if not words:
            raise no_speech
        stem = Path(args.audio.name).stem or "audio"
        facts = {"language": language, "duration": round(duration, 3), "backend": rec.backend}
        meta = {"source_step": ctx.step_id, "source": args.audio.id, **facts, "model": rec.spec}
        art = ctx.store.add_text(text, name=f"{stem}-transcript.txt", metadata=meta)
        data: dict[str, Any] = {
            "text": transcript_text(segments, False),
            **facts,
            "language_probability": None if probability is None else round(probability, 4),
            "model": rec.spec,
            "segments": segments,
        }
        if detected_with:
            data["detected_with"] = detected_with
        if notes:
            data["notes"] = notes
        summary = (
            f"transcribed {duration:.1f} s of {language_name(language)} speech from {where} "
            f"({rec.backend} {rec.label}): {words} word{'s' * (words != 1)}"
        )
        ctx.report(1.0, "done")
        return ToolResult(artifacts=[art], data=data, summary=summary)


transcribe = Transcribe()
