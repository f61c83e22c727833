"""Shared fixtures: an isolated ANYMODAL_HOME, real image and audio files, event checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the whole run: offline packs are assembled into it once."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: Path) -> Path:
    """Every test gets its own config and data folders; the model cache is shared."""
    h = tmp_path / "home"
    h.mkdir()
    (h / "cache").symlink_to(model_cache, target_is_directory=True)
    monkeypatch.setenv("ANYMODAL_HOME", str(h))
    for var in [v for v in os.environ if v.startswith("ANYMODAL_") and v != "ANYMODAL_HOME"]:
        monkeypatch.delenv(var)
    # Runs do not index into the memory in the background unless a test asks (tests/memory).
    monkeypatch.setenv("ANYMODAL_MEMORY__ENABLED", "false")
    return h


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight LLaVA with its processor and chat template (tests/tiny_vlm.py)."""
    from tests.tiny_vlm import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture
def media() -> Path:
    if not MEDIA.is_dir():
        pytest.skip(f"shared test media not found at {MEDIA}")
    return MEDIA


def make_png(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> Path:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, color)
    ImageDraw.Draw(img).rectangle(
        [size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2], fill=(255, 255, 255)
    )
    img.save(path)
    return path


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    """A 640x480 red PNG and a 300x200 blue JPEG."""
    a = make_png(tmp_path / "a.png", (640, 480), (200, 30, 30))
    from PIL import Image

    b = tmp_path / "b.jpg"
    Image.new("RGB", (300, 200), (30, 30, 200)).save(b)
    return a, b


def make_wav(
    path: Path, seconds: float, rate: int = 16000, channels: int = 1, freq: float = 440.0
) -> Path:
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    data = np.stack([tone] * channels, axis=1)
    sf.write(path, data, rate)
    return path


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    """2 s of a 440 Hz tone, 16 kHz mono."""
    return make_wav(tmp_path / "tone.wav", 2.0)


@pytest.fixture
def run(tmp_path: Path) -> Any:
    """Call a registered tool on files, which become ``$a1``, ``$a2`` ...:
    ``run("resize_image", [path], image="$a1", width=64)``."""
    from tools import ArtifactStore, Registry, ToolContext, ToolSettings

    reg = Registry.discover()

    def call(tool: str, files: list[Path], settings: Any = None, **args: Any) -> Any:
        ctx = ToolContext(
            store=ArtifactStore(tmp_path / "store"),
            workspace=tmp_path / "w",
            settings=settings or ToolSettings(),
        )
        for i, f in enumerate(files, 1):
            ctx.refs[f"a{i}"] = [ctx.store.add_file(f)]
        return reg.get(tool)(ctx, **args)

    return call


def plugin_assistant(**overrides: Any) -> Any:
    """An Assistant with the test tools (tests/plugin_tools.py) loaded as a tool module."""
    from assistant import Assistant

    overrides.setdefault("tool_modules", ["tests.plugin_tools"])
    return Assistant(**overrides)


def check_event_order(events: list[Any], plan: dict[str, Any] | None = None) -> None:
    """Fail unless the stream is well formed: a plan before steps, each step started before it
    progresses or ends, a step started only after the steps it depends on finished, exactly
    one final event, last."""
    from assistant.events import (
        Final,
        PlanReady,
        StepFailed,
        StepFinished,
        StepProgress,
        StepStarted,
    )
    from assistant.plan import Plan

    assert events and isinstance(events[-1], Final), "the last event must be final"
    assert sum(isinstance(e, Final) for e in events) == 1
    deps = Plan.parse(plan).dependencies() if plan else {}
    planned = False
    started: set[str] = set()
    ended: set[str] = set()
    for e in events:
        if isinstance(e, PlanReady):
            planned = True
            started, ended = set(), set()
        elif isinstance(e, StepStarted):
            assert planned, "a step started before any plan was ready"
            assert e.step not in started, f"{e.step} started twice"
            assert deps.get(e.step, set()) <= ended, f"{e.step} started before its inputs"
            started.add(e.step)
        elif isinstance(e, StepProgress):
            assert e.step in started and e.step not in ended
        elif isinstance(e, StepFinished | StepFailed):
            assert e.step in started and e.step not in ended, f"{e.step} ended out of order"
            ended.add(e.step)
    assert started == ended, f"steps started but never ended: {started - ended}"


@pytest.fixture(scope="module")
def planner(model_cache):
    """The configured default planner (the embedded llama.cpp model), loaded once for the
    module; skips where the llm extra or the model pack is not installed."""
    pytest.importorskip("xllamacpp", reason="the llm extra is not installed")
    from assistant.config import Config
    from assistant.planners.base import configured_planner
    from tools.models import ModelManager

    config = Config()
    models = ModelManager(model_cache)
    try:
        models.path(config.llama.model)
    except Exception as exc:  # the pack is installed by `make setup`
        pytest.skip(f"planner model not installed: {exc}")
    return configured_planner(config, models)
