"""The memory's embedding spaces: where artifacts and queries become comparable vectors.

- ``text``: a sentence embedder (MiniLM, offline pack) over text, which for an artifact is its
  derived text (``memory.derive``: name, prompt, OCR, transcript, caption), so every modality
  can be found by words.
- ``clip``: CLIP or SigLIP (transformers) joining images, video keyframes and text.
- ``clap``: CLAP (transformers) joining audio and text.
- ``imagebind``: ImageBind joining images, audio, video and text; opt-in only, because its
  weights are CC BY-NC.

Every space loads its model on first use through the model manager (so one copy serves every
caller), embeds in batches of ``memory.batch_size`` artifacts under torch inference mode, and
returns float32 L2-normalised rows, so an inner product is a cosine similarity.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np

from memory.base import Item, Space
from memory.settings import MemorySettings
from tools.artifact import Artifact, Modality
from tools.errors import MissingExtra, ToolError, require
from tools.hf import (
    check_cached,
    first_line,
    model_inputs,
    model_source,
    not_found,
    pretrained,
    weights_size,
)
from tools.models import ModelManager
from tools.settings import ToolSettings

TEXT_TOKENS = 256
"""Tokens of text the text space reads (all-MiniLM-L6-v2 was trained on 256)."""
VIDEO_FRAMES = 4
"""Frames, evenly spaced, whose mean embeds a video in the clip and imagebind spaces."""
FRAME_SIDE = 448
"""Longest side frames are decoded at (the models look at 224 or 384 pixels)."""
AUDIO_WINDOWS = 3
"""Windows of the model's input length (CLAP: 10 s) at the start, middle and end of a longer
clip, whose mean embeds it."""
SPACE_NAMES = ("text", "clip", "clap", "imagebind")


# --- helpers -----------------------------------------------------------------------------------


def normalised(rows: Any) -> np.ndarray:
    """``rows`` as a float32 numpy array with unit rows (zero rows stay zero)."""
    arr = np.asarray(rows, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return np.ascontiguousarray(arr / np.maximum(norms, 1e-12), dtype=np.float32)


def as_numpy(rows: Any) -> np.ndarray:
    """A tensor or array of rows as a float32 numpy array."""
    if hasattr(rows, "detach"):
        rows = rows.detach().float().cpu().numpy()
    return np.asarray(rows, dtype=np.float32)


def features(out: Any) -> Any:
    """A ``get_*_features`` result as a tensor: transformers 5 may return an output object."""
    torch = require("torch", "vlm")
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def name_words(art: Artifact) -> str:
    """An artifact's file name as words ('red_fox-2.png' -> 'red fox 2'), else its label."""
    stem = Path(art.name).stem
    words = " ".join(stem.replace("_", " ").replace("-", " ").replace(".", " ").split())
    return words or art.label()


def artifact_of(item: Item) -> Artifact:
    """The artifact of a non-text item (``EmbeddingSpace.check`` refused items without one)."""
    if item.artifact is None:
        raise ToolError(f"a {item.modality.value} item has no artifact to embed")
    return item.artifact


def item_text(item: Item) -> str:
    """What a text embedder reads for ``item``: its text, else its artifact's name."""
    text = item.text.strip()
    if text:
        return text
    if item.artifact is not None:
        return name_words(item.artifact)
    raise ToolError("an empty text item has nothing to embed; give the query some words")


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading chatter (progress bars, processor fallbacks)."""
    transformers = require("transformers", "vlm")
    hf_logging = transformers.utils.logging
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def check_model(spec: str, models: ModelManager, setting: str) -> None:
    """Fail now, cheaply, when ``spec`` cannot load: no transformers, a catalog model that is
    not installed, no such folder, or (offline) a Hub id missing from the Hugging Face cache.
    Nothing is hashed, assembled or loaded."""
    if (
        importlib.util.find_spec("transformers") is None
        or importlib.util.find_spec("torch") is None
    ):
        raise MissingExtra("transformers", "vlm")
    if spec in models.catalog:
        status = models.status(spec)
        if not status.installed:
            raise ToolError(status.detail)
        return
    source = model_source(spec, None, setting)
    check_cached(spec, source, setting=setting)


def config_dim(source: str) -> int:
    """A model's embedding width from its config alone (no weights read): the projection of
    CLIP and CLAP, else the text tower's width (SigLIP), else the hidden size (BERT)."""
    transformers = require("transformers", "vlm")
    with quiet_transformers():
        config = transformers.AutoConfig.from_pretrained(source)
    for owner in (config, getattr(config, "text_config", None)):
        for key in ("projection_dim", "hidden_size"):
            value = getattr(owner, key, None)
            if isinstance(value, int) and value > 0:
                return value
    raise ToolError(f"cannot tell the embedding width of {source} from its config.json")


