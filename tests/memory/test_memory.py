"""The memory as a whole: real text retrieval over the media photos (MiniLM pack), any-to-any
search on tiny random CLIP and CLAP, recall across sessions through the assistant and the
search_memory tool, and the `anymodal memory` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memory.memory import Memory, artifact_in_place
from memory.settings import MemorySettings
from tests.conftest import make_png, make_wav
from tools import ModelManager
from tools.artifact import Modality
from tools.errors import ToolError

pytest.importorskip("faiss")

CAPTIONS = {
    "13181.jpg": "two terriers playing on the grass",
    "08078.jpg": "a butterfly resting on a purple thistle",
    "11674.jpg": "a pink flamingo wading in a shallow lake",
    "11706.jpg": "a yellow pickup truck parked indoors",
    "12300.jpg": "a red tow truck on a city street",
    "11807.jpg": "shelves full of old books",
    "11170.jpg": "glass soda bottles with printed labels",
    "13426.jpg": "a police car with lettering on its side",
    "14095.jpg": "a cash machine with a bank sign",
    "13480.jpg": "snowy mountain peaks under a blue sky",
    "11135.jpg": "a table covered with dishes of food",
}


@pytest.fixture(scope="module")
def models() -> ModelManager:
    return ModelManager(device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_clip import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_clap import build_tiny_clap

    return build_tiny_clap(tmp_path_factory.mktemp("tiny-clap"))


def text_memory(root: Path, models: ModelManager, **kw: Any) -> Memory:
    settings = MemorySettings(spaces=["text"], derive_text=False, **kw)
    return Memory(root, settings, models)


@pytest.mark.model
def test_a_bird_standing_in_water_finds_the_flamingo(
    media: Path, tmp_path: Path, models: ModelManager
) -> None:
    memory = text_memory(tmp_path / "memory", models)
    for name, caption in CAPTIONS.items():
        memory.add([artifact_in_place(media / name)], note=caption)
    hits = memory.search("a bird standing in water", Modality.IMAGE, limit=5)
    assert [Path(h.path).name for h in hits][0] == "11674.jpg"
    assert all(h.modality is Modality.IMAGE for h in hits) and len(hits) == 5
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    dogs = memory.search("puppies on a lawn", limit=1)
    assert Path(dogs[0].path).name == "13181.jpg"
    stats = memory.stats()
    assert stats["indexes"]["text"]["vectors"] == len(CAPTIONS)
    assert stats["indexes"]["text"]["kind"] == "flat"


@pytest.mark.model
def test_forget_and_rebuild(media: Path, tmp_path: Path, models: ModelManager) -> None:
    memory = text_memory(tmp_path / "memory", models)
    for name in ("11674.jpg", "13480.jpg"):
        memory.add([artifact_in_place(media / name)], note=CAPTIONS[name])
    gone = memory.forget(str(media / "11674.jpg"))  # by path; ids and id prefixes work too
    assert gone.name == "11674.jpg"
    hits = memory.search("a bird standing in water", limit=5)
    assert [Path(h.path).name for h in hits] == ["13480.jpg"]
    with pytest.raises(ToolError, match="nothing in the memory matches"):
        memory.forget("no-such-thing")
    assert memory.rebuild() == {"indexed": 1, "forgotten": 0}
    assert [Path(h.path).name for h in memory.search("mountains", limit=5)] == ["13480.jpg"]


def test_any_to_any_on_tiny_clip_and_clap(
    tmp_path: Path, models: ModelManager, tiny_clip: Path, tiny_clap: Path
) -> None:
    settings = MemorySettings(
        spaces=["clip", "clap"],
        derive_text=False,
        image_text_model=str(tiny_clip),
        audio_text_model=str(tiny_clap),
    )
    memory = Memory(tmp_path / "memory", settings, models)
    files = [
        make_png(tmp_path / "red.png", (64, 48), (220, 30, 30)),
        make_png(tmp_path / "blue.png", (64, 48), (30, 30, 220)),
        make_wav(tmp_path / "low.wav", 1.0, freq=220),
        make_wav(tmp_path / "high.wav", 1.0, freq=1760),
    ]
    memory.add([artifact_in_place(f) for f in files], session="s-a")
    assert set(memory.stats()["indexes"]) == {"clip", "clap"}
    images = memory.search("a red square", Modality.IMAGE, limit=5)
    assert {Path(h.path).name for h in images} == {"red.png", "blue.png"}
    assert [h.score for h in images] == sorted((h.score for h in images), reverse=True)
    assert all(h.space == "clip" and h.modality is Modality.IMAGE for h in images)
    like = memory.search(artifact_in_place(files[2]), Modality.AUDIO, limit=5)
    assert [Path(h.path).name for h in like] == ["high.wav"]  # never the example itself
    assert like[0].space == "clap" and like[0].session == "s-a"
    # Audio to image: no space joins them, so the example's text (its name here) stands in.
    across = memory.search(artifact_in_place(files[2]), Modality.IMAGE, limit=5)
    assert {h.modality for h in across} == {Modality.IMAGE}


def test_an_empty_query_and_no_models(tmp_path: Path, models: ModelManager) -> None:
    memory = Memory(
        tmp_path / "memory",
        MemorySettings(spaces=["clip"], image_text_model=str(tmp_path / "none")),
        models,
    )
    with pytest.raises(ToolError, match="search query is empty"):
        memory.search("  ")
    with pytest.raises(ToolError, match="no embedding model is installed for the memory"):
        memory.search("anything")


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_diffusion import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.mark.model
def test_recall_across_sessions(tiny_sd: Path) -> None:
    from assistant import Assistant

    bot = Assistant(
        tools={"image": {"generator": str(tiny_sd)}},
        memory={"enabled": True, "spaces": ["text"], "derive_text": False},
        device="cpu",
        dtype="float32",
    )
    made = bot.run(
        "draw a lighthouse",
        plan=[
            {
                "id": "s1",
                "tool": "generate_image",
                "args": {"prompt": "a lighthouse on a cliff at sunset", "width": 64, "height": 64},
            }
        ],
    )
    assert made.ok, made.text
    image = made.artifacts[0]
    found = bot.run(
        "find the lighthouse picture I made and make it smaller",
        plan=[
            {
                "id": "s1",
                "tool": "search_memory",
                "args": {"query": "a tall tower by the sea at dusk", "modality": "image"},
            },
            {"id": "s2", "tool": "resize_image", "args": {"image": "$s1", "width": 32}},
        ],
    )
    assert found.ok and found.session != made.session, found.text
    hit = found.steps["s1"]["artifacts"][0]
    assert hit["id"] == image.id and hit["metadata"]["memory_score"] > 0
    assert found.steps["s1"]["data"]["hits"][0]["session"] == made.session
    assert found.steps["s2"]["artifacts"][0]["metadata"]["width"] == 32
    bot.close()
    assert not bot.memory.errors


def test_search_memory_without_a_memory_says_so(run: Any) -> None:
    with pytest.raises(ToolError, match="the memory is not available here"):
        run("search_memory", [], query="my dog")


def test_the_command_line(tmp_path: Path) -> None:
    from tests.assistant.test_cli import anymodal

    notes = tmp_path / "notes"
    (notes / "kitchen").mkdir(parents=True)
    (notes / "kitchen" / "bread.txt").write_text("Recipe: banana bread with walnuts, baked 1 h.")
    (notes / "bike.txt").write_text("How to change the inner tube of a bicycle tyre.")
    (notes / ".hidden.txt").write_text("not indexed")
    make_png(notes / "square.png", (32, 32), (0, 200, 0))
    env = {"ANYMODAL_MEMORY__SPACES": '["text"]', "ANYMODAL_MEMORY__DERIVE_TEXT": "false"}
    added = anymodal("memory", "add", str(notes), "--modality", "text", env=env)
    assert added.returncode == 0, added.stderr
    assert "added 2 file(s)" in added.stdout
    found = anymodal("memory", "search", "baking a cake", "--json", env=env)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert [Path(h["path"]).name for h in hits] == ["bread.txt", "bike.txt"]
    assert set(hits[0]) >= {"id", "path", "modality", "score"} and hits[0]["modality"] == "text"
    stats = json.loads(anymodal("memory", "stats", "--json", env=env).stdout)
    assert stats["items"] == 2 and stats["indexes"]["text"]["vectors"] == 2
    forgot = anymodal("memory", "forget", hits[0]["id"][:12], env=env)
    assert forgot.returncode == 0 and "forgot bread.txt" in forgot.stdout
    again = json.loads(anymodal("memory", "search", "baking a cake", "--json", env=env).stdout)
    assert [Path(h["path"]).name for h in again] == ["bike.txt"]
    bad = anymodal("memory", "search", env=env)
    assert bad.returncode == 2 and "give a QUERY or --like FILE" in bad.stderr
    assert np.isfinite(hits[0]["score"])
