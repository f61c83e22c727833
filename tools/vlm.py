"""Vision-language models run by transformers (LLaVA, LLaVA-NeXT, Idefics3, ...): loading
through ``AutoProcessor`` and ``AutoModelForImageTextToText`` from a catalog name, a local
folder or a Hub id, chat messages with images, and greedy generation with optional streaming.

The transformers planner (``assistant.planners.vlm``) and the vision tools (``tools.vision``)
both load through here, and through the model manager under the same key (``model_key``), so
one copy of a model serves both.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.errors import MissingExtra, ToolError, require
from tools.hf import check_cached, first_line, model_source, not_found, weights_size
from tools.models import pick_device, pick_dtype

WORKING_PROCESSORS = "LLaVA, LLaVA-NeXT or Idefics3"
"""Model families whose processors build without torchvision."""

OFFLINE_NOTE = "with HF_HUB_OFFLINE=1, a Hub id loads only from the Hugging Face cache"

TokenFn = Callable[[str], None]


@dataclass
class LoadedVLM:
    """A loaded processor and model, and the device the model sits on."""

    processor: Any
    model: Any
    device: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    """One generation at a time on this model."""

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def has_chat_template(self) -> bool:
        """Whether the processor can turn chat messages into a prompt."""
        return bool(getattr(self.processor, "chat_template", None))


# --- loading ---------------------------------------------------------------------------------


def model_key(spec: str) -> str:
    """The model manager key of a vision-language model: the planner and the tools share it."""
    return f"transformers:{spec}"


def source_of(spec: str, models: Any = None, setting: str = "the model setting") -> str:
    """``tools.hf.model_source``; a missing folder's error also says how Hub ids load."""
    try:
        return model_source(spec, models, setting)
    except ToolError as exc:
        if type(exc) is not ToolError:  # catalog errors (not installed, ...) say it all
            raise
        raise ToolError(f"{exc} ({OFFLINE_NOTE})") from None


def check_available(spec: str, models: Any = None, setting: str = "the model setting") -> str:
    """Fail now, cheaply, when ``spec`` surely cannot load: transformers missing, no such
    folder, or (offline) a Hub id that is not in the Hugging Face cache. Returns the source
    for ``from_pretrained``."""
    if importlib.util.find_spec("transformers") is None:
        raise MissingExtra("transformers", "vlm")
    source = source_of(spec, models, setting)
    check_cached(spec, source, setting=setting)
    return source


def load_processor(spec: str, source: str, setting: str = "the model setting") -> Any:
    """``AutoProcessor.from_pretrained``, with errors that say which model and what to do."""
    transformers = require("transformers", "vlm")
    try:
        return transformers.AutoProcessor.from_pretrained(source)
    except ImportError as exc:  # e.g. a video processor that needs torchvision
        raise ToolError(
            f"the processor of the model {spec!r} cannot be built here: {first_line(exc)}. "
            f"Set {setting} to a model whose processor works without torchvision "
            f"({WORKING_PROCESSORS}), or install torchvision where a CPU build exists for "
            "your platform"
        ) from exc
    except OSError as exc:
        raise not_found(spec, exc, setting) from exc
    except (ValueError, KeyError) as exc:
        raise ToolError(
            f"transformers cannot build a processor for {spec!r}: {first_line(exc)}; set "
            f"{setting} to a vision-language model such as {WORKING_PROCESSORS}"
        ) from exc


def load_model(
    spec: str, source: str, device: str, dtype: Any, setting: str = "the model setting"
) -> Any:
    """``AutoModelForImageTextToText.from_pretrained`` on ``device`` in ``dtype``, for inference."""
    transformers = require("transformers", "vlm")
    try:
        net = transformers.AutoModelForImageTextToText.from_pretrained(source, dtype=dtype)
    except OSError as exc:
        raise not_found(spec, exc, setting) from exc
    except (ValueError, KeyError) as exc:
        raise ToolError(
            f"{spec!r} is not a vision-language model transformers can load as "
            f"image-text-to-text: {first_line(exc)}; set {setting} to one such as "
            f"{WORKING_PROCESSORS}"
        ) from exc
    return net.to(device).eval()


def load_vlm(
    spec: str,
    device: str = "auto",
    dtype: str = "auto",
    *,
    models: Any = None,
    setting: str = "the model setting",
) -> LoadedVLM:
    """Load ``spec`` (a catalog name, folder or Hub id): processor first, as it fails fastest.

    Args:
        spec: The model as the user names it.
        device: 'auto' (cuda, then mps, then cpu) or a torch device name.
        dtype: 'auto' (float16 on a GPU, float32 on a CPU) or a torch dtype name.
        models: The model manager, to resolve catalog names.
        setting: The config key that names the model, for error messages.
    """
    require("torch", "vlm")
    source = check_available(spec, models, setting)
    processor = load_processor(spec, source, setting)
    import torch

    where = pick_device(device)
    net = load_model(spec, source, where, getattr(torch, pick_dtype(dtype, where)), setting)
    vlm = LoadedVLM(processor=processor, model=net, device=where)
    generation = getattr(net, "generation_config", None)
    if generation is not None and generation.pad_token_id is None:
        # Set once here rather than per call: BLIP's generate passes its own pad_token_id.
        tok = vlm.tokenizer
        generation.pad_token_id = (
            tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        )
    return vlm


