"""Limits and switches the tools read; the assistant's config embeds them as ``[tools]``."""

from __future__ import annotations

from typing import Literal

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


class AudioSettings(BaseModel):
    """Models and limits of the audio tools (``[tools.audio]`` in config.toml).

    Models are named as for images: a catalog name (``anymodal models list``), a local folder
    or file, or a Hugging Face Hub id.
    """

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    recognizer: str = "faster-whisper-tiny.en"
    """Speech recognition model for transcribe: a faster-whisper (CTranslate2) model, an
    openai-whisper model name ('whisper:base') or .pt checkpoint, or a transformers Whisper
    model; the backend is told from the files (see recognizer_backend)."""
    recognizer_backend: Literal["auto", "faster-whisper", "openai-whisper", "transformers"] = "auto"
    """Which library runs the recognizer; 'auto' tells it from the model's files."""
    multilingual_recognizer: str | None = "faster-whisper-base"
    """Used when the recognizer is English-only (a '.en' model): it detects the language when
    none is given, and transcribes speech that is not English. Unset: English only."""
    vad: bool = True
    """Split long audio on voice activity (skips silence, keeps segments short)."""
    beam_size: int = Field(1, ge=1, le=10)
    """Beam width of Whisper decoding: 1 (greedy) is fastest; 5 (the Whisper command line's)
    is a little more accurate on hard audio and about 25% slower on a CPU."""
    max_transcribe_seconds: float = Field(4 * 3600, gt=0)
    """Longest audio transcribe accepts."""
    voice: str = "piper-en_US-joe-medium"
    """Default voice for speak: a piper voice (.onnx, or its catalog name), a transformers
    VITS / MMS-TTS model, or 'espeak-ng' (or 'espeak-ng:VOICE') when espeak-ng is installed."""
    voices: dict[str, str] = Field(default_factory=dict)
    """More voices by name, each a model as in ``voice``: speak's ``voice`` argument picks one."""
    max_speak_chars: int = Field(20_000, ge=1)
    """Longest text speak reads in one call (it is split into sentences internally)."""
    music_generator: str = "musicgen-small"
    """Text-to-music model for generate_music: MusicGen (transformers), or a diffusers audio
    pipeline (Stable Audio, AudioLDM2)."""
    sound_generator: str = "audioldm2"
    """Text-to-sound model for generate_sound: a diffusers audio pipeline (AudioLDM2, Stable
    Audio) or MusicGen."""
    procedural_fallback: bool = True
    """With no generator weights installed, synthesise a labelled procedural clip instead of
    failing."""
    max_generate_seconds: float = Field(300, gt=0)
    """Longest clip generate_music and generate_sound make."""
    audio_tagger: str = "clap-htsat-unfused"
    """Zero-shot audio classifier (CLAP) that describes sounds for audio_to_image's scene."""


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
    audio: AudioSettings = Field(default_factory=AudioSettings)
    """Models and limits of the audio tools."""