def load_transformers(
    models: ModelManager, spec: str, setting: str, what: str, auto_class: str
) -> tuple[Any, Any]:
    """``(model, processor)`` for ``spec`` through the model manager.

    The key is ``transformers:<source>``, as ``tools.hf.load_pretrained`` uses, so the CLAP
    model the audio tagger loads (tools/audio_scene.py) is the one this memory uses.
    """
    return cast(tuple[Any, Any], pretrained(models, spec, setting, what, auto_class))


def _chunks(indexes: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(indexes), size):
        yield indexes[start : start + size]


def _frame_times(duration: float, count: int) -> list[float]:
    """``count`` times at the middles of equal parts of the video (never its very ends,
    which are often black)."""
    if duration <= 0:
        return [0.0]
    return [duration * (k + 0.5) / count for k in range(count)]


def _windows(mono: np.ndarray, size: int, count: int) -> list[np.ndarray]:
    """The whole clip when it fits in ``size`` samples, else ``count`` windows of ``size``
    spread evenly from its start to its end."""
    if len(mono) <= size:
        return [mono]
    starts = np.linspace(0, len(mono) - size, count).round().astype(int)
    return [mono[s : s + size] for s in dict.fromkeys(starts.tolist())]


def group_mean(rows: np.ndarray, owners: list[int], count: int) -> np.ndarray:
    """The normalised mean of the rows each of ``count`` owners has."""
    out = np.zeros((count, rows.shape[1]), dtype=np.float32)
    np.add.at(out, np.asarray(owners), normalised(rows))
    return normalised(out)


# --- the sentence embedder -----------------------------------------------------------------


class MiniLMEmbedder:
    """Mean-pooled, normalised sentence embeddings from a MiniLM folder via transformers
    (sentence-transformers' recipe for all-MiniLM-L6-v2, without the library).

    The planner's tool shortlist and the memory's text space share it (one load, keyed by the
    catalog name).
    """

    def __init__(self, path: Any, device: str = "cpu", max_length: int = 128):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        with quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
            self.model = AutoModel.from_pretrained(str(path)).to(device).eval()
        self.max_length = max_length

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def embed(
        self, texts: list[str], batch_size: int = 32, max_length: int | None = None
    ) -> np.ndarray:
        """Unit vectors, float32 ``(len(texts), dim)``, ``batch_size`` texts per forward pass."""
        torch = self._torch
        rows = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length or self.max_length,
                return_tensors="pt",
            ).to(self.model.device)
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)


# --- the spaces --------------------------------------------------------------------------------


class EmbeddingSpace:
    """What every space shares: lazy loading, modality checks, batching, normalised output.

    Subclasses set ``name``, ``modalities`` and ``setting`` and implement ``_load``,
    ``_embed_texts`` and ``_embed_media`` (the latter two return unnormalised rows).
    """

    name: str = ""
    modalities: frozenset[Modality] = frozenset()
    setting: str = ""
    """The config key of the model, for error messages."""

    def __init__(
        self,
        spec: str,
        models: ModelManager,
        batch_size: int = 16,
        tools: ToolSettings | None = None,
    ):
        self.spec = spec
        self.models = models
        self.batch_size = max(1, batch_size)
        self.tools = tools or ToolSettings()
        """Limits for decoding images, audio and video."""
        self._dim: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"

    @property
    def dim(self) -> int:
        """Width of the vectors, from the model's config (no weights are loaded for it)."""
        if self._dim is None:
            self._dim = self._read_dim()
        return self._dim

    @dim.setter
    def dim(self, value: int) -> None:  # the Space protocol declares a plain attribute
        self._dim = value

    def _read_dim(self) -> int:
        return config_dim(model_source(self.spec, self.models, self.setting))

    def _load(self) -> Any:
        raise NotImplementedError

    def _embed_texts(self, model: Any, texts: list[str]) -> Any:
        raise NotImplementedError

    def _embed_media(self, model: Any, items: list[Item]) -> Any:
        raise NotImplementedError

    def check(self, items: list[Item]) -> None:
        """Refuse items of a modality this space does not join, before any work."""
        for item in items:
            if item.modality not in self.modalities:
                what = item.artifact.label() if item.artifact is not None else "the item"
                joins = ", ".join(sorted(m.value for m in self.modalities))
                raise ToolError(
                    f"the {self.name} space embeds {joins}; {what} is {item.modality.value}"
                )
            if item.modality != Modality.TEXT and item.artifact is None:
                raise ToolError(
                    f"a {item.modality.value} item needs its artifact for the {self.name} space"
                )

    def embed(self, items: list[Item]) -> np.ndarray:
        """Float32 unit rows ``(len(items), dim)``, in the order of ``items``."""
        self.check(items)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        torch = require("torch", "vlm")
        texts = [i for i, item in enumerate(items) if item.modality == Modality.TEXT]
        media = [i for i, item in enumerate(items) if item.modality != Modality.TEXT]
        done: list[tuple[list[int], np.ndarray]] = []
        with torch.inference_mode():
            for chunk in _chunks(texts, self.batch_size):
                rows = self._embed_texts(model, [item_text(items[i]) for i in chunk])
                done.append((chunk, as_numpy(rows)))
            for chunk in _chunks(media, self.batch_size):
                rows = self._embed_media(model, [items[i] for i in chunk])
                done.append((chunk, as_numpy(rows)))
        self._dim = done[0][1].shape[1]
        out = np.zeros((len(items), self._dim), dtype=np.float32)
        for chunk, rows in done:
            out[chunk] = normalised(rows)
        return out


