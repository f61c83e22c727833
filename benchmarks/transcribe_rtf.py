"""Speech recognition speed: the transcribe tool (tools.asr) on the LibriSpeech clips in
../shared/media, with faster-whisper (CTranslate2, int8, CPU) offline packs.

First each model's load is timed apart (a fresh model manager, files already on disk). Then,
per clip and for all clips joined with 2 s pauses (a longer piece), a few warm rounds of:

- tiny.en told the language ('en'): the fast English path;
- tiny.en with no language: the default, where base (multilingual_recognizer) detects the
  language on the first 30 s of speech first;
- base told the language.

Per clip: audio seconds, the first and the median warm transcribe seconds, the speed factor
(audio seconds / median seconds: "x real time") and the words. Seconds cover the whole tool
call (decoding the file, resampling, VAD, the model, storing the transcript). Writes
benchmarks/results/transcribe_rtf.json.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from results_io import write_results

from tools import ArtifactStore, ModelManager, ToolContext, ToolSettings
from tools.asr import cpu_threads, load_recognizer, transcribe
from tools.settings import AudioSettings

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
ROUNDS = 3
MODELS = ("faster-whisper-tiny.en", "faster-whisper-base")
CONFIGS = {
    "tiny.en, language 'en'": ({"recognizer": MODELS[0]}, "en"),
    "tiny.en, language 'en', beam 5": ({"recognizer": MODELS[0], "beam_size": 5}, "en"),
    "tiny.en, language detected by base (default)": ({"recognizer": MODELS[0]}, None),
    "base, language 'en'": ({"recognizer": MODELS[1]}, "en"),
}
"""Name -> (audio settings, language argument)."""


def joined_clip(flacs: list[Path], folder: Path) -> Path:
    """All clips one after another, 2 s of silence between them (16 kHz mono wav)."""
    import numpy as np
    import soundfile as sf

    parts = []
    for flac in flacs:
        data, rate = sf.read(flac, dtype="float32")
        parts += [data, np.zeros(2 * rate, np.float32)]
    path = folder / "all-clips-joined.wav"
    sf.write(path, np.concatenate(parts[:-1]), rate)
    return path


def context(folder: Path, models: ModelManager, audio: dict[str, Any]) -> ToolContext:
    return ToolContext(
        store=ArtifactStore(folder / "store"),
        workspace=folder,
        settings=ToolSettings(audio=AudioSettings(**audio)),
        models=models,
    )


def time_load(name: str, folder: Path) -> float:
    """Seconds to load one model into a fresh model manager."""
    ctx = context(folder, ModelManager(), {"recognizer": name})
    t0 = time.perf_counter()
    load_recognizer(ctx, name)
    return time.perf_counter() - t0


def measure(ctx: ToolContext, clip: Path, language: str | None) -> dict[str, Any]:
    import soundfile as sf

    ref = "$a1"
    ctx.refs["a1"] = [ctx.store.add_file(clip)]
    times = []
    for _ in range(ROUNDS + 1):
        t0 = time.perf_counter()
        result = transcribe(ctx, audio=ref, language=language)
        times.append(time.perf_counter() - t0)
    audio_s = sf.info(clip).duration
    median = statistics.median(times[1:])
    return {
        "audio_s": round(audio_s, 2),
        "first_s": round(times[0], 3),
        "median_s": round(median, 3),
        "speed_x": round(audio_s / median, 1),
        "words": len(result.data["text"].split()),
        "model": result.data["model"],
        "text": result.data["text"][:100],
    }


def main() -> None:
    flacs = sorted(MEDIA.glob("*.flac"))
    if not flacs:
        sys.exit(f"no .flac recordings in {MEDIA}")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="anymodal-bench-") as tmp:
        folder = Path(tmp)
        loads = {name: round(time_load(name, folder), 3) for name in MODELS}
        clips = [*flacs, joined_clip(flacs, folder)]
        models = ModelManager()
        configs = {}
        for label, (audio, language) in CONFIGS.items():
            ctx = context(folder, models, audio)
            per_clip = {clip.name: measure(ctx, clip, language) for clip in clips}
            singles = [per_clip[f.name] for f in flacs]
            audio_total = sum(p["audio_s"] for p in singles)
            seconds_total = sum(p["median_s"] for p in singles)
            configs[label] = {
                "speed_x_single_clips": round(audio_total / seconds_total, 1),
                "speed_x_joined": per_clip[clips[-1].name]["speed_x"],
                "per_clip": per_clip,
            }
    write_results(
        "transcribe_rtf",
        {
            "engine": "faster-whisper (CTranslate2) int8 on CPU, word timestamps, VAD, beam "
            f"{AudioSettings().beam_size} unless the configuration says otherwise",
            "cpu_threads": cpu_threads(),
            "load_average_before": round(load_before, 2),
            "rounds": ROUNDS,
            "load_s": loads,
            "configs": configs,
        },
    )


if __name__ == "__main__":
    main()
