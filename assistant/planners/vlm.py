"""The transformers backend: vision-language models (LLaVA, LLaVA-NeXT, Idefics3, Qwen2.5-VL)
through ``AutoProcessor`` and ``AutoModelForImageTextToText``, from a Hub id or a local folder.

Attached images go into the chat as PIL images inside the message content (transformers 5).
Decoding is not constrained here: the plan comes back as plain text, which ``LLMPlanner``
parses leniently and repairs; tool calls are not offered (the planner asks for JSON instead).
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.planners.llm import LLMPlanner, Reply, TokenFn
from tools.errors import MissingExtra, ToolError, require
from tools.models import pick_device, pick_dtype

WORKING_PROCESSORS = "LLaVA, LLaVA-NeXT or Idefics3"
"""Model families whose processors build without torchvision."""

_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


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


# --- loading ---------------------------------------------------------------------------------


def model_source(model: str) -> str:
    """A local folder (as an absolute path) or a Hub id; a folder that is not there raises."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if not _HUB_ID.match(model):
        raise ToolError(
            f"the transformers model folder {model} does not exist; set transformers.model to a "
            "folder holding config.json and the processor files, or to a Hub id such as "
            "'llava-hf/llava-1.5-7b-hf' (with HF_HUB_OFFLINE=1 only models already in the "
            "Hugging Face cache load)"
        )
    return model


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _not_found(model: str, exc: BaseException | str) -> ToolError:
    where = (
        "HF_HUB_OFFLINE is set, so only models already in the Hugging Face cache load"
        if _offline()
        else "it could not be read or downloaded (HF_HUB_OFFLINE is not set)"
    )
    why = exc if isinstance(exc, str) else _first_line(exc)
    return ToolError(
        f"cannot load the transformers model {model!r}: {where} ({why}). Download "
        f"it where the Hub can be reached (`hf download {model}`), or set transformers.model "
        "to a local folder"
    )


def check_available(model: str) -> None:
    """Fail now, cheaply, when ``model`` surely cannot load: transformers missing, no such
    folder, or (offline) a Hub id that is not in the Hugging Face cache."""
    if importlib.util.find_spec("transformers") is None:
        raise MissingExtra("transformers", "vlm")
    is_folder = Path(model_source(model)).is_dir()
    if not is_folder and _offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            raise _not_found(model, "its config.json is not in the Hugging Face cache")


def weights_size(model: str) -> int | None:
    """Bytes of the weight files in a local model folder (what loading costs, about); None
    for a Hub id."""
    path = Path(model).expanduser()
    if not path.is_dir():
        return None
    files = [*path.glob("*.safetensors"), *path.glob("*.bin")]
    return sum(f.stat().st_size for f in files) or None


def load_processor(model: str, source: str) -> Any:
    """``AutoProcessor.from_pretrained``, with errors that say which model and what to do."""
    transformers = require("transformers", "vlm")
    try:
        return transformers.AutoProcessor.from_pretrained(source)
    except ImportError as exc:  # e.g. a video processor that needs torchvision
        raise ToolError(
            f"the processor of the transformers model {model!r} cannot be built here: "
            f"{_first_line(exc)}. Pick a model whose processor works without torchvision "
            f"({WORKING_PROCESSORS}), or install torchvision where a CPU build exists for "
            "your platform"
        ) from exc
    except OSError as exc:
        raise _not_found(model, exc) from exc
    except (ValueError, KeyError) as exc:
        raise ToolError(
            f"transformers cannot build a processor for {model!r}: {_first_line(exc)}; pick a "
            f"vision-language model such as {WORKING_PROCESSORS}"
        ) from exc


def load_model(model: str, source: str, device: str, dtype: Any) -> Any:
    """``AutoModelForImageTextToText.from_pretrained`` on ``device`` in ``dtype``, for inference."""
    transformers = require("transformers", "vlm")
    try:
        net = transformers.AutoModelForImageTextToText.from_pretrained(source, dtype=dtype)
    except OSError as exc:
        raise _not_found(model, exc) from exc
    except (ValueError, KeyError) as exc:
        raise ToolError(
            f"{model!r} is not a vision-language model transformers can load as "
            f"image-text-to-text: {_first_line(exc)}; pick one such as {WORKING_PROCESSORS}"
        ) from exc
    return net.to(device).eval()


