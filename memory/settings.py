"""Settings of the cross-modal memory (``[memory]`` in config.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MemorySettings(BaseModel):
    """What the memory indexes, with which models, and how its vector indexes are built.

    Models are named as everywhere else: a catalog name, a local folder or a Hub id.
    """

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    enabled: bool = True
    """Index attachments and outputs of every run automatically."""
    spaces: list[str] = Field(default_factory=lambda: ["text", "clip", "clap"])
    """Embedding spaces to use, where their models are installed: 'text' (MiniLM over derived
    text), 'clip' (images, video keyframes and text), 'clap' (audio and text), 'imagebind'
    (opt-in: its weights are CC BY-NC)."""
    text_embedder: str = "all-minilm-l6-v2"
    """Sentence embedder of the text space (offline pack)."""
    image_text_model: str = "clip-vit-base-patch32"
    """CLIP or SigLIP model of the clip space (images and text)."""
    audio_text_model: str = "clap-htsat-unfused"
    """CLAP model of the clap space (audio and text)."""
    imagebind: str | None = None
    """Folder of ImageBind weights (the `imagebind` package must be installed); unset: off."""
    derive_text: bool = True
    """At indexing time, extract text from artifacts with the tools that are installed: OCR
    of images, transcripts of audio and video, captions where a vision-language model is
    installed; names and generation prompts always."""
    batch_size: int = Field(16, ge=1, le=1024)
    """Artifacts embedded in one model call."""
    exact_limit: int = Field(50_000, ge=1)
    """Vectors a space holds before its exact index is rebuilt as an approximate one."""
    approximate: Literal["hnsw", "ivfpq"] = "hnsw"
    """Approximate index past exact_limit: HNSW (best recall per millisecond) or IVF with
    product quantisation (least memory, for very large collections)."""
    hnsw_m: int = Field(32, ge=4, le=128)
    """Links per node of the HNSW graph."""
    ef_search: int = Field(256, ge=8)
    """HNSW search breadth: higher is slower and finds more of the true neighbours (256:
    recall@10 0.96 at p50 0.7 ms on 1M clustered 384-d vectors, benchmarks/memory_index.py)."""
    nprobe: int = Field(32, ge=1)
    """IVF lists searched per query."""
