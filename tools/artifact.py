"""Artifacts: content-addressed files of one modality, kept in a per-session store."""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import re
import shutil
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tools.errors import ToolError


def slug(text: str, fallback: str) -> str:
    """A file-name stem from free text: lower-case ASCII words joined by '-', at most 40
    characters; ``fallback`` when nothing is left ('a red fox!' -> 'a-red-fox')."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or fallback


class Modality(StrEnum):
    """The kinds of content anymodal moves between tools."""

    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    MESH = "mesh"
    FILE = "file"  # anything else (a PDF, a zip): kept, not interpreted


_MESH_EXTS = {
    ".glb",
    ".gltf",
    ".ply",
    ".obj",
    ".stl",
    ".off",
    ".fbx",
    ".dae",
    ".3mf",
    ".3ds",
    ".blend",
}
"""Mesh suffixes: the formats tools/mesh_io.py reads, and common ones it names as unread."""
_EXTRA_MIME = {
    "model/gltf-binary": ".glb",
    "model/gltf+json": ".gltf",
    "model/stl": ".stl",
    "model/obj": ".obj",
    "application/x-ply": ".ply",
    "audio/flac": ".flac",
    "audio/x-flac": ".flac",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/mp4": ".m4a",
    "audio/x-m4a": ".m4a",
    "image/webp": ".webp",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "application/json": ".json",
}


def modality_of(mime: str, suffix: str = "") -> Modality:
    """Map a mime type (and a file suffix, for meshes) to a modality."""
    major = mime.split("/", 1)[0]
    if suffix.lower() in _MESH_EXTS or major == "model":
        return Modality.MESH
    if major in ("image", "audio", "video", "text"):
        return Modality(major)
    if mime in ("application/json", "application/x-ndjson"):
        return Modality.TEXT
    return Modality.FILE


_CANONICAL_MIME = {
    "audio/x-wav": "audio/wav",
    "audio/x-flac": "audio/flac",
    "audio/x-m4a": "audio/mp4",
}


def sniff_mime(data: bytes, name: str = "") -> str:
    """Guess a mime type from the bytes first, the file name second."""
    import filetype

    kind = filetype.guess(data[:8192])
    if kind is not None:
        mime = _CANONICAL_MIME.get(kind.mime, kind.mime)
        if mime == "video/mp4" and name.lower().endswith((".m4a", ".aac")):
            mime = "audio/mp4"
        return mime
    suffix = Path(name).suffix.lower()
    if suffix in _MESH_EXTS:
        return {
            ".glb": "model/gltf-binary",
            ".gltf": "model/gltf+json",
            ".stl": "model/stl",
            ".obj": "model/obj",
            ".ply": "application/x-ply",
        }.get(suffix, "model/mesh")
    guessed, _ = mimetypes.guess_type(name) if name else (None, None)
    if guessed:
        return guessed
    head = data[:65536]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Our cut may split a multi-byte character at the very end: that is still text.
        if len(data) <= len(head) or exc.start < len(head) - 4:
            return "application/octet-stream"
    if b"\x00" in head:
        return "application/octet-stream"
    return "text/plain"


def extension_for(mime: str, name: str = "") -> str:
    """Pick a file extension: the original one if it agrees with the mime type."""
    suffix = Path(name).suffix.lower()
    if suffix and (mimetypes.guess_type("x" + suffix)[0] == mime or suffix in _MESH_EXTS):
        return suffix
    return _EXTRA_MIME.get(mime) or mimetypes.guess_extension(mime) or suffix or ".bin"


class Artifact(BaseModel):
    """One piece of content: a content-addressed file plus what is known about it."""

    model_config = ConfigDict(frozen=True)

    id: str
    """sha256 of the file's bytes (hex)."""
    modality: Modality
    """What kind of content this is."""
    mime: str
    """Mime type, sniffed from the bytes."""
    path: str
    """Absolute path of the file in the session's artifact store."""
    name: str = ""
    """A human name: the original file name, or one the producing tool chose."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Facts: size, width/height, duration, sample_rate, frames, prompt, seed, source_step."""

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def read_bytes(self) -> bytes:
        return Path(self.path).read_bytes()

    def read_text(self) -> str:
        return Path(self.path).read_text(encoding="utf-8")

    def label(self) -> str:
        """How the artifact is named in messages: its name, else its modality and short id."""
        return self.name or f"{self.modality.value}:{self.short_id}"

    def with_metadata(self, **extra: Any) -> Artifact:
        return self.model_copy(update={"metadata": {**self.metadata, **extra}})