def shared_vlm(
    spec: str,
    models: Any,
    *,
    device: str = "auto",
    dtype: str = "auto",
    setting: str = "the model setting",
) -> LoadedVLM:
    """``spec`` loaded once through the model manager (which counts its weights and may evict
    it) under ``model_key(spec)``: whoever asks first loads it, everyone shares it."""
    key = model_key(spec)

    def loader() -> LoadedVLM:
        return load_vlm(spec, device, dtype, models=models, setting=setting)

    def size() -> int | None:  # only for a load: resolving a catalog name checks its files
        return weights_size(source_of(spec, models, setting))

    loaded: LoadedVLM = models.load(key, loader, size_bytes=size)
    return loaded


# --- messages --------------------------------------------------------------------------------


def open_image(path: str | Path) -> Any:
    """The image at ``path`` as an RGB PIL image, read now (the file may go away later)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise ToolError(f"cannot read the attached image {path}: {exc}") from exc


def _content_part(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "image" and "path" in part:
        return {"type": "image", "image": open_image(part["path"])}
    return part


def chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages in transformers 5 chat form: every content a list of parts, images as
    ``{"type": "image", "image": PIL.Image}`` inside the message content (an image part may
    give a ``path`` instead, read here)."""
    out = []
    for m in messages:
        content = m.get("content")
        if content is None or isinstance(content, str):
            parts = [{"type": "text", "text": content or ""}]
        else:
            parts = [_content_part(p) for p in content]
        out.append({"role": m["role"], "content": parts})
    return out


def chat_inputs(vlm: LoadedVLM, chat: list[dict[str, Any]], spec: str) -> Any:
    """Token ids, attention mask and pixel values for ``chat`` (in ``chat_messages`` form)
    through the processor's chat template, on the model's device and in its precision."""
    from jinja2 import TemplateError

    try:
        batch = vlm.processor.apply_chat_template(
            chat,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
    except (ValueError, TemplateError) as exc:
        raise ToolError(
            f"the processor of {spec!r} cannot turn the chat into model inputs: "
            f"{first_line(exc)} (a model folder needs a chat template that takes system, "
            "user and assistant messages with text and image parts)"
        ) from exc
    return batch.to(vlm.device, dtype=vlm.model.dtype)


def plain_inputs(vlm: LoadedVLM, image: Any, text: str | None, spec: str) -> Any:
    """Model inputs for a processor without a chat template (Florence-2, BLIP): the image and
    a plain prompt (none: the model captions unprompted), on the model's device."""
    values: dict[str, Any] = {"images": image, "return_tensors": "pt"}
    if text is not None:
        values["text"] = text
    try:
        batch = vlm.processor(**values)
    except (ValueError, TypeError, KeyError) as exc:
        raise ToolError(
            f"the processor of {spec!r} cannot turn the image and prompt into model inputs: "
            f"{first_line(exc)}"
        ) from exc
    return batch.to(vlm.device, dtype=vlm.model.dtype)


# --- generation ------------------------------------------------------------------------------


def _stopper(stop: Callable[[], bool]) -> Any:
    """A ``StoppingCriteriaList`` that ends generation once ``stop()`` is true."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Stop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            rows = input_ids.shape[0]
            return torch.full((rows,), stop(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([Stop()])


def _new_tokens(batch: Any, out: Any) -> Any:
    """The generated part of ``out``: a decoder-only model repeats the prompt first; an
    encoder-decoder model (Florence-2) or BLIP writes only (special tokens and) new text."""
    prompt = batch.get("input_ids") if hasattr(batch, "get") else None
    seq = out[0]
    if prompt is None:
        return seq
    n = prompt.shape[1]
    if seq.shape[0] >= n and bool((seq[:n] == prompt[0].to(seq.device)).all()):
        return seq[n:]
    return seq


def generate(
    vlm: LoadedVLM,
    batch: Any,
    *,
    max_new_tokens: int,
    on_token: TokenFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> str:
    """The greedy answer to ``batch`` (the processor's output), one generation at a time.

    Args:
        vlm: The loaded model.
        batch: Model inputs, on the model's device.
        max_new_tokens: The longest answer.
        on_token: Receives each piece of text as it comes (generation then runs in a thread);
            an exception it raises stops generation and reaches the caller.
        should_stop: Polled after every token; once true, generation ends early (the text
            so far is returned: the caller decides whether that is a cancellation).
    """
    tok = vlm.tokenizer
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False}
    with vlm.lock:
        if on_token is not None:
            return _stream(vlm, batch, options, on_token, should_stop)
        if should_stop is not None:
            options["stopping_criteria"] = _stopper(should_stop)
        out = vlm.model.generate(**batch, **options)
    return str(tok.decode(_new_tokens(batch, out), skip_special_tokens=True))


def _stream(
    vlm: LoadedVLM,
    batch: Any,
    options: dict[str, Any],
    on_token: TokenFn,
    should_stop: Callable[[], bool] | None,
) -> str:
    """Generate in a thread, handing each piece of text to ``on_token`` as it comes."""
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(vlm.tokenizer, skip_prompt=True, skip_special_tokens=True)
    failed: list[BaseException] = []
    abort = threading.Event()

    def stop() -> bool:
        return abort.is_set() or (should_stop is not None and should_stop())

    def work() -> None:
        try:
            vlm.model.generate(
                **batch, **options, streamer=streamer, stopping_criteria=_stopper(stop)
            )
        except BaseException as exc:  # re-raised in the caller's thread below
            failed.append(exc)
            streamer.end()

    thread = threading.Thread(target=work, daemon=True, name="vlm-generate")
    thread.start()
    pieces: list[str] = []
    try:
        for piece in streamer:
            if piece:
                pieces.append(piece)
                on_token(piece)
    except BaseException:
        abort.set()  # the consumer failed (or was cancelled): end generation at the next token
        raise
    finally:
        thread.join()
    if failed:
        raise failed[0]
    return "".join(pieces)
