"""Tool discovery, wrapping typed functions, the langchain export, and missing extras."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from tools import (
    ArtifactStore,
    ImageInput,
    MissingExtra,
    Modality,
    Registry,
    ToolContext,
    ToolError,
    as_langchain_tool,
    function_tool,
)

BUILTINS = {
    "resize_image",
    "crop_image",
    "stitch_images",
    "convert_image",
    "trim_audio",
    "concat_audio",
    "convert_audio",
    "download_url",
}


def _ctx(tmp_path: Path, **refs) -> ToolContext:
    return ToolContext(
        store=ArtifactStore(tmp_path / "store"), workspace=tmp_path / "work", refs=refs
    )


def test_entry_points_register_the_builtins_and_modules_add_more():
    reg = Registry.discover()
    assert set(reg.names()) >= BUILTINS
    more = Registry.discover(modules=["tests.plugin_tools"], disabled=["download_url"])
    assert {"boom", "hang", "count"} <= set(more.names())
    assert "download_url" not in more
    with pytest.raises(ToolError, match="did you mean resize_image"):
        reg.get("resize_images")


def test_every_tool_has_a_schema_and_modalities():
    for spec in Registry.discover().specs():
        assert spec["description"] and spec["input_schema"]["type"] == "object"
        assert spec["input_schema"]["properties"]
    specs = {s["name"]: s for s in Registry.discover().specs()}
    resize = specs["resize_image"]
    assert resize["input_modalities"] == ["image"] and resize["output_modalities"] == ["image"]
    image_arg = resize["input_schema"]["properties"]["image"]
    assert image_arg["type"] == "string" and "$a1" in image_arg["description"]


def test_a_broken_plugin_is_recorded_not_fatal(monkeypatch):
    from importlib.metadata import EntryPoint

    import tools.registry as registry

    broken = EntryPoint("broken", "no_such_module:tool", registry.ENTRY_POINT_GROUP)
    real = registry.entry_points
    monkeypatch.setattr(registry, "entry_points", lambda group: [*real(group=group), broken])
    reg = Registry.discover()
    assert "ModuleNotFoundError" in reg.load_errors["broken"]
    assert set(reg.names()) >= BUILTINS


@function_tool
def tint(image: ImageInput, color: str = "red", strength: float = 0.5) -> Image.Image:
    """Blend an image with a solid colour.

    Args:
        image: the picture to tint
        color: a colour name
        strength: 0 keeps the image, 1 is the colour alone
    """
    with Image.open(image.path) as img:
        solid = Image.new("RGB", img.size, color)
        return Image.blend(img.convert("RGB"), solid, strength)


def test_function_tool_schema_comes_from_signature_and_docstring():
    spec = tint.spec()
    assert spec["description"] == "Blend an image with a solid colour."
    props = spec["input_schema"]["properties"]
    assert props["color"]["description"] == "a colour name"
    assert props["strength"]["type"] == "number" and props["strength"]["default"] == 0.5
    assert spec["input_schema"]["required"] == ["image"]
    assert spec["input_modalities"] == ["image"]
    assert spec["output_modalities"] == ["image"]


def test_function_tool_runs_with_resolved_artifacts(tmp_path, images):
    ctx = _ctx(tmp_path)
    src = ctx.store.add_file(images[0])
    ctx.refs["a1"] = [src]
    result = tint(ctx, image="$a1", color="blue", strength=1.0)
    art = result.artifacts[0]
    assert art.modality is Modality.IMAGE
    with Image.open(art.path) as img:
        assert img.size == (640, 480) and img.getpixel((5, 5)) == (0, 0, 255)
    with pytest.raises(ToolError, match="strength: Input should be a valid number"):
        tint(ctx, image="$a1", strength="lots")


def test_function_tool_needs_type_hints_and_a_docstring():
    def untyped(x):
        """Doc."""

    with pytest.raises(TypeError, match="needs a type hint"):
        function_tool(untyped)

    def undocumented(x: int) -> int:
        return x

    with pytest.raises(ValueError, match="docstring"):
        function_tool(undocumented)


def test_langchain_export_validates_resolves_and_returns_artifacts(tmp_path, images):
    from langchain_core.tools import BaseTool

    ctx = _ctx(tmp_path)
    ctx.refs["a1"] = [ctx.store.add_file(images[1])]
    reg = Registry.discover()
    lc = as_langchain_tool(reg.get("resize_image"), lambda: ctx)
    assert isinstance(lc, BaseTool) and lc.name == "resize_image"
    assert "image" in lc.args
    call = {
        "name": "resize_image",
        "args": {"image": "$a1", "width": 150},
        "id": "c1",
        "type": "tool_call",
    }
    message = lc.invoke(call)
    assert "resized b.jpg from 300x200 to 150x100" in message.content
    assert message.artifact.artifacts[0].metadata["width"] == 150
    assert {t.name for t in reg.as_langchain_tools(lambda: ctx)} == set(reg.names())


def test_missing_extra_names_the_pip_line(monkeypatch, tmp_path, wav):
    monkeypatch.setitem(sys.modules, "soundfile", None)  # import now fails
    ctx = _ctx(tmp_path)
    ctx.refs["a1"] = [ctx.store.add_file(wav)]
    reg = Registry.discover()
    with pytest.raises(MissingExtra) as info:
        reg.get("trim_audio")(ctx, audio="$a1", start=0.1)
    assert "pip install 'anymodal[audio]'" in str(info.value)