class TextSpace(EmbeddingSpace):
    """Sentence embeddings of text: a query's words, an artifact's derived text (or name)."""

    name = "text"
    modalities = frozenset(Modality)
    setting = "memory.text_embedder"

    def embed(self, items: list[Item]) -> np.ndarray:
        # Every item is read as text here: a photo by its caption, OCR and name, and so on.
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        embedder = self._load()
        texts = [item_text(item) for item in items]
        rows = embedder.embed(texts, batch_size=self.batch_size, max_length=TEXT_TOKENS)
        self._dim = int(rows.shape[1])
        return normalised(rows)

    def _load(self) -> MiniLMEmbedder:
        models, spec = self.models, self.spec
        device = models.device
        if spec in models.catalog:  # keyed by name: the planner's shortlist shares this copy
            return models.load(spec, lambda path: MiniLMEmbedder(path, device=device))
        source = model_source(spec, models, self.setting)
        check_cached(spec, source, setting=self.setting)

        def loader() -> MiniLMEmbedder:
            try:
                return MiniLMEmbedder(source, device=device)
            except OSError as exc:
                raise not_found(spec, exc, self.setting) from exc
            except (ValueError, KeyError) as exc:
                raise ToolError(
                    f"{spec!r} is not a sentence embedder transformers can load: "
                    f"{first_line(exc)}; set {self.setting} to a folder like all-MiniLM-L6-v2"
                ) from exc

        return models.load(f"minilm:{source}", loader, size_bytes=lambda: weights_size(source))


class ClipSpace(EmbeddingSpace):
    """CLIP or SigLIP: images, videos (the mean of a few frames) and text in one space."""

    name = "clip"
    modalities = frozenset({Modality.IMAGE, Modality.VIDEO, Modality.TEXT})
    setting = "memory.image_text_model"

    def _load(self) -> tuple[Any, Any]:
        return load_transformers(
            self.models, self.spec, self.setting, "CLIP or SigLIP model", "AutoModel"
        )

    def _embed_texts(self, model: Any, texts: list[str]) -> Any:
        net, processor = model
        # SigLIP was trained on text padded to its full length; CLIP on the longest in a batch.
        siglip = str(getattr(net.config, "model_type", "")).startswith("siglip")
        batch = processor(
            text=texts,
            padding="max_length" if siglip else True,
            truncation=True,
            return_tensors="pt",
        )
        batch = model_inputs(batch, net)
        return features(net.get_text_features(**batch))

    def _embed_media(self, model: Any, items: list[Item]) -> Any:
        net, processor = model
        images: list[Any] = []
        owners: list[int] = []
        for n, item in enumerate(items):
            for img in self._pictures(item):
                images.append(img)
                owners.append(n)
        batch = model_inputs(processor(images=images, return_tensors="pt"), net)
        rows = features(net.get_image_features(pixel_values=batch["pixel_values"]))
        return group_mean(as_numpy(rows), owners, len(items))

    def _pictures(self, item: Item) -> list[Any]:
        """RGB PIL images: the image itself, or a few evenly spaced frames of a video."""
        from PIL import Image

        art = artifact_of(item)
        if item.modality == Modality.IMAGE:
            from tools.image_io import open_image

            with open_image(art, self.tools) as img:
                return [img.convert("RGB")]
        return [Image.fromarray(a) for a in video_frames(art, self.tools)]


