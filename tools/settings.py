"""Limits and switches the tools read; the assistant's config embeds them as ``[tools]``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ImageSettings(BaseModel):
    """Models and limits of the image and vision tools (``[tools.image]`` in config.toml).

    Every model is named the same way: a catalog name (``anymodal models list``; the defaults
    are catalog entries, fetched with ``anymodal models pull NAME``), a local folder, or a
    Hugging Face Hub id (loaded from the Hugging Face cache, downloaded when the Hub can be
    reached).
    """

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    generator: str = "sd-turbo"
    """Text-to-image diffusers pipeline for generate_image (SD 1.x/2.x, SDXL, turbo, ...)."""
    editor: str | None = None
    """Image-to-image pipeline for edit_image with a strength; unset, the generator's weights."""
    instruct_editor: str = "instruct-pix2pix"
    """Instruction-editing pipeline (InstructPix2Pix) for edits like 'make it snowy'."""
    inpainter: str | None = None
    """Inpainting pipeline for inpaint_image; unset, the generator's weights."""
    ip_adapter: str = "ip-adapter-sd15"
    """IP-Adapter weights for style_image (diffusers ``load_ip_adapter``)."""
    ip_adapter_subfolder: str = "models"
    """Folder of the IP-Adapter weights inside ``ip_adapter``."""
    ip_adapter_weight: str = "ip-adapter_sd15.safetensors"
    """IP-Adapter weight file (use an ``sdxl_models`` one for SDXL generators)."""
    vision_language: str | None = None
    """Vision-language model for caption_image and ask_image; unset, transformers.model,
    else the catalog's llava-interleave-qwen-0.5b."""
    detector: str = "owlv2-base"
    """Open-vocabulary detector for detect_objects (OWLv2, OWL-ViT, Grounding DINO)."""
    segmenter: str = "sam-vit-base"
    """Promptable segmenter for segment_image (SAM)."""
    safety_checker: bool = False
    """Run the pipeline's NSFW safety checker where it has one (off by default)."""
    preview_every: int = Field(4, ge=0)
    """Send a small preview image every this many diffusion steps (0: none)."""
    max_steps: int = Field(100, ge=1)
    """Most diffusion steps one call may ask for."""
    max_images: int = Field(4, ge=1)
    """Most images one generate_image call may make."""
    max_side: int = Field(2048, ge=64)
    """Largest width or height generate_image will make."""
    sketch_fallback: bool = True
    """With no text-to-image weights installed, let generate_image draw a labelled SVG sketch
    with the language model instead of failing."""


class ToolSettings(BaseModel):
    """Settings shared by the built-in tools."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    max_image_pixels: int = 100_000_000
    """Largest image (width x height) a tool will decode; guards against decompression bombs."""
    max_image_side: int = 16_384
    """Largest width or height a tool will produce."""
    max_audio_seconds: float = 4 * 3600
    """Longest audio a tool will decode."""
    download_max_bytes: int = 512 * 1024 * 1024
    """Largest file download_url will fetch."""
    download_timeout: float = 30.0
    """Seconds download_url waits for a server (connect and each read)."""
    download_max_redirects: int = 5
    """Redirects download_url follows before giving up."""
    allow_local_network: bool = False
    """Let download_url reach loopback, private and link-local addresses."""
    allow_file_urls: bool = False
    """Let download_url read file:// URLs."""
    image: ImageSettings = Field(default_factory=ImageSettings)
    """Models and limits of the image and vision tools."""
