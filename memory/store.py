"""The memory's metadata: one SQLite file (WAL) of the items indexed and the spaces that hold
a vector for each.

FAISS keeps only vectors under integer ids; this store maps those ids to artifacts (sha256,
path, modality, session, derived text) and records which embedding spaces hold a vector for
which item, so a rebuild, or a model installed later, knows what is left to embed. Item ids
are never reused (``AUTOINCREMENT``): a vector left behind in an index for a deleted item can
never be taken for a newer one.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.artifact import Artifact, Modality
from tools.errors import ToolError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE items (
    item_id INTEGER PRIMARY KEY AUTOINCREMENT,
    artifact_id TEXT NOT NULL UNIQUE,
    modality TEXT NOT NULL,
    path TEXT NOT NULL,
    mime TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    session TEXT,
    created REAL NOT NULL,
    text TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX items_modality ON items (modality);
CREATE INDEX items_session ON items (session);
CREATE INDEX items_path ON items (path);
CREATE TABLE vectors (
    item_id INTEGER NOT NULL REFERENCES items (item_id) ON DELETE CASCADE,
    space TEXT NOT NULL,
    PRIMARY KEY (item_id, space)
) WITHOUT ROWID;
CREATE INDEX vectors_space ON vectors (space, item_id);
"""

_COLUMNS = "item_id, artifact_id, modality, path, mime, name, session, created, text, metadata"
_HEX_PREFIX = re.compile(r"[0-9a-fA-F]{8,64}")
_VARS = 500
"""Ids bound per query (SQLite allows at least 999 variables)."""


@dataclass(frozen=True)
class Row:
    """One indexed item."""

    item_id: int
    """The id its vectors have in every FAISS index."""
    artifact_id: str
    modality: Modality
    path: str
    mime: str
    name: str = ""
    session: str | None = None
    created: float = 0.0
    text: str = ""
    """Derived text: captions, OCR, transcript, name, prompt."""
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_sql(cls, row: tuple[Any, ...]) -> Row:
        item_id, artifact_id, modality, path, mime, name, session, created, text, meta = row
        return cls(
            item_id=item_id,
            artifact_id=artifact_id,
            modality=Modality(modality),
            path=path,
            mime=mime,
            name=name,
            session=session,
            created=created,
            text=text,
            metadata=json.loads(meta),
        )

    def to_artifact(self) -> Artifact:
        return Artifact(
            id=self.artifact_id,
            modality=self.modality,
            mime=self.mime,
            path=self.path,
            name=self.name,
            metadata=self.metadata,
        )


