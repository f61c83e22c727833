"""The content-addressed artifact store."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tools import ArtifactStore, Modality, ToolContext, ToolError


def test_same_bytes_same_id_one_file(tmp_path, images):
    store = ArtifactStore(tmp_path / "s")
    a = store.add_file(images[0])
    b = store.add_bytes(images[0].read_bytes(), name="copy.png")
    assert a.id == b.id == hashlib.sha256(images[0].read_bytes()).hexdigest()
    assert a.path == b.path
    assert len([p for p in (tmp_path / "s").rglob("*") if p.is_file()]) == 1
    assert a.modality is Modality.IMAGE and a.mime == "image/png" and a.name == "a.png"
    assert not list((tmp_path / "s").rglob(".tmp-*")), "temporary files left behind"


@pytest.mark.parametrize(
    ("data", "name", "modality", "mime"),
    [
        (b"hello\n", "notes.txt", Modality.TEXT, "text/plain"),
        (b"solid cube\nendsolid\n", "cube.stl", Modality.MESH, "model/stl"),
        (b"%PDF-1.4 ...", "doc.pdf", Modality.FILE, "application/pdf"),
        (b"\x00\x01\x02binary", "", Modality.FILE, "application/octet-stream"),
    ],
)
def test_mime_and_modality_are_sniffed(tmp_path, data, name, modality, mime):
    art = ArtifactStore(tmp_path).add_bytes(data, name=name)
    assert (art.modality, art.mime) == (modality, mime)


def test_image_and_audio_helpers_record_facts(tmp_path):
    from PIL import Image

    store = ArtifactStore(tmp_path)
    img = store.add_image(Image.new("RGB", (30, 20)), name="x.jpg")
    assert img.mime == "image/jpeg" and img.metadata["width"] == 30
    wave = store.add_audio(np.zeros((4000, 2), dtype=np.float32), 8000, name="y.flac")
    assert wave.mime == "audio/flac" and wave.modality is Modality.AUDIO
    assert wave.metadata["duration"] == 0.5 and wave.metadata["channels"] == 2
    text = store.add_text("über", name="t.txt")
    assert text.read_text() == "über" and text.metadata["chars"] == 4


def test_lookup_by_id_prefix_and_path_containment(tmp_path, images):
    store = ArtifactStore(tmp_path / "s")
    art = store.add_file(images[0])
    assert str(store.get(art.id[:12])) == art.path
    assert store.get(art.id[:6]) is None  # too short to be safe
    ctx = ToolContext(store=store, workspace=tmp_path / "w")
    assert ctx.resolve(art.id[:16]).id == art.id
    assert ctx.resolve(art.path).id == art.id
    with pytest.raises(ToolError, match="outside the session"):
        ctx.resolve(str(images[1]))
    with pytest.raises(ToolError, match="file not found"):
        store.add_file(tmp_path / "missing.png")
