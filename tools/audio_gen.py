"""Text to music and sound: generate_music and generate_sound.

The models are settings (``tools.audio.music_generator``, ``tools.audio.sound_generator``): a
catalog name, a folder or a Hub id. The backend is told from the model's files: a transformers
MusicGen (config.json ``model_type`` musicgen / musicgen_melody) or a diffusers audio pipeline
(model_index.json: AudioLDM2, AudioLDM, MusicLDM, Stable Audio). Where no model is installed and
``tools.audio.procedural_fallback`` allows it, ``tools.audio_synth`` makes a clip instead,
labelled as such in the artifact, the data and the summary.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools import diffusion
from tools.artifact import Modality, slug
from tools.audio_ops import store_audio
from tools.base import Tool, ToolContext, ToolResult, pick_seed, seed_field, text_input
from tools.diffusion import ModelMissing
from tools.errors import ToolError, require
from tools.hf import check_cached, first_line, model_source, offline, weights_size

MUSIC_SETTING = "tools.audio.music_generator"
SOUND_SETTING = "tools.audio.sound_generator"
LENGTH_ARGS = ("audio_length_in_s", "audio_end_in_s")
"""How diffusers audio pipelines take the clip's length (AudioLDM*, MusicLDM / Stable Audio)."""
MUSICGEN_CLASSES = {
    "musicgen": "MusicgenForConditionalGeneration",
    "musicgen_melody": "MusicgenMelodyForConditionalGeneration",
}
PROCEDURAL_LABEL = "procedural fallback (synthesised, not a model's output)"
REPORTS = 100
"""Progress reports per MusicGen clip at most (one per token would flood the event stream)."""

if TYPE_CHECKING:
    Prompt = str
    SoundPrompt = str
else:
    Prompt = text_input("what the music should sound like")
    SoundPrompt = text_input("what it should sound like")


def _negative() -> Any:
    return Field(None, description="what it should not sound like (diffusion models only)")


def _steps() -> Any:
    text = "diffusion steps: more is slower and finer (diffusion models only; default: the model's)"
    return Field(None, ge=1, le=1000, description=text)


class GenerateMusicArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Prompt
    duration: float = Field(10.0, ge=1, le=300, description="length in seconds")
    seed: int | None = seed_field()
    tempo: int | None = Field(
        None, ge=40, le=220, description="beats per minute (a hint for the procedural fallback)"
    )
    key: str | None = Field(
        None,
        pattern=r"^[A-Ga-g][#b]?$",
        description="musical key such as 'C' or 'F#' (a hint for the procedural fallback)",
    )
    mode: Literal["major", "minor"] | None = Field(
        None, description="major or minor (a hint for the procedural fallback)"
    )
    negative_prompt: str | None = _negative()
    steps: int | None = _steps()


class GenerateSoundArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: SoundPrompt
    duration: float = Field(5.0, ge=0.5, le=120, description="length in seconds")
    seed: int | None = seed_field()
    negative_prompt: str | None = _negative()
    steps: int | None = _steps()


@dataclass
class AudioGenerator:
    """A loaded generator: a MusicGen (model, processor) or a diffusers pipeline."""

    backend: Literal["transformers", "diffusers"]
    model: Any
    spec: str
    processor: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    """One generation at a time: steps share the loaded model (and a pipeline's scheduler)."""

    @property
    def name(self) -> str:
        return type(self.model).__name__


def install_advice(spec: str, setting: str) -> str:
    """How to get a generator for ``setting`` (diffusion.install_advice, for audio models)."""
    example = "musicgen-small" if setting == MUSIC_SETTING else "audioldm2"
    kind = "a MusicGen or diffusers audio model"
    return diffusion.install_advice(spec, setting, kind=kind, example=example)


