"""Speech synthesis (``speak``): piper voices (ONNX, offline), transformers VITS / MMS-TTS
models, or the espeak-ng program where it is installed.

Text is split into sentences here (abbreviations, decimals and ellipses do not end one; an
over-long sentence is cut at a comma or a space), each is spoken on its own and the pieces are
joined with short pauses, so long texts neither overflow a model's input nor hide progress.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools import languages
from tools.artifact import Modality
from tools.base import Tool, ToolContext, ToolResult, text_input
from tools.errors import ToolError, require
from tools.hf import HUB_ID, check_cached, first_line, not_found, weights_size
from tools.models import ModelManager, manager_of

SETTING = "tools.audio.voice"
MAX_CHUNK_CHARS = 300
"""Longest piece spoken at once: VITS-style models degrade (and slow down) on long inputs."""
SENTENCE_PAUSE = 0.25
PARAGRAPH_PAUSE = 0.6
VITS_SEED = 0
"""VITS samples noise; a fixed seed makes the same text give the same audio."""
ESPEAK_WPM = 175
"""espeak-ng's default rate, words per minute, scaled by ``speed``."""

ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "fig", "figs",
        "approx", "dept", "inc", "ltd", "corp", "gen", "col", "lt", "sgt", "capt", "rev",
        "gov", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
        "dec", "cf", "al", "vol", "pp",
    }
)  # fmt: skip
"""Words whose full stop does not end a sentence ('etc.' usually does, so it is not here)."""

_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)|[。！？]+")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•·]|\d+[.)])\s+")
_MARKUP = re.compile(r"^\s*#+\s*|\*\*|__|`")
_WORD = re.compile(r"\w+(?:['’]\w+)*")
_seed_lock = threading.Lock()
"""VITS samples from torch's global generator: one seeded synthesis at a time."""


class SpeakArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: text_input("what to say")  # type: ignore[valid-type]
    voice: str = Field(
        "default", description="a voice name or a short description, e.g. 'calm female'"
    )
    speed: float = Field(1.0, ge=0.5, le=2.0, description="speaking rate")
    language: str | None = Field(None, description="the language to speak (default: the voice's)")
    format: Literal["wav", "flac", "ogg", "mp3"] = Field("wav", description="the file format")


@dataclass(frozen=True)
class VoiceSpec:
    """A voice found but not loaded: which backend runs it, from where, in which language."""

    backend: Literal["piper", "vits", "espeak-ng"]
    spec: str
    """As the user or the config named it."""
    source: str
    """The .onnx file, the VITS folder or Hub id, or the espeak-ng voice name."""
    language: str | None
    label: str


# --- languages -------------------------------------------------------------------------------


def language_code(value: str) -> str:
    """'en' for 'en_US', 'English', 'eng' or 'en-gb'; unknown languages as given, lower-cased."""
    return languages.lookup(value) or value.strip().lower().replace("_", "-").split("-")[0]


def language_name(code: str | None) -> str:
    return languages.name(code)


# --- sentences -------------------------------------------------------------------------------


def speakable(text: str) -> bool:
    """Whether ``text`` holds a letter or a digit (punctuation, symbols and emoji say nothing)."""
    return any(ch.isalnum() for ch in text)