class MetaStore:
    """Items and their spaces in one SQLite file; every write is one transaction.

    One connection shared by the threads of a process, behind a lock (SQLite serialises
    writers anyway; reads are short).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # Other processes (a second anymodal) may write too: they wait up to 30 s for a lock.
        self._db = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except BaseException as exc:
            self._db.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise ToolError(
                    f"the memory database {self.path} cannot be opened ({exc}); move it aside "
                    "to start an empty memory"
                ) from exc
            raise

    def _migrate(self) -> None:
        with self._write() as db:
            known = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            if known is None:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                return
            (version,) = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            if version is None or version > SCHEMA_VERSION:
                raise ToolError(
                    f"the memory database {self.path} has schema version {version}, newer than "
                    f"this anymodal understands ({SCHEMA_VERSION}); upgrade anymodal"
                )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> MetaStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def journal_mode(self) -> str:
        with self._lock:
            return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (``BEGIN IMMEDIATE``), rolled back on error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def add(
        self,
        artifact: Artifact,
        *,
        session: str | None,
        text: str = "",
        created: float | None = None,
    ) -> int:
        """Insert an artifact and return its item id. One already there keeps its id; its
        session is set if it had none, its text replaced if ``text`` is given, its path
        updated (the file may have moved to another session's store)."""
        meta = json.dumps(artifact.metadata, default=str, ensure_ascii=False)
        with self._write() as db:
            found = db.execute(
                "SELECT item_id FROM items WHERE artifact_id = ?", (artifact.id,)
            ).fetchone()
            if found is not None:
                db.execute(
                    "UPDATE items SET session = COALESCE(session, ?), path = ?,"
                    " text = CASE WHEN ? != '' THEN ? ELSE text END WHERE item_id = ?",
                    (session, artifact.path, text, text, found[0]),
                )
                return int(found[0])
            cursor = db.execute(
                f"INSERT INTO items ({_COLUMNS.split(', ', 1)[1]})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    artifact.id,
                    artifact.modality.value,
                    artifact.path,
                    artifact.mime,
                    artifact.name,
                    session,
                    time.time() if created is None else created,
                    text,
                    meta,
                ),
            )
            return int(cursor.lastrowid or 0)

    def mark(self, item_id: int, space: str) -> None:
        """Record that ``space`` holds a vector for the item."""
        try:
            with self._write() as db:
                db.execute(
                    "INSERT OR IGNORE INTO vectors (item_id, space) VALUES (?, ?)",
                    (item_id, space),
                )
        except sqlite3.IntegrityError as exc:
            raise ToolError(f"no memory item {item_id} to mark as held by '{space}'") from exc

    def unmark(self, item_id: int, space: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM vectors WHERE item_id = ? AND space = ?", (item_id, space))

    def spaces_of(self, item_id: int) -> set[str]:
        return {s for (s,) in self._query("SELECT space FROM vectors WHERE item_id = ?", [item_id])}

    def missing(self, space: str, modalities: Iterable[Modality]) -> list[Row]:
        """Items of these modalities that ``space`` holds no vector for, oldest first."""
        mods = sorted({Modality(m).value for m in modalities})
        if not mods:
            return []
        marks = ", ".join("?" * len(mods))
        rows = self._query(
            f"SELECT {_COLUMNS} FROM items i WHERE modality IN ({marks}) AND NOT EXISTS"
            " (SELECT 1 FROM vectors v WHERE v.item_id = i.item_id AND v.space = ?)"
            " ORDER BY item_id",
            [*mods, space],
        )
        return [Row.from_sql(r) for r in rows]

    def get(self, item_id: int) -> Row | None:
        rows = self._query(f"SELECT {_COLUMNS} FROM items WHERE item_id = ?", [item_id])
        return Row.from_sql(rows[0]) if rows else None

    def rows(self, item_ids: Iterable[int]) -> dict[int, Row]:
        """The rows of these ids that exist (ids from a search whose items were deleted are
        simply absent)."""
        ids = list(dict.fromkeys(int(i) for i in item_ids))
        out: dict[int, Row] = {}
        for start in range(0, len(ids), _VARS):
            chunk = ids[start : start + _VARS]
            marks = ", ".join("?" * len(chunk))
            for r in self._query(f"SELECT {_COLUMNS} FROM items WHERE item_id IN ({marks})", chunk):
                row = Row.from_sql(r)
                out[row.item_id] = row
        return out

    def find(self, ref: str) -> Row | None:
        """An item by full artifact id, a unique prefix of 8 or more hex characters, or path.

        Raises ``ToolError`` when a prefix matches several items.
        """
        ref = ref.strip()
        if _HEX_PREFIX.fullmatch(ref):
            prefix = ref.lower()
            rows = self._query(
                f"SELECT {_COLUMNS} FROM items WHERE artifact_id >= ? AND artifact_id < ?"
                " ORDER BY artifact_id LIMIT 2",
                [prefix, prefix + "g"],
            )
            if len(rows) > 1:
                raise ToolError(
                    f"'{ref}' is the start of several remembered artifacts' ids; give more of it"
                )
            if rows:
                return Row.from_sql(rows[0])
        candidates = [ref]
        if ref:
            resolved = str(Path(ref).expanduser().resolve())
            if resolved != ref:
                candidates.append(resolved)
        for candidate in candidates:
            rows = self._query(
                f"SELECT {_COLUMNS} FROM items WHERE path = ? ORDER BY created DESC LIMIT 1",
                [candidate],
            )
            if rows:
                return Row.from_sql(rows[0])
        return None

    def delete(self, item_id: int) -> None:
        """Forget an item and its space marks (its vectors are the indexes' business)."""
        with self._write() as db:
            db.execute("DELETE FROM items WHERE item_id = ?", (item_id,))

    def all(self, modality: Modality | None = None) -> list[Row]:
        if modality is None:
            rows = self._query(f"SELECT {_COLUMNS} FROM items ORDER BY item_id")
        else:
            rows = self._query(
                f"SELECT {_COLUMNS} FROM items WHERE modality = ? ORDER BY item_id",
                [Modality(modality).value],
            )
        return [Row.from_sql(r) for r in rows]

    def stats(self) -> dict[str, Any]:
        """Counts per modality, per space and per session (None: no session), and the bytes
        on disk (the database with its write-ahead log)."""

        def counts(sql: str) -> dict[Any, int]:
            return {key: n for key, n in self._query(sql)}

        size = sum(
            p.stat().st_size
            for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
            if p.exists()
        )
        return {
            "items": self._query("SELECT COUNT(*) FROM items")[0][0],
            "modalities": counts("SELECT modality, COUNT(*) FROM items GROUP BY modality"),
            "spaces": counts("SELECT space, COUNT(*) FROM vectors GROUP BY space"),
            "sessions": counts("SELECT session, COUNT(*) FROM items GROUP BY session"),
            "file_bytes": size,
        }
