"""Composing videos with the bundled ffmpeg: joining clips, putting audio on a video, and
slideshows of images; plus the encoding helpers every ffmpeg-based editing tool shares
(tools/video_edit.py, the one-clip edits, uses them and re-exports these tools).

Inputs are probed first (tools/video_io.py), so a corrupt, truncated or oversize file is
refused before any work; outputs are written in a temporary folder and stored only after they
probe as valid video.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools import ffmpeg as ff
from tools import video_io as vio
from tools.artifact import Artifact, Modality, slug
from tools.base import (
    AudioInput,
    ImageInput,
    Tool,
    ToolContext,
    ToolResult,
    VideoInput,
    artifact_input,
)
from tools.errors import ToolError, require
from tools.image_io import open_image
from tools.settings import ToolSettings
from tools.video_io import VideoInfo

AUDIO_RATE = 48_000
NORMAL_AUDIO = f"aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"
"""One sample rate, format and layout, so streams from different clips can be joined."""
CROSSFADE = 0.5
"""Seconds two clips (or images) overlap in a crossfade, at most."""


def stem(art: Artifact, fallback: str = "video") -> str:
    """A file-name stem for outputs named after their input ('My Clip.MOV' -> 'my-clip')."""
    return slug(Path(art.name).stem, fallback) if art.name else fallback


def audio_info(path: str | Path, label: str, settings: ToolSettings) -> dict[str, Any]:
    """Sample rate, channels and duration of an audio file from its headers (any format the
    bundled FFmpeg reads), refusing empty, corrupt, zero-length or overlong files."""
    av = require("av", vio.EXTRA)
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        raise ToolError(f"{label} is an empty (0-byte) file; attach the audio again")
    try:
        with av.open(str(p), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise ToolError(f"{label} has no audio stream; attach an audio file")
            a = container.streams.audio[0]
            if a.duration and a.time_base:
                duration = float(a.duration * a.time_base)
            else:
                duration = (container.duration or 0) / av.time_base
            rate, channels = a.codec_context.sample_rate, a.codec_context.channels
    except av.FFmpegError as exc:
        raise ToolError(
            f"{label} is not audio anymodal can read ({exc}); the file is corrupt or not "
            "audio: use WAV, FLAC, OGG, MP3 or M4A"
        ) from None
    if duration <= 0:
        raise ToolError(f"{label} holds no audio (zero length); attach a longer clip")
    if duration > settings.max_audio_seconds:
        raise ToolError(
            f"{label} lasts {duration / 3600:.1f} hours; the limit is "
            f"{settings.max_audio_seconds / 3600:.1f} hours (tools.max_audio_seconds)"
        )
    return {"sample_rate": rate, "channels": channels, "duration": round(duration, 6)}


def vfr_notes(art: Artifact, info: VideoInfo) -> list[str]:
    if not info.variable_frame_rate:
        return []
    return [f"{art.label()} has a variable frame rate; re-encoded at a constant {info.fps:g} fps"]


def video_facts(info: VideoInfo, notes: list[str]) -> dict[str, Any]:
    """The facts about a written video that a tool's ``data`` carries."""
    keys = ("duration", "frames", "fps", "width", "height", "has_audio")
    return {**{k: getattr(info, k) for k in keys}, "notes": notes}


class ConcatVideoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    videos: list[VideoInput] = Field(min_length=2, max_length=64, description="the clips, in order")
    transition: Literal["none", "crossfade"] = Field("none", description="how clips meet")


