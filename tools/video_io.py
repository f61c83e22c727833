"""Reading and writing video: PyAV (FFmpeg's libraries) probes and decodes, the ffmpeg binary
that imageio-ffmpeg bundles encodes and runs filter graphs.

Every video tool goes through here, so the limits and the error messages are the same
everywhere: a corrupt file, a zero-length video, a missing audio track or a huge resolution is
refused with a message that says what was wrong, before any work is done. Outputs are written
in a temporary folder and stored only after they probe as valid video, so a failed encode never
leaves a broken artifact.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
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


def ffmpeg_exe() -> str:
    """The ffmpeg binary shipped by imageio-ffmpeg (no system ffmpeg needed)."""
    return require("imageio_ffmpeg", EXTRA).get_ffmpeg_exe()


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


def run_ffmpeg(
    args: Sequence[str],
    what: str,
    settings: ToolSettings,
    *,
    ctx: ToolContext | None = None,
    seconds: float | None = None,
    span: tuple[float, float] = (0.0, 1.0),
) -> None:
    """Run the bundled ffmpeg with ``args`` (after ``-nostdin -y -v error``).

    With ``ctx``, a cancelled step stops ffmpeg within half a second; given the ``seconds`` of
    output expected, progress comes from ffmpeg's ``-progress`` lines, mapped into ``span``.

    Raises:
        Cancelled: The step was cancelled while ffmpeg ran.
        ToolError: ffmpeg failed (the message has its last error line) or ran past
            ``tools.video.ffmpeg_timeout``.
    """
    cmd = [ffmpeg_exe(), "-nostdin", "-y", "-hide_banner", "-v", "error"]
    if ctx is not None:
        cmd += ["-progress", "pipe:1", "-stats_period", "0.5"]
    cmd += list(args)
    timeout = settings.video.ffmpeg_timeout
    expired = threading.Event()
    with tempfile.TemporaryFile("w+") as err:  # a file: a chatty stderr never stalls ffmpeg
        out = subprocess.PIPE if ctx is not None else subprocess.DEVNULL
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)

        def stop() -> None:
            expired.set()
            proc.kill()

        timer = threading.Timer(timeout, stop)
        timer.start()
        try:
            if ctx is not None and proc.stdout is not None:
                for line in proc.stdout:
                    if ctx.cancelled:
                        proc.kill()
                        break
                    key, _, value = line.strip().partition("=")
                    if key == "out_time_us" and seconds and value.isdigit():
                        done = min(1.0, int(value) / 1e6 / seconds)
                        ctx.report(span[0] + (span[1] - span[0]) * done, what)
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if ctx is not None:
            ctx.check_cancelled()
        if expired.is_set():
            raise ToolError(
                f"{what} took over {timeout:g}s in ffmpeg and was stopped "
                "(tools.video.ffmpeg_timeout); try a shorter or smaller clip"
            )
        if code != 0:
            err.seek(0)
            lines = [ln for ln in err.read().strip().splitlines() if ln.strip()]
            raise ToolError(f"{what} failed in ffmpeg: {lines[-1] if lines else 'no output'}")


AAC_ARGS = ["-c:a", "aac", "-b:a", "160k"]
MP4_ARGS = ["-movflags", "+faststart"]


def x264_args(settings: ToolSettings) -> list[str]:
    """ffmpeg output options for H.264 at ``tools.video.crf`` in yuv420p at a constant frame
    rate (set the rate with ``cfr_filter`` in the filter graph: ``-r`` duplicates frames)."""
    args = ["-c:v", "libx264", "-preset", "medium", "-crf", str(settings.video.crf)]
    return args + ["-pix_fmt", "yuv420p", "-fps_mode", "cfr"]


def cfr_filter(fps: float) -> str:
    """The filter that makes evenly timed frames at ``fps`` (variable-rate input comes out
    at a constant rate)."""
    return f"fps={fps_fraction(fps)}"


def filter_escape(text: str) -> str:
    """A value (a file path) for a filter option, escaped for both levels ffmpeg parses: the
    option's ``\\ ' :``, then the graph's ``\\ ' [ ] , ;``."""
    for ch in "\\':":
        text = text.replace(ch, "\\" + ch)
    for ch in "\\'[],;":
        text = text.replace(ch, "\\" + ch)
    return text


def write_gif(
    src: str | Path,
    out: Path,
    settings: ToolSettings,
    *,
    fps: float,
    width: int,
    start: float = 0.0,
    end: float | None = None,
    ctx: ToolContext | None = None,
) -> tuple[tuple[int, int], int]:
    """Write the video ``src`` (from ``start`` to ``end`` seconds) as a looping GIF ``width``
    pixels wide at ``fps``: two ffmpeg passes, the first finding the 256 colours that suit
    these frames best. Returns the GIF's size and frame count.

    Raises:
        ToolError: ffmpeg failed, or the written GIF does not open.
    """
    from PIL import Image

    look = f"fps={fps_fraction(fps)},scale={width}:-2:flags=lanczos"
    span = ["-ss", f"{start:.6f}"] + (["-t", f"{end - start:.6f}"] if end is not None else [])
    span += ["-i", str(src)]
    palette = out.with_name(out.stem + "-palette.png")
    run_ffmpeg(
        [*span, "-vf", f"{look},palettegen=stats_mode=diff", str(palette)],
        "making the GIF's palette",
        settings,
        ctx=ctx,
    )
    if ctx is not None:
        ctx.report(0.5, "palette made; drawing the frames")
    run_ffmpeg(
        [*span, "-i", str(palette), "-filter_complex"]
        + [f"[0:v:0]{look}[x];[x][1:v]paletteuse=dither=sierra2_4a", "-loop", "0", str(out)],
        "making the GIF",
        settings,
        ctx=ctx,
    )
    palette.unlink(missing_ok=True)
    try:
        with Image.open(out) as gif:
            return gif.size, getattr(gif, "n_frames", 1)
    except (OSError, ValueError) as exc:
        raise ToolError(f"the written GIF is broken, so nothing was stored ({exc})") from None


def check_output_seconds(seconds: float, settings: ToolSettings) -> None:
    """Refuse to write a video longer than ``tools.video.max_output_seconds``."""
    limit = settings.video.max_output_seconds
    if seconds > limit:
        raise ToolError(
            f"the result would last {seconds:.1f}s; the limit is {limit:g}s "
            "(tools.video.max_output_seconds): use fewer or shorter inputs"
        )


def has_filter(name: str) -> bool:
    """Whether the bundled ffmpeg was built with the filter ``name``."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-filters"], capture_output=True, text=True, timeout=60
    )
    return any(
        line.split()[1:2] == [name] for line in proc.stdout.splitlines() if line.startswith(" ")
    )


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A temporary folder for frames and intermediate files, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="anymodal-video-") as tmp:
        yield Path(tmp)