def _read_marker(source: str, name: str) -> dict[str, Any] | None:
    """``name`` (model_index.json, config.json) of a folder or Hub model, None if it has none.

    Raises:
        ModelMissing: A Hub model that cannot be read: offline and not cached, or not found.
    """
    if Path(source).is_dir():
        path: Any = Path(source) / name
        if not path.is_file():
            return None
    else:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

        path = try_to_load_from_cache(source, name)
        if not isinstance(path, str):
            if path is not None or offline():  # known absent, or cannot ask the Hub
                return None
            try:
                path = hf_hub_download(source, name)
            except EntryNotFoundError:
                return None
            except (HfHubHTTPError, OSError, ValueError) as exc:
                raise ModelMissing(
                    f"cannot read {source} from the Hub ({first_line(exc)})"
                ) from None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ToolError(f"cannot read {name} of {source}: {first_line(exc)}") from None
    return data if isinstance(data, dict) else None


def load_generator(ctx: ToolContext, spec: str, setting: str) -> AudioGenerator:
    """Load the model ``spec`` names, once per model manager, telling the backend from its files.

    Raises:
        ModelMissing: Not installed (a catalog model never pulled, not in the Hugging Face
            cache, no such folder).
        ToolError: It is there but is no text-to-audio model, or cannot be loaded.
    """
    from tools.model_files import ChecksumMismatch

    try:
        source = model_source(spec, ctx.models, setting)
        index = _read_marker(source, "model_index.json")
        config = None if index else _read_marker(source, "config.json")
        if index is None and config is None:
            check_cached(spec, source, marker="config.json", setting=setting)
    except ChecksumMismatch:
        raise
    except ModelMissing as exc:
        raise ModelMissing(f"{exc}; {install_advice(spec, setting)}") from None
    except ToolError as exc:  # its message says how to get the model
        raise ModelMissing(str(exc)) from None
    if index is not None:
        return _load_pipeline(ctx, spec, source, str(index.get("_class_name")), setting)
    model_type = (config or {}).get("model_type")
    if model_type in MUSICGEN_CLASSES:
        from tools.hf import load_pretrained

        model, processor = load_pretrained(
            ctx, spec, setting, "MusicGen model", MUSICGEN_CLASSES[model_type]
        )
        return AudioGenerator("transformers", model, spec, processor)
    what = (
        f"is a {model_type!r} transformers model, not a text-to-audio generator"
        if model_type
        else "holds neither model_index.json nor config.json, so it is no model"
    )
    raise ToolError(
        f"{spec} {what}; set {setting} to a MusicGen model "
        "(config.json model_type 'musicgen') or a diffusers audio pipeline (model_index.json: "
        "AudioLDM2, AudioLDM, MusicLDM, Stable Audio)"
    )


def _length_arg(cls: Any) -> str | None:
    """The argument ``cls`` takes the clip's length by; None if it takes none, or no prompt
    (DanceDiffusion has a length but is unconditional)."""
    params = inspect.signature(cls.__call__).parameters
    if "prompt" not in params:
        return None
    return next((a for a in LENGTH_ARGS if a in params), None)


def _load_pipeline(
    ctx: ToolContext, spec: str, source: str, class_name: str, setting: str
) -> AudioGenerator:
    from tools.diffusion import device_and_dtype, dtype_kwarg

    diffusers = require("diffusers", "image")
    cls = getattr(diffusers, class_name, None)
    if cls is None or _length_arg(cls) is None:
        raise ToolError(
            f"{spec} is a {class_name}, not a text-to-audio pipeline; set {setting} to an "
            "AudioLDM2, AudioLDM, MusicLDM or Stable Audio model"
            + ("" if cls else f" (or update diffusers, which has no {class_name})")
        )

    def loader() -> AudioGenerator:
        ctx.report(0.0, f"loading {spec}")
        device, dtype = device_and_dtype(ctx)
        try:
            pipe = cls.from_pretrained(source, **dtype_kwarg(diffusers, dtype))
        except OSError as exc:
            if not Path(source).is_dir():
                raise ModelMissing(
                    f"cannot load {spec!r} ({first_line(exc)}); {install_advice(spec, setting)}"
                ) from None
            raise ToolError(f"cannot load {spec!r} ({setting}): {first_line(exc)}") from None
        except (ValueError, TypeError, KeyError, RuntimeError, ImportError) as exc:
            raise ToolError(
                f"cannot load {spec!r} as a {class_name} ({setting}): {first_line(exc)}"
            ) from None
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        return AudioGenerator("diffusers", pipe, spec)

    if ctx.models is None:
        return loader()
    key = f"diffusers-audio:{source}"
    return ctx.models.load(key, loader, size_bytes=lambda: weights_size(source))


