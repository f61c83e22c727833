"""Reading video with PyAV (FFmpeg's libraries): probing, decoding by timestamp, seeking; and
storing written video (``tools.ffmpeg`` writes it).

Every video tool reads through here, so the limits and the error messages are the same
everywhere: a corrupt file, a zero-length video, a missing audio track or a huge resolution is
refused with a message that says what was wrong, before any work is done. Outputs are written
in a temporary folder and stored only after they probe as valid video, so a failed encode never
leaves a broken artifact.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from tools.artifact import Artifact
from tools.base import ToolContext
from tools.errors import MissingExtra, ToolError, require
from tools.settings import ToolSettings

EXTRA = "video"
DEFAULT_FPS = 24.0
SEEK_GAP = 2.0
"""seek_frames seeks for a frame more than this many seconds past the last one it decoded."""
Skip = Literal["DEFAULT", "NONREF", "NONKEY"]


@dataclass(frozen=True)
class VideoInfo:
    """What a video file's headers say (nothing is decoded to learn it)."""

    width: int
    height: int
    fps: float
    """Average frame rate."""
    duration: float
    """Seconds."""
    frames: int
    """Frame count: the container's, else duration x fps."""
    codec: str
    has_audio: bool
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    variable_frame_rate: bool = False
    """The average rate differs from the stream's base rate (phone recordings, screen captures):
    frame times are not evenly spaced, so tools go by timestamps, not frame indices."""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _av() -> Any:
    return require("av", EXTRA)


