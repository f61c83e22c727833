"""The transformers vision-language planner, on a tiny random-weight LLaVA built here and loaded
back through ``from_pretrained`` (the path real weights take): the attached image reaches the
vision tower, the real chat template and parsing turn a scripted answer into a valid plan, and
a whole run plans and resizes a real photo."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from assistant import Assistant
from assistant.config import load_config
from assistant.plan import PlannerUnavailable, validate_plan
from assistant.planners.base import NoPlanner, PlanRequest, make_planner
from assistant.planners.vlm import (
    TransformersBackend,
    chat_messages,
    load_vlm,
    transformers_planner,
)
from tests.tiny_vlm import IMAGE_SIZE, IMAGE_TOKENS, ScriptedGenerate
from tools import ArtifactStore, Registry, ToolContext
from tools.errors import ToolError
from tools.models import ModelManager

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
torch.set_num_threads(1)

PLAN = {"steps": [{"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 64}}]}
ANSWER = f"Sure! Here is the plan:\n```json\n{json.dumps(PLAN)}\n```\nIt resizes the photo."


@pytest.fixture
def photo(media: Path, tmp_path: Path) -> Path:
    """A real photo, made small so the run stays fast."""
    with Image.open(media / "08078.jpg") as img:
        img.convert("RGB").resize((160, 120)).save(tmp_path / "photo.jpg")
    return tmp_path / "photo.jpg"


def _user(text: str, image: Path) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You plan."},
        {
            "role": "user",
            "content": [{"type": "text", "text": text}, {"type": "image", "path": str(image)}],
        },
    ]


# --- the image reaches the model; random weights write text ---------------------------------


def test_attached_image_reaches_the_vision_tower_and_random_weights_write(tiny_llava, photo):
    models = ModelManager()
    backend = TransformersBackend(str(tiny_llava), models=models, max_new_tokens=6)
    vlm = backend.load()
    assert backend.load() is vlm  # cached by the manager, which counts its weights
    assert models.used_bytes == (tiny_llava / "model.safetensors").stat().st_size
    assert vlm.device == "cpu" and vlm.model.dtype == torch.float32
    seen: list[Any] = []

    def grab(module: Any, args: tuple, kwargs: dict) -> None:
        seen.append(kwargs.get("pixel_values", args[0] if args else None))

    hook = vlm.model.model.vision_tower.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        reply = backend.chat(_user("make it 64 wide", photo), schema={"type": "object"})
        pieces: list[str] = []
        streamed = backend.chat(_user("make it 64 wide", photo), on_token=pieces.append)
    finally:
        hook.remove()

    with Image.open(photo) as img:
        expected = vlm.processor.image_processor(images=img.convert("RGB"), return_tensors="pt")[
            "pixel_values"
        ]
    assert len(seen) == 2  # once per chat: the image is read when the prompt is
    assert seen[0].shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert torch.allclose(seen[0], expected)
    assert reply.text.strip() and reply.tool_calls == []
    # Greedy decoding: streaming gives the same text, piece by piece.
    assert "".join(pieces) == streamed.text == reply.text


def test_the_prompt_holds_one_image_token_per_patch(tiny_llava, photo, monkeypatch):
    backend = TransformersBackend(str(tiny_llava))
    vlm = backend.load()
    script = ScriptedGenerate(vlm.tokenizer, ["ok"])
    monkeypatch.setattr(vlm.model, "generate", script)
    assert backend.chat(_user("describe", photo), max_tokens=20).text == "ok"
    call = script.calls[0]
    image_id = vlm.model.config.image_token_index
    assert int((call["input_ids"] == image_id).sum()) == IMAGE_TOKENS
    assert call["pixel_values"].shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert call["max_new_tokens"] == 20 and call["do_sample"] is False
    prompt = script.prompt(0)
    assert prompt.startswith("<|system|>\nYou plan.</s>\n<|user|>\ndescribe<image>")
    assert prompt.endswith("<|assistant|>\n")


def test_configured_precision_reaches_the_model_and_its_inputs(tiny_llava, photo):
    backend = TransformersBackend(str(tiny_llava), device="cpu", dtype="bfloat16")
    vlm = backend.load()
    assert vlm.model.dtype == torch.bfloat16
    batch = backend.inputs(vlm, _user("hi", photo))
    assert batch["pixel_values"].dtype == torch.bfloat16
    assert batch["input_ids"].dtype == torch.long
    assert isinstance(backend.chat(_user("hi", photo), max_tokens=3).text, str)


# --- scripted answers through the real template and parser ----------------------------------


def test_planner_turns_the_answer_into_a_valid_plan_and_repairs(tiny_llava, photo, tmp_path):
    config = load_config(
        planner="transformers", transformers={"model": str(tiny_llava), "max_new_tokens": 200}
    )
    models = ModelManager()
    planner = transformers_planner(config, models)
    vlm = planner.backend.load()  # type: ignore[attr-defined]
    bad = '{"steps":[{"id":"s1","tool":"resize_picture","args":{"image":"$a1"}}]}'
    script = ScriptedGenerate(vlm.tokenizer, [bad, ANSWER])
    vlm.model.generate = script

    registry = Registry.discover()
    ctx = ToolContext(store=ArtifactStore(tmp_path / "store"), workspace=tmp_path / "w")
    attachment = ctx.store.add_file(photo)
    ctx.refs["a1"] = [attachment]
    request = PlanRequest(
        prompt="make this photo 64 pixels wide",
        attachments=[attachment],
        tools=registry.specs(),
        check=lambda p: validate_plan(p, registry, [attachment], ctx),
    )
    plan = planner.plan(request)
    validate_plan(plan, registry, [attachment], ctx)

    assert plan.model_dump(exclude_none=True) == PLAN
    assert len(script.calls) == 2 and script.calls[0]["max_new_tokens"] == 200
    first, second = script.prompt(0), script.prompt(1)
    assert "resize_image(" in first and "Request: make this photo 64 pixels wide" in first
    assert first.count("<image>") == IMAGE_TOKENS
    # The repair turn: the bad answer as the assistant's message, then the problem.
    assert f"<|assistant|>\n{bad}</s>" in second and "That plan cannot run" in second
    assert "resize_picture" in second


def test_a_whole_run_plans_with_the_model_and_resizes_the_photo(tiny_llava, photo):
    model = str(tiny_llava)
    assistant = Assistant(planner="transformers", transformers={"model": model})
    # Loaded ahead through the manager under the backend's key, so the run uses this one.
    vlm = assistant.models.load(f"transformers:{model}", lambda: load_vlm(model))
    script = ScriptedGenerate(vlm.tokenizer, [ANSWER, "Resized the photo to 64 pixels wide."])
    vlm.model.generate = script

    result = assistant.run("make this photo 64 pixels wide", [photo])

    assert result.ok, result.text
    assert result.plan is not None and result.plan["steps"] == PLAN["steps"]
    out = Path(result.artifacts[-1].path)
    assert out.stat().st_size > 0
    with Image.open(out) as img:
        assert img.size == (64, 48)
    assert "Resized the photo to 64 pixels wide." in result.text
    assert script.calls[0]["pixel_values"].shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert "pixel_values" not in script.calls[1]  # the answer is written from text alone


# --- messages and errors ----------------------------------------------------------------------


def test_messages_become_transformers_chat_content(photo):
    msgs = chat_messages(
        [
            {"role": "system", "content": "plan"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi"}, {"type": "image", "path": str(photo)}],
            },
        ]
    )
    assert msgs[0] == {"role": "system", "content": [{"type": "text", "text": "plan"}]}
    text, image = msgs[1]["content"]
    assert text == {"type": "text", "text": "hi"}
    assert image["type"] == "image" and image["image"].size == (160, 120)
    with pytest.raises(ToolError, match="cannot read the attached image"):
        chat_messages([{"role": "user", "content": [{"type": "image", "path": "/no/x.png"}]}])


def test_no_model_configured_says_what_to_set():
    config = load_config(planner="transformers")
    with pytest.raises(ToolError, match="set transformers.model to a Hub id or folder"):
        transformers_planner(config, ModelManager())
    planner = make_planner(config, ModelManager())
    assert isinstance(planner, NoPlanner)
    with pytest.raises(PlannerUnavailable, match="transformers.model"):
        planner.plan(PlanRequest(prompt="x", attachments=[], tools=[]))


@pytest.mark.parametrize("model", ["/no/such/llava-folder", "nobody/no-such-vlm"])
def test_a_missing_model_names_it_and_the_offline_switch(model):
    with pytest.raises(ToolError) as info:
        TransformersBackend(model).load()
    assert model in str(info.value) and "HF_HUB_OFFLINE" in str(info.value)
    # Found out before any weights load, so a run still ends with a reply that says why.
    result = Assistant(planner="transformers", transformers={"model": model}).run("make it small")
    assert result.status == "failed"
    assert model in result.text and "HF_HUB_OFFLINE" in result.text


@pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None,
    reason="torchvision is installed, so Qwen2.5-VL's processor builds",
)
def test_a_processor_that_needs_torchvision_says_which_models_work(tiny_llava, tmp_path):
    folder = tmp_path / "qwen-like"
    shutil.copytree(tiny_llava, folder)
    settings = json.loads((folder / "processor_config.json").read_text())
    vision = {"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2}
    settings.update(
        processor_class="Qwen2_5_VLProcessor",
        image_processor={"image_processor_type": "Qwen2VLImageProcessor", **vision},
        video_processor={"video_processor_type": "Qwen2VLVideoProcessor", **vision},
    )
    (folder / "processor_config.json").write_text(json.dumps(settings))
    with pytest.raises(ToolError) as info:
        TransformersBackend(str(folder)).load()
    message = str(info.value)
    assert str(folder) in message and "torchvision" in message.lower()
    assert "LLaVA, LLaVA-NeXT or Idefics3" in message


def test_a_chat_template_that_refuses_the_chat_says_so(tiny_llava, tmp_path, photo):
    folder = tmp_path / "strict"
    shutil.copytree(tiny_llava, folder)
    (folder / "chat_template.jinja").write_text(
        "{% if messages[0]['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
    )
    with pytest.raises(ToolError, match="System role not supported") as info:
        TransformersBackend(str(folder)).chat(_user("hi", photo))
    assert str(folder) in str(info.value)


@pytest.mark.timeout(30)
def test_a_failure_while_streaming_reaches_the_caller(tiny_llava, photo, monkeypatch):
    backend = TransformersBackend(str(tiny_llava))
    vlm = backend.load()

    def broken(**kwargs: Any) -> None:
        kwargs["streamer"].put(kwargs["input_ids"])
        raise RuntimeError("out of memory")

    monkeypatch.setattr(vlm.model, "generate", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        backend.chat(_user("hi", photo), on_token=lambda piece: None)
    assert not vlm.lock.locked()
