"""caption_image and ask_image on tiny random-weight vision-language models built here and
loaded back through ``from_pretrained``: a LLaVA through its real processor and chat template,
and BLIP, BLIP-2 and Florence-2, which have none. Random weights write gibberish, so the tests
assert on what reaches the model and on the shape of the result, and on determinism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from assistant.config import load_config
from assistant.planners.vlm import TransformersBackend
from tests.tiny_vlm import (
    FLORENCE_IMAGE_TOKENS,
    IMAGE_SIZE,
    IMAGE_TOKENS,
    ScriptedGenerate,
    build_tiny_blip,
    build_tiny_blip2,
    build_tiny_florence2,
)
from tools import ArtifactStore, Cancelled, ToolContext, ToolError, ToolSettings
from tools.models import ModelManager
from tools.settings import ImageSettings
from tools.vision import (
    ANSWER_TOKENS,
    CAPTION_TOKENS,
    DEFAULT_MODEL,
    ask_image,
    caption_image,
    load_vision_model,
    vision_model,
)

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def no_template(tiny_llava: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny LLaVA without its chat template."""
    folder = tmp_path_factory.mktemp("llava-no-template") / "model"
    shutil.copytree(tiny_llava, folder)
    (folder / "chat_template.jinja").unlink()
    return folder


@pytest.fixture
def photo(media: Path, tmp_path: Path) -> Path:
    """A real photo (a butterfly on a thistle), made small so the run stays fast."""
    with Image.open(media / "08078.jpg") as img:
        img.convert("RGB").resize((160, 120)).save(tmp_path / "butterfly.jpg")
    return tmp_path / "butterfly.jpg"


def make_ctx(
    tmp_path: Path,
    files: list[Path],
    model: str | None = None,
    *,
    models: Any = None,
    config: Any = None,
) -> ToolContext:
    """A tool context with ``files`` as $a1, $a2 ... and ``model`` as the vision model."""
    ctx = ToolContext(
        store=ArtifactStore(tmp_path / "store"),
        workspace=tmp_path / "w",
        settings=ToolSettings(image=ImageSettings(vision_language=model)),
        models=models,
        config=config,
    )
    for i, f in enumerate(files, 1):
        ctx.refs[f"a{i}"] = [ctx.store.add_file(f)]
    return ctx


class Spy:
    """Wraps ``model.generate``: records its arguments and what it returned."""

    def __init__(self, real: Any, before: Any = None):
        self.real = real
        self.before = before
        self.calls: list[dict[str, Any]] = []
        self.outputs: list[Any] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if self.before is not None:
            self.before()
        out = self.real(**kwargs)
        self.outputs.append(out)
        return out


def spy_on(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch, before: Any = None) -> Any:
    """Load the context's model as the tool will, and spy on its ``generate``."""
    vlm = load_vision_model(ctx, vision_model(ctx))
    spy = Spy(vlm.model.generate, before)
    monkeypatch.setattr(vlm.model, "generate", spy)
    return vlm, spy


def prompt_of(vlm: Any, call: dict[str, Any]) -> str:
    return str(vlm.tokenizer.decode(call["input_ids"][0]))


# --- LLaVA through the real processor and chat template ---------------------------------------


def test_caption_sees_the_image_and_returns_a_text_artifact(
    tiny_llava, photo, tmp_path, monkeypatch
):
    ctx = make_ctx(tmp_path, [photo], str(tiny_llava), models=ModelManager())
    vlm, spy = spy_on(ctx, monkeypatch)

    result = caption_image(ctx, image="$a1")

    (art,) = result.artifacts
    caption = result.data["caption"]
    assert caption and caption == caption.strip() and art.read_text() == caption
    assert art.modality.value == "text" and art.name == "butterfly-caption.txt"
    assert art.metadata["source"] == ctx.refs["a1"][0].id
    assert result.data["model"] == str(tiny_llava) == art.metadata["model"]
    assert result.summary.startswith("caption: ")
    (call,) = spy.calls
    with Image.open(photo) as img:
        expected = vlm.processor.image_processor(images=img.convert("RGB"), return_tensors="pt")
    assert call["pixel_values"].shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert torch.allclose(call["pixel_values"], expected["pixel_values"])
    image_id = vlm.model.config.image_token_index
    assert int((call["input_ids"] == image_id).sum()) == IMAGE_TOKENS
    prompt = prompt_of(vlm, call)
    assert prompt.startswith("<|user|>\n<image>") and prompt.endswith("<|assistant|>\n")
    assert "Describe this image in one sentence." in prompt
    assert call["max_new_tokens"] == CAPTION_TOKENS["brief"] and call["do_sample"] is False
    # Greedy decoding: the same image gives the same caption.
    assert caption_image(ctx, image="$a1").data["caption"] == caption


