"""Model-free edits of one video with the bundled ffmpeg: take out the soundtrack or still
frames, change the speed, trim, stabilise, turn into a GIF. Joining clips, putting audio on a
video and slideshows live in tools/video_compose.py and are re-exported here, so every video
editing tool is ``tools.video_edit:NAME``.

Every tool probes its input first (tools/video_io.py: clear errors for empty, corrupt,
truncated or oversize files), works in a temporary folder that is removed even on failure,
and stores a video only after it probes as valid, so a failed encode leaves nothing behind.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools import ffmpeg as ff
from tools import video_io as vio
from tools.artifact import Artifact, Modality
from tools.base import (
    EndTime,
    StartTime,
    Tool,
    ToolContext,
    ToolResult,
    VideoInput,
    end_after_start,
    span_end,
)
from tools.errors import ToolError
from tools.video_compose import (
    add_audio,
    audio_info,
    concat_videos,
    slideshow,
    stem,
    vfr_notes,
    video_facts,
)

__all__ = [
    "add_audio",
    "change_speed",
    "concat_videos",
    "extract_audio",
    "extract_frames",
    "slideshow",
    "stabilize_video",
    "trim_video",
    "video_to_gif",
]

# Audio format -> (ffmpeg encoder options, the source codec that can be copied as is).
AUDIO_CODECS: dict[str, tuple[list[str], str]] = {
    "wav": (["-c:a", "pcm_s16le"], "pcm_s16le"),
    "flac": (["-c:a", "flac"], "flac"),
    "mp3": (["-c:a", "libmp3lame", "-q:a", "2"], "mp3"),
    "m4a": (ff.AAC_ARGS, "aac"),
    "ogg": (["-c:a", "libvorbis", "-q:a", "5"], "vorbis"),
}


class ExtractAudioArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: VideoInput
    format: Literal["wav", "flac", "mp3", "m4a", "ogg"] = Field(
        "wav", description="the file format"
    )


class ExtractAudio(Tool):
    name = "extract_audio"
    description = "Take the soundtrack out of a video as an audio clip."
    inputs = ExtractAudioArgs
    outputs = (Modality.AUDIO,)

    def run(self, args: ExtractAudioArgs, ctx: ToolContext) -> ToolResult:
        info = vio.probe(args.video, ctx.settings)
        vio.require_audio(args.video, info, "extract")
        encode, copyable = AUDIO_CODECS[args.format]
        copied = info.audio_codec == copyable
        name = f"{stem(args.video)}-audio.{args.format}"
        ctx.report(0.0, f"taking the soundtrack out of {args.video.label()}")
        with vio.workdir() as tmp:
            out = tmp / name
            codec = ["-c:a", "copy"] if copied else encode
            ff.run_ffmpeg(
                ["-i", args.video.path, "-map", "0:a:0", "-vn", *codec, str(out)],
                "extracting the audio",
                ctx.settings,
                ctx=ctx,
            )
            facts = audio_info(out, name, ctx.settings)
            art = ctx.store.add_file(
                out,
                name=name,
                modality=Modality.AUDIO,
                metadata={**facts, "source_step": ctx.step_id, "source": args.video.id},
            )
        ctx.report(1.0, "done")
        how = "copied" if copied else f"converted from {info.audio_codec}"
        return ToolResult(
            artifacts=[art],
            data={**facts, "format": args.format, "codec": how},
            summary=f"took the {facts['duration']:.2f}s soundtrack out of {args.video.label()} "
            f"as {args.format} ({how})",
        )


class ExtractFramesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: VideoInput
    count: int = Field(
        8, ge=1, le=500, description="how many evenly spaced frames ($s1.1, $s1.2, ...)"
    )
    every: float | None = Field(
        None, gt=0, description="one frame every this many seconds (instead of count)"
    )


class ExtractFrames(Tool):
    name = "extract_frames"
    description = (
        "Take still frames out of a video: a number of evenly spaced ones, or one every so "
        "many seconds."
    )
    inputs = ExtractFramesArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: ExtractFramesArgs, ctx: ToolContext) -> ToolResult:
        from PIL import Image

        info = vio.probe(args.video, ctx.settings)
        duration, limit = info.duration, ctx.settings.video.max_extract_frames
        n = math.ceil(duration / args.every - 1e-9) if args.every else args.count
        if n > limit:
            raise ToolError(
                f"that is {n} frames; the limit is {limit} a call "
                "(tools.video.max_extract_frames): ask for fewer, or a larger 'every'"
            )
        if args.every:
            times = [k * args.every for k in range(n)]
        else:  # the centres of equal spans, so the first is not a black leader
            times = [(k + 0.5) * duration / n for k in range(n)]
        ctx.report(0.0, f"taking {n} frames out of {args.video.label()}")
        arts: list[Artifact] = []
        shown: list[float] = []
        name = stem(args.video)
        for t, img in vio.iter_frames_at(args.video.path, times, label=args.video.label()):
            if shown and abs(t - shown[-1]) < 1e-6:
                continue  # two asked times fall on one frame
            ctx.check_cancelled()
            seconds = f"{t:.3f}".rstrip("0").rstrip(".")
            arts.append(
                ctx.store.add_image(
                    Image.fromarray(img),
                    name=f"{name}-t{seconds}.png",
                    metadata={
                        "time": round(t, 6),
                        "source": args.video.id,
                        "source_step": ctx.step_id,
                    },
                )
            )
            shown.append(t)
            ctx.report(len(arts) / n, f"frame {len(arts)}/{n}")
        if not arts:
            raise ToolError(f"no frame of {args.video.label()} could be decoded; it is corrupt")
        notes = []
        if len(arts) < n:
            notes.append(
                f"{args.video.label()} has only {len(arts)} distinct frames at those times"
            )
        ctx.report(1.0, "done")
        return ToolResult(
            artifacts=arts,
            data={"frames": len(arts), "times": [round(t, 6) for t in shown], "notes": notes},
            summary=f"took {len(arts)} frames out of {args.video.label()} "
            f"({shown[0]:.2f}s to {shown[-1]:.2f}s)",
        )


def atempo_chain(factor: float) -> str:
    """``atempo`` stages for any factor: each stage takes 0.5..2, so 8 is 2*2*2 and 0.1 is
    0.5*0.5*0.5*0.8; tempo changes keep the pitch."""
    stages = []
    while factor > 2:
        stages.append(2.0)
        factor /= 2
    while factor < 0.5:
        stages.append(0.5)
        factor /= 0.5
    stages.append(factor)
    return ",".join(f"atempo={s:.6g}" for s in stages)


class ChangeSpeedArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: VideoInput
    factor: float = Field(ge=0.1, le=16, description="2 is twice as fast, 0.5 half as fast")
    keep_audio: bool = Field(True, description="keep the soundtrack (pitch-corrected)")


class ChangeSpeed(Tool):
    name = "change_speed"
    description = "Speed a video up or slow it down (its sound follows)."
    inputs = ChangeSpeedArgs
    outputs = (Modality.VIDEO,)

    def run(self, args: ChangeSpeedArgs, ctx: ToolContext) -> ToolResult:
        info = vio.probe(args.video, ctx.settings)
        f = args.factor
        ff.check_output_seconds(info.duration / f, ctx.settings)
        notes = vfr_notes(args.video, info)
        graph = f"[0:v:0]setpts=(PTS-STARTPTS)/{f:.6g},{ff.cfr_filter(info.fps)}[v]"
        maps = ["-map", "[v]"]
        if args.keep_audio and info.has_audio:
            graph += f";[0:a:0]asetpts=PTS-STARTPTS,{atempo_chain(f)}[a]"
            maps += ["-map", "[a]", *ff.AAC_ARGS]
        elif args.keep_audio:
            notes.append(f"{args.video.label()} has no soundtrack")
        name = f"{stem(args.video)}-{f:g}x.mp4"
        ctx.report(0.0, f"changing the speed of {args.video.label()} by {f:g}x")
        with vio.workdir() as tmp:
            out = tmp / name
            ff.run_ffmpeg(
                ["-i", args.video.path, "-filter_complex", graph, *maps]
                + [*ff.x264_args(ctx.settings), *ff.MP4_ARGS, str(out)],
                "changing the speed",
                ctx.settings,
                ctx=ctx,
                seconds=info.duration / f,
            )
            ctx.check_cancelled()
            art, out_info = vio.store_video(ctx, out, name, source=args.video.id, factor=f)
        ctx.report(1.0, "done")
        return ToolResult(
            artifacts=[art],
            data={**video_facts(out_info, notes), "factor": f},
            summary=f"made {args.video.label()} {f:g}x as fast: {info.duration:.2f}s -> "
            f"{out_info.duration:.2f}s",
        )


class TrimVideoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: VideoInput
    start: StartTime = 0.0
    end: EndTime = None

    _order = model_validator(mode="after")(end_after_start)


class TrimVideo(Tool):
    name = "trim_video"
    description = "Keep the part of a video between start and end (in seconds)."
    inputs = TrimVideoArgs
    outputs = (Modality.VIDEO,)

    def run(self, args: TrimVideoArgs, ctx: ToolContext) -> ToolResult:
        info = vio.probe(args.video, ctx.settings)
        end = span_end(args, info.duration, args.video.label())
        if end - args.start < 1 / info.fps:
            raise ToolError(
                f"{args.start:g}s..{end:g}s is shorter than one frame at {info.fps:g} fps; "
                "keep a longer part"
            )
        name = f"{stem(args.video)}-{args.start:g}-{end:g}s.mp4"
        ctx.report(0.0, f"trimming {args.video.label()} to {args.start:g}s..{end:g}s")
        with vio.workdir() as tmp:
            out = tmp / name
            # Seeking the input while re-encoding is frame-accurate (a stream copy would start
            # at the keyframe before ``start``).
            ff.run_ffmpeg(
                ["-ss", f"{args.start:.6f}", "-i", args.video.path, "-t", f"{end - args.start:.6f}"]
                + [
                    "-map",
                    "0:v:0",
                    "-map",
                    "0:a:0?",
                    "-vf",
                    ff.cfr_filter(info.fps),
                    *ff.x264_args(ctx.settings),
                    *ff.AAC_ARGS,
                ]
                + [*ff.MP4_ARGS, str(out)],
                "trimming",
                ctx.settings,
                ctx=ctx,
                seconds=end - args.start,
            )
            ctx.check_cancelled()
            art, out_info = vio.store_video(
                ctx, out, name, source=args.video.id, start=args.start, end=end
            )
        ctx.report(1.0, "done")
        return ToolResult(
            artifacts=[art],
            data={
                **video_facts(out_info, vfr_notes(args.video, info)),
                "start": args.start,
                "end": end,
            },
            summary=f"trimmed {args.video.label()} to {args.start:g}s..{end:g}s "
            f"({out_info.duration:.2f}s)",
        )


class StabilizeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: VideoInput
    smoothing: int = Field(30, ge=1, le=100, description="how many frames to smooth over")


class StabilizeVideo(Tool):
    name = "stabilize_video"
    description = "Smooth out camera shake in a video."
    inputs = StabilizeArgs
    outputs = (Modality.VIDEO,)

    def run(self, args: StabilizeArgs, ctx: ToolContext) -> ToolResult:
        info = vio.probe(args.video, ctx.settings)
        notes = vfr_notes(args.video, info)
        if ff.has_filter("vidstabdetect") and ff.has_filter("vidstabtransform"):
            method = "vidstab"
        elif ff.has_filter("deshake"):
            method = "deshake"
            notes.append("vid.stab is missing, so deshake ran; it takes no smoothing amount")
        else:
            raise ToolError(
                "the bundled ffmpeg has neither the vidstab filters nor deshake, so it cannot "
                "stabilise video; reinstall imageio-ffmpeg (pip install -U imageio-ffmpeg) to "
                "get a full build"
            )
        name = f"{stem(args.video)}-stabilized.mp4"
        encode = ["-map", "0:a:0?", *ff.x264_args(ctx.settings), *ff.AAC_ARGS, *ff.MP4_ARGS]
        ctx.report(0.0, f"stabilising {args.video.label()} with {method}")
        with vio.workdir() as tmp:
            out = tmp / name
            if method == "vidstab":
                transforms = ff.filter_escape(str(tmp / "transforms.trf"))
                ff.run_ffmpeg(
                    ["-i", args.video.path, "-map", "0:v:0"]
                    + ["-vf", f"vidstabdetect=shakiness=5:accuracy=15:result={transforms}"]
                    + ["-f", "null", "-"],
                    "measuring the shake",
                    ctx.settings,
                    ctx=ctx,
                )
                ctx.check_cancelled()
                ctx.report(0.5, "measured the shake; smoothing it")
                smooth = (
                    f"vidstabtransform=input={transforms}:smoothing={args.smoothing}:"
                    "optzoom=1:interpol=bicubic,unsharp=5:5:0.8:3:3:0.4"
                )
            else:
                smooth = (
                    "deshake=rx=16:ry=16:edge=mirror:blocksize=16:contrast=64:search=exhaustive"
                )
            ff.run_ffmpeg(
                ["-i", args.video.path, "-map", "0:v:0"]
                + ["-vf", f"{smooth},{ff.cfr_filter(info.fps)}"]
                + [*encode, str(out)],
                "stabilising",
                ctx.settings,
                ctx=ctx,
                seconds=info.duration,
            )
            ctx.check_cancelled()
            art, out_info = vio.store_video(
                ctx, out, name, source=args.video.id, filter=method, smoothing=args.smoothing
            )
        ctx.report(1.0, "done")
        return ToolResult(
            artifacts=[art],
            data={**video_facts(out_info, notes), "filter": method},
            summary=f"stabilised {args.video.label()} with {method}",
        )


class GifArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: VideoInput
    fps: int = Field(10, ge=1, le=30, description="frames per second")
    width: int | None = Field(
        None, ge=16, le=1920, description="width in pixels (default: keep, at most 640)"
    )
    start: StartTime = 0.0
    end: EndTime = None

    _order = model_validator(mode="after")(end_after_start)


class VideoToGif(Tool):
    name = "video_to_gif"
    description = "Turn a video (or part of it) into an animated GIF."
    inputs = GifArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: GifArgs, ctx: ToolContext) -> ToolResult:
        info = vio.probe(args.video, ctx.settings)
        start, end = args.start, span_end(args, info.duration, args.video.label())
        fps = min(float(args.fps), info.fps)
        notes = [] if fps == args.fps else [f"the video has only {info.fps:g} frames a second"]
        frames, limit = math.ceil((end - start) * fps - 1e-6), ctx.settings.video.max_extract_frames
        if frames > limit:
            raise ToolError(
                f"the GIF would have {frames} frames; the limit is {limit} "
                "(tools.video.max_extract_frames): give a shorter start..end or a lower fps"
            )
        width = args.width or min(info.width, 640)
        name = f"{stem(args.video)}.gif"
        ctx.report(0.0, f"making a GIF of {args.video.label()}")
        with vio.workdir() as tmp:
            out = tmp / name
            size, count = ff.write_gif(
                args.video.path,
                out,
                ctx.settings,
                fps=fps,
                width=width,
                start=start,
                end=end,
                ctx=ctx,
            )
            facts = {"width": size[0], "height": size[1], "frames": count, "fps": fps}
            facts |= {"start": start, "end": end, "duration": round(end - start, 6)}
            meta = {**facts, "source": args.video.id, "source_step": ctx.step_id}
            art = ctx.store.add_file(out, name=name, modality=Modality.IMAGE, metadata=meta)
        ctx.report(1.0, "done")
        return ToolResult(
            artifacts=[art],
            data={**facts, "notes": notes},
            summary=f"made a {size[0]}x{size[1]} GIF of {count} frames from {args.video.label()}",
        )


extract_audio = ExtractAudio()
extract_frames = ExtractFrames()
change_speed = ChangeSpeed()
trim_video = TrimVideo()
stabilize_video = StabilizeVideo()
video_to_gif = VideoToGif()