def video_frames(art: Artifact, tools: ToolSettings, count: int = VIDEO_FRAMES) -> list[Any]:
    """``count`` evenly spaced RGB frames of a video (uint8 arrays), at most ``FRAME_SIDE``
    pixels a side."""
    from tools import video_io

    info = video_io.probe(art, tools)
    found = video_io.frames_at(
        art.path, _frame_times(info.duration, count), max_side=FRAME_SIDE, label=art.label()
    )
    if not found:
        raise ToolError(f"{art.label()} has no frames that decode; it is truncated or corrupt")
    return [frame for _, frame in found]


def mono_audio(art: Artifact, tools: ToolSettings, rate: int) -> np.ndarray:
    """An audio artifact as mono float32 samples at ``rate``."""
    from tools.audio_io import decode_audio
    from tools.audio_ops import resample

    data, source_rate = decode_audio(art, tools)
    mono = np.asarray(data, dtype=np.float32).mean(axis=1, keepdims=True)
    return np.ascontiguousarray(resample(mono, source_rate, rate)[:, 0], dtype=np.float32)


class ClapSpace(EmbeddingSpace):
    """CLAP: audio and text in one space. A clip longer than the model's window (10 s) is
    embedded as the normalised mean of ``AUDIO_WINDOWS`` windows at its start, middle and
    end; a shorter one whole (the feature extractor repeats it to fill the window)."""

    name = "clap"
    modalities = frozenset({Modality.AUDIO, Modality.TEXT})
    setting = "memory.audio_text_model"

    def _load(self) -> tuple[Any, Any]:
        return load_transformers(self.models, self.spec, self.setting, "CLAP model", "ClapModel")

    def _embed_texts(self, model: Any, texts: list[str]) -> Any:
        net, processor = model
        batch = processor(text=texts, padding=True, truncation=True, return_tensors="pt")
        return features(net.get_text_features(**model_inputs(batch, net)))

    def _embed_media(self, model: Any, items: list[Item]) -> Any:
        net, processor = model
        extractor = processor.feature_extractor
        rate, size = int(extractor.sampling_rate), int(extractor.nb_max_samples)
        windows: list[np.ndarray] = []
        owners: list[int] = []
        for n, item in enumerate(items):
            mono = mono_audio(artifact_of(item), self.tools, rate)
            for window in _windows(mono, size, AUDIO_WINDOWS):
                windows.append(window)
                owners.append(n)
        batch = processor(audio=windows, sampling_rate=rate, return_tensors="pt")
        rows = features(net.get_audio_features(**model_inputs(batch, net)))
        return group_mean(as_numpy(rows), owners, len(items))


# --- choosing the spaces -------------------------------------------------------------------


def load_spaces(
    settings: MemorySettings, models: ModelManager, tools: ToolSettings | None = None
) -> tuple[list[Space], dict[str, str]]:
    """The spaces of ``settings.spaces`` whose models are installed, and for each of the others
    why not (with what to do). Cheap: nothing is loaded, hashed or downloaded.

    Args:
        settings: The memory settings.
        models: The model manager the spaces load through.
        tools: Limits for decoding artifacts (images, audio, video); unset, the defaults.
    """
    spaces: list[Space] = []
    reasons: dict[str, str] = {}
    size = settings.batch_size
    for name in dict.fromkeys(settings.spaces):
        try:
            if name == "text":
                check_model(settings.text_embedder, models, TextSpace.setting)
                spaces.append(TextSpace(settings.text_embedder, models, size, tools))
            elif name == "clip":
                check_model(settings.image_text_model, models, ClipSpace.setting)
                spaces.append(ClipSpace(settings.image_text_model, models, size, tools))
            elif name == "clap":
                check_model(settings.audio_text_model, models, ClapSpace.setting)
                spaces.append(ClapSpace(settings.audio_text_model, models, size, tools))
            elif name == "imagebind":
                from memory.imagebind import imagebind_space

                spaces.append(imagebind_space(settings, models, tools))
            else:
                raise ToolError(f"no such space; use {', '.join(SPACE_NAMES)}")
        except ToolError as exc:
            reasons[name] = f"{name}: {exc}"
    return spaces, reasons