def _too_long(gen: AudioGenerator, longest: float) -> ToolError:
    return ToolError(
        f"{gen.spec} makes at most {longest:.1f} s in one clip; ask for {math.floor(longest)} s "
        "or less and join clips with concat_audio"
    )


def _musicgen(
    ctx: ToolContext, gen: AudioGenerator, prompt: str, seconds: float, seed: int, label: str
) -> Any:
    """``(samples (frames, channels), rate)`` from MusicGen, sampled with ``seed``.

    The global torch RNG is left as it was: the seed is set inside ``fork_rng``.
    """
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    from tools.hf import model_inputs

    model, cfg = gen.model, gen.model.config
    rate, frame_rate = int(cfg.audio_encoder.sampling_rate), float(cfg.audio_encoder.frame_rate)
    codebooks = int(cfg.decoder.num_codebooks)
    tokens = math.ceil(seconds * frame_rate) + codebooks  # the delay pattern costs codebooks - 1
    limit = int(cfg.decoder.max_position_embeddings)
    if tokens > limit:
        raise _too_long(gen, (limit - codebooks) / frame_rate)
    every = max(1, tokens // REPORTS)

    class Progress(LogitsProcessor):
        """Counts generated tokens: reports progress, stops on cancel."""

        done = 0

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            ctx.check_cancelled()
            self.done += 1
            if self.done % every == 0 or self.done == tokens:
                ctx.report(self.done / tokens, f"{label}: token {self.done}/{tokens}")
            return scores

    batch = model_inputs(gen.processor(text=[prompt], padding=True, return_tensors="pt"), model)
    cuda = str(model.device).startswith("cuda")
    try:
        with gen.lock, torch.random.fork_rng(devices=None if cuda else []), torch.inference_mode():
            torch.manual_seed(seed)
            out = model.generate(
                **batch,
                do_sample=True,
                max_new_tokens=tokens,
                logits_processor=LogitsProcessorList([Progress()]),
            )
    except torch.OutOfMemoryError:
        raise ToolError("generating ran out of memory; ask for a shorter clip") from None
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ToolError(f"{gen.spec} failed: {first_line(exc)}") from None
    audio = out[0].float().cpu().numpy().T  # (channels, samples) -> (frames, channels)
    return audio, rate


def _diffusers(
    ctx: ToolContext,
    gen: AudioGenerator,
    prompt: str,
    seconds: float,
    seed: int,
    args: Any,
    label: str,
) -> tuple[Any, int, int]:
    """``(samples (frames, channels), rate, steps)`` from a diffusers audio pipeline."""
    import numpy as np
    import torch

    from tools.diffusion import generators

    pipe = gen.model
    params = inspect.signature(type(pipe).__call__).parameters
    length_arg = _length_arg(type(pipe)) or LENGTH_ARGS[0]  # checked when loaded
    vae, transformer = getattr(pipe, "vae", None), getattr(pipe, "transformer", None)
    if length_arg == "audio_end_in_s" and vae is not None and transformer is not None:
        longest = transformer.config.sample_size * vae.hop_length / vae.sampling_rate
        if seconds > longest:
            raise _too_long(gen, longest)
    default = params["num_inference_steps"].default
    steps = args.steps or (default if isinstance(default, int) else 50)
    call: dict[str, Any] = {"prompt": prompt, length_arg: seconds, "num_inference_steps": steps}
    call |= {"generator": generators(ctx, [seed])[0], "output_type": "np"}
    if args.negative_prompt:
        call["negative_prompt"] = args.negative_prompt
    done = 0

    def on_step() -> None:
        nonlocal done
        ctx.check_cancelled()
        done += 1
        ctx.report(min(1.0, done / steps), f"{label}: step {min(done, steps)}/{steps}")

    def on_step_end(p: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        on_step()
        return kwargs

    if "callback_on_step_end" in params:
        call["callback_on_step_end"] = on_step_end
    elif "callback" in params:
        call |= {"callback": lambda i, t, latents: on_step(), "callback_steps": 1}
    try:
        with gen.lock:
            out = pipe(**call)
    except torch.OutOfMemoryError:
        raise ToolError("generating ran out of memory; ask for a shorter clip") from None
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ToolError(f"{gen.spec} failed: {first_line(exc)}") from None
    audio = np.asarray(out.audios[0], dtype=np.float32)
    audio = audio[:, None] if audio.ndim == 1 else audio.T  # (channels, samples) -> frames first
    vocoder = getattr(pipe, "vocoder", None)  # AudioLDM*: the vocoder's rate, else the VAE's
    rate = vocoder.config.sampling_rate if vocoder is not None else getattr(vae, "sampling_rate", 0)
    if not rate:
        raise ToolError(f"{gen.spec} ({gen.name}) names no sample rate (no vocoder, no VAE rate)")
    return audio, int(rate), steps


def _fit(audio: Any, rate: int, seconds: float) -> tuple[Any, str | None]:
    """Exactly ``seconds`` long: the model's output trimmed, or padded with silence."""
    import numpy as np

    frames = round(seconds * rate)
    have = len(audio)
    if have == frames:
        return audio, None
    if have > frames:
        return audio[:frames], f"trimmed the model's {have / rate:.3f} s to {seconds:g} s"
    pad = np.zeros((frames - have, audio.shape[1]), dtype=audio.dtype)
    return np.concatenate([audio, pad]), f"padded the model's {have / rate:.3f} s to {seconds:g} s"


def _generate(ctx: ToolContext, args: Any, what: str) -> ToolResult:
    """Shared by both tools; ``what`` is 'music' or 'sound'."""
    s = ctx.settings.audio
    setting = MUSIC_SETTING if what == "music" else SOUND_SETTING
    spec = s.music_generator if what == "music" else s.sound_generator
    prompt = args.prompt.strip()
    if not prompt:
        raise ToolError(f"the prompt is empty; say what the {what} should sound like")
    if args.duration > s.max_generate_seconds:
        raise ToolError(
            f"duration {args.duration:g} s is over the limit of {s.max_generate_seconds:g} s "
            "(tools.audio.max_generate_seconds); ask for less or raise that setting"
        )
    if ctx.models is None:  # direct use: catalog models still resolve through the cache
        from tools.models import manager_of

        ctx = dataclasses.replace(ctx, models=manager_of(ctx))
    seed = pick_seed(args.seed)
    try:
        gen = load_generator(ctx, spec, setting)
    except ModelMissing as missing:
        return _procedural(ctx, args, what, prompt, seed, spec, missing)
    ctx.check_cancelled()
    notes = []
    hints = [n for n in ("tempo", "key", "mode") if getattr(args, n, None) is not None]
    if hints:
        verb = "guides" if len(hints) == 1 else "guide"
        notes.append(
            f"{', '.join(hints)} {verb} only the procedural fallback; say it in the prompt"
        )
    if gen.backend == "transformers":
        ignored = [n for n in ("negative_prompt", "steps") if getattr(args, n)]
        if ignored:
            notes.append(f"{' and '.join(ignored)} only apply to diffusion models")
        audio, rate = _musicgen(ctx, gen, prompt, args.duration, seed, f"generate_{what}")
        steps = None
    else:
        label = f"generate_{what}"
        audio, rate, steps = _diffusers(ctx, gen, prompt, args.duration, seed, args, label)
    raw = len(audio) / rate
    audio, fit = _fit(audio, rate, args.duration)
    if fit:
        notes.append(fit)
    facts: dict[str, Any] = {"model": spec, "backend": gen.backend, "model_class": gen.name}
    facts |= {"prompt": prompt, "seed": seed, "sample_rate": rate, "duration": args.duration}
    facts |= {"channels": int(audio.shape[1]), "procedural": False}
    if steps is not None:
        facts["steps"] = steps
    if args.negative_prompt and gen.backend == "diffusers":
        facts["negative_prompt"] = args.negative_prompt
    stem = f"{what}-{slug(prompt, 'clip')}-{seed}"
    art = store_audio(ctx, audio, rate, None, stem, fmt="wav", **facts)
    verb = "composed" if what == "music" else "generated"
    summary = f"{verb} {args.duration:g} s of {what} with {spec} (seed {seed})"
    summary += "".join(f"; {n}" for n in notes)
    data = facts | {"model_duration": round(raw, 6), "fitted": fit, "notes": notes}
    return ToolResult(artifacts=[art], data=data, summary=summary)


def _procedural(
    ctx: ToolContext,
    args: Any,
    what: str,
    prompt: str,
    seed: int,
    spec: str,
    missing: ToolError,
) -> ToolResult:
    """No model: a labelled synthesised clip where the settings allow it, else the error."""
    from tools import audio_synth

    if not ctx.settings.audio.procedural_fallback:
        raise ToolError(
            f"generate_{what} needs a {what} model: {missing} "
            "(tools.audio.procedural_fallback is off, so no procedural clip stands in)"
        )
    ctx.report(0.0, f"no {what} model; synthesising a procedural clip")
    if what == "music":
        plan = audio_synth.plan_music(prompt, seed, args.tempo, args.key, args.mode)
        params = plan.describe()

        def tick(fraction: float) -> None:
            ctx.check_cancelled()
            ctx.report(fraction, "synthesising")

        audio = audio_synth.render_music(plan, args.duration, seed, tick)
        about = f"{plan.tempo} bpm in {plan.key} {plan.mode}, {plan.instrument}"
        about += ", drums" if plan.drums else ""
    else:
        params = audio_synth.plan_sound(prompt)
        ctx.check_cancelled()
        audio = audio_synth.render_sound(params, args.duration, seed)
        about = f"shaped noise: {params['kind']}"
    ctx.check_cancelled()
    ctx.report(1.0, "synthesised")
    rate = audio_synth.RATE
    label = {"procedural": True, "label": PROCEDURAL_LABEL, "fallback_reason": str(missing)}
    facts: dict[str, Any] = {"model": None, "backend": "procedural", "prompt": prompt}
    facts |= {"seed": seed, "sample_rate": rate, "duration": args.duration}
    facts |= {"channels": 1 if audio.ndim == 1 else int(audio.shape[1])}
    meta = facts | label | {"parameters": params, "requested_model": spec}
    stem = f"{what}-{slug(prompt, 'clip')}-{seed}"
    art = store_audio(ctx, audio, rate, None, stem, fmt="wav", **meta)
    summary = (
        f"no {what} model is installed ({missing}); this is a procedural synthesised clip, "
        f"not a model's output: {args.duration:g} s, {about} (seed {seed})"
    )
    data = meta | {"notes": []}
    return ToolResult(artifacts=[art], data=data, summary=summary)


class GenerateMusic(Tool):
    name = "generate_music"
    description = "Compose music from a text description (genre, mood, instruments, tempo)."
    inputs = GenerateMusicArgs
    outputs = (Modality.AUDIO,)

    def run(self, args: GenerateMusicArgs, ctx: ToolContext) -> ToolResult:
        return _generate(ctx, args, "music")


class GenerateSound(Tool):
    name = "generate_sound"
    description = "Generate a sound effect or ambience from a text description."
    inputs = GenerateSoundArgs
    outputs = (Modality.AUDIO,)

    def run(self, args: GenerateSoundArgs, ctx: ToolContext) -> ToolResult:
        return _generate(ctx, args, "sound")


generate_music = GenerateMusic()
generate_sound = GenerateSound()