def test_a_detailed_caption_asks_for_detail(tiny_llava, photo, tmp_path, monkeypatch):
    ctx = make_ctx(tmp_path, [photo], str(tiny_llava), models=ModelManager())
    vlm, spy = spy_on(ctx, monkeypatch)
    short = caption_image(ctx, image="$a1", detail="short").data["caption"]  # 'short' = brief
    detailed = caption_image(ctx, image="$a1", detail="detailed")
    assert detailed.data["caption"] and detailed.artifacts[0].metadata["detail"] == "detailed"
    assert "one sentence" in prompt_of(vlm, spy.calls[0])
    assert "Describe this image in detail" in prompt_of(vlm, spy.calls[1])
    assert spy.calls[1]["max_new_tokens"] == CAPTION_TOKENS["detailed"]
    assert len(detailed.data["caption"]) > len(short)
    with pytest.raises(ToolError, match="detail"):
        caption_image(ctx, image="$a1", detail="huge")


def test_ask_puts_the_question_in_the_prompt(tiny_llava, photo, tmp_path, monkeypatch):
    question_file = tmp_path / "question.txt"
    question_file.write_text("What colour are the wings?\n")
    ctx = make_ctx(tmp_path, [photo, question_file], str(tiny_llava), models=ModelManager())
    vlm, spy = spy_on(ctx, monkeypatch)

    result = ask_image(ctx, image="$a1", question="How many butterflies are there?")

    (art,) = result.artifacts
    assert result.data["answer"] and art.read_text() == result.data["answer"]
    assert result.data["question"] == "How many butterflies are there?"
    assert result.data["model"] == str(tiny_llava)
    assert art.name == "butterfly-answer-how-many-butterflies-are-there.txt"
    assert result.summary.startswith("answer: ")
    prompt = prompt_of(vlm, spy.calls[0])
    assert prompt.startswith("<|user|>\n<image>")
    assert "How many butterflies are there?" in prompt
    assert spy.calls[0]["pixel_values"].shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert spy.calls[0]["max_new_tokens"] == ANSWER_TOKENS
    # The question may be a text artifact: a transcript, a step's output.
    by_ref = ask_image(ctx, image="$a1", question="$a2")
    assert by_ref.data["question"] == "What colour are the wings?"
    assert "What colour are the wings?" in prompt_of(vlm, spy.calls[1])


def test_the_answer_streams_to_token_fn(tiny_llava, photo, tmp_path):
    ctx = make_ctx(tmp_path, [photo], str(tiny_llava), models=ModelManager())
    quiet = ask_image(ctx, image="$a1", question="What is this?").data["answer"]
    pieces: list[str] = []
    ctx.token_fn = pieces.append
    streamed = ask_image(ctx, image="$a1", question="What is this?").data["answer"]
    assert len(pieces) > 1
    assert "".join(pieces).strip() == streamed == quiet


