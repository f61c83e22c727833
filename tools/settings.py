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


class VideoSettings(BaseModel):
    """Models and limits of the video tools (``[tools.video]`` in config.toml).

    Models are named as for images: a catalog name (``anymodal models list``), a local folder
    or a Hugging Face Hub id of a diffusers pipeline.
    """

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    generator: str = "wan2.1-t2v-1.3b"
    """Text-to-video diffusers pipeline for generate_video (Wan, LTX-Video, CogVideoX,
    TextToVideoSD, or an SD 1.5 model when motion_adapter is set for AnimateDiff)."""
    motion_adapter: str | None = None
    """AnimateDiff motion adapter; set, the generator is an SD 1.x model it animates."""
    animator: str = "stable-video-diffusion"
    """Image-to-video diffusers pipeline for animate_image (Stable Video Diffusion, Wan or
    LTX-Video image-to-video, CogVideoX image-to-video)."""
    pan_zoom_fallback: bool = True
    """With no image-to-video weights installed, let animate_image make a labelled
    pan-and-zoom clip over the still image instead of failing."""
    max_frames: int = Field(257, ge=1)
    """Most frames generate_video and animate_image make in one call."""
    max_side: int = Field(1280, ge=64)
    """Largest width or height generate_video and animate_image make."""
    max_steps: int = Field(100, ge=1)
    """Most diffusion steps one video call may ask for."""
    max_input_seconds: float = Field(4 * 3600, gt=0)
    """Longest video a tool will read."""
    max_input_side: int = Field(7680, ge=16)
    """Largest width or height of a video a tool will read (7680: 8K)."""
    max_output_seconds: float = Field(4 * 3600, gt=0)
    """Longest video an editing tool (slideshow, change_speed, concat_videos) will write."""
    max_extract_frames: int = Field(1000, ge=1)
    """Most frames extract_frames and video_to_gif write in one call."""
    keyframes: int = Field(12, ge=1, le=256)
    """Frame budget of describe_video and ask_video: how many keyframes they caption."""
    scene_threshold: float = Field(0.3, gt=0, le=1)
    """How different two sampled frames must be (0..1) to count as a scene change."""
    crf: int = Field(20, ge=0, le=51)
    """H.264 quality of written videos (x264 CRF: lower is better and larger)."""
    ffmpeg_timeout: float = Field(1800, gt=0)
    """Seconds one ffmpeg run may take before it is stopped."""


MAX_RESOLUTION = 256
"""The finest marching-cubes grid any generate_3d or image_to_3d call makes."""


class MeshSettings(BaseModel):
    """Models and limits of the 3D tools (``[tools.mesh]`` in config.toml).

    Models are named as for images: a catalog name (``anymodal models list``), a local folder
    or a Hugging Face Hub id of a diffusers pipeline.
    """

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    generator: str = "shap-e"
    """Text-to-3D diffusers pipeline for generate_3d (Shap-E, ``openai/shap-e``)."""
    image_generator: str = "shap-e-img2img"
    """Image-to-3D diffusers pipeline for image_to_3d (``openai/shap-e-img2img``)."""
    steps: int = Field(64, ge=1)
    """Denoising steps of generate_3d and image_to_3d when the call gives none."""
    guidance: float = Field(15.0, ge=0)
    """Guidance of generate_3d when the call gives none (Shap-E's authors use 15)."""
    image_guidance: float = Field(3.0, ge=0)
    """Guidance of image_to_3d when the call gives none (Shap-E's authors use 3)."""
    resolution: int = Field(128, ge=16)
    """Marching-cubes grid of a generated mesh (cells a side): finer is slower and larger."""
    max_steps: int = Field(200, ge=1)
    """Most denoising steps one call may ask for."""
    max_resolution: int = Field(MAX_RESOLUTION, ge=16, le=MAX_RESOLUTION)
    """Largest marching-cubes grid a call may ask for (memory grows with its cube; 256 at
    most, about 17 million field queries)."""
    procedural_fallback: bool = True
    """With no text-to-3D weights installed, let generate_3d build a labelled mesh from a
    scene of simple shapes (boxes, spheres, cylinders, cones) instead of failing."""
    max_faces: int = Field(20_000_000, ge=1)
    """Largest mesh (faces) a tool will load; bigger files are refused before they fill
    memory."""
    max_file_bytes: int = Field(2 * 1024**3, ge=1)
    """Largest mesh file a tool will read."""
    render_max_faces: int = Field(2_000_000, ge=100)
    """render_mesh simplifies a larger mesh to this many faces first (with a note)."""
    preview_views: int = Field(4, ge=1, le=36)
    """Views in the preview grid generate_3d and image_to_3d return beside the mesh."""
    preview_size: int = Field(384, ge=64, le=2048)
    """Side in pixels of each view of those previews."""


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
    video: VideoSettings = Field(default_factory=VideoSettings)
    """Models and limits of the video tools."""
    mesh: MeshSettings = Field(default_factory=MeshSettings)
    """Models and limits of the 3D tools."""
