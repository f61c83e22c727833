"""The embedded default: Qwen2.5-Coder-1.5B (offline pack) on llama.cpp plans real requests
that then run. Slow-ish (a few seconds a request), but run in CI: it is the product."""

from __future__ import annotations

import pytest
import soundfile as sf
from PIL import Image

from assistant import Assistant

pytestmark = pytest.mark.model


@pytest.fixture
def assistant(planner):
    return Assistant(planner=planner)


def _run(assistant, prompt, files):
    result = assistant.run(prompt, files)
    assert result.ok, result.text
    assert result.plan and result.plan["steps"]
    return result


def test_resize_request(assistant, media):
    result = _run(assistant, "resize this photo to 128 pixels wide", [media / "13181.jpg"])
    assert [s["tool"] for s in result.plan["steps"]] == ["resize_image"]
    with Image.open(result.artifacts[-1].path) as img:
        assert img.width == 128


def test_convert_request(assistant, media):
    result = _run(assistant, "convert this image to webp", [media / "08078.jpg"])
    assert result.artifacts[-1].mime == "image/webp"


def test_trim_request(assistant, media):
    result = _run(
        assistant, "cut the recording from second 1 to second 2", [media / "1284-1180-0003.flac"]
    )
    info = sf.info(result.artifacts[-1].path)
    assert info.duration == pytest.approx(1.0, abs=0.01)


def test_plan_command_against_a_tool_catalog(media, model_cache, home):
    """`anymodal plan --tools` plans against described tools it cannot run."""
    import json

    from tests.assistant.test_cli import anymodal
    from tests.conftest import REPO

    catalog = REPO / "benchmarks" / "planner_eval" / "tools.json"
    proc = anymodal(
        "plan",
        "write down what is said in this recording",
        "-a",
        str(media / "1284-1180-0003.flac"),
        "--tools",
        str(catalog),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    specs = {t["name"]: t for t in json.loads(catalog.read_text())}
    first = plan["steps"][0]
    assert first["tool"] in specs  # a described tool, not one of the registered ones
    assert "audio" in specs[first["tool"]]["input_modalities"]
    assert "$a1" in json.dumps(first["args"])


def test_draw_request_without_diffusion_weights_gives_a_labelled_sketch(assistant):
    """No text-to-image weights can be installed offline: the planner still routes the
    request to generate_image, and the same real model draws the labelled SVG sketch."""
    pytest.importorskip("resvg_py", reason="the image extra is not installed")
    result = _run(assistant, "draw a picture of a red apple, 256x256", [])
    assert [s["tool"] for s in result.plan["steps"]] == ["generate_image"]
    art = result.artifacts[-1]
    assert art.metadata["procedural"] is True and "not a diffusion image" in result.text
    with Image.open(art.path) as img:
        assert img.format == "PNG" and img.size == (256, 256)
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 16) or [0] * 99) > 1  # drawn
