"""The ffmpeg binary imageio-ffmpeg bundles (no system ffmpeg needed): running it cancellably
with progress, the encoder options every tool shares, filter checks and escaping, encoding
frames to H.264 MP4 and videos to GIF.

Video is read (probed and decoded) by PyAV in ``tools.video_io``; ffmpeg writes it.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import ToolError, require
from tools.hf import first_line
from tools.settings import ToolSettings

if TYPE_CHECKING:
    from tools.base import ToolContext


def ffmpeg_exe() -> str:
    """The ffmpeg binary shipped by imageio-ffmpeg (no system ffmpeg needed)."""
    return require("imageio_ffmpeg", "audio").get_ffmpeg_exe()


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

    iio = require("imageio_ffmpeg", "audio")
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
        raise ToolError(f"encoding the video failed in ffmpeg: {first_line(exc)}") from None
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
    if count == 0:
        raise ToolError("no frames to encode")
    return count


def fps_fraction(fps: float) -> Fraction:
    """A frame rate as ffmpeg likes it (30000/1001 rather than 29.97002997)."""
    return Fraction(fps).limit_denominator(1001)