def test_cancelling_while_streaming_stops_generation(tiny_llava, photo, tmp_path, monkeypatch):
    ctx = make_ctx(tmp_path, [photo], str(tiny_llava), models=ModelManager())
    vlm, spy = spy_on(ctx, monkeypatch)
    pieces: list[str] = []

    def token_fn(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 3:
            ctx.cancel_event.set()

    ctx.token_fn = token_fn
    with pytest.raises(Cancelled):
        ask_image(ctx, image="$a1", question="What is this?")
    assert len(pieces) == 3
    written = spy.outputs[0].shape[1] - spy.calls[0]["input_ids"].shape[1]
    assert written < ANSWER_TOKENS  # stopped early, not run to the end in the background
    assert not vlm.lock.locked()


def test_cancelling_without_streaming_stops_at_the_next_token(
    tiny_llava, photo, tmp_path, monkeypatch
):
    ctx = make_ctx(tmp_path, [photo], str(tiny_llava), models=ModelManager())
    _, spy = spy_on(ctx, monkeypatch, before=ctx.cancel_event.set)
    with pytest.raises(Cancelled):
        caption_image(ctx, image="$a1")
    assert spy.outputs[0].shape[1] == spy.calls[0]["input_ids"].shape[1] + 1


# --- one model for the planner and the tools ---------------------------------------------------


def test_the_planner_and_the_tools_share_one_loaded_model(tiny_llava, photo, tmp_path, monkeypatch):
    import tools.vlm

    loads: list[str] = []
    real = tools.vlm.load_model

    def counting(spec: str, *args: Any, **kwargs: Any) -> Any:
        loads.append(spec)
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(tools.vlm, "load_model", counting)
    model = str(tiny_llava)
    config = load_config(planner="transformers", transformers={"model": model})
    models = ModelManager()
    # No tools.image.vision_language: the tools use the planner's model.
    ctx = make_ctx(tmp_path, [photo], models=models, config=config)
    assert vision_model(ctx) == model

    result = caption_image(ctx, image="$a1")
    backend = TransformersBackend(model, models=models)
    planner_vlm = backend.load()

    assert result.data["model"] == model
    assert load_vision_model(ctx, model) is planner_vlm
    assert loads == [model]
    assert models.loaded() == [f"transformers:{model}"]
    assert models.used_bytes == (tiny_llava / "model.safetensors").stat().st_size
    # And the other way round: a model the planner loaded first serves the tools.
    others = ModelManager()
    first = TransformersBackend(model, models=others).load()
    ask_image(make_ctx(tmp_path, [photo], model, models=others), image="$a1", question="Why?")
    assert load_vision_model(make_ctx(tmp_path, [], model, models=others), model) is first
    assert loads == [model, model]


def test_which_model_the_tools_use(tiny_llava, tmp_path):
    config = load_config(planner="transformers", transformers={"model": "/planner/model"})
    assert vision_model(make_ctx(tmp_path, [], "/vision/model", config=config)) == "/vision/model"
    assert vision_model(make_ctx(tmp_path, [], config=config)) == "/planner/model"
    assert vision_model(make_ctx(tmp_path, [], config=load_config())) == DEFAULT_MODEL
    assert vision_model(make_ctx(tmp_path, [])) == DEFAULT_MODEL


def test_without_a_model_manager_the_model_loads_directly(tiny_llava, photo, tmp_path):
    ctx = make_ctx(tmp_path, [photo], str(tiny_llava))
    assert caption_image(ctx, image="$a1").data["caption"]


# --- bad input ---------------------------------------------------------------------------------


def test_a_file_that_is_not_an_image_is_refused(tiny_llava, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    ctx = make_ctx(tmp_path, [notes], str(tiny_llava))
    with pytest.raises(ToolError, match="notes.txt is text; this needs image"):
        caption_image(ctx, image="$a1")
    with pytest.raises(ToolError, match="notes.txt is text; this needs image"):
        ask_image(ctx, image="$a1", question="What is it?")


def test_a_broken_image_fails_before_any_model_loads(photo, tmp_path):
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(photo.read_bytes()[:300])
    ctx = make_ctx(tmp_path, [cut], "/no/such/vlm-folder")
    with pytest.raises(ToolError, match="cut.jpg could not be decoded"):
        caption_image(ctx, image="$a1")


def test_an_empty_question_is_refused(tiny_llava, photo, tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n")
    ctx = make_ctx(tmp_path, [photo, blank], str(tiny_llava))
    for question in ("", "   \n"):
        with pytest.raises(ToolError, match="the question is empty"):
            ask_image(ctx, image="$a1", question=question)
    # A plan may name a text step's output; blank text is refused when the step runs.
    with pytest.raises(ToolError, match="the question is empty"):
        ask_image(ctx, image="$a1", question="$a2")


@pytest.mark.parametrize("model", ["/no/such/vlm-folder", "nobody/no-such-vlm"])
def test_a_missing_model_says_which_setting_to_change(model, photo, tmp_path):
    ctx = make_ctx(tmp_path, [photo], model, models=ModelManager())
    with pytest.raises(ToolError) as info:
        caption_image(ctx, image="$a1")
    message = str(info.value)
    assert model in message and "tools.image.vision_language" in message
    assert "HF_HUB_OFFLINE" in message
    assert ctx.models.loaded() == []


def test_an_empty_answer_says_the_model_gave_none(tiny_llava, photo, tmp_path, monkeypatch):
    ctx = make_ctx(tmp_path, [photo], str(tiny_llava), models=ModelManager())
    vlm = load_vision_model(ctx, str(tiny_llava))
    eos = vlm.tokenizer.eos_token_id

    def silent(input_ids: Any, **kwargs: Any) -> Any:
        return torch.cat([input_ids, torch.tensor([[eos]])], dim=1)

    monkeypatch.setattr(vlm.model, "generate", silent)
    with pytest.raises(ToolError, match="gave no answer"):
        ask_image(ctx, image="$a1", question="What is this?")


def test_a_model_without_a_chat_template_says_so(no_template, photo, tmp_path):
    ctx = make_ctx(tmp_path, [photo], str(no_template))
    with pytest.raises(ToolError, match="has no chat template") as info:
        caption_image(ctx, image="$a1")
    assert str(no_template) in str(info.value) and "LLaVA" in str(info.value)


# --- models prompted without a chat template ---------------------------------------------------


@pytest.fixture(scope="session")
def plain_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plain-vlms")
    return {
        "blip": build_tiny_blip(root / "blip"),
        "blip-2": build_tiny_blip2(root / "blip-2"),
        "florence2": build_tiny_florence2(root / "florence2"),
    }


def test_florence2_gets_its_caption_tasks(plain_models, photo, tmp_path, monkeypatch):
    ctx = make_ctx(tmp_path, [photo], str(plain_models["florence2"]), models=ModelManager())
    vlm, spy = spy_on(ctx, monkeypatch)
    assert caption_image(ctx, image="$a1").data["caption"]
    assert caption_image(ctx, image="$a1", detail="detailed").data["caption"]
    image_id = vlm.model.config.image_token_id
    short, detailed = (prompt_of(vlm, call) for call in spy.calls)
    assert short.endswith("What does the image describe?</s>")
    assert detailed.endswith("Describe with a paragraph what is shown in the image.</s>")
    assert int((spy.calls[0]["input_ids"] == image_id).sum()) == FLORENCE_IMAGE_TOKENS
    assert spy.calls[0]["pixel_values"].shape == (1, 3, 64, 64)
    with pytest.raises(ToolError, match="Florence-2 model: it writes captions"):
        ask_image(ctx, image="$a1", question="How many?")


def test_blip_captions_unprompted(plain_models, photo, tmp_path, monkeypatch):
    ctx = make_ctx(tmp_path, [photo], str(plain_models["blip"]), models=ModelManager())
    _, spy = spy_on(ctx, monkeypatch)
    pieces: list[str] = []
    ctx.token_fn = pieces.append
    caption = caption_image(ctx, image="$a1").data["caption"]
    assert caption and "".join(pieces).strip() == caption
    assert "input_ids" not in spy.calls[0]
    assert spy.calls[0]["pixel_values"].shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    with pytest.raises(ToolError, match="BLIP model: it writes captions"):
        ask_image(ctx, image="$a1", question="How many?")


def test_blip2_answers_in_its_question_format(plain_models, photo, tmp_path, monkeypatch):
    ctx = make_ctx(tmp_path, [photo], str(plain_models["blip-2"]), models=ModelManager())
    vlm, spy = spy_on(ctx, monkeypatch)
    result = ask_image(ctx, image="$a1", question="How many butterflies?")
    assert result.data["answer"]
    prompt = prompt_of(vlm, spy.calls[0])
    assert prompt.endswith("Question: How many butterflies? Answer:")
    # Only the new text comes back, not the prompt the model repeats first.
    assert "Question:" not in result.data["answer"]
    assert caption_image(ctx, image="$a1").data["caption"]
    assert "input_ids" not in spy.calls[1]  # an unprompted caption


def test_a_run_plans_and_captions_with_the_one_model(tiny_llava, photo):
    from assistant import Assistant
    from tools.vlm import load_vlm, model_key

    model = str(tiny_llava)
    assistant = Assistant(planner="transformers", transformers={"model": model})
    vlm = assistant.models.load(model_key(model), lambda: load_vlm(model))
    plan = {"steps": [{"id": "s1", "tool": "caption_image", "args": {"image": "$a1"}}]}
    script = ScriptedGenerate(
        vlm.tokenizer, [json.dumps(plan), "A butterfly on a thistle.", "A butterfly on a thistle."]
    )
    vlm.model.generate = script

    result = assistant.run("describe this photo", [photo])

    assert result.ok, result.text
    assert result.plan is not None and result.plan["steps"] == plan["steps"]
    (caption,) = [a for a in result.artifacts if a.modality.value == "text"]
    assert Path(caption.path).read_text() == "A butterfly on a thistle."
    # The planner's call and the tool's call went to the same model object.
    assert "Describe this image in one sentence." in prompt_of(vlm, script.calls[1])
    assert script.calls[1]["pixel_values"].shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert assistant.models.loaded() == [model_key(model)]