class ConcatVideos(Tool):
    name = "concat_videos"
    description = "Join video clips one after another into one video."
    inputs = ConcatVideoArgs
    outputs = (Modality.VIDEO,)

    def run(self, args: ConcatVideoArgs, ctx: ToolContext) -> ToolResult:
        clips: list[Artifact] = list(args.videos)
        infos = [vio.probe(art, ctx.settings) for art in clips]
        first = infos[0]
        w, h, fps = ff.even(first.width), ff.even(first.height), first.fps
        durations = [i.duration for i in infos]
        fades = []
        if args.transition == "crossfade":  # a third of the shorter clip at most
            fades = [
                min(CROSSFADE, a / 3, b / 3) for a, b in zip(durations, durations[1:], strict=False)
            ]
        total = sum(durations) - sum(fades)
        ff.check_output_seconds(total, ctx.settings)
        with_audio = any(i.has_audio for i in infos)
        notes = [n for art, i in zip(clips, infos, strict=True) for n in vfr_notes(art, i)]
        graph = []
        for k, (art, info) in enumerate(zip(clips, infos, strict=True)):
            d = info.duration
            if (info.width, info.height) != (w, h):
                notes.append(f"{art.label()} ({info.width}x{info.height}) was fitted to {w}x{h}")
            graph.append(
                f"[{k}:v:0]setpts=PTS-STARTPTS,scale={w}:{h}:force_original_aspect_ratio="
                f"decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,{ff.cfr_filter(fps)},"
                f"format=yuv420p,tpad=stop=-1:stop_mode=clone,trim=duration={d}[v{k}]"
            )
            if with_audio and info.has_audio:
                graph.append(
                    f"[{k}:a:0]asetpts=PTS-STARTPTS,{NORMAL_AUDIO},"
                    f"apad=whole_dur={d},atrim=duration={d}[a{k}]"
                )
            elif with_audio:
                notes.append(f"{art.label()} has no sound; silence fills its part")
                graph.append(f"anullsrc=r={AUDIO_RATE}:cl=stereo:d={d},{NORMAL_AUDIO}[a{k}]")
        if fades:
            v, a, length = "v0", "a0", durations[0]
            for k, fade in enumerate(fades, 1):
                graph.append(
                    f"[{v}][v{k}]xfade=transition=fade:duration={fade:.6f}:"
                    f"offset={length - fade:.6f}[xv{k}]"
                )
                if with_audio:
                    graph.append(f"[{a}][a{k}]acrossfade=d={fade:.6f}[xa{k}]")
                v, a, length = f"xv{k}", f"xa{k}", length + durations[k] - fade
        else:
            pads = "".join(f"[v{k}]" + (f"[a{k}]" if with_audio else "") for k in range(len(clips)))
            outs = "[xv][xa]" if with_audio else "[xv]"
            graph.append(f"{pads}concat=n={len(clips)}:v=1:a={int(with_audio)}{outs}")
            v, a = "xv", "xa"
        maps = ["-map", f"[{v}]"] + (["-map", f"[{a}]", *ff.AAC_ARGS] if with_audio else [])
        inputs = [x for art in clips for x in ("-i", art.path)]
        name = f"{stem(clips[0])}-joined.mp4"
        ctx.report(0.0, f"joining {len(clips)} clips")
        with vio.workdir() as tmp:
            out = tmp / name
            ff.run_ffmpeg(
                [
                    *inputs,
                    "-filter_complex",
                    ";".join(graph),
                    *maps,
                    *ff.x264_args(ctx.settings),
                    *ff.MP4_ARGS,
                ]
                + [str(out)],
                "joining the clips",
                ctx.settings,
                ctx=ctx,
                seconds=total,
            )
            ctx.check_cancelled()
            art, info = vio.store_video(
                ctx, out, name, sources=[c.id for c in clips], transition=args.transition
            )
        ctx.report(1.0, "joined")
        data = {**video_facts(info, notes), "clips": len(clips), "transition": args.transition}
        if fades:
            data["overlap"] = round(sum(fades), 6)
        return ToolResult(
            artifacts=[art],
            data=data,
            summary=f"joined {len(clips)} clips into {info.duration:.2f}s at {w}x{h}"
            + (" with crossfades" if fades else ""),
        )


class AddAudioArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: VideoInput
    audio: AudioInput
    mode: Literal["replace", "mix"] = Field(
        "replace", description="replace the soundtrack or mix with it"
    )
    volume: float = Field(1.0, ge=0, le=4, description="gain of the added audio")


