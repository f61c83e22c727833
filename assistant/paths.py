"""The one place that knows where anymodal keeps config, data and cache.

platformdirs locations by default; ``ANYMODAL_HOME`` moves all three under one folder.
Nothing is created at import: callers make the folders they write to.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "anymodal"


def home() -> Path | None:
    value = os.environ.get("ANYMODAL_HOME")
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    if (h := home()) is not None:
        return h / "config"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP))


def data_dir() -> Path:
    if (h := home()) is not None:
        return h / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP))


def cache_dir() -> Path:
    if (h := home()) is not None:
        return h / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP))


def config_file() -> Path:
    return config_dir() / "config.toml"


def sessions_db() -> Path:
    """SQLite file holding LangGraph checkpoints and the session list."""
    return data_dir() / "sessions.sqlite"


def session_dir(session: str) -> Path:
    """A session's folder: ``artifacts/`` (content-addressed) and ``work/`` (scratch)."""
    return data_dir() / "sessions" / session
