"""The typed config: ``config.toml``, overridden by ``ANYMODAL_*`` variables, then by flags."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from assistant import paths
from memory.settings import MemorySettings
from tools.models import ModelManager
from tools.settings import ToolSettings


class _Section(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")


class LlamaSettings(_Section):
    """The llama.cpp planner (GGUF through xllamacpp)."""

    model: str = "qwen2.5-coder-1.5b-instruct-q4_k_m"
    """A catalog name or a path to a .gguf file."""
    mmproj: str | None = None
    """Vision projector (.gguf) for a vision-language GGUF model, so images reach the planner."""
    n_ctx: int = Field(8192, ge=512)
    """Context window in tokens."""
    threads: int = Field(0, ge=0)
    """CPU threads; 0 uses every core."""
    max_tokens: int = Field(512, ge=16)
    """Longest plan or reply the model may write."""
    temperature: float = Field(0.0, ge=0)
    """Sampling temperature; 0 is greedy (plans should be repeatable)."""
    prefix_cache: bool = True
    """Keep the fixed prompt prefix (instructions, tools) in the KV cache between requests."""


class TransformersSettings(_Section):
    """The transformers vision-language planner (LLaVA, LLaVA-NeXT, Idefics3, Qwen2.5-VL)."""

    model: str | None = None
    """A Hub id or a local folder, e.g. 'llava-hf/llava-1.5-7b-hf'."""
    max_new_tokens: int = Field(512, ge=16)
    """Longest plan or reply the model may write."""


class OpenAISettings(_Section):
    """Any OpenAI-compatible endpoint: Ollama, vLLM, llama.cpp server, hosted APIs."""

    base_url: str = "http://127.0.0.1:11434/v1"
    """The API root (Ollama's default shown)."""
    model: str = "qwen2.5:7b"
    """The model name the endpoint knows."""
    api_key: str | None = None
    """Bearer token, if the endpoint wants one."""
    timeout: float = Field(120.0, gt=0)
    """Seconds to wait for an answer."""
    native_tools: bool = True
    """Ask for native tool calls; off, the plan is requested as JSON text."""


class TuiSettings(_Section):
    """The terminal UI (``anymodal chat``): keys and how input behaves."""

    enter_sends: bool = True
    """Enter sends the message (Shift+Enter or Ctrl+J adds a line); false: Ctrl+Enter sends."""
    keys: dict[str, str] = Field(default_factory=dict)
    """Key bindings by id, e.g. ``{"cancel" = "escape", "attach" = "ctrl+o"}``; ids are listed
    by /help in the app."""
    images: Literal["auto", "kitty", "sixel", "halfcell", "none"] = "auto"
    """How images show inline: the best the terminal supports, a given protocol, or none."""


class ServeSettings(_Section):
    """The HTTP and WebSocket server (``anymodal serve``)."""

    host: str = "127.0.0.1"
    """Address to listen on; the loopback default keeps the server off the network."""
    port: int = Field(8765, ge=0, le=65535)
    """TCP port (0 picks a free one)."""
    max_upload_mb: float = Field(100.0, gt=0)
    """Largest request body in MB (uploads, base64 images, WebSocket messages)."""
    max_running: int = Field(4, ge=1, le=256)
    """Runs that execute at the same time; more wait in the queue."""
    max_queued: int = Field(32, ge=0, le=10_000)
    """Runs that may wait for a free slot; beyond that a new run is refused with 429."""
    retry_after: int = Field(2, ge=1)
    """Seconds a refused (429) client is told to wait before trying again."""
    cancel_on_disconnect: bool = True
    """Cancel a run when the SSE or WebSocket client that follows it goes away."""
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to call the API (CORS); empty turns CORS off."""
    token_file: str | None = None
    """Where the bearer token is kept; default ``server-token`` in the config folder."""


class Config(BaseSettings):
    """Everything a user can set. Nested sections use ``__`` in variables:
    ``ANYMODAL_TOOLS__MAX_IMAGE_PIXELS=50000000``."""

    model_config = SettingsConfigDict(
        env_prefix="ANYMODAL_",
        env_nested_delimiter="__",
        extra="ignore",
        use_attribute_docstrings=True,
    )

    planner: Literal["auto", "llama", "transformers", "openai", "scripted"] = "auto"
    """Which planner backend plans requests; 'auto' uses llama.cpp when its model is installed."""
    llama: LlamaSettings = Field(default_factory=LlamaSettings)
    """The llama.cpp backend (the embedded default)."""
    transformers: TransformersSettings = Field(default_factory=TransformersSettings)
    """The transformers vision-language backend."""
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    """The OpenAI-compatible endpoint backend."""
    shortlist_size: int = Field(64, ge=1)
    """With more tools than this, the planner sees only this many, the most relevant (fewer
    are all shown, so their prompt stays cached; the most relevant are suggested)."""
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Extra model catalog entries, by name (same fields as the built-in catalog)."""
    model_budget_mb: int = Field(8192, ge=64)
    """Memory loaded models may use together; the least recently used go first."""
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    """Where models run; 'auto' picks cuda, then mps, then cpu."""
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """Model precision; 'auto' is float16 on GPUs and float32 on CPUs."""
    max_workers: int = Field(4, ge=1, le=64)
    """Steps that may run at the same time."""
    step_timeout: float = Field(600.0, gt=0)
    """Seconds a step may run before it is stopped (a tool may set its own)."""
    max_replans: int = Field(2, ge=0, le=10)
    """Times a failed plan goes back to the planner with the error before giving up."""
    approve: Literal["never", "marked", "always"] = "marked"
    """Ask before running steps: never, for tools marked as needing approval, or always."""
    tool_modules: list[str] = Field(default_factory=list)
    """Python modules to load tools from, besides the anymodal.tools entry points."""
    disabled_tools: list[str] = Field(default_factory=list)
    """Tools to hide from the planner."""
    durability: Literal["sync", "async", "exit"] = "sync"
    """When checkpoints are written: 'sync' after every node (safe to resume after a crash)."""
    tools: ToolSettings = Field(default_factory=ToolSettings)
    """Limits the built-in tools enforce."""
    memory: MemorySettings = Field(default_factory=MemorySettings)
    """The cross-modal memory: what it indexes and with which models."""
    tui: TuiSettings = Field(default_factory=TuiSettings)
    """The terminal UI: key bindings and input behaviour."""
    serve: ServeSettings = Field(default_factory=ServeSettings)
    """The HTTP and WebSocket server: address, limits, queue, CORS."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (init arguments) over environment over the TOML file.
        toml = TomlConfigSettingsSource(settings_cls, toml_file=paths.config_file())
        return (init_settings, env_settings, toml)


def load_config(**overrides: Any) -> Config:
    """Read the config; ``overrides`` (from flags) win. Unset (None) overrides are ignored."""
    return Config(**{k: v for k, v in overrides.items() if v is not None})


def model_manager(config: Config) -> ModelManager:
    """The model manager the config describes, caching in anymodal's cache folder."""
    return ModelManager(
        paths.cache_dir(),
        models=config.models,
        budget_bytes=config.model_budget_mb * 2**20,
        device=config.device,
        dtype=config.dtype,
    )
