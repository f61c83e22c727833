"""The typed config: ``config.toml``, overridden by ``ANYMODAL_*`` variables, then by flags."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from assistant import paths
from tools.settings import ToolSettings


class Config(BaseSettings):
    """Everything a user can set. Nested sections use ``__`` in variables:
    ``ANYMODAL_TOOLS__MAX_IMAGE_PIXELS=50000000``."""

    model_config = SettingsConfigDict(
        env_prefix="ANYMODAL_",
        env_nested_delimiter="__",
        extra="ignore",
        use_attribute_docstrings=True,
    )

    planner: Literal["auto", "scripted"] = "auto"
    """Which planner backend plans requests; 'auto' picks the best one installed."""
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