class AddAudio(Tool):
    name = "add_audio"
    description = "Put an audio clip on a video: replace its soundtrack, or mix it in."
    inputs = AddAudioArgs
    outputs = (Modality.VIDEO,)

    def run(self, args: AddAudioArgs, ctx: ToolContext) -> ToolResult:
        info = vio.probe(args.video, ctx.settings)
        sound = audio_info(args.audio.path, args.audio.label(), ctx.settings)
        d, mode, notes = info.duration, args.mode, vfr_notes(args.video, info)
        if mode == "mix" and not info.has_audio:
            mode = "replace"
            notes.append(f"{args.video.label()} had no soundtrack, so the audio was put on as is")
        if sound["duration"] < d - 0.01:
            notes.append(
                f"the audio ({sound['duration']:.2f}s) was padded with silence to {d:.2f}s"
            )
        elif sound["duration"] > d + 0.01:
            notes.append(f"the audio ({sound['duration']:.2f}s) was cut to the video's {d:.2f}s")
        fit = f"apad=whole_dur={d},atrim=duration={d}"
        graph = f"[1:a:0]asetpts=PTS-STARTPTS,{NORMAL_AUDIO},volume={args.volume:g},{fit}"
        if mode == "mix":
            graph = (
                f"[0:a:0]asetpts=PTS-STARTPTS,{NORMAL_AUDIO},{fit}[old];{graph}[new];"
                "[old][new]amix=inputs=2:duration=longest:dropout_transition=0:normalize=0"
            )
        copy = info.codec == "h264" and not info.variable_frame_rate
        if copy:
            video = ["-map", "0:v:0", "-c:v", "copy"]
        else:
            graph = f"[0:v:0]{ff.cfr_filter(info.fps)}[v];{graph}"
            video = ["-map", "[v]", *ff.x264_args(ctx.settings)]
        name = f"{stem(args.video)}-{'mixed' if mode == 'mix' else 'with-audio'}.mp4"
        ctx.report(0.0, f"{'mixing' if mode == 'mix' else 'putting'} {args.audio.label()} on")
        with vio.workdir() as tmp:
            out = tmp / name
            ff.run_ffmpeg(
                ["-i", args.video.path, "-i", args.audio.path, "-filter_complex", graph + "[a]"]
                + [*video, "-map", "[a]", *ff.AAC_ARGS, "-t", f"{d:.6f}", *ff.MP4_ARGS, str(out)],
                "putting the audio on the video",
                ctx.settings,
                ctx=ctx,
                seconds=d,
            )
            ctx.check_cancelled()
            art, out_info = vio.store_video(
                ctx, out, name, source=args.video.id, audio_source=args.audio.id, mode=mode
            )
        ctx.report(1.0, "done")
        data = {**video_facts(out_info, notes), "mode": mode, "video_stream": "copied"}
        if not copy:
            data["video_stream"] = "re-encoded"
        verb = "mixed" if mode == "mix" else "replaced the soundtrack of"
        return ToolResult(
            artifacts=[art],
            data=data,
            summary=f"{verb} {args.video.label()} with {args.audio.label()} ({d:.2f}s)",
        )


SlideshowAudio = artifact_input(Modality.AUDIO, description="a soundtrack or voiceover")


class SlideshowArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: list[ImageInput] = Field(
        min_length=1, max_length=500, description="the images, in order"
    )
    audio: SlideshowAudio | None = None  # type: ignore[valid-type]
    seconds_per_image: float = Field(
        3.0,
        ge=0.2,
        le=60,
        description="how long each image shows (default: fit the audio, else 3 s)",
    )
    transition: Literal["none", "crossfade"] = Field("crossfade", description="how images change")
    fps: int = Field(24, ge=1, le=60, description="frames per second")


