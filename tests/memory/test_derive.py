"""Derived text: names, prompts, OCR of real photos (rapidocr, bundled models), transcripts of
real speech (faster-whisper offline packs), captions by a tiny vision-language model, and
broken files that become notes instead of errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from memory.derive import TEXT_CHARS, derive_text
from memory.settings import MemorySettings
from tests.conftest import make_png, make_wav
from tests.video_clips import make_clip
from tools import ArtifactStore, Cancelled, ModelManager, ToolContext, ToolSettings

ON = MemorySettings()
OFF = MemorySettings(derive_text=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    """One manager for the module: the OCR engine and recognizers load once."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return ModelManager(tmp_path_factory.mktemp("mm"), device="cpu", dtype="float32")


@pytest.fixture
def ctx(tmp_path: Path, models: ModelManager) -> ToolContext:
    return ToolContext(store=ArtifactStore(tmp_path / "store"), workspace=tmp_path, models=models)


def _with(ctx: ToolContext, **settings: Any) -> ToolContext:
    import dataclasses

    return dataclasses.replace(ctx, settings=ToolSettings(**settings))


def test_reads_the_text_in_a_photo(ctx, media):
    pytest.importorskip("rapidocr")
    photo = ctx.store.add_file(media / "13426.jpg")
    text, notes = derive_text(photo, ctx, ON)
    lines = text.split("\n")
    assert lines[0] == "13426"  # the name first
    assert any(line.startswith("text in the image: ") and "POLIZEI" in line for line in lines)
    # A fresh install has no vision-language model: no caption, and a note saying so.
    assert len(notes) == 1 and notes[0].startswith("no caption: no vision-language model")
    assert "anymodal models pull" in notes[0]
    assert derive_text(photo, ctx, OFF) == ("13426", [])  # extraction off: the name alone


def test_a_generated_image_is_described_by_its_prompt_and_name(ctx):
    img = Image.new("RGB", (64, 48), (180, 60, 20))
    art = ctx.store.add_image(
        img, name="red-fox_in-snow.png", metadata={"prompt": "a red fox  in the\nsnow"}
    )
    text, notes = derive_text(art, ctx, OFF)
    assert text == "red fox in snow\na red fox in the snow"
    assert notes == []


def test_captions_come_from_the_vision_language_model(ctx, tiny_llava, tmp_path):
    pytest.importorskip("rapidocr")
    art = ctx.store.add_file(make_png(tmp_path / "square.png", (96, 64), (20, 120, 200)))
    text, notes = derive_text(art, _with(ctx, image={"vision_language": str(tiny_llava)}), ON)
    assert notes == []
    name, caption = text.split("\n")  # a plain square: no text to read, a (random) caption
    assert name == "square" and caption.strip()


def test_a_text_artifact_keeps_its_own_text(ctx):
    body = "Meeting notes. " + "word " * 2000
    art = ctx.store.add_text(body, name="notes.txt", metadata={"instruction": "keep it short"})
    text, notes = derive_text(art, ctx, ON)
    first, instruction, own = text.split("\n", 2)
    assert (first, instruction) == ("notes", "keep it short") and notes == []
    assert own.startswith("Meeting notes.") and len(own) <= TEXT_CHARS


@pytest.mark.model
def test_speech_is_transcribed(ctx, media):
    pytest.importorskip("faster_whisper")
    art = ctx.store.add_file(media / "1284-1180-0003.flac")
    text, notes = derive_text(art, ctx, ON)
    name, speech = text.split("\n")
    assert name == "1284 1180 0003" and notes == []
    assert speech.startswith("speech: ") and "land of oz" in speech.lower()
    assert derive_text(art, ctx, OFF) == ("1284 1180 0003", [])


def test_sounds_are_tagged_where_the_tagger_is_installed(ctx, tmp_path):
    from tests.tiny_clap import build_tiny_clap
    from tools.audio_scene import SOUND_SCENES

    tone = ctx.store.add_file(make_wav(tmp_path / "hum.wav", 1.0))
    text, _ = derive_text(tone, ctx, ON)
    assert "sounds like" not in text  # no tagger installed: no tags, and no complaint
    tagger = str(build_tiny_clap(tmp_path / "clap"))
    tagged = _with(ctx, audio={"audio_tagger": tagger, "recognizer": str(tmp_path / "none")})
    text, notes = derive_text(tone, tagged, ON)
    line = next(x for x in text.split("\n") if x.startswith("sounds like: "))
    assert all(t in SOUND_SCENES for t in line.removeprefix("sounds like: ").split(", "))
    assert len(notes) == 1 and notes[0].startswith("no transcript")


def test_broken_files_become_notes(ctx, tmp_path):
    image = ctx.store.add_bytes(b"\x89PNG\r\n\x1a\nno pixels here", name="broken.png")
    audio = ctx.store.add_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4, name="broken.wav")
    video = ctx.store.add_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, name="broken.mp4")
    assert [a.modality.value for a in (image, audio, video)] == ["image", "audio", "video"]
    for art in (image, audio, video):
        text, notes = derive_text(art, ctx, ON)
        assert text == "broken"
        assert len(notes) == 1 and "broken." in notes[0], notes
    assert notes[0].startswith("no transcript: ")


def test_a_silent_video_has_no_transcript_and_no_notes(ctx, tmp_path):
    video = ctx.store.add_file(make_clip(tmp_path / "quiet-walk.mp4", audio=False))
    assert derive_text(video, ctx, ON) == ("quiet walk", [])


def test_cancelling_stops_derivation(ctx, tmp_path):
    art = ctx.store.add_file(make_png(tmp_path / "p.png", (32, 32), (0, 0, 0)))
    ctx.cancel_event.set()
    with pytest.raises(Cancelled):
        derive_text(art, ctx, ON)


def test_a_mesh_is_described_by_its_facts(ctx):
    trimesh = pytest.importorskip("trimesh")
    from tools.mesh_io import store_mesh

    box = trimesh.creation.box((1.0, 2.0, 3.0))
    box.visual.vertex_colors = [200, 30, 30, 255]
    art = store_mesh(ctx, box, "red-crate", "glb", prompt="a red crate")
    text, notes = derive_text(art, ctx, OFF)
    assert text == "red crate\na red crate\n3D model, 12 faces, watertight, coloured"
    assert notes == []
