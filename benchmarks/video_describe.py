"""describe_video latency on a 60 s 1280x720 30 fps H.264 clip with speech (the clip of
video_keyframes.py, made at run time: six real photos panned and zoomed, LibriSpeech looped).

Speech goes through the real faster-whisper offline packs (tiny.en transcribes; base detects
the language, the default when none is given). No vision-language weights are installed here,
so the frames are captioned by the tiny random-weight LLaVA of tests/tiny_vlm.py, loaded
through ``from_pretrained`` like real weights: its captions are gibberish and cost almost
nothing, so the caption figure is the pipeline's overhead per frame (storing, decoding and
preprocessing the image, a 60-token generate of a 2-layer model), not a real VLM's time.

One cold call (the models load), then ``ROUNDS`` warm calls, each split into phases by the
tool's own progress messages: probe, keyframes (scan, choose, decode at 768 px, store PNGs),
captions, transcript (decoding the soundtrack, language detection, recognition), the rest.
Writes benchmarks/results/video_describe.json.
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
from video_keyframes import MEDIA, benchmark_clip

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.tiny_vlm

from tools import ArtifactStore, ModelManager, ToolContext, ToolSettings  # noqa: E402
from tools.asr import cpu_threads  # noqa: E402
from tools.settings import ImageSettings  # noqa: E402
from tools.video_understand import describe_video  # noqa: E402

ROUNDS = 2
PHASES = (
    ("probe", "reading "),
    ("keyframes", "keyframes"),
    ("captions", "captioning frame"),
    ("transcript", "speech"),
    ("rest (text, storing)", "writing the timeline"),
)
"""Phase name and the start of the first progress message that begins it."""


def timed_call(ctx: ToolContext) -> tuple[dict[str, float], Any]:
    """One describe_video call: seconds per phase, from its progress messages, and the
    result."""
    marks: list[tuple[float, str]] = []
    ctx.progress_fn = lambda f, m, p: marks.append((time.perf_counter(), m))
    t0 = time.perf_counter()
    result = describe_video(ctx, video="$a1")
    end = time.perf_counter()
    starts = [next(t for t, m in marks if m.startswith(prefix)) for _, prefix in PHASES]
    bounds = [*starts, end]
    phases = {name: bounds[i + 1] - bounds[i] for i, (name, _) in enumerate(PHASES)}
    phases["total"] = end - t0
    return phases, result


def main() -> None:
    import torch

    from tests.tiny_vlm import build_tiny_llava

    if not MEDIA.is_dir():
        sys.exit(f"shared media not found at {MEDIA}")
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="anymodal-bench-") as tmp:
        folder = Path(tmp)
        clip, made_s = benchmark_clip(folder)
        llava = build_tiny_llava(folder / "tiny-llava")
        ctx = ToolContext(
            store=ArtifactStore(folder / "store"),
            workspace=folder,
            settings=ToolSettings(image=ImageSettings(vision_language=str(llava))),
            models=ModelManager(device="cpu", dtype="float32"),
        )
        ctx.refs["a1"] = [ctx.store.add_file(clip)]
        cold, _ = timed_call(ctx)
        warm = [timed_call(ctx) for _ in range(ROUNDS)]
        phases, result = warm[-1]
        text = result.artifacts[0].read_text()
    data = result.data
    median = {k: round(statistics.median(w[0][k] for w in warm), 3) for k in phases}
    write_results(
        "video_describe",
        {
            "clip": {**data["video"], "seconds_to_make": round(made_s, 1)},
            "models": {
                **data["models"],
                "vision_note": "tiny random-weight LLaVA (tests/tiny_vlm.py): captions are "
                "gibberish; the captions figure is pipeline overhead, not a real VLM's time",
                "speech_note": "faster-whisper offline packs, int8 CPU: tiny.en transcribes, "
                "base detects the language",
            },
            "torch_threads": 1,
            "ctranslate2_threads": cpu_threads(),
            "load_average_before": round(load_before, 2),
            "cold_call_s (models load)": {k: round(v, 3) for k, v in cold.items()},
            "warm_call_s (median)": median,
            "warm_rounds": ROUNDS,
            "keyframes": len(data["keyframes"]),
            "scene_changes": data["scene_changes"],
            "candidates": data["candidates"],
            "speech_segments": len(data["transcript"]["segments"]),
            "text_chars": len(text),
            "notes": data["notes"],
            "text_head": text[:400],
        },
    )


if __name__ == "__main__":
    main()