def load_vlm(model: str, device: str = "auto", dtype: str = "auto") -> LoadedVLM:
    """Load ``model`` (a Hub id or folder): processor first, as it fails fastest."""
    require("torch", "vlm")
    source = model_source(model)
    processor = load_processor(model, source)
    import torch

    where = pick_device(device)
    net = load_model(model, source, where, getattr(torch, pick_dtype(dtype, where)))
    return LoadedVLM(processor=processor, model=net, device=where)


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
    """Our messages in transformers 5 chat form: every content a list of parts, images as
    ``{"type": "image", "image": PIL.Image}`` inside the message content."""
    out = []
    for m in messages:
        content = m.get("content")
        if content is None or isinstance(content, str):
            parts = [{"type": "text", "text": content or ""}]
        else:
            parts = [_content_part(p) for p in content]
        out.append({"role": m["role"], "content": parts})
    return out


# --- the backend -----------------------------------------------------------------------------


class TransformersBackend:
    """A vision-language model run by transformers, loaded on the first chat.

    Args:
        model: A Hub id (``llava-hf/llava-1.5-7b-hf``) or a local folder.
        models: The model manager; when given, the model is loaded and cached through it.
        device: 'auto' (cuda, then mps, then cpu) or a torch device name.
        dtype: 'auto' (float16 on a GPU, float32 on a CPU) or a torch dtype name.
        max_new_tokens: The longest answer when a chat does not say.
    """

    name = "transformers"
    sees_images = True

    def __init__(
        self,
        model: str,
        *,
        models: Any = None,
        device: str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 512,
    ):
        self.model = model
        self.models = models
        self.device = device
        self.dtype = dtype
        self.max_new_tokens = max_new_tokens
        self._own: LoadedVLM | None = None
        self._lock = threading.Lock()

    def load(self) -> LoadedVLM:
        """The loaded model: through the manager when there is one (it may evict it), else
        kept here."""

        def loader() -> LoadedVLM:
            return load_vlm(self.model, self.device, self.dtype)

        if self.models is not None:
            loaded: LoadedVLM = self.models.load(
                f"transformers:{self.model}", loader, size_bytes=weights_size(self.model)
            )
            return loaded
        with self._lock:
            if self._own is None:
                self._own = loader()
            return self._own

    def inputs(self, vlm: LoadedVLM, messages: list[dict[str, Any]]) -> Any:
        """Token ids, attention mask and pixel values for ``messages``, on the model's device."""
        from jinja2 import TemplateError

        chat = chat_messages(messages)
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
                f"the processor of {self.model!r} cannot turn the chat into model inputs: "
                f"{_first_line(exc)} (a model folder needs a chat template that takes system, "
                "user and assistant messages with text and image parts)"
            ) from exc
        return batch.to(vlm.device, dtype=vlm.model.dtype)

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        schema: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        on_token: TokenFn | None = None,
    ) -> Reply:
        """Greedy answer to ``messages``. ``schema`` and ``tools`` are ignored: decoding is not
        constrained here, and the planner asks for JSON text instead of tool calls."""
        vlm = self.load()
        batch = self.inputs(vlm, messages)
        tok = vlm.tokenizer
        options = {
            "max_new_tokens": max_tokens or self.max_new_tokens,
            "do_sample": False,
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        }
        with vlm.lock:
            if on_token is not None:
                return Reply(text=_stream(vlm, batch, options, on_token))
            out = vlm.model.generate(**batch, **options)
        new = out[0, batch["input_ids"].shape[1] :]
        return Reply(text=tok.decode(new, skip_special_tokens=True))


def _stream(vlm: LoadedVLM, batch: Any, options: dict[str, Any], on_token: TokenFn) -> str:
    """Generate in a thread, handing each piece of text to ``on_token`` as it comes."""
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(vlm.tokenizer, skip_prompt=True, skip_special_tokens=True)
    failed: list[BaseException] = []

    def work() -> None:
        try:
            vlm.model.generate(**batch, **options, streamer=streamer)
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
    finally:
        thread.join()
    if failed:
        raise failed[0]
    return "".join(pieces)


def transformers_planner(config: Any, models: Any) -> LLMPlanner:
    """The planner on ``config.transformers.model``, on the configured device and precision.

    A model that surely cannot load raises ``ToolError`` here (``make_planner`` then explains
    it in a ``NoPlanner``); the weights themselves load on the first plan."""
    c = config.transformers
    if not c.model:
        raise ToolError(
            "no transformers model is configured: set transformers.model to a Hub id or folder "
            "(e.g. 'llava-hf/llava-1.5-7b-hf')"
        )
    check_available(c.model)
    backend = TransformersBackend(
        c.model,
        models=models,
        device=config.device,
        dtype=config.dtype,
        max_new_tokens=c.max_new_tokens,
    )
    return LLMPlanner(backend, native_tools=False, max_tokens=c.max_new_tokens)
