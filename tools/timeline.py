"""A video's timeline: keyframes captioned by the vision-language model and the soundtrack
transcribed, merged by time into text the planner and the user read.

Keyframes are picked under a budget (``tools.video.keyframes``; tools/keyframes.py), stored as
images and captioned by the vision-language model (tools/vision.py); the soundtrack's speech is
transcribed by the transcribe tool's recognizer (tools/asr.py). The text has lines such as
``[00:03] frame: ...`` and ``[00:02-00:05] speech: ...`` under a one-line header and stays within
a few thousand characters (captions and speech are shortened to fit, and a note says so) to keep
a small planner's context small; ``data_of`` keeps the whole timeline.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tools import asr
from tools import keyframes as kf
from tools import video_io as vio
from tools.artifact import Artifact, slug
from tools.base import Cancelled, ToolContext
from tools.errors import ToolError
from tools.models import manager_of
from tools.vision import look

CAPTION_SIDE = 768
"""Longest side of the keyframes stored and captioned."""
FRAME_CHARS = 2400
"""Characters all captions may take together in the text."""
CAPTION_CHARS = {"brief": 160, "detailed": 400}
"""Longest caption of one frame in the text, by detail."""
MIN_CAPTION_CHARS = 60
"""Shortest a caption is cut to, however many frames share ``FRAME_CHARS``."""
SPEECH_CHARS = 1200
"""Characters the speech lines may take together in the text."""
SEGMENT_CHARS = 240
"""Longest speech line in the text."""
LINE_CHARS = 24
"""What a speech line takes besides its text: '[00:00-00:05] speech: ' and the newline."""

Status = Literal["speech", "no speech", "no audio track", "not transcribed"]
AUDIO_LINE: dict[str, str] = {
    "no speech": "yes, no speech found",
    "no audio track": "no audio track",
    "not transcribed": "yes, not transcribed (see notes)",
}


@dataclass
class Frame:
    keyframe: kf.Keyframe
    image: Artifact
    caption: str = ""

    @property
    def time(self) -> float:
        return self.keyframe.time


@dataclass
class Speech:
    status: Status
    segments: list[dict[str, Any]] = field(default_factory=list)
    language: str | None = None
    model: str | None = None


@dataclass
class Timeline:
    """What describe_video and ask_video know about a video."""

    video: Artifact
    info: vio.VideoInfo
    frames: list[Frame]
    speech: Speech
    candidates: kf.Candidates
    vision_model: str | None
    notes: list[str]

    @property
    def scene_changes(self) -> list[float]:
        return [f.time for f in self.frames if f.keyframe.reason == kf.SCENE]

    @property
    def precise(self) -> bool:
        """Short clips show tenths of a second, so nearby frames have distinct times."""
        return self.info.duration < 60

    def span(self, start: float, end: float | None = None) -> str:
        first = stamp(start, self.precise)
        return f"[{first}]" if end is None else f"[{first}-{stamp(end, self.precise)}]"

    def entries(self) -> list[dict[str, Any]]:
        """Frames and speech segments in time order (a frame first at equal times)."""
        items: list[dict[str, Any]] = [
            dict(start=f.time, end=f.time, kind="frame", text=f.caption, image=f.image.id)
            for f in self.frames
        ]
        items += [s | {"kind": "speech", "image": None} for s in self.speech.segments]
        items.sort(key=lambda e: (e["start"], e["kind"] != "frame"))
        return [e | {"start": round(e["start"], 3), "end": round(e["end"], 3)} for e in items]


def stamp(seconds: float, precise: bool = False) -> str:
    """'01:05' (whole seconds gone by, as players show), '1:01:05' from an hour on;
    ``precise`` adds tenths ('00:03.5')."""
    if precise:
        return asr.clock(seconds)
    hours, rest = divmod(int(seconds + 1e-6), 3600)
    text = f"{rest // 60:02d}:{rest % 60:02d}"
    return f"{hours}:{text}" if hours else text


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    head = flat[: limit - 1]
    return (head.rsplit(" ", 1)[0] if " " in head else head).rstrip(" ,;:") + "…"


def stem_of(art: Artifact) -> str:
    return slug(Path(art.name).stem, "video") if art.name else "video"


# --- building the timeline -------------------------------------------------------------------


def select_frames(
    ctx: ToolContext, art: Artifact, info: vio.VideoInfo, budget: int
) -> tuple[list[Frame], kf.Candidates]:
    """Keyframes of ``art``, decoded at ``CAPTION_SIDE`` and stored as images."""
    from PIL import Image

    skip = kf.may_skip(info.fps, info.variable_frame_rate)
    cands = kf.scan(
        art.path,
        info.duration,
        label=art.label(),
        skip_nonref=skip,
        check=ctx.check_cancelled,
        progress=lambda f, m: ctx.report(0.8 * f, m),
    )
    duration = max(info.duration, cands.times[-1])
    min_gap = max(cands.interval, duration / (4 * budget))
    threshold = ctx.settings.video.scene_threshold
    chosen = kf.choose(cands.times, cands.scores, duration, budget, threshold, min_gap)
    ctx.report(0.8, f"decoding {len(chosen)} keyframes")
    times = [k.time for k in chosen]
    grabbed = vio.seek_frames(
        art.path, times, max_side=CAPTION_SIDE, skip_nonref=skip, label=art.label()
    )
    by_time: dict[float, tuple[kf.Keyframe, Any]] = {}
    for k, (t, rgb) in zip(chosen, grabbed, strict=True):
        known = by_time.get(round(t, 6))  # two times can show one frame (a very short clip)
        if known is None or (k.reason == kf.SCENE and known[0].reason != kf.SCENE):
            by_time[round(t, 6)] = (dataclasses.replace(k, time=t), rgb)
    frames = []
    for k, rgb in (by_time[t] for t in sorted(by_time)):
        meta = {"time": round(k.time, 3), "source": art.id, "source_step": ctx.step_id}
        image = ctx.store.add_image(
            Image.fromarray(rgb),
            name=f"{stem_of(art)}-t{k.time:.2f}.png",
            save_options={"compress_level": 1},  # zlib level 1: 4x faster than 6, 10% larger
            metadata=meta | {"reason": k.reason},
        )
        frames.append(Frame(k, image))
    return frames, cands


def vision_available(ctx: ToolContext, notes: list[str]) -> bool:
    """Whether the vision-language model can load; if not, a note says why and how to get
    one, and the timeline goes on with the keyframes and the speech (a fresh install has no
    vision-language weights)."""
    from tools.vision import SETTING, vision_model
    from tools.vlm import check_available

    spec = vision_model(ctx)
    try:
        check_available(spec, ctx.models, SETTING)
    except ToolError as exc:
        notes.append(f"the frames are not captioned: no vision-language model ({exc})")
        return False
    return True


def caption_frames(ctx: ToolContext, frames: list[Frame], detail: str, precise: bool) -> str:
    """Caption every frame with the vision-language model; returns the model's name."""
    task: Literal["brief", "detailed"] = "detailed" if detail == "detailed" else "brief"
    n = len(frames)
    limit = max(MIN_CAPTION_CHARS, min(CAPTION_CHARS[task], FRAME_CHARS // max(1, n)))
    model = ""
    for i, frame in enumerate(frames):
        ctx.check_cancelled()
        label = f"captioning frame {i + 1}/{n} at {stamp(frame.time, precise)}"
        text, model = look(ctx.phase(i / n, (i + 1) / n, label, stream=False), frame.image, task)
        frame.caption = shorten(text, limit)
    return model


def transcribe_soundtrack(
    ctx: ToolContext, art: Artifact, info: vio.VideoInfo, notes: list[str]
) -> Speech:
    """The soundtrack's speech, with the transcribe tool's recognizer and language choice.
    No audio track, no speech, or no recognizer installed is a note, not an error: the frames
    still tell what the video shows."""
    if not info.has_audio:
        return Speech("no audio track")
    spec = ctx.settings.audio.recognizer
    try:
        ctx.report(0.0, "decoding the soundtrack")
        samples = asr.load_samples(art, ctx)
        ctx.report(0.01, f"loading {spec}")  # choose_model goes on at 0.02
        choice = asr.choose_model(ctx, asr.load_recognizer(ctx, spec), None, samples, notes)
        if choice is None:
            notes.append("the soundtrack holds no speech")
            return Speech("no speech")
        seconds = max(len(samples) / asr.SAMPLE_RATE, 1e-3)
        segments = []
        for seg in asr.recognize(ctx, choice.rec, samples, choice.language, notes):
            ctx.check_cancelled()
            if seg["text"]:
                segments.append({k: seg[k] for k in ("start", "end", "text")})
                ctx.report(0.1 + 0.9 * seg["end"] / seconds, f"speech to {stamp(seg['end'])}")
    except Cancelled:
        raise
    except (ToolError, ValueError) as exc:  # ValueError: a language the model does not know
        notes.append(f"the soundtrack was not transcribed: {exc}")
        return Speech("not transcribed")
    if not segments:
        notes.append("the soundtrack holds no speech")
        return Speech("no speech", model=choice.rec.spec)
    return Speech("speech", segments, choice.language, choice.rec.spec)


def build_timeline(
    ctx: ToolContext, art: Artifact, *, detail: str, budget: int | None, captions: bool = True
) -> Timeline:
    """Probe ``art``, pick and store its keyframes, caption them (unless ``captions`` is
    false) and transcribe its speech. Progress: 0..0.95 with captions, else 0..0.6."""
    ctx.report(0.0, f"reading {art.label()}")
    info = vio.probe(art, ctx.settings)
    work = dataclasses.replace(ctx, models=manager_of(ctx))  # the VLM loads once, not per frame
    notes = ["variable frame rate: frames are placed by their timestamps"]
    notes = notes if info.variable_frame_rate else []
    budget = budget or ctx.settings.video.keyframes
    keyframes = work.phase(0.02, 0.3, "keyframes", stream=False)
    frames, cands = select_frames(keyframes, art, info, budget)
    precise = info.duration < 60
    model = None
    if captions and not vision_available(work, notes):
        captions = False
    if captions:
        model = caption_frames(work.phase(0.3, 0.75, stream=False), frames, detail, precise)
        speech_phase = work.phase(0.75, 0.95, "speech", stream=False)
    else:
        speech_phase = work.phase(0.3, 0.6, stream=False)
    speech = transcribe_soundtrack(speech_phase, art, info, notes)
    return Timeline(art, info, frames, speech, cands, model, notes)


# --- the text --------------------------------------------------------------------------------


def plural(n: int, noun: str) -> str:
    """'1 keyframe', '2 keyframes'."""
    return f"{n} {noun}" + ("s" if n != 1 else "")


def header(tl: Timeline) -> str:
    """One line of facts: length, size, rate, audio, keyframes and scene changes."""
    info, speech = tl.info, tl.speech
    rate = f"{info.fps:g} fps" + (", variable frame rate" if info.variable_frame_rate else "")
    audio = AUDIO_LINE.get(speech.status) or f"yes, speech in {asr.language_name(speech.language)}"
    scenes = len(tl.scene_changes)
    return (
        f"Video {tl.video.label()}: {info.duration:.1f} s, {info.width}x{info.height}, {rate}; "
        f"audio: {audio}; {plural(len(tl.frames), 'keyframe')}, {plural(scenes, 'scene change')}."
    )


def shown_speech(segments: list[dict[str, Any]], notes: list[str]) -> list[dict[str, Any]]:
    """Speech lines within ``SPEECH_CHARS``: each cut to ``SEGMENT_CHARS``; if still too many,
    lines evenly spread over the whole video (so the end is not lost), with a note."""
    lines = [s | {"text": shorten(s["text"], SEGMENT_CHARS)} for s in segments]

    def size(chosen: list[dict[str, Any]]) -> int:
        return sum(len(s["text"]) + LINE_CHARS for s in chosen)

    if size(lines) <= SPEECH_CHARS:
        return lines
    picked = lines[:1]
    for keep in range(min(len(lines) - 1, SPEECH_CHARS // LINE_CHARS), 1, -1):
        picked = [lines[round(i * (len(lines) - 1) / (keep - 1))] for i in range(keep)]
        if size(picked) <= SPEECH_CHARS:
            break
    notes.append(
        f"transcript shortened: {len(picked)} of {len(lines)} speech segments shown (data "
        "has them all; the transcribe tool gives the full text)"
    )
    return picked


def render(tl: Timeline, notes: list[str]) -> str:
    """The header and the timeline, frames and speech interleaved by time, within the
    character budget; what was shortened is added to ``notes``."""
    items = [
        (f.time, 0, f"{tl.span(f.time)} frame: {f.caption or '(not captioned)'}") for f in tl.frames
    ]
    items += [
        (s["start"], 1, f"{tl.span(s['start'], s['end'])} speech: {s['text']}")
        for s in shown_speech(tl.speech.segments, notes)
    ]
    silent = ["(no audio track)"] if tl.speech.status == "no audio track" else []
    return "\n".join([header(tl), "", *silent, *(text for _, _, text in sorted(items))])


def with_notes(text: str, notes: list[str]) -> str:
    return text + ("\n\nNotes: " + "; ".join(notes) if notes else "")


def data_of(tl: Timeline, notes: list[str]) -> dict[str, Any]:
    """The structured timeline for callers: every frame and speech segment, unshortened."""
    speech, cands = tl.speech, tl.candidates
    return {
        "timeline": tl.entries(),
        "keyframes": [f.keyframe.to_dict() | {"image": f.image.id} for f in tl.frames],
        "scene_changes": [round(t, 3) for t in tl.scene_changes],
        "transcript": {
            "status": speech.status,
            "language": speech.language,
            "text": " ".join(s["text"] for s in speech.segments),
            "segments": speech.segments,
        },
        "models": {"vision": tl.vision_model, "speech": speech.model},
        "video": tl.info.to_dict(),
        "candidates": {
            "count": len(cands.times),
            "interval": round(cands.interval, 3),
            "keyframes_only": cands.keyframes_only,
        },
        "notes": notes,
    }