def open_container(path: str | Path, label: str) -> Any:
    """The file opened with PyAV, or a ToolError saying it is missing, empty or unreadable."""
    av = _av()
    p = Path(path)
    if not p.is_file():
        raise ToolError(f"{label}: file not found ({p})")
    if p.stat().st_size == 0:
        raise ToolError(f"{label} is an empty (0-byte) file; attach the video again")
    try:
        return av.open(str(p), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise ToolError(
            f"{label} is not a video anymodal can read ({_why(exc)}); the file is corrupt, "
            "truncated or not a video: use MP4, MOV, MKV, WebM, AVI or GIF"
        ) from None


def _why(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _rate(value: Any) -> float:
    try:
        return float(value) if value else 0.0
    except (TypeError, ZeroDivisionError):
        return 0.0


def probe_path(path: str | Path, label: str = "") -> VideoInfo:
    """Read a video file's facts from its headers.

    Raises:
        ToolError: The file is missing, empty, corrupt, has no video stream, no decoder for its
            codec, or holds no frames.
    """
    av = _av()
    label = label or Path(path).name
    with open_container(path, label) as container:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
            raise ToolError(
                f"{label} has no video stream (streams: {kinds}): it is not a video, or it is "
                "truncated or corrupt; attach the video again"
            )
        v = container.streams.video[0]
        ctx = v.codec_context
        codec = ctx.name if ctx is not None else "unknown"
        try:
            av.codec.Codec(codec, "r")
        except (av.FFmpegError, ValueError):
            raise ToolError(
                f"{label} uses the {codec} codec, which the bundled FFmpeg cannot decode; "
                "convert it to H.264 MP4 first"
            ) from None
        fps = _rate(v.average_rate) or _rate(v.guessed_rate) or _rate(v.base_rate)
        base = _rate(v.base_rate)
        duration = 0.0
        if v.duration and v.time_base:
            duration = float(v.duration * v.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        declared = int(v.frames or 0)
        found = sum(1 for packet in container.demux(v) if packet.size) if declared else 0
        frames = declared or (round(duration * fps) if fps else 0)
        if not duration and frames and fps:
            duration = frames / fps
        audio = container.streams.audio[0] if container.streams.audio else None
        actx = audio.codec_context if audio is not None else None
        width, height = (ctx.width, ctx.height) if ctx is not None else (0, 0)
    if width <= 0 or height <= 0:
        raise ToolError(f"{label} declares a {width}x{height} picture; the file is corrupt")
    if frames <= 0 and duration <= 0:
        raise ToolError(f"{label} is a zero-length video (no frames); attach a longer clip")
    if declared and declared - found > max(1, declared // 50):
        # An MP4 cut short (a half-finished download) keeps its header, so it would probe
        # fine and ffmpeg would quietly make a shorter video from it.
        raise ToolError(
            f"{label} is truncated: its header lists {declared} frames ({duration:.2f}s) "
            f"but the file holds only {found}; attach the whole file again"
        )
    vfr = bool(fps and base and abs(base - fps) / base > 0.02)
    return VideoInfo(
        width=width,
        height=height,
        fps=round(fps, 3) if fps else DEFAULT_FPS,
        duration=round(duration, 6),
        frames=frames,
        codec=codec,
        has_audio=audio is not None,
        audio_codec=actx.name if actx is not None else None,
        sample_rate=actx.sample_rate if actx is not None else None,
        channels=actx.channels if actx is not None else None,
        variable_frame_rate=vfr,
    )


def probe(art: Artifact, settings: ToolSettings) -> VideoInfo:
    """``probe_path`` plus the configured input limits (``tools.video.max_input_*``)."""
    info = probe_path(art.path, art.label())
    s = settings.video
    if max(info.width, info.height) > s.max_input_side:
        raise ToolError(
            f"{art.label()} is {info.width}x{info.height}, over the limit of {s.max_input_side} "
            "pixels a side (tools.video.max_input_side); scale it down first"
        )
    if info.duration > s.max_input_seconds:
        raise ToolError(
            f"{art.label()} lasts {info.duration / 3600:.1f} hours; the limit is "
            f"{s.max_input_seconds / 3600:.1f} hours (tools.video.max_input_seconds)"
        )
    return info


def require_audio(art: Artifact, info: VideoInfo, what: str) -> None:
    """Refuse a video without a soundtrack for a tool that needs one."""
    if not info.has_audio:
        raise ToolError(
            f"{art.label()} has no audio track, so there is nothing to {what}; "
            "add one with add_audio first"
        )


def facts(art: Artifact) -> dict[str, Any]:
    """Cheap header facts for state and the planner; ``unreadable`` when the headers are bad."""
    try:
        return probe_path(art.path, art.label()).to_dict()
    except MissingExtra:
        return {}
    except ToolError as exc:
        return {"unreadable": str(exc)}


def count_frames(path: str | Path) -> int:
    """Frames in the first video stream, counted by demuxing packets (no decoding)."""
    with open_container(path, Path(path).name) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def iter_frames(
    path: str | Path,
    *,
    fps: float | None = None,
    max_side: int | None = None,
    start: float = 0.0,
    end: float | None = None,
    label: str = "",
    skip: Skip = "DEFAULT",
) -> Iterator[tuple[float, Any]]:
    """Decode frames as ``(seconds, RGB uint8 array HxWx3)``, in order.

    ``fps`` keeps at most that many frames a second (by timestamp, so variable frame rates
    are sampled evenly); ``max_side`` scales frames down in the decoder; ``start``/``end``
    bound the span (seconds). ``skip`` names frames the decoder leaves out: "NONREF" those no
    other frame refers to (about 1.7x faster on H.264; fine for sampling constant-rate video
    of 16 fps or more), "NONKEY" all but keyframes (about 12x faster).

    Raises:
        ToolError: The stream is corrupt past repair (a damaged frame here and there is
            skipped by the decoder).
    """
    av = _av()
    label = label or Path(path).name
    with open_container(path, label) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.skip_frame = skip
        if start > 0 and stream.time_base:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        step = 1.0 / fps if fps else 0.0
        next_t = start
        try:
            for frame in container.decode(stream):
                if frame.pts is None or frame.time is None:
                    continue
                t = float(frame.time)
                if t < start - 1e-6:
                    continue
                if end is not None and t >= end:
                    break
                if step and t + 1e-6 < next_t:
                    continue
                next_t = (next_t if next_t > t - step else t) + step if step else t
                yield t, to_rgb(frame, max_side)
        except av.FFmpegError as exc:
            raise ToolError(f"{label} could not be decoded ({_why(exc)}); it is corrupt") from None


def to_rgb(frame: Any, max_side: int | None) -> Any:
    """A decoded PyAV frame as an RGB uint8 array, scaled down to ``max_side`` if larger."""
    w, h = frame.width, frame.height
    if max_side and max(w, h) > max_side:
        scale = max_side / max(w, h)
        w, h = max(2, round(w * scale)), max(2, round(h * scale))
        return frame.to_ndarray(format="rgb24", width=w, height=h)
    return frame.to_ndarray(format="rgb24")


def iter_frames_at(
    path: str | Path, times: Sequence[float], *, max_side: int | None = None, label: str = ""
) -> Iterator[tuple[float, Any]]:
    """The frame on screen at each of ``times`` (seconds, ascending), decoded in one pass and
    yielded as soon as it is found, so a thousand 4K frames never sit in memory together."""
    wanted = sorted(times)
    i, previous = 0, None
    for t, img in iter_frames(path, max_side=max_side, label=label):
        while i < len(wanted) and wanted[i] < t - 1e-6:
            yield previous if previous is not None else (t, img)
            i += 1
        if i >= len(wanted):
            return
        previous = (t, img)
    while previous is not None and i < len(wanted):
        yield previous
        i += 1


def frames_at(
    path: str | Path, times: Sequence[float], *, max_side: int | None = None, label: str = ""
) -> list[tuple[float, Any]]:
    """``iter_frames_at`` as a list."""
    return list(iter_frames_at(path, times, max_side=max_side, label=label))


def seek_frames(
    path: str | Path,
    times: Sequence[float],
    *,
    max_side: int | None = None,
    skip_nonref: bool = False,
    label: str = "",
) -> list[tuple[float, Any]]:
    """The frame shown at each of ``times`` (ascending) as ``(its time, RGB array)``.

    Seeks to the keyframe before a time that lies more than ``SEEK_GAP`` past the last one and
    decodes on from there, so a few frames of a long video cost a few short decodes, not a
    pass over the whole file. With ``skip_nonref`` the frame may be the
    reference frame a frame or two before (its own time is returned), for ~1.7x less decoding.
    """
    av = _av()
    label = label or Path(path).name
    out: list[tuple[float, Any]] = []
    with open_container(path, label) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.skip_frame = "NONREF" if skip_nonref else "DEFAULT"

        def decode_from(t: float) -> Iterator[Any]:
            try:
                container.seek(int(max(0.0, t) / stream.time_base), stream=stream, backward=True)
            except av.FFmpegError:
                container.seek(0, stream=stream, backward=True)
            return (f for f in container.decode(stream) if f.time is not None)

        frames: Iterator[Any] | None = None
        current = upcoming = None
        try:
            for target in sorted(times):
                if frames is None or target - (current.time if current else 0.0) > SEEK_GAP:
                    frames = decode_from(target)
                    current, upcoming = None, next(frames, None)
                    if upcoming is not None and upcoming.time > target + 1e-6 and target > 0:
                        frames = decode_from(0.0)  # the seek landed past the time
                        upcoming = next(frames, None)
                while upcoming is not None and upcoming.time <= target + 1e-6:
                    current, upcoming = upcoming, next(frames, None)
                chosen = current or upcoming
                if chosen is None:
                    break
                out.append((float(chosen.time), to_rgb(chosen, max_side)))
        except av.FFmpegError as exc:
            raise ToolError(f"{label} could not be decoded ({exc}); it is corrupt") from None
    if len(out) < len(times):
        raise ToolError(f"{label}: the frame at {sorted(times)[len(out)]:.2f} s cannot be decoded")
    return out


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A temporary folder for frames and intermediate files, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="anymodal-video-") as tmp:
        yield Path(tmp)


def store_video(
    ctx: ToolContext, path: Path, name: str, **metadata: Any
) -> tuple[Artifact, VideoInfo]:
    """Store the finished file at ``path`` as a video artifact named ``name``, with its probed
    facts (width, height, fps, duration, frames, has_audio) and ``metadata``.

    Raises:
        ToolError: The file is not a valid video (the encode failed): nothing is stored.
    """
    try:
        info = probe_path(path, name)
    except ToolError as exc:
        raise ToolError(f"the written video is broken, so nothing was stored ({exc})") from None
    meta = {**info.to_dict(), "source_step": ctx.step_id, **metadata}
    art = ctx.store.add_file(path, name=name, metadata=meta)
    return art, info