def split_sentences(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[tuple[str, bool]]:
    """Speakable pieces of ``text``, each at most ``max_chars`` long, with whether a new
    paragraph starts there. Blank lines separate paragraphs; a single line break ends a
    sentence after a short line (a heading, a list item) but not inside wrapped prose."""
    pieces: list[tuple[str, bool]] = []
    for paragraph in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [_MARKUP.sub("", _LIST_ITEM.sub("", ln)).strip() for ln in paragraph.split("\n")]
        blocks: list[str] = []
        previous = 0  # length of the line before: wrapped prose runs on, short lines end
        for raw, line in zip(paragraph.split("\n"), lines, strict=True):
            if blocks and line and previous >= 50 and not _LIST_ITEM.match(raw):
                blocks[-1] += " " + line
            elif line:
                blocks.append(line)
            previous = len(line)
        first = True
        for block in blocks:
            for sentence in _sentences(block):
                for chunk in _cut(sentence, max_chars):
                    if speakable(chunk):
                        pieces.append((chunk, first and bool(pieces)))
                        first = False
    return pieces


def _sentences(block: str) -> list[str]:
    out, start = [], 0
    for m in _END.finditer(block):
        before = block[start : m.start()].split()
        word = before[-1].strip("\"'“‘([").lower() if before else ""
        rest = block[m.end() :].lstrip()
        if m.group().rstrip("\"'”’)]") == "." and (
            word in ABBREVIATIONS or re.fullmatch(r"[a-z]|(?:[a-z]\.)+[a-z]", word)
        ):
            continue  # "Dr. Smith", "J. Smith", "e.g. this", "U.S. law"
        if rest and rest[0].islower():
            continue  # "wait... and then", "approx. five"
        out.append(block[start : m.end()].strip())
        start = m.end()
    out.append(block[start:].strip())
    return [s for s in out if s]


def _cut(sentence: str, max_chars: int) -> list[str]:
    """``sentence`` in pieces of at most ``max_chars``: at a clause mark, else a space."""
    out = []
    while len(sentence) > max_chars:
        head = sentence[:max_chars]
        marks = [m.end() for m in re.finditer(r"[,;:—–]\s", head)]
        spaces = [m.start() for m in re.finditer(r"\s", head)]
        cut = next((c for c in (marks[-1:] or spaces[-1:]) if c > max_chars // 3), max_chars)
        out.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    return [*out, sentence] if sentence else out


def slug(text: str, words: int = 5) -> str:
    found = [w.lower() for w in _WORD.findall(text)[:words]]
    return re.sub(r"[^\w-]", "", "-".join(found))[:40].strip("-") or "speech"


# --- choosing a voice ------------------------------------------------------------------------


def find_voice(spec: str, models: ModelManager) -> VoiceSpec | None:
    """What ``spec`` names (a catalog voice, a file or folder, a Hub id, espeak-ng), or None
    when it names no voice at all (a description such as 'calm female')."""
    if spec == "espeak-ng" or spec.startswith("espeak-ng:"):
        if shutil.which("espeak-ng") is None:
            raise ToolError(
                "the voice 'espeak-ng' needs the espeak-ng program, which is not on PATH; "
                "install it (e.g. apt install espeak-ng) or choose another voice"
            )
        name = spec.partition(":")[2] or "en"
        return VoiceSpec("espeak-ng", spec, name, language_code(name.split("+")[0]), name)
    if spec in models.catalog:
        entry = models.catalog.get(spec)
        if entry.task != "text-to-speech":
            raise ToolError(f"{spec} is a {entry.task} model, not a voice; choose a voice")
        return _voice_at(models.path(spec), spec)  # raises ModelNotInstalled with advice
    path = Path(spec).expanduser()
    if spec.startswith(("/", "~", ".")) or "\\" in spec or spec.endswith((".onnx", ".json")):
        if not path.exists():
            raise ToolError(
                f"the voice file {spec} does not exist; give a piper voice (.onnx with its "
                ".onnx.json beside it), a transformers VITS folder or Hub id, or a voice name"
            )
        return _voice_at(path, spec)
    if "/" in spec and HUB_ID.match(spec):
        if path.is_dir():
            return _voice_at(path, spec)
        return VoiceSpec("vits", spec, spec, _mms_language(spec), spec.rsplit("/", 1)[-1])
    return None


def _voice_at(path: Path, spec: str) -> VoiceSpec:
    if path.is_dir():
        if (path / "config.json").is_file():
            return _vits_at(path, spec)
        onnx = sorted(path.glob("*.onnx"))
        if len(onnx) != 1:
            raise ToolError(
                f"{path} holds {len(onnx)} .onnx files and no config.json, so it is neither one "
                "piper voice nor a transformers VITS model; name the .onnx file itself"
            )
        path = onnx[0]
    if path.suffix == ".json" and path.name.endswith(".onnx.json"):
        path = path.with_suffix("")
    if path.suffix != ".onnx":
        raise ToolError(f"{path} is not a voice: give a piper .onnx file or a VITS model folder")
    meta_file = Path(f"{path}.json")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ToolError(
            f"the piper voice {path.name} needs its config {meta_file.name} beside it "
            f"({first_line(exc)}); download both files of the voice"
        ) from None
    lang = (meta.get("language") or {}).get("code") or (meta.get("espeak") or {}).get("voice")
    label = meta.get("dataset") or path.stem
    return VoiceSpec("piper", spec, str(path), language_code(lang) if lang else None, label)


def _vits_at(path: Path, spec: str) -> VoiceSpec:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        tok_file = path / "tokenizer_config.json"
        tok = json.loads(tok_file.read_text(encoding="utf-8")) if tok_file.is_file() else {}
    except (OSError, ValueError) as exc:
        raise ToolError(f"cannot read the model config in {path}: {first_line(exc)}") from None
    if config.get("model_type") != "vits":
        raise ToolError(
            f"{path} holds a {config.get('model_type') or 'unknown'} model, not a VITS voice; "
            "speak runs piper voices, transformers VITS / MMS-TTS models and espeak-ng"
        )
    lang = tok.get("language") or _mms_language(path.name)
    return VoiceSpec("vits", spec, str(path.resolve()), lang and language_code(lang), path.name)


def _mms_language(name: str) -> str | None:
    m = re.search(r"mms-tts-([a-z]{3})\b", name)
    return language_code(m.group(1)) if m else None


def choose_voice(ctx: ToolContext, wanted: str, language: str | None) -> tuple[VoiceSpec, str]:
    """The voice to use and a note ('' when it is exactly what was asked for)."""
    audio, models = ctx.settings.audio, manager_of(ctx)
    named = {k.lower(): v for k, v in audio.voices.items()}
    key = wanted.strip().lower()
    note = ""
    if key in ("", "default"):
        voice = find_voice(audio.voice, models)
    elif key in named:
        voice = find_voice(named[key], models)
    elif (voice := find_voice(wanted.strip(), models)) is None:
        words = set(_WORD.findall(key))
        match = next((n for n in named if n in words or (" " in n and n in key)), None)
        if match is not None:
            voice = find_voice(named[match], models)
            note = f"matched {wanted!r} to the configured voice {match!r}"
        else:
            voice = find_voice(audio.voice, models)
            have = ", ".join(sorted(audio.voices)) or "none"
            note = (
                f"no voice matches {wanted!r} (configured voices: {have}), so the default voice "
                "was used; name more voices under [tools.audio] voices in config.toml"
            )
    if voice is None:
        raise ToolError(
            f"{SETTING} = {audio.voice!r} names no voice; set it to a piper .onnx file, a "
            "catalog voice, a VITS folder or Hub id, or 'espeak-ng'"
        )
    if language is None:
        return voice, note
    code = language_code(language)
    if voice.language in (code, None):
        if voice.language is None:
            note = "; ".join(filter(None, [note, f"could not check that it speaks {language}"]))
        return voice, note
    known = [voice]
    for spec in [audio.voice, *audio.voices.values()]:
        try:
            other = find_voice(spec, models)
        except ToolError:
            continue
        if other is not None and other.language == code:
            switched = f"used {other.label} to speak {language_name(code)}"
            return other, "; ".join(filter(None, [note, switched]))
        if other is not None and other not in known:
            known.append(other)
    speak = ", ".join(f"{language_name(v.language)} ({v.backend} voice {v.label})" for v in known)
    iso3 = languages.ISO3.get(code, code)
    raise ToolError(
        f"no installed voice speaks {language_name(code)}; the voices here speak {speak}. "
        "To add one, download a piper voice for it (the .onnx and its .onnx.json, from "
        "rhasspy/piper-voices) or use a transformers MMS-TTS model (facebook/mms-tts-"
        f'{iso3}), and name it in config.toml: [tools.audio] voices = {{ {code} = "PATH" }}'
    )


# --- loading and synthesis -------------------------------------------------------------------


def load_voice(ctx: ToolContext, voice: VoiceSpec) -> Any:
    """The loaded engine (a PiperVoice, or a VITS model and tokenizer), once per manager."""
    models = manager_of(ctx)
    if voice.backend == "espeak-ng":
        return None
    if voice.backend == "piper":
        piper = require("piper", "piper")

        def load_piper() -> Any:
            try:
                return piper.PiperVoice.load(voice.source)
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ToolError(
                    f"cannot load the piper voice {voice.source}: {first_line(exc)}; the .onnx "
                    "file is truncated or not a piper voice"
                ) from exc

        size = Path(voice.source).stat().st_size
        return models.load(f"piper:{voice.source}", load_piper, size_bytes=size)
    torch = require("torch", "vlm")
    transformers = require("transformers", "vlm")
    check_cached(voice.spec, voice.source, setting=SETTING)

    def load_vits() -> Any:
        hf_logging = transformers.utils.logging
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # "Loading weights" bars do not belong in a reply
        try:
            model = transformers.VitsModel.from_pretrained(voice.source, dtype=torch.float32)
            tokenizer = transformers.AutoTokenizer.from_pretrained(voice.source)
        except OSError as exc:
            if not Path(voice.source).is_dir():
                raise not_found(voice.spec, exc, SETTING) from exc
            raise ToolError(
                f"cannot load the VITS voice {voice.source}: {first_line(exc)}"
            ) from exc
        except (ValueError, KeyError, ImportError) as exc:
            raise ToolError(
                f"{voice.spec!r} is not a VITS voice transformers can run here: {first_line(exc)}"
            ) from exc
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        return model.to(models.device).eval(), tokenizer

    key = f"vits:{voice.source}"
    return models.load(key, load_vits, size_bytes=lambda: weights_size(voice.source))


def synthesize(voice: VoiceSpec, engine: Any, text: str, speed: float) -> tuple[Any, int]:
    """Mono float32 samples of ``text`` spoken at ``speed``, and their rate; empty samples
    when the voice has no sound for any character of ``text``."""
    import numpy as np

    if voice.backend == "piper":
        piper = require("piper", "piper")
        scale = engine.config.length_scale / speed
        syn = piper.SynthesisConfig(length_scale=scale, volume=0.9)
        chunks = [c.audio_float_array for c in engine.synthesize(text, syn_config=syn)]
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return audio.astype(np.float32), int(engine.config.sample_rate)
    if voice.backend == "vits":
        import torch

        model, tokenizer = engine
        inputs = tokenizer(text, return_tensors="pt").to(model.device)
        rate = int(model.config.sampling_rate)
        if inputs["input_ids"].shape[-1] == 0:
            return np.zeros(0, np.float32), rate
        with _seed_lock, torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(VITS_SEED)
            wave = model(**inputs, speaking_rate=speed).waveform
        return wave[0].float().cpu().numpy(), rate
    wpm = str(round(ESPEAK_WPM * speed))
    cmd = ["espeak-ng", "-v", voice.source, "-s", wpm, "--stdout", "--stdin"]
    proc = subprocess.run(cmd, input=text.encode(), capture_output=True, timeout=300)
    at = proc.stdout.find(b"data")
    if proc.returncode != 0 or at < 0:
        why = proc.stderr.decode(errors="replace").strip() or "no audio"
        raise ToolError(f"espeak-ng failed with voice {voice.source!r}: {why}")
    rate = int.from_bytes(proc.stdout[24:28], "little")
    pcm = proc.stdout[at + 8 :]
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768
    return samples, rate


class Speak(Tool):
    name = "speak"
    description = "Read text aloud with a text-to-speech voice."
    inputs = SpeakArgs
    outputs = (Modality.AUDIO,)

    def run(self, args: SpeakArgs, ctx: ToolContext) -> ToolResult:
        import numpy as np

        text, limit = args.text.strip(), ctx.settings.audio.max_speak_chars
        if not text:
            raise ToolError("the text to speak is empty; give the words to say (or '$s1')")
        if len(text) > limit:
            raise ToolError(
                f"the text is {len(text):,} characters; speak reads at most {limit:,} in one "
                "call (tools.audio.max_speak_chars): split it, or raise that setting"
            )
        pieces = split_sentences(text)
        if not pieces:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise ToolError(
                f"the text has nothing to say aloud ({shown!r} holds only punctuation, symbols "
                "or emoji); give words or numbers"
            )
        voice, note = choose_voice(ctx, args.voice, args.language)
        ctx.report(0.02, f"loading the {voice.backend} voice {voice.label}")
        engine = load_voice(ctx, voice)
        parts: list[Any] = []
        rate, silent = 0, 0
        for i, (sentence, paragraph) in enumerate(pieces, 1):
            ctx.check_cancelled()
            audio, rate = synthesize(voice, engine, sentence, args.speed)
            if len(audio) == 0:
                silent += 1
            else:
                if parts:
                    pause = PARAGRAPH_PAUSE if paragraph else SENTENCE_PAUSE
                    parts.append(np.zeros(round(pause * rate), np.float32))
                parts.append(audio)
            ctx.report(0.05 + 0.9 * i / len(pieces), f"sentence {i}/{len(pieces)}")
        if not parts:
            raise ToolError(
                f"the voice {voice.label} has no sound for any character of this text (it "
                f"speaks {language_name(voice.language)}); choose a voice for its language"
            )
        samples = np.concatenate(parts)
        duration = round(len(samples) / rate, 3)
        words = len(_WORD.findall(text))
        facts = {
            "voice": voice.spec,
            "backend": voice.backend,
            "model": voice.source,
            "sample_rate": rate,
            "duration": duration,
            "sentences": len(pieces),
            "characters": len(text),
            "words": words,
            "language": voice.language,
            "speed": args.speed,
        }
        if note:
            facts.update(voice_requested=args.voice, note=note)
        if silent:
            facts["unspoken_sentences"] = silent
        art = ctx.store.add_audio(
            samples,
            rate,
            name=f"speech-{slug(text)}.{args.format}",
            metadata={"source_step": ctx.step_id, **facts},
        )
        summary = f"spoke {words} word{'s' * (words != 1)} ({duration:.1f} s) with "
        summary += f"{voice.backend} voice {voice.label}" + (f"; {note}" if note else "")
        return ToolResult(artifacts=[art], data=facts, summary=summary)


speak = Speak()
