"""Limits and switches the tools read; the assistant's config embeds them as ``[tools]``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


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
