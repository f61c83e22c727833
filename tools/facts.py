"""Cheap facts about an artifact (dimensions, duration), read from headers, never decoding."""

from __future__ import annotations

import warnings
from typing import Any

from tools.artifact import Artifact, Modality


def probe(art: Artifact) -> dict[str, Any]:
    """Facts for state and the planner; a file that cannot be read gets ``unreadable``."""
    if art.modality is Modality.IMAGE:
        from PIL import Image

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(art.path) as img:
                    return {"width": img.width, "height": img.height, "format": img.format}
        except Exception as exc:
            return {"unreadable": f"{type(exc).__name__}: {exc}"}
    if art.modality is Modality.AUDIO:
        from tools.audio_io import audio_facts

        return audio_facts(art)
    if art.modality is Modality.VIDEO:
        from tools.video_io import facts

        return facts(art)
    if art.modality is Modality.MESH:
        from tools.mesh_io import facts as mesh_facts

        return mesh_facts(art)
    if art.modality is Modality.TEXT:
        try:
            return {"chars": len(art.read_text())}
        except UnicodeDecodeError:
            return {"unreadable": "not UTF-8 text"}
    return {}