class ArtifactStore:
    """A folder of content-addressed files: ``<root>/<id[:2]>/<id><ext>``.

    Writing the same bytes twice yields the same id and one file. Files are written to a
    temporary name and renamed, so a killed process never leaves a half-written artifact.
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def _final_path(self, digest: str, ext: str) -> Path:
        return self.root / digest[:2] / f"{digest}{ext}"

    def add_bytes(
        self,
        data: bytes,
        *,
        name: str = "",
        mime: str | None = None,
        modality: Modality | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Artifact:
        digest = hashlib.sha256(data).hexdigest()
        mime = mime or sniff_mime(data, name)
        ext = extension_for(mime, name)
        path = self._final_path(digest, ext)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        meta = {"size": len(data), **(metadata or {})}
        return Artifact(
            id=digest,
            modality=modality or modality_of(mime, Path(name).suffix),
            mime=mime,
            path=str(path),
            name=Path(name).name,
            metadata=meta,
        )

    def add_file(self, path: Path | str, **kwargs: Any) -> Artifact:
        """Copy a file into the store. Raises ``ToolError`` if it is missing or unreadable."""
        src = Path(path).expanduser()
        if not src.is_file():
            raise ToolError(f"file not found: {src}; check the path and try again")
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise ToolError(f"cannot read {src}: {exc.strerror}") from exc
        kwargs.setdefault("name", src.name)
        return self.add_bytes(data, **kwargs)

    def add_text(self, text: str, *, name: str = "text.txt", **kwargs: Any) -> Artifact:
        kwargs.setdefault("metadata", {})
        kwargs["metadata"] = {"chars": len(text), **kwargs["metadata"]}
        mime = "text/markdown" if name.endswith(".md") else "text/plain"
        return self.add_bytes(
            text.encode("utf-8"), name=name, mime=mime, modality=Modality.TEXT, **kwargs
        )

    def add_image(
        self,
        image: Any,
        *,
        name: str = "image.png",
        format: str | None = None,
        save_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Artifact:
        """Encode a PIL image (PNG unless the name or ``format`` says otherwise);
        ``save_options`` go to PIL's ``save`` (``{"compress_level": 1}`` for a fast PNG)."""
        fmt = (format or Path(name).suffix.lstrip(".") or "png").upper()
        fmt = {"JPG": "JPEG", "TIF": "TIFF"}.get(fmt, fmt)
        buf = io.BytesIO()
        img = image
        if fmt == "JPEG" and img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        img.save(buf, format=fmt, **(save_options or {}))
        meta = {
            "width": image.width,
            "height": image.height,
            "mode": img.mode,
            **kwargs.pop("metadata", {}),
        }
        return self.add_bytes(
            buf.getvalue(), name=name, modality=Modality.IMAGE, metadata=meta, **kwargs
        )

    def add_audio(
        self, samples: Any, sample_rate: int, *, name: str = "audio.wav", **kwargs: Any
    ) -> Artifact:
        """Encode a float waveform, shape (frames,) or (frames, channels), as WAV/FLAC/OGG."""
        from tools.audio_io import encode_audio

        data, meta = encode_audio(samples, sample_rate, Path(name).suffix or ".wav")
        meta.update(kwargs.pop("metadata", {}))
        return self.add_bytes(data, name=name, modality=Modality.AUDIO, metadata=meta, **kwargs)

    def get(self, artifact_id: str) -> Path | None:
        """Path of a stored artifact by full id or unique prefix (12+ hex), else None."""
        if len(artifact_id) < 12:
            return None
        folder = self.root / artifact_id[:2]
        if not folder.is_dir():
            return None
        hits = [p for p in folder.iterdir() if p.name.startswith(artifact_id)]
        return hits[0] if len(hits) == 1 else None

    def contains(self, path: Path | str) -> bool:
        """True when ``path`` lies inside this store (after resolving links)."""
        try:
            Path(path).resolve().relative_to(self.root.resolve())
        except ValueError:
            return False
        return True

    def copy_out(self, artifact: Artifact, folder: Path | str) -> Path:
        """Copy an artifact to ``folder`` under a readable, unique name."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stem = Path(artifact.name).stem or artifact.modality.value
        ext = Path(artifact.path).suffix
        target = folder / f"{stem}-{artifact.short_id[:8]}{ext}"
        shutil.copyfile(artifact.path, target)
        return target
