"""Keyframe extraction speed (tools/keyframes.py), the first half of describe_video.

The clip is made at run time in a temporary folder: 60 s of 1280x720 at 30 fps, H.264 through
the project's own encoder (tools.ffmpeg.encode_frames, CRF 20), six real photos from
../shared/media panned and zoomed 10 s each (so the frames differ and do not compress away),
cut one to the next, over the four LibriSpeech recordings looped to 60 s as AAC.

Candidate sampling (2 a second, 160 px thumbnails, 120 candidates) is decoded five ways:
PyAV through tools.video_io.iter_frames (every frame decoded); an ffmpeg rawvideo pipe with the
fps and scale filters (every frame decoded); the same pipe told to skip non-reference frames;
PyAV skipping non-reference frames (what describe_video uses on constant-rate video of 16 fps
or more); and PyAV decoding keyframes only (what it uses once candidates lie 4 s or more apart,
i.e. for videos over 40 minutes). Figures per way: candidates decoded per second and video
seconds per wall second, best of ``ROUNDS``. Then the rest of selection: change scores,
choosing 12 keyframes, and decoding them at 768 px by seeking (video_io.seek_frames, skipping
non-reference frames as describe_video does, and not) against one pass over the file
(video_io.frames_at); and how far apart the change scores of the five real
cuts and of everything else (camera motion) lie. Writes benchmarks/results/video_keyframes.json.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from results_io import write_results

from tools import keyframes as kf
from tools.ffmpeg import encode_frames, ffmpeg_exe
from tools.settings import ToolSettings
from tools.video_io import frames_at, iter_frames, probe_path, seek_frames

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
PHOTOS = ("13181.jpg", "11674.jpg", "12300.jpg", "11807.jpg", "13426.jpg", "13480.jpg")
"""Dogs, flamingo, tow truck, bookshelf, police car, mountains: 10 s each."""
SIZE, FPS, SECONDS = (1280, 720), 30, 60
ROUNDS = 2
BUDGET, THRESHOLD = 12, 0.3
THUMB = kf.THUMB_SIDE


def soundtrack(folder: Path) -> Path:
    """The LibriSpeech recordings, 1 s apart, looped to ``SECONDS`` (16 kHz mono wav)."""
    import numpy as np
    import soundfile as sf

    parts, rate = [], 16_000
    for flac in sorted(MEDIA.glob("*.flac")):
        data, rate = sf.read(flac, dtype="float32")
        parts += [data, np.zeros(rate, np.float32)]
    loop = np.concatenate(parts)
    path = folder / "speech.wav"
    sf.write(path, np.tile(loop, -(-SECONDS * rate // len(loop)))[: SECONDS * rate], rate)
    return path


def photo_frames() -> Any:
    """Each photo for SECONDS / len(PHOTOS) s, zooming in or out while panning across it."""
    import numpy as np
    from PIL import Image

    w, h = SIZE
    per = SECONDS * FPS // len(PHOTOS)
    for k, name in enumerate(PHOTOS):
        with Image.open(MEDIA / name) as opened:
            img = opened.convert("RGB")
        iw, ih = img.size
        for i in range(per):
            f = i / per
            zoom = 1.0 + 0.25 * f if k % 2 == 0 else 1.25 - 0.25 * f
            cw, ch = iw / zoom, iw / zoom * h / w
            if ch > ih / zoom:
                ch, cw = ih / zoom, ih / zoom * w / h
            x, y = (iw - cw) * f, (ih - ch) * (0.5 + 0.3 * np.sin(2 * np.pi * f))
            box = (x, max(0.0, y), x + cw, max(0.0, y) + ch)
            yield np.asarray(img.resize(SIZE, Image.Resampling.BILINEAR, box=box))


def benchmark_clip(folder: Path) -> tuple[Path, float]:
    """The 60 s 720p clip with speech, and the seconds it took to make."""
    t0 = time.perf_counter()
    path = folder / "photos-720p.mp4"
    encode_frames(photo_frames(), path, FPS, ToolSettings(), audio=soundtrack(folder))
    return path, time.perf_counter() - t0


def ffmpeg_pipe(path: Path, skip_nonref: bool) -> int:
    """Candidates through an ffmpeg rawvideo pipe: fps and scale filters, RGB out."""
    w = THUMB
    h = round(THUMB * SIZE[1] / SIZE[0] / 2) * 2
    skip = ["-skip_frame", "noref"] if skip_nonref else []
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", *skip, "-i", str(path), "-an", "-vf",
           f"fps={kf.SAMPLE_RATE:g},scale={w}:{h}:flags=area", "-f", "rawvideo", "-pix_fmt",
           "rgb24", "-"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, check=True, timeout=600).stdout
    return len(out) // (w * h * 3)


def best_of(fn: Callable[[], int]) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - t0)
    return min(times), count


def sampling(path: Path) -> dict[str, Any]:
    interval = 1.0 / kf.SAMPLE_RATE
    ways: dict[str, Callable[[], int]] = {
        "pyav video_io.iter_frames (all frames decoded)": lambda: sum(
            1 for _ in iter_frames(path, fps=kf.SAMPLE_RATE, max_side=THUMB)
        ),
        "ffmpeg rawvideo pipe, fps+scale filters (all frames decoded)": lambda: ffmpeg_pipe(
            path, False
        ),
        "ffmpeg rawvideo pipe, -skip_frame noref": lambda: ffmpeg_pipe(path, True),
        "pyav keyframes.sample, non-reference frames skipped (used)": lambda: sum(
            1 for _ in kf.sample(path, interval, skip_nonref=True)
        ),
        "pyav keyframes.sample, keyframes only (used for long videos)": lambda: sum(
            1 for _ in kf.sample(path, interval, keyframes_only=True)
        ),
    }
    out = {}
    for label, fn in ways.items():
        seconds, count = best_of(fn)
        out[label] = {
            "seconds": round(seconds, 3),
            "candidates": count,
            "candidates_per_s": round(count / seconds, 1),
            "video_s_per_wall_s": round(SECONDS / seconds, 1),
        }
    return out


def selection(path: Path) -> dict[str, Any]:
    """The whole selection as describe_video runs it, step by step, and the score gap."""
    info = probe_path(path)
    t0 = time.perf_counter()
    cands = kf.scan(path, info.duration, skip_nonref=kf.may_skip(info.fps, False))
    t1 = time.perf_counter()
    gap = max(cands.interval, info.duration / (4 * BUDGET))
    chosen = kf.choose(cands.times, cands.scores, info.duration, BUDGET, THRESHOLD, gap)
    t2 = time.perf_counter()
    times = [k.time for k in chosen]
    seek_frames(path, times, max_side=768, skip_nonref=kf.may_skip(info.fps, False))
    t3 = time.perf_counter()
    frames_at(path, times, max_side=768)
    t4 = time.perf_counter()
    seek_frames(path, times, max_side=768)
    t5 = time.perf_counter()
    boundaries = [SECONDS / len(PHOTOS) * k for k in range(1, len(PHOTOS))]
    after = [min(i for i, t in enumerate(cands.times) if t >= b - 1e-6) for b in boundaries]
    others = [s for i, s in enumerate(cands.scores) if i not in after]
    return {
        "scan_s (decode + change scores)": round(t1 - t0, 3),
        "choose_s": round(t2 - t1, 5),
        "grab_12_at_768px_by_seeking_non_reference_skipped_s (used)": round(t3 - t2, 3),
        "grab_12_at_768px_by_seeking_every_frame_s": round(t5 - t4, 3),
        "frames_at_12_at_768px_one_pass_s": round(t4 - t3, 3),
        "total_s (scan + choose + grab)": round(t3 - t0, 3),
        "candidates": len(cands.times),
        "keyframes": [k.to_dict() for k in chosen],
        "true_cuts_s": boundaries,
        "scene_changes_found_s": [round(k.time, 3) for k in chosen if k.reason == kf.SCENE],
        "cut_scores": [round(cands.scores[i], 3) for i in after],
        "highest_other_score (camera motion)": round(max(others), 3),
        "threshold": THRESHOLD,
    }


def main() -> None:
    if not MEDIA.is_dir():
        sys.exit(f"shared media not found at {MEDIA}")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="anymodal-bench-") as tmp:
        clip, made_s = benchmark_clip(Path(tmp))
        info = probe_path(clip)
        figures = {
            "clip": {
                **info.to_dict(),
                "content": "6 real photos panned and zoomed, 10 s each, hard cuts; "
                "LibriSpeech speech looped",
                "bytes": clip.stat().st_size,
                "seconds_to_make": round(made_s, 1),
            },
            "load_average_before": round(load_before, 2),
            "rounds": ROUNDS,
            "sampling (2 per s, 160 px)": sampling(clip),
            "selection": selection(clip),
        }
    write_results("video_keyframes", figures)


if __name__ == "__main__":
    main()
