"""generate_video and animate_image on tiny random-weight video pipelines (TextToVideoSD,
AnimateDiff, Stable Video Diffusion), saved with save_pretrained and loaded back through the
tools (the path real weights take), and animate_image's labelled pan-and-zoom fallback."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.tiny_video import (
    build_tiny_animatediff,
    build_tiny_image_to_video,
    build_tiny_ltx,
    build_tiny_text_to_video,
    build_tiny_wan,
)
from tests.tools.test_image_gen import Ctx
from tools import Cancelled, ModelManager, ToolError, ToolSettings
from tools.video_gen import animate_image, generate_video
from tools.video_io import count_frames, iter_frames, probe_path
from tools.video_panzoom import PAN_ZOOM_LABEL, camera_move

pytest.importorskip("diffusers")
pytest.importorskip("av")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny pipelines, built once: text-to-video (TextToVideoSD, LTX, Wan), AnimateDiff
    (SD + adapter), Stable Video Diffusion."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny-video")
    animatediff = build_tiny_animatediff(root / "tiny-animatediff")
    return {
        "t2v": build_tiny_text_to_video(root / "tiny-t2v"),
        "sd": animatediff["sd"],
        "adapter": animatediff["adapter"],
        "svd": build_tiny_image_to_video(root / "tiny-svd"),
        "ltx": build_tiny_ltx(root / "tiny-ltx"),
        "wan": build_tiny_wan(root / "tiny-wan"),
    }


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    """One model manager for the session, so each tiny pipeline loads once."""
    return ModelManager(tmp_path_factory.mktemp("mm"), device="cpu", dtype="float32")


@pytest.fixture
def make(tmp_path: Path, tiny: dict[str, Path], models: ModelManager) -> Any:
    def build(models_: Any = models, **video: Any) -> Ctx:
        video.setdefault("generator", str(tiny["t2v"]))
        video.setdefault("animator", str(tiny["svd"]))
        return Ctx(tmp_path, ToolSettings(video=video), models_)

    return build


def decoded(art: Any) -> np.ndarray:
    """All frames of a stored video, decoded: (frames, H, W, 3) uint8."""
    return np.stack([img for _, img in iter_frames(art.path)])


def photo(tmp_path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    """A grey gradient with a red square in the middle, so camera moves show."""
    w, h = size
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    img.paste((220, 20, 20), (w * 3 // 8, h * 3 // 8, w * 5 // 8, h * 5 // 8))
    path = tmp_path / f"photo{w}x{h}.png"
    img.save(path)
    return path


def red_fraction(frame: np.ndarray) -> float:
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    return float(((r > 150) & (g < 90) & (b < 90)).mean())


# --- generate_video ---------------------------------------------------------------------------


def test_writes_an_mp4_with_the_asked_frames_and_size(make):
    c = make()
    result = generate_video(
        c.ctx, prompt="a red fox", frames=8, fps=8, width=64, height=48, steps=2, seed=1
    )
    (art,) = result.artifacts
    assert art.mime == "video/mp4" and art.name == "a-red-fox-1.mp4"
    info = probe_path(art.path)
    assert (info.width, info.height, info.fps) == (64, 48, 8.0)
    assert count_frames(art.path) == 8 and info.duration == pytest.approx(1.0, abs=0.01)
    frames = decoded(art)
    assert frames.shape == (8, 48, 64, 3) and frames.std() > 5  # not a blank clip
    meta = art.metadata
    assert meta["prompt"] == "a red fox" and meta["seed"] == 1 and meta["steps"] == 2
    assert meta["pipeline"] == "TextToVideoSDPipeline" and meta["fps"] == 8
    assert meta["model"] == str(c.ctx.settings.video.generator) and meta["guidance"] == 9.0
    assert result.data["procedural"] is False and result.data["frames"] == 8
    assert "8-frame 64x48 clip (1.0 s at 8 fps)" in result.summary
    assert len(c.steps()) == 2  # one progress report per denoising step
    assert [m for _, m, _ in c.steps()] == ["generate_video: step 1/2", "generate_video: step 2/2"]


def test_same_seed_same_video_other_seed_differs(make):
    c = make()

    def clip(seed: int) -> Any:
        kw = {"frames": 8, "width": 32, "height": 32, "steps": 2}
        return generate_video(c.ctx, prompt="a fox", seed=seed, **kw).artifacts[0]

    seven = clip(7)
    assert clip(7).id == seven.id  # the same frames, encoded to the same bytes
    eight = clip(8)
    assert eight.id != seven.id
    assert np.abs(decoded(seven).astype(int) - decoded(eight)).mean() > 10


def test_the_native_size_and_default_steps_apply_when_not_given(make):
    result = generate_video(make().ctx, prompt="a fox", frames=8, seed=3)
    assert (result.data["width"], result.data["height"]) == (64, 64)  # UNet 8 x VAE 8
    assert result.data["steps"] == 25 and result.data["defaults"] == "standard"
    assert result.data["fps"] == 16 and result.data["duration"] == pytest.approx(0.5)


def test_sizes_round_to_the_vae_multiple_with_a_note(make):
    result = generate_video(
        make().ctx, prompt="a fox", frames=8, width=60, height=44, steps=1, seed=1
    )
    assert probe_path(result.artifacts[0].path).width == 64
    assert (result.data["width"], result.data["height"]) == (64, 48)
    assert "60x44 rounded to 64x48 (the model needs multiples of 8)" in result.summary


def test_a_transformer_pipeline_gets_its_4k_plus_1_frames_and_side_multiples(make, tiny):
    c = make(generator=str(tiny["ltx"]))
    result = generate_video(
        c.ctx, prompt="a fox", frames=8, fps=24, width=48, height=32, steps=2, seed=1
    )
    (art,) = result.artifacts
    assert result.data["pipeline"] == "LTXPipeline" and count_frames(art.path) == 9
    assert "8 frames rounded to 9 (LTXPipeline makes 4k+1 frames)" in result.summary
    assert "48x32 rounded to 64x32 (the model needs multiples of 32)" in result.summary
    assert probe_path(art.path).width == 64 and result.data["guidance"] == 3  # LTX's own
    assert len(c.steps()) == 2


def test_wan_loads_with_accelerate_and_says_so_without(make, tiny):
    c = make(generator=str(tiny["wan"]))
    kw = {"frames": 8, "width": 32, "height": 32, "steps": 2, "seed": 1}
    if importlib.util.find_spec("accelerate") is None:
        with pytest.raises(ToolError, match=r"only with the accelerate package.*pip install"):
            generate_video(c.ctx, prompt="a fox", **kw)
        return
    result = generate_video(c.ctx, prompt="a fox", **kw)
    assert result.data["pipeline"] == "WanPipeline" and result.data["frames"] == 9


def test_frames_round_to_what_a_time_compressing_vae_makes():
    from types import SimpleNamespace

    from tools.video_pipes import fit_frames

    wan_like = SimpleNamespace(vae_scale_factor_temporal=4)
    assert fit_frames(wan_like, 49, 257) == (49, [])
    frames, notes = fit_frames(wan_like, 8, 257)
    assert frames == 9 and "8 frames rounded to 9" in notes[0] and "4k+1" in notes[0]
    assert fit_frames(SimpleNamespace(vae_temporal_compression_ratio=8), 100, 257)[0] == 97
    assert fit_frames(wan_like, 20, 19)[0] == 17  # rounded within max_frames
    assert fit_frames(SimpleNamespace(), 10, 257) == (10, [])


def test_cancelling_at_a_step_stores_nothing(make):
    c = make()
    generate_video(c.ctx, prompt="a fox", frames=8, width=32, height=32, steps=1)  # loaded
    before = c.files()

    def progress(fraction: float, message: str, preview: Any) -> None:
        c.events.append((fraction, message, preview))
        if len(c.steps()) == 2:
            c.ctx.cancel_event.set()

    c.events.clear()
    c.ctx.progress_fn = progress
    with pytest.raises(Cancelled):
        generate_video(c.ctx, prompt="a fox", frames=8, width=32, height=32, steps=5, seed=1)
    assert len(c.steps()) == 2
    assert c.files() == before


def test_limits_refuse_naming_the_setting(make):
    c = make(max_frames=16, max_side=64, max_steps=4)
    for kw, setting in [
        ({"frames": 17}, "tools.video.max_frames"),
        ({"width": 96}, "tools.video.max_side"),
        ({"height": 80}, "tools.video.max_side"),
        ({"steps": 5}, "tools.video.max_steps"),
    ]:
        with pytest.raises(ToolError, match=f"over the limit of .*{setting}"):
            generate_video(c.ctx, prompt="a fox", **{"frames": 8, **kw})
    with pytest.raises(ToolError, match="frames"):  # the schema's own bounds
        generate_video(c.ctx, prompt="a fox", frames=4)
    with pytest.raises(ToolError, match="the prompt is empty"):
        generate_video(c.ctx, prompt="  ")


def test_gif_format_adds_an_animated_gif(make):
    result = generate_video(
        make().ctx, prompt="a fox", frames=8, fps=10, width=32, height=32, steps=1, format="gif"
    )
    video, gif = result.artifacts
    assert video.mime == "video/mp4" and count_frames(video.path) == 8
    assert gif.mime == "image/gif" and gif.modality.value == "image"
    with Image.open(gif.path) as img:
        assert img.n_frames == 8 and img.size == (32, 32)
        assert img.info["duration"] == 100 and img.info["loop"] == 0
    assert gif.metadata["prompt"] == "a fox" and gif.metadata["frames"] == 8


def test_progress_only_goes_forward_from_the_steps_to_the_mp4_and_the_gif(make, tmp_path):
    c = make()
    kw = {"frames": 8, "width": 32, "height": 32, "format": "gif"}
    generate_video(c.ctx, prompt="a fox", steps=2, seed=1, **kw)
    fractions = [f for f, _, _ in c.events]
    assert fractions == sorted(fractions)
    assert [f for f, _, _ in c.steps()] == pytest.approx([0.45, 0.9])  # denoising: up to 0.9
    encoding = [f for f, m, _ in c.events if m.startswith("encoding frame")]
    assert len(encoding) == 8 and encoding[0] > 0.9 and encoding[-1] < 1.0
    assert any("palette" in m for f, m, _ in c.events if f > encoding[-1])  # the GIF comes last
    c = make(animator="nobody/no-svd")  # the pan-and-zoom has no steps: encoding starts at 0
    c.events.clear()
    animate_image(c.ctx, image=c.attach(photo(tmp_path)), **kw)
    fractions = [f for f, _, _ in c.events]
    assert fractions == sorted(fractions) and fractions[0] < 0.2
    assert any("palette" in m for _, m, _ in c.events)


def test_animatediff_through_the_motion_adapter_setting(make, tiny):
    c = make(generator=str(tiny["sd"]), motion_adapter=str(tiny["adapter"]))
    result = generate_video(c.ctx, prompt="a fox", frames=8, width=32, height=32, steps=2, seed=1)
    assert result.data["pipeline"] == "AnimateDiffPipeline"
    assert result.data["motion_adapter"] == str(tiny["adapter"])
    assert count_frames(result.artifacts[0].path) == 8
    assert len(c.steps()) == 2  # SD's PNDM (one step more) was swapped for DDIM
    pipe = c.ctx.models.load(f"diffusers-video:{tiny['sd']}+{tiny['adapter']}", lambda: None)
    assert type(pipe.pipe.scheduler).__name__ == "DDIMScheduler"


def test_a_text_to_image_model_is_refused_with_the_fix(make, tiny):
    c = make(generator=str(tiny["sd"]))
    with pytest.raises(
        ToolError, match=r"not a text-to-video pipeline.*tools.video.motion_adapter"
    ):
        generate_video(c.ctx, prompt="a fox", frames=8)
    c = make(generator=str(tiny["svd"]))
    with pytest.raises(ToolError, match=r"is image-to-video.*use it as tools.video.animator"):
        generate_video(c.ctx, prompt="a fox", frames=8)


@pytest.mark.parametrize(
    ("generator", "advice"),
    [
        ("nobody/no-video-model", "`hf download nobody/no-video-model`"),
        ("wan2.1-t2v-1.3b", "`anymodal models pull wan2.1-t2v-1.3b`"),
        ("/no/such/video/model", "a catalog model such as 'wan2.1-t2v-1.3b'"),
    ],
)
def test_a_missing_model_says_how_to_install_one(make, generator, advice):
    c = make(generator=generator)
    with pytest.raises(ToolError, match="generate_video needs a text-to-video model") as err:
        generate_video(c.ctx, prompt="a fox", frames=8)
    assert advice in str(err.value) and "tools.video.generator" in str(err.value)


def test_a_folder_that_is_no_pipeline_is_an_error_not_a_missing_model(make, tmp_path):
    folder = tmp_path / "not-a-pipeline"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ToolError, match="no model_index.json, so it is not a diffusers text-to"):
        generate_video(make(generator=str(folder)).ctx, prompt="a fox", frames=8)
    c = make(animator=str(folder))  # not the pan-and-zoom either: the setting is wrong
    with pytest.raises(ToolError, match="so it is not a diffusers image-to-video pipeline"):
        animate_image(c.ctx, image=c.attach(photo(tmp_path)), frames=8)


def test_the_model_manager_loads_each_pipeline_once(make, tiny, tmp_path):
    mm = ModelManager(tmp_path / "cache", device="cpu", dtype="float32")
    c = make(models_=mm)
    for seed in (1, 2):
        generate_video(c.ctx, prompt="a fox", frames=8, width=32, height=32, steps=1, seed=seed)
    assert mm.loaded() == [f"diffusers-video:{tiny['t2v']}"]
    assert sum(1 for _, m, _ in c.events if m.startswith("loading")) == 1


def test_a_missing_motion_adapter_says_how_to_install_one(make, tiny):
    c = make(generator=str(tiny["sd"]), motion_adapter="/no/such/adapter")
    with pytest.raises(ToolError, match=r"tools.video.motion_adapter.*animatediff-motion-adapter"):
        generate_video(c.ctx, prompt="a fox", frames=8)


def test_without_a_model_manager_it_loads_on_cpu_and_the_registry_finds_it(run, tiny):
    settings = ToolSettings(video={"generator": str(tiny["t2v"])})
    result = run(
        "generate_video", [], settings, prompt="a fox", frames=8, width=32, height=32, steps=1
    )
    assert probe_path(result.artifacts[0].path).width == 32


# --- animate_image: a tiny Stable Video Diffusion ---------------------------------------------


def test_animates_an_image_with_stable_video_diffusion(make, tmp_path):
    c = make()
    ref = c.attach(photo(tmp_path))
    kw = {"frames": 8, "fps": 8, "width": 64, "height": 48, "steps": 2}
    result = animate_image(c.ctx, image=ref, motion="waves rolling fast", seed=4, **kw)
    (art,) = result.artifacts
    info = probe_path(art.path)
    assert (info.width, info.height) == (64, 48) and count_frames(art.path) == 8
    assert art.name == "photo64x48-animated-4.mp4"
    meta = art.metadata
    assert meta["pipeline"] == "StableVideoDiffusionPipeline" and meta["seed"] == 4
    assert meta["source"] == c.ctx.refs["a1"][0].id and meta["motion_bucket_id"] == 200
    assert "takes no text" in result.summary and result.data["procedural"] is False
    assert len(c.steps()) == 2
    again = animate_image(c.ctx, image=ref, motion="waves rolling fast", seed=4, **kw)
    assert again.artifacts[0].id == art.id
    other = animate_image(c.ctx, image=ref, motion="waves rolling fast", seed=5, **kw)
    assert other.artifacts[0].id != art.id


def test_animate_keeps_the_image_shape_by_default_and_crops_when_asked(make, tmp_path):
    c = make()
    ref = c.attach(photo(tmp_path, (64, 32)))
    result = animate_image(c.ctx, image=ref, frames=8, steps=1, width=64, seed=1)
    assert (result.data["width"], result.data["height"]) == (64, 32)
    square = animate_image(c.ctx, image=ref, frames=8, steps=1, width=32, height=32, seed=1)
    assert "cropped to the clip's 32x32 shape" in square.summary


def test_a_text_to_video_model_is_no_animator(make, tiny, tmp_path):
    c = make(animator=str(tiny["t2v"]))
    with pytest.raises(ToolError, match=r"not an image-to-video pipeline.*tools.video.generator"):
        animate_image(c.ctx, image=c.attach(photo(tmp_path)), frames=8)


# --- animate_image: the pan-and-zoom fallback ---------------------------------------------------


def test_without_a_model_it_pans_and_zooms_labelled_as_such(make, tmp_path):
    c = make(animator="nobody/no-svd")
    ref = c.attach(photo(tmp_path))
    result = animate_image(c.ctx, image=ref, frames=8, fps=8)
    (art,) = result.artifacts
    assert art.metadata["procedural"] is True and art.metadata["label"] == PAN_ZOOM_LABEL
    assert result.data["procedural"] is True and "nobody/no-svd" in result.data["reason"]
    assert result.data["camera"] == "slow zoom in"
    assert "NOT a generated video" in result.summary
    assert "hf download nobody/no-svd" in result.summary
    frames = decoded(art)
    assert frames.shape == (8, 48, 64, 3) and count_frames(art.path) == 8
    diffs = [np.abs(a.astype(int) - b).mean() for a, b in zip(frames, frames[1:], strict=False)]
    assert min(diffs) > 0.2  # every frame moves on
    # Zooming in moves towards the centre: the red square in the middle grows.
    assert red_fraction(frames[-1]) > red_fraction(frames[0]) * 1.2


def test_pan_directions_follow_the_words(make, tmp_path):
    c = make(animator="nobody/no-svd")
    img = Image.new("RGB", (96, 48), "black")
    img.paste((255, 255, 255), (48, 0, 96, 48))  # dark left half, bright right half
    img.save(tmp_path / "halves.png")
    ref = c.attach(tmp_path / "halves.png")
    left = decoded(animate_image(c.ctx, image=ref, motion="pan left", frames=8).artifacts[0])
    assert left[0].mean() > left[-1].mean() + 20  # the view travels to the dark side
    right = animate_image(c.ctx, image=ref, motion="pan right, quickly", frames=8)
    frames = decoded(right.artifacts[0])
    assert frames[0].mean() + 20 < frames[-1].mean()
    assert right.data["camera"] == "fast pan right"


def test_camera_moves_from_words():
    assert camera_move("zoom out slowly")[0].words == "slow zoom out"
    move, notes = camera_move("waves rolling")
    assert move.words == "slow zoom in" and "cannot show 'waves rolling'" in notes[0]
    move = camera_move("push in and tilt up")[0]
    assert move.words == "zoom in and pan up" and move.start > move.end and move.dy < 0


def test_gif_and_size_of_the_fallback(make, tmp_path):
    c = make(animator="nobody/no-svd", max_side=64)
    ref = c.attach(photo(tmp_path, (400, 300)))
    result = animate_image(c.ctx, image=ref, frames=8, width=40, format="gif")
    video, gif = result.artifacts
    assert probe_path(video.path).width == 40 and probe_path(video.path).height == 30
    with Image.open(gif.path) as img:
        assert img.n_frames == 8 and img.size == (40, 30)
    assert gif.metadata["procedural"] is True and gif.metadata["label"] == PAN_ZOOM_LABEL
    capped = animate_image(c.ctx, image=ref, frames=8)  # the image's size, within max_side
    assert (capped.data["width"], capped.data["height"]) == (64, 48)


def test_cancelling_the_fallback_while_encoding_stores_nothing(make, tmp_path):
    c = make(animator="nobody/no-svd")
    ref = c.attach(photo(tmp_path))
    before = c.files()

    def progress(fraction: float, message: str, preview: Any) -> None:
        if message.startswith("encoding frame 3/"):
            c.ctx.cancel_event.set()

    c.ctx.progress_fn = progress
    with pytest.raises(Cancelled):
        animate_image(c.ctx, image=ref, frames=8, format="gif")
    assert c.files() == before


def test_with_the_fallback_off_a_missing_model_is_an_error(make, tmp_path):
    c = make(animator="stable-video-diffusion", pan_zoom_fallback=False)
    with pytest.raises(ToolError, match="animate_image needs an image-to-video model") as err:
        animate_image(c.ctx, image=c.attach(photo(tmp_path)), frames=8)
    assert "anymodal models pull stable-video-diffusion" in str(err.value)


def test_a_bad_image_fails_before_any_model(make, tmp_path):
    c = make(animator="nobody/no-svd")
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    with pytest.raises(ToolError, match="fake.png"):
        animate_image(c.ctx, image=c.attach(fake), frames=8)


# --- schema and import cost ---------------------------------------------------------------------


def test_the_planner_sees_the_canonical_arguments():
    spec = generate_video.spec()
    props = spec["input_schema"]["properties"]
    assert spec["input_schema"]["required"] == ["prompt"]
    assert props["frames"] | {} == {
        "description": "number of frames",
        "type": "integer",
        "minimum": 8,
        "maximum": 257,
        "default": 49,
        "title": "Frames",
    }
    seed = [{"type": "integer", "minimum": 0, "maximum": 2**63 - 1}, {"type": "null"}]
    assert props["seed"]["anyOf"] == seed
    assert spec["output_modalities"] == ["video"] and spec["input_modalities"] == ["text"]
    spec = animate_image.spec()
    assert spec["input_schema"]["required"] == ["image"]
    assert spec["input_schema"]["properties"]["motion"]["default"] == ""
    assert spec["input_modalities"] == ["image"] and spec["output_modalities"] == ["video"]
    assert len(generate_video.description) < 200 and len(animate_image.description) < 200


def test_importing_the_tools_loads_no_torch():
    code = "import sys, tools.video_gen; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False False"
