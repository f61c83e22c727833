"""audio_to_image's scene: a tiny random CLAP names the sound (through the real loading and
scoring path), a generation prompt in the metadata wins over it, and a tiny random Stable
Diffusion paints the result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_wav
from tools import ArtifactStore, ModelManager, ToolContext, ToolError, ToolSettings
from tools.audio_io import decode_audio
from tools.audio_scene import SOUND_SCENES, describe_sound, paint_scene, tag_sound
from tools.settings import AudioSettings, ImageSettings

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.tiny_clap import build_tiny_clap
    from tests.tiny_diffusion import build_tiny_sd

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny-scene")
    return {"clap": build_tiny_clap(root / "clap"), "sd": build_tiny_sd(root / "sd")}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    return ModelManager(tmp_path_factory.mktemp("mm"), device="cpu", dtype="float32")


def _ctx(tmp_path: Path, models: Any, tiny: dict[str, Path], tagger: str | None = None) -> Any:
    settings = ToolSettings(
        audio=AudioSettings(audio_tagger=tagger or str(tiny["clap"])),
        image=ImageSettings(generator=str(tiny["sd"])),
    )
    return ToolContext(
        store=ArtifactStore(tmp_path / "store"),
        workspace=tmp_path,
        settings=settings,
        models=models,
    )


def test_the_tagger_scores_every_window_and_is_repeatable(tmp_path, models, tiny):
    ctx = _ctx(tmp_path, models, tiny)
    art = ctx.store.add_file(make_wav(tmp_path / "long.wav", 25.0, rate=22050, freq=330))
    data, rate = decode_audio(art, ctx.settings)
    tags = tag_sound(ctx, data, rate)
    assert len(tags) == 3 and all(label in SOUND_SCENES for label, _ in tags)
    probs = [p for _, p in tags]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    assert tag_sound(ctx, data, rate) == tags  # windows, not a random crop
    assert any(key.endswith(str(tiny["clap"])) for key in models.loaded())


def test_a_generation_prompt_describes_the_sound_without_a_tagger(tmp_path, models, tiny):
    ctx = _ctx(tmp_path, models, tiny, tagger=str(tmp_path / "no-tagger"))
    sound = ctx.store.add_audio(
        np.zeros(8000, dtype=np.float32), 16000, metadata={"prompt": "ocean waves at dusk"}
    )
    found = describe_sound(ctx, sound, np.zeros((8000, 1)), 16000)
    assert found == {
        "description": "ocean waves at dusk",
        "described_by": "the prompt it was generated from",
    }
    recorded = ctx.store.add_file(make_wav(tmp_path / "r.wav", 1.0))
    with pytest.raises(ToolError, match="audio tagger failed.*style 'spectrogram'"):
        describe_sound(ctx, recorded, np.zeros((16000, 1)), 16000)


def test_paint_scene_makes_the_asked_picture(tmp_path, models, tiny):
    ctx = _ctx(tmp_path, models, tiny)
    art = ctx.store.add_file(make_wav(tmp_path / "tone.wav", 3.0))
    data, rate = decode_audio(art, ctx.settings)
    result = paint_scene(ctx, art, data, rate, width=96, height=64, seed=3)
    image = result.artifacts[0]
    with Image.open(image.path) as img:
        assert img.size == (96, 64)
    assert image.metadata["source"] == art.id and image.metadata["sound"] in result.summary
    assert result.data["style"] == "scene" and result.data["tags"]
    assert result.data["prompt"].startswith(result.data["description"])
    again = paint_scene(ctx, art, data, rate, width=96, height=64, seed=3)
    assert again.artifacts[0].id == image.id  # same sound, same seed: the same picture


def test_audio_to_image_scene_through_the_tool(tmp_path, models, tiny):
    from tools.audio_image import audio_to_image

    ctx = _ctx(tmp_path, models, tiny)
    ctx.refs["a1"] = [ctx.store.add_file(make_wav(tmp_path / "tone.wav", 2.0))]
    result = audio_to_image(ctx, audio="$a1", width=64, height=64, seed=1)
    assert result.data["style"] == "scene" and result.data["width"] == 64
    assert result.artifacts[0].metadata["sound"] == result.data["description"]
