"""Keyframes of a video for describe_video and ask_video: a few frames that cover it.

In the spirit of LLaMA-VID (few tokens per frame, under a budget), a video becomes at most
``tools.video.keyframes`` stills: frames evenly spaced over the whole video, so nothing long
goes unseen, plus the first frame after every scene change, so no short scene is missed. Both
come from one cheap pass: candidate frames sampled about twice a second (fewer for long videos,
at most ``MAX_CANDIDATES``), decoded straight to small thumbnails, each scored against the one
before. Only the chosen frames are then decoded at caption resolution, by seeking.

Decoding is the cost (the thumbnails are nearly free), so in constant-rate video of 16 fps or
more the pass skips the frames no other frame refers to (about half of an H.264 stream, ~1.7x
faster), and for long videos, where candidates lie seconds apart anyway, it decodes only the
codec's own keyframes, which encoders place every few seconds and often at scene cuts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.errors import ToolError
from tools.video_io import Skip, iter_frames

SAMPLE_RATE = 2.0
"""Candidate frames a second, for videos short enough (``MAX_CANDIDATES`` / 2 seconds)."""
MAX_CANDIDATES = 600
"""Most candidate frames one pass scores: longer videos are sampled more sparsely."""
THUMB_SIDE = 160
"""Longest side of a candidate's thumbnail (the decoder scales it down)."""
SCORE_SIDE = 16
"""Longest side of the coarse thumbnail whose pixel difference scores a change: coarse
enough that camera motion barely registers, fine enough that a cut does."""
HIST_LEVELS = 16
"""Levels per colour channel of the colour histogram (16 x 16 x 16 bins)."""
PIXEL_WEIGHT = 0.3
"""Weight of the pixel difference in a change score (the colour histogram has the rest). On
photos panned and zoomed (benchmarks/video_keyframes.py) cuts scored 0.44 to 0.70, motion at
most 0.14, so the default threshold 0.3 lies between."""
SKIP_MIN_FPS = 16.0
"""Non-reference frames are skipped only in constant-rate videos of at least this many frames a
second: there a skipped frame moves a candidate by a frame or two; in a sparse or variable-rate
stream it could leave a gap of seconds."""
KEY_ONLY_INTERVAL = 4.0
"""Seconds between candidates from which only the codec's keyframes are decoded."""
MIN_UNIFORM_GAP = 2.0
"""Seconds: evenly spaced keyframes are never closer than this (a 6 s clip gets 3)."""

UNIFORM = "uniform"
SCENE = "scene change"

Check = Callable[[], None]
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Keyframe:
    """A chosen frame: its time (seconds), why it was chosen, and for a scene change how
    different it was from the candidate before it (0..1)."""

    time: float
    reason: str
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"time": round(self.time, 3), "reason": self.reason}
        if self.score is not None:
            out["score"] = round(self.score, 3)
        return out


@dataclass(frozen=True)
class Candidates:
    """The sampled frames' times and change scores (``scores[i]``: candidate ``i`` against
    ``i - 1``; ``scores[0]`` is 0)."""

    times: list[float]
    scores: list[float]
    interval: float
    """Seconds between candidates asked for."""
    keyframes_only: bool
    """Only the codec's keyframes were decoded."""


def candidate_interval(duration: float) -> float:
    """Seconds between candidates: ``1 / SAMPLE_RATE``, wider for long videos."""
    return max(1.0 / SAMPLE_RATE, duration / MAX_CANDIDATES)


def may_skip(fps: float, variable_frame_rate: bool) -> bool:
    """Whether ``scan`` may skip non-reference frames of a video (see ``SKIP_MIN_FPS``)."""
    return fps >= SKIP_MIN_FPS and not variable_frame_rate


def features(thumb: Any) -> tuple[Any, Any]:
    """What a change score compares: a ``SCORE_SIDE`` RGB thumbnail (0..1) and a normalised
    colour histogram of the frame."""
    import numpy as np
    from PIL import Image

    h, w = thumb.shape[:2]
    scale = SCORE_SIDE / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    coarse = np.asarray(Image.fromarray(thumb).resize(size, Image.Resampling.BOX), np.float32)
    q = (thumb.astype(np.int32) * HIST_LEVELS) >> 8
    bins = (q[..., 0] * HIST_LEVELS + q[..., 1]) * HIST_LEVELS + q[..., 2]
    hist = np.bincount(bins.ravel(), minlength=HIST_LEVELS**3).astype(np.float32)
    return coarse / 255.0, hist / max(1.0, float(hist.sum()))


def change_score(a: tuple[Any, Any], b: tuple[Any, Any]) -> float:
    """How different two frames are, 0 (same) .. 1: a weighted mean of the coarse
    thumbnails' absolute difference (moves when the layout changes) and the histograms' total
    variation distance (moves when the colours change). Panning and zooming half a second
    apart move the first nearly as much as a cut does, the second hardly, so colours weigh
    more (``PIXEL_WEIGHT``); the pixels still catch a cut between two shots of like colours."""
    import numpy as np

    if a[0].shape != b[0].shape:
        return 1.0
    pixels = float(np.abs(a[0] - b[0]).mean())
    colours = 0.5 * float(np.abs(a[1] - b[1]).sum())
    return min(1.0, PIXEL_WEIGHT * pixels + (1.0 - PIXEL_WEIGHT) * colours)


