"""The image tools through the whole graph: a scripted plan generates an image with a tiny
random Stable Diffusion, captions it with a tiny random LLaVA and reads any text in it with
rapidocr's real models; the sketch fallback is labelled in the reply; bad input leaves the
session going."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from assistant import Assistant
from assistant.events import Final, StepFailed, StepFinished, StepProgress
from tests.conftest import check_event_order

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("rapidocr")
torch.set_num_threads(1)

SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 96 64">'
    '<rect width="96" height="64" fill="#88ccff"/><circle cx="48" cy="32" r="16" fill="red"/>'
    "</svg>"
)


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_diffusion import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


def _assistant(tiny_sd: Path | str, tiny_llava: Path, **image: Any) -> Assistant:
    settings = {"generator": str(tiny_sd), "vision_language": str(tiny_llava), **image}
    return Assistant(tools={"image": settings}, device="cpu", dtype="float32")


GENERATE_CAPTION_READ = [
    {
        "id": "s1",
        "tool": "generate_image",
        "args": {"prompt": "a red stop sign", "width": 96, "height": 64, "steps": 3, "seed": 7},
    },
    {"id": "s2", "tool": "caption_image", "args": {"image": "$s1"}},
    {"id": "s3", "tool": "read_text", "args": {"image": "$s1"}},
]


def test_generate_then_caption_then_read_text(tiny_sd: Path, tiny_llava: Path) -> None:
    bot = _assistant(tiny_sd, tiny_llava)
    events = list(
        bot.stream(
            "generate an image, then caption it, then read any text in it",
            plan=GENERATE_CAPTION_READ,
        )
    )
    check_event_order(events, {"steps": GENERATE_CAPTION_READ})
    result = events[-1].result
    assert isinstance(events[-1], Final) and result.ok, result.text

    image = result.steps["s1"]["artifacts"][0]
    with Image.open(image["path"]) as img:
        assert img.format == "PNG" and img.size == (96, 64)
    steps = [e for e in events if isinstance(e, StepProgress) and e.step == "s1"]
    assert sum("step" in e.message for e in steps) >= 3  # one report per denoising step

    caption = result.steps["s2"]
    assert caption["status"] == "ok" and caption["data"]["caption"]
    assert caption["artifacts"][0]["metadata"]["source"] == image["id"]  # s2 got s1's image
    ocr = result.steps["s3"]
    assert ocr["status"] == "ok" and "text" in ocr["data"]
    assert {a.modality.value for a in result.artifacts} >= {"image", "text"}


def test_the_sketch_fallback_is_labelled_in_the_reply(tmp_path: Path, tiny_llava: Path) -> None:
    bot = _assistant(tmp_path / "no-such-model", tiny_llava)
    bot._language_model = lambda messages, on_token=None: f"```svg\n{SVG}\n```"  # type: ignore[method-assign]
    plan = [GENERATE_CAPTION_READ[0]]
    result = bot.run("draw a red stop sign", plan=plan)
    assert result.ok, result.text
    art = result.artifacts[0]
    assert art.metadata["procedural"] is True
    assert "procedural sketch" in result.text and "not a diffusion image" in result.text
    with Image.open(art.path) as img:
        assert img.size == (96, 64)
        assert img.convert("RGB").getpixel((48, 32))[0] > 200  # the red circle


def test_bad_image_input_fails_clearly_and_the_session_goes_on(
    tmp_path: Path, tiny_sd: Path, tiny_llava: Path
) -> None:
    bot = _assistant(tiny_sd, tiny_llava)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    first = bot.run(
        "caption this",
        [notes],
        plan={"steps": [{"id": "s1", "tool": "read_text", "args": {"image": "$a1"}}]},
    )
    assert not first.ok and "this needs image" in first.text
    too_big = [
        {"id": "s1", "tool": "generate_image", "args": {"prompt": "x", "width": 99999}},
    ]
    events = list(bot.stream("a huge one", session=first.session, plan=too_big))
    failed = [e for e in events if isinstance(e, StepFailed | StepFinished)]
    assert failed and isinstance(failed[0], StepFailed) and "max_side" in failed[0].error
    again = bot.run("now a small one", session=first.session, plan=GENERATE_CAPTION_READ[:1])
    assert again.ok and again.session == first.session
    messages = bot.messages(first.session)
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert messages[-1]["artifacts"][0]["id"] == again.artifacts[0].id