class Slideshow(Tool):
    name = "slideshow"
    description = (
        "Make a video that shows images one after another, optionally over an audio track."
    )
    inputs = SlideshowArgs
    outputs = (Modality.VIDEO,)

    def run(self, args: SlideshowArgs, ctx: ToolContext) -> ToolResult:
        from PIL import ImageOps

        images: list[Artifact] = list(args.images)
        with open_image(images[0], ctx.settings) as img:
            w0, h0 = ImageOps.exif_transpose(img).size
        for art in images[1:]:  # refuse a broken image before any work
            open_image(art, ctx.settings).close()
        scale = min(1.0, 1920 / max(w0, h0))
        canvas = (ff.even(round(w0 * scale)), ff.even(round(h0 * scale)))
        n, fps = len(images), args.fps
        notes: list[str] = []
        sound = None
        if args.audio is not None:
            sound = audio_info(args.audio.path, args.audio.label(), ctx.settings)
        if sound is not None and "seconds_per_image" not in args.model_fields_set:
            per = sound["duration"] / n  # spread the narration over the images, never cut it
        else:
            per = args.seconds_per_image
        if per * fps < 1:
            raise ToolError(
                f"{n} images over {n * per:.2f}s would show each for less than one frame at "
                f"{fps} fps; use fewer images or a longer audio"
            )
        total = max(n * per, sound["duration"] if sound else 0.0)
        if sound is not None and sound["duration"] < n * per - 0.01:
            notes.append(f"the audio ends at {sound['duration']:.2f}s; silence after it")
        elif sound is not None and sound["duration"] > n * per + 0.01:
            notes.append(f"the last image is held until the audio ends at {total:.2f}s")
        ff.check_output_seconds(total, ctx.settings)
        fade = min(CROSSFADE, per / 3) if args.transition == "crossfade" and n > 1 else 0.0
        count = max(1, round(total * fps))
        frames = _slides(images, ctx.settings, canvas, per, fade, fps, count)
        name = f"{stem(images[0], 'slideshow')}-slideshow.mp4"
        ctx.report(0.0, f"making a slideshow of {n} images")
        with vio.workdir() as tmp:
            out, track = tmp / name, None
            if args.audio is not None:
                track = tmp / "soundtrack.wav"
                ff.run_ffmpeg(
                    ["-i", args.audio.path, "-map", "0:a:0", "-af", f"apad=whole_dur={total}"]
                    + ["-t", f"{total:.6f}", "-c:a", "pcm_s16le", str(track)],
                    "reading the audio",
                    ctx.settings,
                    ctx=ctx,
                )
                ctx.check_cancelled()
            ff.encode_frames(frames, out, fps, ctx.settings, audio=track, ctx=ctx, total=count)
            art, info = vio.store_video(
                ctx,
                out,
                name,
                sources=[a.id for a in images],
                **({"audio_source": args.audio.id} if args.audio is not None else {}),
                seconds_per_image=round(per, 6),
                transition=args.transition,
            )
        ctx.report(1.0, "done")
        data = {**video_facts(info, notes), "images": n, "seconds_per_image": round(per, 6)}
        return ToolResult(
            artifacts=[art],
            data=data,
            summary=f"made a {info.duration:.2f}s slideshow of {n} images, {per:.2f}s each"
            + (f", over {args.audio.label()}" if args.audio is not None else ""),
        )


def _fit(art: Artifact, settings: ToolSettings, canvas: tuple[int, int]) -> Any:
    """The image scaled to fit ``canvas``, centred on black (letterboxed), as an RGB array."""
    import numpy as np
    from PIL import Image, ImageOps

    with open_image(art, settings) as opened:
        img = ImageOps.exif_transpose(opened).convert("RGB")
    w, h = img.size
    scale = min(canvas[0] / w, canvas[1] / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    board = Image.new("RGB", canvas)
    board.paste(
        img.resize(size, Image.Resampling.LANCZOS),
        ((canvas[0] - size[0]) // 2, (canvas[1] - size[1]) // 2),
    )
    return np.asarray(board)


def _slides(
    images: list[Artifact],
    settings: ToolSettings,
    canvas: tuple[int, int],
    per: float,
    fade: float,
    fps: int,
    count: int,
) -> Iterator[Any]:
    """The slideshow's frames: image k from ``k * per`` seconds, the last one held; with a
    ``fade``, each change is a crossfade centred on the boundary. Images are loaded as they
    come up (two at a time), so 500 large photos never sit in memory together."""
    import numpy as np

    cache: dict[int, Any] = {}

    def image(k: int) -> Any:
        if k not in cache:
            for old in [j for j in cache if j < k - 1]:
                del cache[old]
            cache[k] = _fit(images[k], settings, canvas)
        return cache[k]

    n = len(images)
    for f in range(count):
        t = f / fps
        k = round(t / per)  # the nearest boundary
        if fade and 1 <= k < n and abs(t - k * per) < fade / 2:
            alpha = (t - (k * per - fade / 2)) / fade
            yield (image(k - 1) * (1 - alpha) + image(k) * alpha).round().astype(np.uint8)
        else:
            yield image(min(n - 1, math.floor(t / per + 1e-9)))


concat_videos = ConcatVideos()
add_audio = AddAudio()
slideshow = Slideshow()