def sample(
    path: str | Path,
    interval: float,
    *,
    keyframes_only: bool = False,
    skip_nonref: bool = False,
    max_side: int = THUMB_SIDE,
    label: str = "",
) -> Iterator[tuple[float, Any]]:
    """Frames at least ``interval`` seconds apart (by timestamp, so variable frame rates are
    sampled evenly), as ``(seconds, RGB thumbnail)``; the decoder skips all but keyframes
    (``keyframes_only``) or the frames no other frame refers to (``skip_nonref``)."""
    skip: Skip = "NONKEY" if keyframes_only else "NONREF" if skip_nonref else "DEFAULT"
    return iter_frames(path, fps=1 / interval, max_side=max_side, label=label, skip=skip)


def scan(
    path: str | Path,
    duration: float,
    *,
    label: str = "",
    interval: float | None = None,
    skip_nonref: bool = False,
    check: Check | None = None,
    progress: Progress | None = None,
) -> Candidates:
    """Sample candidates over the whole video and score each against the one before
    (``skip_nonref``: see ``sample`` and ``may_skip``).

    Long videos (``interval`` of ``KEY_ONLY_INTERVAL`` or more) decode keyframes only, unless
    the file has too few of them (fewer than a quarter of the candidates wanted), when the
    pass is repeated decoding every reference frame.

    Raises:
        ToolError: No frame could be decoded.
    """
    interval = interval or candidate_interval(duration)
    label = label or Path(path).name
    modes = [True, False] if interval >= KEY_ONLY_INTERVAL else [False]
    for keyframes_only in modes:
        times: list[float] = []
        scores: list[float] = []
        previous = None
        frames = sample(
            path, interval, keyframes_only=keyframes_only, skip_nonref=skip_nonref, label=label
        )
        for t, thumb in frames:
            if check is not None:
                check()
            current = features(thumb)
            scores.append(0.0 if previous is None else change_score(previous, current))
            times.append(t)
            previous = current
            if progress is not None and duration > 0:
                progress(min(1.0, t / duration), f"scanning {t:.0f}/{duration:.0f} s")
        enough = len(times) >= max(1, duration / interval / 4)
        if times and (enough or not keyframes_only):
            return Candidates(times, scores, interval, keyframes_only)
    raise ToolError(f"no frame of {label} could be decoded; the video stream is corrupt")


def choose(
    times: Sequence[float],
    scores: Sequence[float],
    duration: float,
    budget: int,
    threshold: float,
    min_gap: float,
) -> list[Keyframe]:
    """At most ``budget`` keyframes, in time order, deterministically.

    Every candidate scoring over ``threshold`` is a scene change (of two within ``min_gap``,
    the stronger): the first candidate after the cut, so up to one candidate interval late.
    Evenly spaced times cover the video (``budget`` of them, at most one per
    ``MIN_UNIFORM_GAP`` seconds, each in the middle of its stretch). A uniform time within
    ``min_gap`` of a scene change is dropped as a duplicate. Over budget, uniform times go
    first, one at a time: the one nearest a scene change, of equals the one whose going leaves
    the smallest gap (so coverage stays even); then the weakest scene changes.
    """
    cuts: list[Keyframe] = []
    ranked = sorted(
        (i for i in range(1, len(times)) if scores[i] > threshold),
        key=lambda i: (-scores[i], times[i]),
    )
    for i in ranked:
        if all(abs(times[i] - k.time) >= min_gap for k in cuts):
            cuts.append(Keyframe(times[i], SCENE, scores[i]))
    n = max(1, min(budget, int(duration // MIN_UNIFORM_GAP)))
    uniform = [Keyframe((j + 0.5) * duration / n, UNIFORM) for j in range(n)]

    uniform = [k for k in uniform if _distance(k, cuts) >= min_gap]
    excess = len(uniform) + len(cuts) - budget
    while excess > 0 and uniform:
        kept = sorted([*uniform, *cuts], key=lambda k: k.time)
        uniform.remove(min(uniform, key=lambda k: _drop_cost(k, kept, cuts, duration)))
        excess -= 1
    if excess > 0:
        weakest = sorted(cuts, key=lambda k: (k.score or 0.0, k.time))[:excess]
        cuts = [k for k in cuts if k not in weakest]
    return sorted([*uniform, *cuts], key=lambda k: k.time)


def _distance(k: Keyframe, cuts: list[Keyframe]) -> float:
    return min((abs(k.time - c.time) for c in cuts), default=float("inf"))


def _drop_cost(
    k: Keyframe, kept: list[Keyframe], cuts: list[Keyframe], duration: float
) -> tuple[float, float, float]:
    """Which uniform keyframe goes first: the nearest a scene change, then the one whose
    neighbours lie closest together, then the earliest."""
    i = kept.index(k)
    before = kept[i - 1].time if i > 0 else 0.0
    after = kept[i + 1].time if i + 1 < len(kept) else duration
    return round(_distance(k, cuts), 6), after - before, k.time