def even(value: int) -> int:
    """H.264 in yuv420p needs even sides."""
    return max(2, value - value % 2)


def encode_frames(
    frames: Iterable[Any],
    out: Path,
    fps: float,
    settings: ToolSettings,
    *,
    audio: Path | None = None,
    ctx: ToolContext | None = None,
    total: int | None = None,
    span: tuple[float, float] = (0.0, 1.0),
) -> int:
    """Encode RGB frames (uint8 arrays HxWx3 or PIL images, all one size) to an H.264 MP4
    (yuv420p, even sides, ``tools.video.crf``), with ``audio`` muxed in as AAC if given; the
    video ends with the shorter of the two. Returns the number of frames written.

    With ``ctx``, cancellation is checked and progress reported every frame (``total``
    frames), mapped into ``span`` (a tool that denoised first reports encoding from 0.9 on).
    """
    import numpy as np

    iio = require("imageio_ffmpeg", EXTRA)
    writer = None
    count = 0
    try:
        for frame in frames:
            arr = np.asarray(frame.convert("RGB") if hasattr(frame, "convert") else frame)
            if arr.dtype != np.uint8:
                arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
            h, w = arr.shape[:2]
            if writer is None:
                size = (w, h)
                params = ["-crf", str(settings.video.crf), "-preset", "medium"]
                params += ["-movflags", "+faststart"]
                if audio is not None:
                    params += ["-b:a", "160k", "-shortest"]
                writer = iio.write_frames(
                    str(out),
                    (even(w), even(h)),
                    fps=fps,
                    codec="libx264",
                    quality=None,
                    macro_block_size=2,
                    ffmpeg_log_level="error",
                    output_params=params,
                    audio_path=str(audio) if audio is not None else None,
                    audio_codec="aac" if audio is not None else None,
                )
                writer.send(None)
            if (w, h) != size:
                raise ToolError(f"frame {count + 1} is {w}x{h}, not {size[0]}x{size[1]}")
            if w % 2 or h % 2:
                arr = arr[: even(h), : even(w)]
            writer.send(np.ascontiguousarray(arr))
            count += 1
            if ctx is not None:
                ctx.check_cancelled()
                if total:
                    done = span[0] + (span[1] - span[0]) * count / total
                    ctx.report(done, f"encoding frame {count}/{total}")
    except (OSError, RuntimeError) as exc:
        raise ToolError(f"encoding the video failed in ffmpeg: {_why(exc)}") from None
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
    if count == 0:
        raise ToolError("no frames to encode")
    return count


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


def fps_fraction(fps: float) -> Fraction:
    """A frame rate as ffmpeg likes it (30000/1001 rather than 29.97002997)."""
    return Fraction(fps).limit_denominator(1001)
