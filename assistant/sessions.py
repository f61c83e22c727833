"""Sessions: the index of conversations, and their export to Markdown and JSON.

The conversation itself (messages, plans, step results) lives in LangGraph's SQLite
checkpoints; this module keeps a small table beside them for listing, and writes exports.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS anymodal_sessions (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'running',
    turns INTEGER NOT NULL DEFAULT 0
)
"""


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def connect(path: Path) -> sqlite3.Connection:
    """A WAL-mode connection usable from several threads (callers serialise writes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


@dataclass
class SessionInfo:
    id: str
    title: str
    created: float
    updated: float
    status: str
    turns: int


class SessionIndex:
    """The ``anymodal_sessions`` table: one row per session, for listing."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        conn.execute(SCHEMA)

    def start_turn(self, session: str, title: str) -> None:
        now = time.time()
        title = (title.strip().splitlines() or [""])[0]
        self.conn.execute(
            "INSERT INTO anymodal_sessions (id, title, created, updated, status, turns) "
            "VALUES (?, ?, ?, ?, 'running', 1) ON CONFLICT(id) DO UPDATE SET "
            "updated = excluded.updated, status = 'running', turns = turns + 1, "
            "title = CASE WHEN title = '' THEN excluded.title ELSE title END",
            (session, title[:80], now, now),
        )

    def set_status(self, session: str, status: str) -> None:
        self.conn.execute(
            "UPDATE anymodal_sessions SET status = ?, updated = ? WHERE id = ?",
            (status, time.time(), session),
        )

    def get(self, session: str) -> SessionInfo | None:
        row = self.conn.execute(
            "SELECT id, title, created, updated, status, turns FROM anymodal_sessions WHERE id = ?",
            (session,),
        ).fetchone()
        return SessionInfo(*row) if row else None

    def list(self, limit: int = 50) -> list[SessionInfo]:
        rows = self.conn.execute(
            "SELECT id, title, created, updated, status, turns FROM anymodal_sessions "
            "ORDER BY updated DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [SessionInfo(*r) for r in rows]

    def rename(self, session: str, title: str) -> None:
        self.conn.execute(
            "UPDATE anymodal_sessions SET title = ? WHERE id = ?", (title.strip()[:80], session)
        )

    def delete(self, session: str) -> None:
        self.conn.execute("DELETE FROM anymodal_sessions WHERE id = ?", (session,))


def export_session(info: SessionInfo, messages: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Write ``<id>.md`` and ``<id>.json`` into ``folder``, artifacts under ``artifacts/``."""
    folder.mkdir(parents=True, exist_ok=True)
    art_dir = folder / "artifacts"
    copied: dict[str, str] = {}

    def copy(a: dict[str, Any]) -> str:
        if a["id"] not in copied:
            src = Path(a["path"])
            stem = Path(a.get("name") or a["modality"]).stem
            dest = art_dir / f"{stem}-{a['id'][:8]}{src.suffix}"
            if src.exists():
                art_dir.mkdir(exist_ok=True)
                shutil.copyfile(src, dest)
            copied[a["id"]] = f"artifacts/{dest.name}"
        return copied[a["id"]]

    lines = [
        f"# {info.title or info.id}",
        "",
        f"Session `{info.id}`, {info.turns} turn(s), "
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(info.created))}.",
        "",
    ]
    for m in messages:
        lines += [f"## {m['role'].title()}", "", m.get("content") or "", ""]
        for a in m.get("artifacts") or []:
            rel = copy(a)
            label = a.get("name") or a["modality"]
            if a["modality"] == "image":
                lines.append(f"![{label}]({rel})")
            else:
                lines.append(f"- [{label}]({rel}) ({a['modality']}, {a['mime']})")
        lines.append("")
    md = folder / f"{info.id}.md"
    md.write_text("\n".join(lines), encoding="utf-8")
    data = {
        "session": asdict(info),
        "messages": [
            {**m, "artifacts": [{**a, "export_path": copy(a)} for a in m.get("artifacts") or []]}
            for m in messages
        ],
    }
    js = folder / f"{info.id}.json"
    js.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return [md, js]
