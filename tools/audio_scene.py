"""audio_to_image's scene: name what a sound is, then paint it.

The description comes from, in order:
1. the prompt the clip was generated from (generate_sound and generate_music keep it in the
   artifact's metadata), so "generate ocean waves, then paint what it sounds like" needs no
   classifier;
2. a zero-shot CLAP classifier (``tools.audio.audio_tagger``, transformers ``ClapModel``) that
   scores the clip against ``SOUND_SCENES``, phrases that are both sounds and pictures.
The picture is made by generate_image with its own settings, so its labelled sketch fallback
applies when no diffusion model is installed.
"""

from __future__ import annotations

from typing import Any

from tools.artifact import Artifact
from tools.base import ToolContext, ToolResult
from tools.errors import ToolError, require

SETTING = "tools.audio.audio_tagger"

SOUND_SCENES = (
    "rain falling on a window",
    "a thunderstorm",
    "wind blowing across an open field",
    "ocean waves breaking on a beach",
    "a river flowing through a forest",
    "birds singing in a forest",
    "frogs and insects on a summer night",
    "a crackling campfire",
    "a busy city street with traffic",
    "a train passing by",
    "an airplane flying overhead",
    "a car engine running",
    "a siren of an emergency vehicle",
    "church bells ringing",
    "a crowd cheering in a stadium",
    "people talking in a cafe",
    "a person giving a speech",
    "a baby crying",
    "a dog barking",
    "a cat meowing",
    "a horse galloping",
    "footsteps in a hallway",
    "a creaking wooden door",
    "a clock ticking",
    "typing on a keyboard in an office",
    "water running from a tap",
    "a piano playing in a concert hall",
    "an acoustic guitar by a campfire",
    "an orchestra playing on stage",
    "a rock band playing drums and electric guitars",
    "electronic dance music in a nightclub",
    "a quiet empty room",
)
"""What the tagger chooses from: each phrase names a sound and describes a scene to paint."""

TAG_WINDOWS = 6
"""Most windows (of the tagger's input length, ~10 s) scored per clip, spread evenly."""


def tag_sound(
    ctx: ToolContext, data: Any, rate: int, labels: tuple[str, ...] = SOUND_SCENES, top: int = 3
) -> list[tuple[str, float]]:
    """The ``top`` labels that best match the sound, with their probabilities.

    The clip is cut into windows of the tagger's input length and their embeddings averaged,
    so long clips are judged as a whole and the result is deterministic.
    """
    import numpy as np

    from tools.audio_ops import resample
    from tools.hf import load_pretrained

    torch = require("torch", "vlm")
    model, processor = load_pretrained(
        ctx, ctx.settings.audio.audio_tagger, SETTING, "audio tagger (CLAP)", "ClapModel"
    )
    extractor = processor.feature_extractor
    target = int(extractor.sampling_rate)
    mono = resample(np.asarray(data, dtype=np.float32).mean(axis=1, keepdims=True), rate, target)
    mono = mono[:, 0]
    size = int(extractor.nb_max_samples)
    starts = [0] if len(mono) <= size else np.linspace(0, len(mono) - size, TAG_WINDOWS)
    windows = [mono[int(s) : int(s) + size] for s in starts]
    inputs = processor(
        text=list(labels),
        audio=windows,
        sampling_rate=target,
        return_tensors="pt",
        padding=True,
    )
    inputs = {k: v.to(model.device) for k, v in inputs.items()}
    with torch.inference_mode():
        out = model(**inputs)
        audio = torch.nn.functional.normalize(out.audio_embeds.float().mean(dim=0), dim=-1)
        text = out.text_embeds.float()
        probs = (text @ audio * model.logit_scale_a.exp().float()).softmax(dim=-1)
    best = probs.argsort(descending=True)[:top]
    return [(labels[int(i)], round(float(probs[i]), 4)) for i in best]


def describe_sound(ctx: ToolContext, art: Artifact, data: Any, rate: int) -> dict[str, Any]:
    """What the clip sounds like, as a picture prompt, and where that came from."""
    prompt = art.metadata.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        return {"description": prompt.strip(), "described_by": "the prompt it was generated from"}
    try:
        tags = tag_sound(ctx, data, rate)
    except ToolError as exc:
        raise ToolError(
            f"a scene needs to know what {art.label()} sounds like, and the audio tagger "
            f"failed: {exc}. Install one (`anymodal models pull clap-htsat-unfused`, or set "
            f"{SETTING}), or ask for style 'spectrogram' or 'waveform'"
        ) from None
    label, p = tags[0]
    description = label
    if len(tags) > 1 and tags[1][1] >= 0.5 * p:  # a close second is part of the scene too
        description = f"{label}, with {tags[1][0]}"
    return {
        "description": description,
        "described_by": f"the audio tagger {ctx.settings.audio.audio_tagger}",
        "tags": [{"label": t, "probability": q} for t, q in tags],
    }


def paint_scene(
    ctx: ToolContext,
    art: Artifact,
    data: Any,
    rate: int,
    width: int | None,
    height: int | None,
    seed: int | None,
) -> ToolResult:
    """A picture of the scene the sound suggests, by generate_image (its fallback included)."""
    from tools.image_gen import GenerateImageArgs, generate_image

    found = describe_sound(ctx, art, data, rate)
    ctx.check_cancelled()
    prompt = f"{found['description']}, a detailed scene, natural light"
    args = GenerateImageArgs(prompt=prompt, width=width, height=height, seed=seed)
    made = generate_image.run(args, ctx)
    for image in made.artifacts:
        image.metadata.update(source=art.id, sound=found["description"])
    summary = f"painted what {art.label()} sounds like ({found['description']}): {made.summary}"
    data_out = {**made.data, **found, "style": "scene", "prompt": prompt}
    return ToolResult(artifacts=made.artifacts, data=data_out, summary=summary)
