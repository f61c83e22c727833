"""generate_music and generate_sound on tiny random-weight models (a MusicGen, a Stable Audio
and an AudioLDM2 pipeline) saved with save_pretrained and loaded back through the tools, and
the labelled procedural fallback where no model is installed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.tiny_audio import (
    AUDIOLDM2_RATE,
    MUSICGEN_RATE,
    STABLE_AUDIO_RATE,
    build_tiny_audio_pipeline,
    build_tiny_musicgen,
)
from tools import ArtifactStore, Cancelled, ModelManager, ToolContext, ToolError, ToolSettings
from tools.audio_gen import PROCEDURAL_LABEL, generate_music, generate_sound
from tools.audio_synth import NOTES, RATE, SCALES

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny generators, built once: MusicGen, Stable Audio, AudioLDM2."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny-audio")
    return {
        "musicgen": build_tiny_musicgen(root / "musicgen"),
        "stable-audio": build_tiny_audio_pipeline(root / "stable-audio", "stable-audio"),
        "audioldm2": build_tiny_audio_pipeline(root / "audioldm2", "audioldm2"),
    }


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    """One model manager for the session, so each tiny model loads once."""
    return ModelManager(tmp_path_factory.mktemp("mm"), device="cpu", dtype="float32")


class Ctx:
    """A ToolContext that records progress events."""

    def __init__(self, tmp_path: Path, settings: ToolSettings, models: Any):
        self.events: list[tuple[float, str]] = []
        self.ctx = ToolContext(
            store=ArtifactStore(tmp_path / "store"),
            workspace=tmp_path,
            settings=settings,
            models=models,
            progress_fn=lambda f, m, p: self.events.append((f, m)),
            step_id="s1",
        )

    def files(self) -> set[Path]:
        return {p for p in self.ctx.store.root.rglob("*") if p.is_file()}


@pytest.fixture
def make(tmp_path: Path, tiny: dict[str, Path], models: ModelManager) -> Any:
    """``make(music="musicgen", sound="stable-audio", **audio_settings)``: a Ctx whose
    generators are the named tiny models (or any setting value)."""

    def build(music: str = "musicgen", sound: str = "stable-audio", **audio: Any) -> Ctx:
        audio.setdefault("music_generator", str(tiny.get(music, music)))
        audio.setdefault("sound_generator", str(tiny.get(sound, sound)))
        return Ctx(tmp_path, ToolSettings(audio=audio), models)

    return build


def wav(art: Any) -> tuple[np.ndarray, int]:
    """The samples as stored (16-bit integers, frames x channels) and the rate."""
    info = sf.info(art.path)
    assert info.format == "WAV" and Path(art.path).suffix == ".wav"
    data, rate = sf.read(art.path, dtype="int16", always_2d=True)
    return data, rate


# --- models -------------------------------------------------------------------------------


def test_musicgen_composes_a_wav_of_the_asked_length_at_its_rate(make):
    c = make()
    for seconds in (1.0, 1.5):
        result = generate_music(c.ctx, prompt="a calm piano song", duration=seconds, seed=5)
        (art,) = result.artifacts
        data, rate = wav(art)
        assert rate == MUSICGEN_RATE and data.shape == (round(seconds * rate), 1)
        assert np.abs(data).max() > 0  # the model's audio, not silence
        assert result.data["backend"] == "transformers" and result.data["procedural"] is False
        assert result.data["model_class"] == "MusicgenForConditionalGeneration"
        assert result.data["model"] == str(make().ctx.settings.audio.music_generator)
        assert result.data["sample_rate"] == rate and result.data["duration"] == seconds
        assert art.metadata["seed"] == 5 and art.metadata["prompt"] == "a calm piano song"
        assert art.metadata["procedural"] is False and art.metadata["backend"] == "transformers"
        # MusicGen makes whole codec frames (25 a second here): its clip is cut to length.
        assert result.data["model_duration"] > seconds and "trimmed" in result.data["fitted"]
        assert result.summary.startswith(f"composed {seconds:g} s of music with ")
        assert "(seed 5)" in result.summary


@pytest.mark.parametrize(
    ("kind", "rate", "channels", "model_class"),
    [
        ("stable-audio", STABLE_AUDIO_RATE, 2, "StableAudioPipeline"),
        ("audioldm2", AUDIOLDM2_RATE, 1, "AudioLDM2Pipeline"),
    ],
)
def test_diffusers_pipelines_make_a_wav_of_the_asked_length_at_their_rate(
    make, kind, rate, channels, model_class
):
    c = make(sound=kind)
    for seconds in (1.0, 1.5):
        result = generate_sound(c.ctx, prompt="rain on wood", duration=seconds, seed=2, steps=2)
        (art,) = result.artifacts
        data, got_rate = wav(art)
        assert got_rate == rate and data.shape == (round(seconds * rate), channels)
        assert np.abs(data).max() > 0
        assert result.data["model_class"] == model_class and result.data["steps"] == 2
        assert result.data["backend"] == "diffusers" and result.data["channels"] == channels
        assert result.summary.startswith(f"generated {seconds:g} s of sound with ")


def test_a_pipeline_serves_generate_music_and_musicgen_serves_generate_sound(make):
    c = make(music="audioldm2", sound="musicgen")
    music = generate_music(c.ctx, prompt="drums", duration=1.0, seed=1, steps=1)
    sound = generate_sound(c.ctx, prompt="a dog bark", duration=1.0, seed=1)
    assert music.data["model_class"] == "AudioLDM2Pipeline"
    assert sound.data["model_class"] == "MusicgenForConditionalGeneration"
    assert wav(music.artifacts[0])[0].shape[0] == AUDIOLDM2_RATE
    assert wav(sound.artifacts[0])[0].shape[0] == MUSICGEN_RATE


BACKENDS = [("musicgen", generate_music), ("stable-audio", generate_sound)]
BACKENDS += [("audioldm2", generate_sound)]


@pytest.mark.parametrize(("kind", "tool"), BACKENDS)
def test_same_seed_same_samples_other_seed_differs(make, kind, tool):
    c = make(music=kind, sound=kind)
    extra = {} if kind == "musicgen" else {"steps": 2}

    def samples(seed: int) -> np.ndarray:
        result = tool(c.ctx, prompt="happy music", duration=1.0, seed=seed, **extra)
        return wav(result.artifacts[0])[0]

    seven = samples(7)
    assert np.array_equal(samples(7), seven)
    assert not np.array_equal(samples(8), seven)


def test_musicgen_leaves_the_global_random_state_alone(make):
    c = make()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generate_music(c.ctx, prompt="bass", duration=1.0, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_an_unset_seed_is_picked_and_reported(make):
    c = make()
    result = generate_sound(c.ctx, prompt="wind", duration=1.0, steps=1)
    seed = result.data["seed"]
    assert isinstance(seed, int) and result.artifacts[0].metadata["seed"] == seed
    again = generate_sound(c.ctx, prompt="wind", duration=1.0, steps=1, seed=seed)
    assert again.artifacts[0].id == result.artifacts[0].id  # same bytes, same artifact


def test_progress_per_token_and_per_step(make):
    c = make()
    generate_music(c.ctx, prompt="a song", duration=1.0, seed=1)
    tokens = [(f, m) for f, m in c.events if m.startswith("generate_music: token ")]
    fractions = [f for f, _ in tokens]
    assert len(tokens) >= 20 and fractions == sorted(fractions) and fractions[-1] == 1.0
    c.events.clear()
    generate_sound(c.ctx, prompt="rain", duration=1.0, seed=1, steps=4)
    steps = [(round(f, 3), m) for f, m in c.events if ": step " in m]
    assert steps == [(round(i / 4, 3), f"generate_sound: step {i}/4") for i in range(1, 5)]


CANCEL_AT = {"musicgen": ": token ", "stable-audio": ": step ", "audioldm2": ": step "}


@pytest.mark.parametrize(("kind", "tool"), BACKENDS)
def test_cancel_from_progress_stops_and_stores_nothing(make, kind, tool):
    c = make(music=kind, sound=kind)
    marker = CANCEL_AT[kind]
    extra = {} if kind == "musicgen" else {"steps": 1}
    tool(c.ctx, prompt="warm up", duration=1.0, seed=1, **extra)  # loaded: cancel hits generation
    before = c.files()
    seen: list[str] = []

    def progress(fraction: float, message: str, preview: Any) -> None:
        seen.append(message)
        if marker in message:
            c.ctx.cancel_event.set()

    c.ctx.progress_fn = progress
    extra = {} if kind == "musicgen" else {"steps": 5}
    with pytest.raises(Cancelled):
        tool(c.ctx, prompt="never finished", duration=1.0, seed=2, **extra)
    assert sum(marker in m for m in seen) == 1  # stopped at the next token or step
    assert c.files() == before


def test_negative_prompt_reaches_a_pipeline_and_is_recorded(make):
    c = make()
    plain = generate_sound(c.ctx, prompt="rain", duration=1.0, seed=4, steps=2)
    negative = generate_sound(
        c.ctx, prompt="rain", duration=1.0, seed=4, steps=2, negative_prompt="thunder"
    )
    assert negative.artifacts[0].metadata["negative_prompt"] == "thunder"
    assert not np.array_equal(wav(plain.artifacts[0])[0], wav(negative.artifacts[0])[0])


def test_musicgen_says_which_arguments_it_ignores(make):
    result = generate_music(
        make().ctx, prompt="jazz", duration=1.0, seed=1, tempo=90, steps=4, negative_prompt="x"
    )
    notes = " ".join(result.data["notes"])
    assert "tempo guides only the procedural fallback" in notes
    assert "negative_prompt and steps only apply to diffusion models" in notes


@pytest.mark.parametrize(
    ("kind", "tool", "seconds", "message"),
    [
        ("musicgen", generate_music, 12, r"makes at most 10\.2 s in one clip; ask for 10 s"),
        ("stable-audio", generate_sound, 5, r"makes at most 4\.1 s in one clip; ask for 4 s"),
    ],
)
def test_a_clip_longer_than_the_model_makes_is_refused(make, kind, tool, seconds, message):
    c = make(music=kind, sound=kind)
    with pytest.raises(ToolError, match=message + ".*concat_audio"):
        tool(c.ctx, prompt="long", duration=seconds, seed=1)
    assert c.files() == set()


def test_a_model_loads_once_per_model_manager(tmp_path, tiny):
    settings = ToolSettings(audio={"sound_generator": str(tiny["audioldm2"])})
    c = Ctx(tmp_path, settings, ModelManager(tmp_path / "mm", device="cpu", dtype="float32"))
    for seed in (1, 2):
        generate_sound(c.ctx, prompt="rain", duration=1.0, seed=seed, steps=1)
    assert [m for _, m in c.events if m.startswith("loading ")] == [f"loading {tiny['audioldm2']}"]


def test_the_planner_sees_both_tools_with_their_schemas():
    from tools import Registry

    reg = Registry.discover()
    music, sound = reg.get("generate_music").spec(), reg.get("generate_sound").spec()
    assert music["description"].startswith("Compose music from a text description")
    assert sound["description"].startswith("Generate a sound effect or ambience")
    assert music["output_modalities"] == sound["output_modalities"] == ["audio"]
    props = music["input_schema"]["properties"]
    assert "what the music should sound like" in props["prompt"]["description"]
    assert {"duration", "seed", "tempo", "key", "mode", "negative_prompt", "steps"} <= set(props)
    assert "tempo" not in sound["input_schema"]["properties"]
    assert music["input_schema"]["additionalProperties"] is False


# --- bad input ----------------------------------------------------------------------------


def test_a_folder_that_is_no_model_is_a_clear_error(make, tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    with pytest.raises(ToolError, match=r"holds neither model_index.json nor config.json"):
        generate_music(make(music=str(empty)).ctx, prompt="a song", duration=1.0)
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ToolError, match=r"is a 'bert' transformers model, not a text-to-audio"):
        generate_music(make(music=str(bert)).ctx, prompt="a song", duration=1.0)
    sd = tmp_path / "sd"
    sd.mkdir()
    (sd / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    with pytest.raises(ToolError, match=r"StableDiffusionPipeline, not a text-to-audio pipeline"):
        generate_sound(make(sound=str(sd)).ctx, prompt="rain", duration=1.0)


@pytest.mark.parametrize(
    ("tool", "args", "settings", "message"),
    [
        (generate_music, {"prompt": "   "}, {}, "the prompt is empty; say what the music"),
        (generate_sound, {"prompt": ""}, {}, "the prompt is empty; say what the sound"),
        (
            generate_music,
            {"duration": 30},
            {"max_generate_seconds": 20},
            r"duration 30 s is over the limit of 20 s \(tools.audio.max_generate_seconds\)",
        ),
        (generate_music, {"duration": 301}, {}, "duration: Input should be less than or equal"),
        (generate_sound, {"duration": 0.1}, {}, "duration: Input should be greater than or"),
        (generate_music, {"key": "H"}, {}, "key: String should match pattern"),
        (generate_music, {"tempo": 500}, {}, "tempo: Input should be less than or equal to 220"),
        (generate_music, {"mode": "dorian"}, {}, "mode: Input should be 'major' or 'minor'"),
        (generate_sound, {"tempo": 90}, {}, "tempo: Extra inputs are not permitted"),
        (generate_sound, {"seed": -1}, {}, "seed: Input should be greater than or equal to 0"),
    ],
)
def test_bad_asks_are_refused_clearly_and_store_nothing(make, tool, args, settings, message):
    c = make(**settings)
    with pytest.raises(ToolError, match=message):
        tool(c.ctx, **{"prompt": "rain", **args})
    assert c.files() == set()


# --- the procedural fallback --------------------------------------------------------------


def test_with_no_model_installed_both_tools_make_labelled_procedural_wavs(run):
    for tool, seconds in (("generate_music", 2.0), ("generate_sound", 1.25)):
        result = run(tool, [], prompt="calm rain on a piano", duration=seconds, seed=11)
        (art,) = result.artifacts
        data, rate = wav(art)
        assert rate == RATE and len(data) == round(seconds * RATE)
        assert np.abs(data).max() > 0.5 * 32767  # normalised to about -2 dBFS
        what = tool.removeprefix("generate_")
        model = "musicgen-small" if what == "music" else "audioldm2"
        meta = art.metadata
        assert meta["procedural"] is True and meta["label"] == PROCEDURAL_LABEL
        assert model in meta["fallback_reason"] and "not installed" in meta["fallback_reason"]
        assert meta["requested_model"] == model and meta["seed"] == 11
        assert result.data["procedural"] is True and result.data["model"] is None
        assert result.data["backend"] == "procedural"
        assert result.summary.startswith(f"no {what} model is installed (")
        assert "this is a procedural synthesised clip, not a model's output" in result.summary
        assert f"anymodal models pull {model}" in result.summary


def test_the_reply_facts_print_the_procedural_label(run):
    from prompts import render

    art = run("generate_sound", [], prompt="wind", duration=1.0, seed=1).artifacts[0]
    request = SimpleNamespace(status="ok", steps=[], plan_error=None, artifacts=[art])
    assert f"(audio, {PROCEDURAL_LABEL})" in render("facts.md.j2", r=request)


def test_procedural_music_follows_the_prompt_and_the_hints(run):
    calm = run("generate_music", [], prompt="calm sad piano", duration=1.0, seed=3).data
    assert calm["parameters"]["tempo"] < 80 and calm["parameters"]["mode"] == "minor"
    assert calm["parameters"]["instrument"] == "piano" and not calm["parameters"]["drums"]
    rock = run("generate_music", [], prompt="fast rock with drums", duration=1.0, seed=3).data
    assert rock["parameters"]["tempo"] > 120 and rock["parameters"]["drums"]
    args = {"prompt": "a tune", "duration": 3.0, "seed": 5}
    slow = run("generate_music", [], tempo=60, key="F#", mode="minor", **args)
    fast = run("generate_music", [], tempo=160, key="F#", mode="minor", **args)
    assert slow.data["parameters"]["tempo"] == 60 and fast.data["parameters"]["tempo"] == 160
    assert slow.data["parameters"]["key"] == "F#" and slow.data["parameters"]["mode"] == "minor"
    assert "60 bpm in F# minor" in slow.summary
    assert not np.array_equal(wav(slow.artifacts[0])[0], wav(fast.artifacts[0])[0])
    again = run("generate_music", [], tempo=60, key="F#", mode="minor", **args)
    assert np.array_equal(wav(again.artifacts[0])[0], wav(slow.artifacts[0])[0])
    other = run("generate_music", [], tempo=60, key="F#", mode="minor", **{**args, "seed": 6})
    assert not np.array_equal(wav(other.artifacts[0])[0], wav(slow.artifacts[0])[0])


@pytest.mark.parametrize(
    ("key", "mode", "instrument"),
    [("A", "major", "strings"), ("C", "minor", "piano"), ("F#", "minor", "guitar")],
)
def test_procedural_music_is_in_the_asked_key(run, key, mode, instrument):
    """Most of the energy (100-1000 Hz) lies on the notes of the scale; the rest is upper
    partials (a 5th harmonic is a major third up, out of some scales)."""
    args = {"prompt": f"slow {instrument}", "duration": 8.0, "seed": 2}
    result = run("generate_music", [], key=key, mode=mode, tempo=80, **args)
    assert result.data["parameters"]["instrument"] == instrument
    mono = wav(result.artifacts[0])[0].astype(float).mean(axis=1)
    power = np.abs(np.fft.rfft(mono)) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1 / RATE)
    band = (freqs > 100) & (freqs < 1000)
    pitch_class = np.round(12 * np.log2(freqs[band] / 440) + 69).astype(int) % 12
    tonic = NOTES[key[0]] + (1 if key.endswith("#") else 0)
    scale = [(tonic + step) % 12 for step in SCALES[mode]]
    in_scale = power[band][np.isin(pitch_class, scale)].sum() / power[band].sum()
    assert in_scale > 0.9


@pytest.mark.parametrize(
    ("prompt", "kind"),
    [
        ("heavy rain and thunder", "rain"),
        ("wind howling through trees", "wind"),
        ("ocean waves on a beach", "ocean"),
        ("a crackling campfire", "fire"),
        ("a truck engine idling", "engine"),
        ("an alarm clock", "alarm"),
        ("a door creaking open", "texture"),
    ],
)
def test_procedural_sounds_follow_keywords_and_repeat_with_the_seed(run, prompt, kind):
    result = run("generate_sound", [], prompt=prompt, duration=0.75, seed=4)
    assert result.data["parameters"]["kind"] == kind
    assert f"shaped noise: {kind}" in result.summary
    data, rate = wav(result.artifacts[0])
    assert data.shape == (round(0.75 * RATE), 1) and np.abs(data).max() > 0
    again = run("generate_sound", [], prompt=prompt, duration=0.75, seed=4)
    assert again.artifacts[0].id == result.artifacts[0].id
    other = run("generate_sound", [], prompt=prompt, duration=0.75, seed=5)
    assert other.artifacts[0].id != result.artifacts[0].id or kind == "alarm"  # beeps: no noise


def test_with_the_fallback_off_a_missing_model_is_an_error_with_install_advice(run):
    settings = ToolSettings(audio={"procedural_fallback": False})
    with pytest.raises(ToolError) as caught:
        run("generate_music", [], settings=settings, prompt="a song", duration=1.0)
    message = str(caught.value)
    assert message.startswith("generate_music needs a music model: model 'musicgen-small'")
    assert "anymodal models pull musicgen-small" in message and "procedural_fallback" in message
    with pytest.raises(ToolError, match=r"anymodal models pull audioldm2"):
        run("generate_sound", [], settings=settings, prompt="rain", duration=1.0)


def test_a_missing_folder_or_uncached_hub_model_falls_back_with_the_reason(make, tmp_path):
    c = make(music=str(tmp_path / "no-such-folder"), sound="someone/uncached-audio-model")
    music = generate_music(c.ctx, prompt="a song", duration=1.0, seed=1)
    assert "does not exist" in music.data["fallback_reason"]
    sound = generate_sound(c.ctx, prompt="rain", duration=1.0, seed=1)
    reason = sound.data["fallback_reason"]
    assert "HF_HUB_OFFLINE" in reason and "hf download someone/uncached-audio-model" in reason


def test_cancelling_the_procedural_fallback_stores_nothing(tmp_path):
    def progress(fraction: float, message: str, preview: Any) -> None:
        if message == "synthesising":
            ctx.cancel_event.set()

    ctx = ToolContext(store=ArtifactStore(tmp_path / "s"), workspace=tmp_path, progress_fn=progress)
    with pytest.raises(Cancelled):
        generate_music(ctx, prompt="a long song", duration=60.0, seed=1)
    assert not any(p.is_file() for p in (tmp_path / "s").rglob("*"))
