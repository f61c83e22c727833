"""generate_image, edit_image and inpaint_image on tiny random-weight diffusion pipelines,
saved with save_pretrained and loaded back through the tools (the path real weights take)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.tiny_diffusion import (
    build_tiny_instruct_pix2pix,
    build_tiny_ip_adapter,
    build_tiny_sd,
)
from tools import ArtifactStore, Cancelled, ModelManager, ToolContext, ToolError, ToolSettings
from tools.image_gen import edit_image, generate_image, inpaint_image

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny pipelines, built once: text-to-image, InstructPix2Pix, an IP-Adapter."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny-diffusion")
    sd = build_tiny_sd(root / "tiny-sd")
    return {
        "sd": sd,
        "ip2p": build_tiny_instruct_pix2pix(root / "tiny-ip2p"),
        "ipa": build_tiny_ip_adapter(root / "tiny-ip-adapter", sd),
    }


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    """One model manager for the session, so each tiny pipeline loads once."""
    return ModelManager(tmp_path_factory.mktemp("mm"), device="cpu", dtype="float32")


class Ctx:
    """A ToolContext that records progress events, with attachment helpers."""

    def __init__(self, tmp_path: Path, settings: ToolSettings, models: Any, **kw: Any):
        self.events: list[tuple[float, str, Any]] = []
        self.ctx = ToolContext(
            store=ArtifactStore(tmp_path / "store"),
            workspace=tmp_path,
            settings=settings,
            models=models,
            progress_fn=lambda f, m, p: self.events.append((f, m, p)),
            step_id="s1",
            **kw,
        )

    def attach(self, path: Path) -> str:
        ref = f"a{len(self.ctx.refs) + 1}"
        self.ctx.refs[ref] = [self.ctx.store.add_file(path)]
        return "$" + ref

    def steps(self) -> list[tuple[float, str, Any]]:
        return [e for e in self.events if ": step " in e[1]]

    def files(self) -> set[Path]:
        return {p for p in self.ctx.store.root.rglob("*") if p.is_file()}


@pytest.fixture
def make(tmp_path: Path, tiny: dict[str, Path], models: ModelManager) -> Any:
    def build(models_: Any = models, llm: Any = None, **image: Any) -> Ctx:
        image.setdefault("generator", str(tiny["sd"]))
        image.setdefault("instruct_editor", str(tiny["ip2p"]))
        return Ctx(tmp_path, ToolSettings(image=image), models_, llm=llm)

    return build


def png(art: Any) -> Image.Image:
    img = Image.open(art.path)
    assert img.format == "PNG"
    img.load()
    return img


def photo(tmp_path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    """A picture with structure (a gradient and a square), so edits have something to keep."""
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    img.paste((200, 30, 30), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    path = tmp_path / f"photo{size[0]}x{size[1]}.png"
    img.save(path)
    return path


# --- generate_image -------------------------------------------------------------------------


def test_generates_pngs_of_the_requested_size(make):
    c = make()
    for width, height in [(64, 64), (96, 64)]:
        result = generate_image(c.ctx, prompt="a red fox", width=width, height=height, steps=2)
        (art,) = result.artifacts
        assert png(art).size == (width, height) and art.mime == "image/png"
        assert art.metadata["width"] == width and art.metadata["prompt"] == "a red fox"
        assert result.data["steps"] == 2 and result.data["procedural"] is False
        assert result.data["model"] == str(make().ctx.settings.image.generator)
        assert f"{width}x{height}" in result.summary


def test_the_native_size_and_standard_defaults_apply_when_not_given(make):
    result = generate_image(make().ctx, prompt="a fox", seed=3)
    assert png(result.artifacts[0]).size == (64, 64)  # UNet sample 8 x VAE factor 8
    assert (result.data["steps"], result.data["guidance"]) == (25, 7.5)
    assert result.data["defaults"] == "standard"


def test_same_seed_same_pixels_other_seed_differs(make):
    c = make()

    def pixels(seed: int, num_images: int = 1) -> list[np.ndarray]:
        result = generate_image(
            c.ctx, prompt="a fox", width=64, height=64, steps=2, seed=seed, num_images=num_images
        )
        assert [a.metadata["seed"] for a in result.artifacts] == result.data["seeds"]
        return [np.asarray(png(a), dtype=int) for a in result.artifacts]

    seven, eight = pixels(7)[0], pixels(8)[0]
    assert np.array_equal(pixels(7)[0], seven)
    assert np.abs(seven - eight).mean() > 10
    # Each image of a batch repeats on its own with its seed (batching moves a pixel by 1 at
    # most: float sums in another order).
    both = pixels(7, num_images=2)
    assert np.abs(both[0] - seven).max() <= 2 and np.abs(both[1] - eight).max() <= 2


def test_an_unset_seed_is_picked_and_reported(make):
    c = make()
    result = generate_image(c.ctx, prompt="a fox", width=64, height=64, steps=1)
    seed = result.data["seed"]
    assert isinstance(seed, int) and result.artifacts[0].metadata["seed"] == seed
    again = generate_image(c.ctx, prompt="a fox", width=64, height=64, steps=1, seed=seed)
    assert again.artifacts[0].id == result.artifacts[0].id


def test_one_progress_report_per_step_and_a_preview_every_n_steps(make):
    c = make(preview_every=2)
    generate_image(c.ctx, prompt="a fox", width=64, height=64, steps=6, seed=1)
    steps = c.steps()
    assert [round(f, 3) for f, _, _ in steps] == [round(i / 6, 3) for i in range(1, 7)]
    assert [m.split(": ")[1] for _, m, _ in steps] == [f"step {i}/6" for i in range(1, 7)]
    previews = [(i + 1, p) for i, (_, _, p) in enumerate(steps) if p is not None]
    assert [i for i, _ in previews] == [2, 4]  # none at the last step: the image follows
    for step, art in previews:
        img = png(art)
        assert img.mode == "RGB" and max(img.size) <= 128
        assert art.metadata["preview"] is True and art.metadata["step"] == step
    c = make(preview_every=0)
    generate_image(c.ctx, prompt="a fox", width=64, height=64, steps=3, seed=1)
    assert len(c.steps()) == 3 and all(p is None for _, _, p in c.steps())


def test_odd_sizes_are_rounded_with_a_note(make):
    result = generate_image(make().ctx, prompt="a fox", width=70, height=100, steps=1)
    assert png(result.artifacts[0]).size == (72, 104)
    assert "70x100 rounded to 72x104" in result.summary
    assert any("multiples of 8" in n for n in result.data["notes"])


@pytest.mark.parametrize(
    ("args", "settings", "message"),
    [
        ({"width": 4096}, {}, r"width 4096 is over the limit of 2048 .*tools.image.max_side"),
        ({"height": 512}, {"max_side": 256}, r"height 512 .*limit of 256"),
        ({"steps": 500}, {}, r"steps 500 is over the limit of 100 \(tools.image.max_steps\)"),
        ({"num_images": 9}, {}, r"num_images 9 .*limit of 4 \(tools.image.max_images\)"),
        ({"prompt": "   "}, {}, "the prompt is empty"),
        ({"width": -5}, {}, r"width: Input should be greater than or equal to 64"),
        ({"steps": 0}, {}, r"steps: Input should be greater than or equal to 1"),
        ({"seed": -1}, {}, r"seed: Input should be greater than or equal to 0"),
        ({"guidance": 500}, {}, r"guidance: Input should be less than or equal to 30"),
        ({"num_images": 0}, {}, r"num_images: Input should be greater than or equal to 1"),
    ],
)
def test_bad_asks_are_refused_clearly_and_store_nothing(make, args, settings, message):
    c = make(**settings)
    before = c.files()
    with pytest.raises(ToolError, match=message):
        generate_image(c.ctx, **{"prompt": "a fox", **args})
    assert c.files() == before


def test_the_store_limit_on_output_size_applies(make):
    c = make()
    c.ctx.settings.max_image_pixels = 64 * 64
    with pytest.raises(ToolError, match="the result would be 128x128"):
        generate_image(c.ctx, prompt="a fox", width=128, height=128, steps=1)


def test_cancel_stops_between_steps_and_stores_no_image(make):
    c = make(preview_every=0)
    before = c.files()

    def progress(fraction: float, message: str, preview: Any) -> None:
        c.events.append((fraction, message, preview))
        if len(c.steps()) == 2:
            c.ctx.cancel_event.set()

    c.ctx.progress_fn = progress
    with pytest.raises(Cancelled):
        generate_image(c.ctx, prompt="a fox", width=64, height=64, steps=10, seed=1)
    assert len(c.steps()) == 2
    assert c.files() == before


def test_a_failure_mid_generation_leaves_no_half_written_image(make):
    c = make(preview_every=0)
    before = c.files()

    def progress(fraction: float, message: str, preview: Any) -> None:
        if ": step 3/" in message:
            raise RuntimeError("the device fell over")

    c.ctx.progress_fn = progress
    with pytest.raises(ToolError, match="generate_image failed with .*the device fell over"):
        generate_image(c.ctx, prompt="a fox", width=64, height=64, steps=5)
    assert c.files() == before
    # The pipeline is fine afterwards.
    c.ctx.progress_fn = lambda f, m, p: None
    assert generate_image(c.ctx, prompt="a fox", width=64, height=64, steps=1).artifacts


def test_turbo_and_lcm_models_get_few_step_defaults(make, tiny, tmp_path):
    from diffusers import LCMScheduler, UNet2DConditionModel

    from tools.diffusion import Defaults, few_step_defaults

    turbo = tmp_path / "my-sd-turbo"
    turbo.symlink_to(tiny["sd"], target_is_directory=True)
    result = generate_image(make(generator=str(turbo)).ctx, prompt="a fox", seed=1)
    assert (result.data["steps"], result.data["guidance"]) == (2, 0.0)
    assert result.data["defaults"] == "turbo"

    pipe = make().ctx.models.load(f"diffusers:{tiny['sd']}", lambda: None).pipe
    assert few_step_defaults(pipe, "x").kind == "standard"
    lcm_lora = type(pipe)(
        **{**pipe.components, "scheduler": LCMScheduler.from_config(pipe.scheduler.config)}
    )
    assert few_step_defaults(lcm_lora, "x") == Defaults(4, 1.0, "lcm")
    unet = UNet2DConditionModel.from_config({**pipe.unet.config, "time_cond_proj_dim": 8})
    lcm = type(pipe)(**{**pipe.components, "unet": unet})
    assert few_step_defaults(lcm, "x") == Defaults(4, 8.0, "lcm")


def test_the_model_manager_caches_the_pipeline(make, tiny, tmp_path, monkeypatch):
    import diffusers

    calls = []
    real = diffusers.AutoPipelineForText2Image.from_pretrained

    def counting(*a: Any, **kw: Any) -> Any:
        calls.append(a)
        return real(*a, **kw)

    monkeypatch.setattr(diffusers.AutoPipelineForText2Image, "from_pretrained", counting)
    mm = ModelManager(tmp_path / "cache", device="cpu", dtype="float32")
    c = make(models_=mm)
    generate_image(c.ctx, prompt="a fox", width=64, height=64, steps=1)
    generate_image(c.ctx, prompt="a dog", width=64, height=64, steps=1)
    edit_image(c.ctx, image=c.attach(photo(tmp_path)), instruction="snow", strength=0.5, steps=2)
    assert len(calls) == 1  # and img2img came from the loaded pipeline, not from disk
    assert mm.loaded() == [f"diffusers:{tiny['sd']}"]
    assert sum(1 for _, m, _ in c.events if m.startswith("loading")) == 1


def test_without_a_model_manager_it_loads_on_cpu_and_the_registry_finds_it(run, tiny):
    settings = ToolSettings(image={"generator": str(tiny["sd"])})
    result = run("generate_image", [], settings, prompt="a fox", width=64, height=64, steps=1)
    assert png(result.artifacts[0]).size == (64, 64)


def test_the_safety_checker_is_off_unless_asked_and_says_when_it_flags(make, tmp_path):
    flagged = build_tiny_sd(tmp_path / "tiny-sd-checked", flag_everything=True)
    c = make(generator=str(flagged))
    result = generate_image(c.ctx, prompt="a fox", width=64, height=64, steps=1, seed=1)
    assert result.data["nsfw_flagged"] == [False]  # loaded without its checker
    c = make(generator=str(flagged), safety_checker=True)
    result = generate_image(c.ctx, prompt="a fox", width=64, height=64, steps=1, seed=1)
    assert result.data["nsfw_flagged"] == [True]
    assert "safety checker flagged image 1" in result.summary
    assert result.artifacts[0].metadata["nsfw"] is True


# --- a missing model --------------------------------------------------------------------------


SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
    '<circle cx="5" cy="5" r="4" fill="orange"/></svg>'
)


def llm(messages: list[dict[str, Any]], on_token: Any) -> str:
    return SVG


@pytest.mark.parametrize("missing", ["nobody/not-cached-model", "/no/such/model/folder"])
def test_a_missing_model_falls_back_to_a_labelled_sketch(make, missing, monkeypatch):
    if importlib.util.find_spec("tools.sketch") is None:  # until tools/sketch.py exists
        fake = type(sys)("tools.sketch")

        def draw_sketch(ctx, prompt, width, height, reason):
            img = Image.new("RGB", (width, height), "orange")
            return ctx.store.add_image(img, metadata={"procedural": True, "reason": reason})

        fake.draw_sketch = draw_sketch  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "tools.sketch", fake)
    c = make(generator=missing, llm=llm)
    result = generate_image(c.ctx, prompt="an orange sun", width=96, height=64)
    (art,) = result.artifacts
    assert png(art).size == (96, 64) and art.metadata["procedural"] is True
    assert result.data["procedural"] is True and result.data["model"] is None
    assert "procedural sketch" in result.summary and "NOT a diffusion image" in result.summary
    advice = "hf download nobody" if missing.startswith("nobody/") else "models pull sd-turbo"
    assert advice in result.summary
    assert "tools.image.generator" in result.summary


def test_the_advice_fits_how_the_model_is_named():
    from tools.diffusion import install_advice

    setting = "tools.image.generator"
    assert "`anymodal models pull sd-turbo`" in install_advice("sd-turbo", setting)
    assert "`hf download acme/pipe`" in install_advice("acme/pipe", setting)
    folder = install_advice("/models/gone", setting)
    assert "folder" in folder and "`anymodal models pull sd-turbo`" in folder
    assert "instruct-pix2pix" in install_advice("/x", "tools.image.instruct_editor")


def test_a_missing_model_without_a_language_model_is_a_clear_error(make):
    with pytest.raises(ToolError, match=r"needs a text-to-image model.*hf download nobody/gone"):
        generate_image(make(generator="nobody/gone").ctx, prompt="a fox")
    c = make(generator="nobody/gone", llm=llm, sketch_fallback=False)
    with pytest.raises(ToolError, match=r"HF_HUB_OFFLINE.*tools.image.generator"):
        generate_image(c.ctx, prompt="a fox")


def test_a_broken_model_folder_is_an_error_not_a_sketch(make, tmp_path):
    folder = tmp_path / "not-a-pipeline"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ToolError, match="no model_index.json, so it is not a diffusers pipeline"):
        generate_image(make(generator=str(folder), llm=llm).ctx, prompt="a fox")


# --- edit_image ---------------------------------------------------------------------------------


def test_img2img_edit_keeps_the_rounded_input_size(make, tmp_path):
    c = make()
    ref = c.attach(photo(tmp_path, (100, 70)))
    result = edit_image(
        c.ctx, image=ref, instruction="make it snowy", strength=0.5, seed=2, steps=4
    )
    (art,) = result.artifacts
    assert png(art).size == (104, 72)
    assert result.data["mode"] == "img2img" and result.data["strength"] == 0.5
    assert "100x70 rounded to 104x72" in result.summary
    assert len(c.steps()) == 2  # strength 0.5 of 4 steps
    again = edit_image(c.ctx, image=ref, instruction="make it snowy", strength=0.5, seed=2, steps=4)
    assert again.artifacts[0].id == art.id


def test_an_input_over_max_side_is_scaled_down_with_a_note(make, tmp_path):
    c = make(max_side=64)
    ref = c.attach(photo(tmp_path, (100, 70)))
    result = edit_image(c.ctx, image=ref, instruction="snow", strength=0.5, steps=2, seed=1)
    assert png(result.artifacts[0]).size == (64, 48)
    assert "over tools.image.max_side (64); scaled to 64x45" in result.summary
    assert "64x45 rounded to 64x48" in result.summary


def test_instruct_edit_with_a_tiny_instruct_pix2pix(make, tmp_path):
    c = make()
    result = edit_image(c.ctx, image=c.attach(photo(tmp_path)), instruction="add snow", steps=3)
    assert result.data["mode"] == "instruct"
    assert result.data["pipeline"] == "StableDiffusionInstructPix2PixPipeline"
    assert result.data["image_guidance_scale"] == 1.5
    assert png(result.artifacts[0]).size == (64, 48)
    assert len(c.steps()) == 3


def test_auto_falls_back_to_img2img_when_the_instruct_editor_is_missing(make, tmp_path):
    c = make(instruct_editor="nobody/no-pix2pix")
    result = edit_image(c.ctx, image=c.attach(photo(tmp_path)), instruction="add snow", steps=2)
    assert result.data["mode"] == "img2img" and result.data["strength"] == 0.6
    assert "instruction editor nobody/no-pix2pix is not installed" in result.summary
    with pytest.raises(ToolError, match="hf download nobody/no-pix2pix"):
        edit_image(c.ctx, image="$a1", instruction="add snow", mode="instruct")


def test_edit_refuses_what_is_not_an_image(make, tmp_path):
    c = make()
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    with pytest.raises(ToolError, match="is text; this needs image"):
        edit_image(c.ctx, image=c.attach(text), instruction="add snow")
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    with pytest.raises(ToolError, match="fake.png (is not an image|could not be decoded)"):
        edit_image(c.ctx, image=c.attach(fake), instruction="add snow")
    with pytest.raises(ToolError, match="strength 0 would return the image unchanged"):
        edit_image(c.ctx, image=c.attach(photo(tmp_path)), instruction="x", strength=0)


# --- inpaint_image --------------------------------------------------------------------------------


def mask_file(tmp_path: Path, size: tuple[int, int], box: tuple[int, int, int, int] | None) -> Path:
    img = Image.new("L", size, 0)
    if box:
        img.paste(255, box)
    path = tmp_path / f"mask{box}.png"
    img.save(path)
    return path


def test_inpaint_repaints_only_the_mask(make, tmp_path):
    c = make()
    src = photo(tmp_path, (96, 64))
    refs = c.attach(src), c.attach(mask_file(tmp_path, (48, 32), (0, 0, 16, 16)))  # scaled x2
    result = inpaint_image(c.ctx, image=refs[0], mask=refs[1], prompt="a tree", steps=2, seed=1)
    out = png(result.artifacts[0]).convert("RGB")
    assert out.size == (96, 64) and result.data["pipeline"] == "StableDiffusionInpaintPipeline"
    original = Image.open(src).convert("RGB")
    assert out.crop((40, 0, 96, 64)).tobytes() == original.crop((40, 0, 96, 64)).tobytes()
    assert out.crop((0, 0, 28, 28)).tobytes() != original.crop((0, 0, 28, 28)).tobytes()
    assert result.data["mask_fraction"] == pytest.approx(32 * 32 / (96 * 64), abs=1e-4)


def test_inpaint_refuses_black_masks_and_needs_exactly_one_of_mask_and_region(make, tmp_path):
    c = make()
    img, black = c.attach(photo(tmp_path)), c.attach(mask_file(tmp_path, (64, 48), None))
    with pytest.raises(ToolError, match="is all black, so there is nothing to repaint"):
        inpaint_image(c.ctx, image=img, mask=black, prompt="a tree")
    with pytest.raises(ToolError, match="exactly one of them"):
        inpaint_image(c.ctx, image=img, mask=black, region="the car", prompt="a tree")
    with pytest.raises(ToolError, match="exactly one of them"):
        inpaint_image(c.ctx, image=img, prompt="a tree")


def test_inpaint_a_region_named_in_words(make, tmp_path, monkeypatch):
    from tools import segment

    asked = []

    def mask_from_words(ctx, image, words):
        asked.append((image.id, words))
        mask = Image.new("L", (64, 48), 0)
        mask.paste(255, (32, 0, 64, 24))
        return mask

    monkeypatch.setattr(segment, "mask_from_words", mask_from_words)
    c = make()
    ref = c.attach(photo(tmp_path))
    result = inpaint_image(c.ctx, image=ref, region="the sky", prompt="clouds", steps=2, seed=1)
    assert asked == [(c.ctx.refs["a1"][0].id, "the sky")]
    assert png(result.artifacts[0]).size == (64, 48)
    assert "region 'the sky'" in result.summary and result.data["mask_fraction"] == 0.25


# --- style from a reference image (IP-Adapter) ----------------------------------------------------


def test_style_image_through_a_tiny_ip_adapter(make, tiny, tmp_path):
    c = make(ip_adapter=str(tiny["ipa"]))
    style = c.attach(photo(tmp_path, (40, 40)))
    plain = generate_image(c.ctx, prompt="a fox", width=64, height=64, steps=2, seed=5)
    styled = generate_image(
        c.ctx, prompt="a fox", width=64, height=64, steps=2, seed=5, style_image=style
    )
    assert png(styled.artifacts[0]).size == (64, 64)
    assert styled.artifacts[0].id != plain.artifacts[0].id  # the adapter changed the image
    assert "styled after" in styled.summary
    # Without a style image the adapter is unloaded again: the same image as before.
    again = generate_image(c.ctx, prompt="a fox", width=64, height=64, steps=2, seed=5)
    assert again.artifacts[0].id == plain.artifacts[0].id
    # Derived pipelines (img2img shares the UNet) take the style too.
    edit = edit_image(
        c.ctx, image=c.attach(photo(tmp_path)), instruction="x", strength=0.5, style_image=style
    )
    assert png(edit.artifacts[0]).size == (64, 48)


def test_style_image_without_adapter_weights_says_what_to_download(make, tmp_path):
    c = make(ip_adapter="nobody/no-ip-adapter")
    with pytest.raises(ToolError, match=r"cannot load the IP-Adapter.*hf download nobody/no-ip"):
        generate_image(
            c.ctx,
            prompt="a fox",
            width=64,
            height=64,
            steps=1,
            style_image=c.attach(photo(tmp_path)),
        )
    assert generate_image(c.ctx, prompt="a fox", width=64, height=64, steps=1).artifacts


# --- cheap to import ------------------------------------------------------------------------------


def test_importing_the_tools_loads_no_torch():
    code = "import sys, tools.image_gen, tools.diffusion; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_the_planner_sees_short_described_arguments():
    for tool in (generate_image, edit_image, inpaint_image):
        schema = tool.input_schema()
        assert len(tool.description) < 200
        for name, prop in schema["properties"].items():
            text = prop.get("description") or str(prop.get("anyOf"))
            assert text and "description" in str(prop), (tool.name, name)
    assert generate_image.input_schema()["required"] == ["prompt"]
    assert set(inpaint_image.input_schema()["required"]) == {"image", "prompt"}
