"""The metadata store: items, their spaces, lookups by id prefix and path, stats, WAL, and a
process killed in the middle of a transaction."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from memory.store import MetaStore, Row
from tools.artifact import Artifact, ArtifactStore, Modality
from tools.errors import ToolError


@pytest.fixture
def arts(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetaStore]:
    with MetaStore(tmp_path / "memory" / "meta.sqlite") as s:
        yield s


def test_add_get_and_update_keep_one_item_per_artifact(
    store: MetaStore, arts: ArtifactStore
) -> None:
    note = arts.add_text("a red fox in the snow", name="fox.txt", metadata={"prompt": "fox"})
    item = store.add(note, session=None, text="fox snow", created=100.0)
    row = store.get(item)
    assert isinstance(row, Row)
    assert (row.artifact_id, row.modality, row.name, row.session) == (
        note.id,
        Modality.TEXT,
        "fox.txt",
        None,
    )
    assert (row.text, row.created, row.metadata["prompt"]) == ("fox snow", 100.0, "fox")
    assert row.to_artifact() == note

    moved = note.model_copy(update={"path": "/elsewhere/fox.txt"})
    assert store.add(moved, session="s1") == item  # same artifact, same item id
    row = store.get(item)
    assert row is not None
    assert (row.session, row.text, row.path) == ("s1", "fox snow", "/elsewhere/fox.txt")
    store.add(note, session="s2", text="a fox")  # a session is kept once set; text is replaced
    row = store.get(item)
    assert row is not None and (row.session, row.text) == ("s1", "a fox")
    assert store.get(item + 1000) is None
    assert len(store.all()) == 1


def test_spaces_and_what_is_missing_from_them(store: MetaStore, arts: ArtifactStore) -> None:
    from PIL import Image

    text = store.add(arts.add_text("hello"), session="s")
    image = store.add(arts.add_image(Image.new("RGB", (8, 8), "red")), session="s")
    audio = store.add(arts.add_bytes(b"RIFF....WAVE", name="a.wav", mime="audio/wav"), session="s")
    store.mark(text, "text")
    store.mark(text, "text")  # idempotent
    store.mark(image, "clip")
    store.mark(text, "clip")
    assert store.spaces_of(text) == {"text", "clip"}
    assert store.spaces_of(audio) == set()

    assert [r.item_id for r in store.missing("clip", [Modality.IMAGE, Modality.TEXT])] == []
    assert [r.item_id for r in store.missing("clap", [Modality.AUDIO, Modality.TEXT])] == [
        text,
        audio,
    ]
    assert [r.item_id for r in store.missing("text", [Modality.IMAGE])] == [image]
    assert store.missing("text", []) == []
    store.unmark(text, "clip")
    assert [r.item_id for r in store.missing("clip", [Modality.TEXT])] == [text]
    with pytest.raises(ToolError, match="no memory item 999"):
        store.mark(999, "text")

    assert [r.item_id for r in store.all(Modality.IMAGE)] == [image]
    assert set(store.rows([audio, image, 12345, image])) == {audio, image}


def test_find_by_id_prefix_and_path(store: MetaStore, arts: ArtifactStore) -> None:
    notes = [arts.add_text(f"note {i}") for i in range(40)]
    ids = {n.id: store.add(n, session=None) for n in notes}
    first = notes[0]
    assert store.find(first.id).item_id == ids[first.id]  # type: ignore[union-attr]
    assert store.find(first.id[:12].upper()).item_id == ids[first.id]  # type: ignore[union-attr]
    assert store.find(first.path).item_id == ids[first.id]  # type: ignore[union-attr]
    assert store.find("0" * 64) is None
    assert store.find("/no/such/file.txt") is None
    assert store.find("abc") is None  # too short to be a prefix, and no such path

    # Two ids sharing 8 hex characters: that prefix is ambiguous.
    other = "e" if first.id[8] == "f" else "f"
    twin = Artifact(
        id=first.id[:8] + other * 56, modality=Modality.TEXT, mime="text/plain", path="/x/twin"
    )
    store.add(twin, session=None)
    with pytest.raises(ToolError, match="several"):
        store.find(first.id[:8])
    assert store.find(first.id[:9]).artifact_id == first.id  # type: ignore[union-attr]
    assert store.find(twin.id[:9]).artifact_id == twin.id  # type: ignore[union-attr]


def test_delete_drops_the_item_and_its_marks_and_ids_are_not_reused(
    tmp_path: Path, store: MetaStore, arts: ArtifactStore
) -> None:
    a = store.add(arts.add_text("a"), session=None)
    b = store.add(arts.add_text("b"), session=None)
    store.mark(b, "text")
    store.delete(b)
    assert store.get(b) is None and store.spaces_of(b) == set()
    assert store.missing("text", [Modality.TEXT])[0].item_id == a
    c = store.add(arts.add_text("c"), session=None)
    assert c > b  # a deleted item's id is never given to another artifact


def test_stats_and_wal(store: MetaStore, arts: ArtifactStore) -> None:
    assert store.journal_mode == "wal"
    for i in range(3):
        item = store.add(arts.add_text(f"t{i}"), session="s1" if i else None)
        store.mark(item, "text")
    store.add(arts.add_bytes(b"RIFF....WAVE", name="a.wav", mime="audio/wav"), session="s2")
    stats = store.stats()
    assert stats["items"] == 4
    assert stats["modalities"] == {"text": 3, "audio": 1}
    assert stats["spaces"] == {"text": 3}
    assert stats["sessions"] == {None: 1, "s1": 2, "s2": 1}
    assert stats["file_bytes"] > 0
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]


def test_a_newer_schema_or_a_garbled_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    MetaStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(ToolError, match="schema version 99.*upgrade"):
        MetaStore(path)
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ToolError, match="cannot be opened.*move it aside"):
        MetaStore(bad)


CHILD = """
import os, signal, sys
from pathlib import Path
from memory.store import MetaStore
from tools.artifact import ArtifactStore

arts = ArtifactStore(Path(sys.argv[2]))
store = MetaStore(Path(sys.argv[1]))
for i in range(20):
    item = store.add(arts.add_text(f"note {i}"), session="s")
    store.mark(item, "text")
commits = 0

def trace(sql):
    global commits
    if sql.startswith("COMMIT"):
        commits += 1
        if commits == 2:  # the second add: its row is inserted, its COMMIT has not run
            os.kill(os.getpid(), signal.SIGKILL)

store._db.set_trace_callback(trace)
store.add(arts.add_text("committed"), session="s")
store.add(arts.add_text("never committed"), session="s")
print("not killed")
"""


def test_a_process_killed_mid_transaction_leaves_the_committed_rows(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    done = subprocess.run(
        [sys.executable, str(script), str(path), str(tmp_path / "arts")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr

    with MetaStore(path) as store:
        rows = store.all()
        assert len(rows) == 21
        assert Path(rows[-1].path).read_text() == "committed"
        assert len(store.missing("text", [Modality.TEXT])) == 1  # the last one was not marked
        assert store.stats()["spaces"] == {"text": 20}
        store.add(ArtifactStore(tmp_path / "arts").add_text("after"), session=None)
        assert len(store.all()) == 22
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
