"""The memory: artifacts of every modality indexed in embedding spaces, found again by words
or by an example of any modality.

Each artifact is stored once in the metadata store (SQLite) with the text derived from it
(names, prompts, OCR, transcripts, captions), and embedded in every installed space that joins
its modality: the text space over the derived text (MiniLM, offline), CLIP or SigLIP for
images and video, CLAP for audio, ImageBind where the user installed it. A query is embedded in
every space that holds both its modality and the wanted one; where none does (audio to image
with only CLIP and CLAP), the query's derived text stands in for it. Results from several
spaces are merged by reciprocal rank fusion, since cosine scores of different models do not
compare.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from memory.base import Hit, Item, Space
from memory.settings import MemorySettings
from tools.artifact import Artifact, Modality, modality_of, sniff_mime
from tools.errors import ToolError

FUSION_K = 60
"""Reciprocal rank fusion constant: a hit at rank r in a space scores 1 / (FUSION_K + r)."""
SKIP = ("preview", "placeholder")
"""Artifact metadata flags that keep an artifact out of the memory."""
Progress = Callable[[int, int, str], None]


def artifact_in_place(path: Path) -> Artifact:
    """An artifact for a user's file where it lies (hashed, not copied), for ``memory add``."""
    data = path.read_bytes()
    mime = sniff_mime(data[:65536], path.name)
    return Artifact(
        id=hashlib.sha256(data).hexdigest(),
        modality=modality_of(mime, path.suffix),
        mime=mime,
        path=str(path.resolve()),
        name=path.name,
        metadata={"size": len(data)},
    )


class Memory:
    """The cross-modal memory under ``root``: ``meta.sqlite`` and one ``SPACE.faiss`` per
    embedding space. Thread-safe; nothing is opened or loaded until first use."""

    def __init__(
        self, root: Path, settings: MemorySettings, models: Any, tool_settings: Any = None
    ):
        self.root = Path(root)
        self.settings = settings
        self.models = models
        self.tool_settings = tool_settings
        self._lock = threading.RLock()
        self._store: Any = None
        self._spaces: list[Space] | None = None
        self.missing: dict[str, str] = {}
        """Spaces that are configured but cannot load, and why."""
        self._indexes: dict[str, Any] = {}
        self._queue: queue.Queue[tuple[list[Artifact], str | None]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.errors: list[str] = []
        """Background indexing failures (the run that made the artifacts is not affected)."""

    # --- parts ---------------------------------------------------------------------------

    @property
    def store(self) -> Any:
        with self._lock:
            if self._store is None:
                from memory.store import MetaStore

                self.root.mkdir(parents=True, exist_ok=True)
                self._store = MetaStore(self.root / "meta.sqlite")
            return self._store

    @property
    def spaces(self) -> list[Space]:
        with self._lock:
            if self._spaces is None:
                from memory.embed import load_spaces

                self._spaces, self.missing = load_spaces(
                    self.settings, self.models, self.tool_settings
                )
            return self._spaces

    def index(self, space: Space) -> Any:
        with self._lock:
            if space.name not in self._indexes:
                from memory.index import VectorIndex

                path = self.root / f"{space.name}.faiss"
                self._indexes[space.name] = VectorIndex.open(path, space.dim, self.settings)
            return self._indexes[space.name]

    def _context(self) -> Any:
        from tools.artifact import ArtifactStore
        from tools.base import ToolContext
        from tools.settings import ToolSettings

        return ToolContext(
            store=ArtifactStore(self.root / "derived"),
            workspace=self.root / "work",
            settings=self.tool_settings or ToolSettings(),
            models=self.models,
        )

    # --- adding --------------------------------------------------------------------------

    def add(
        self,
        artifacts: Iterable[Artifact],
        session: str | None = None,
        note: str = "",
        progress: Progress | None = None,
    ) -> list[int]:
        """Index ``artifacts`` (derived text, then a vector in every space that joins their
        modality); returns their item ids. Already indexed artifacts are updated, not
        duplicated. Previews and plan placeholders are skipped."""
        from memory.derive import derive_text

        arts = [a for a in artifacts if not any(a.metadata.get(flag) for flag in SKIP)]
        ctx = self._context()
        ids: list[int] = []
        items: list[tuple[int, Item]] = []
        for n, art in enumerate(arts, 1):
            if progress is not None:
                progress(n - 1, len(arts), f"reading {art.label()}")
            text, _notes = derive_text(art, ctx, self.settings)
            text = f"{note}\n{text}".strip() if note else text
            with self._lock:
                item_id = self.store.add(art, session=session, text=text)
            ids.append(item_id)
            items.append((item_id, Item(art.modality, art, text)))
        for space in self.spaces:
            mine = [(i, it) for i, it in items if it.modality in space.modalities]
            self._embed_into(space, mine, progress)
        self.save()
        if progress is not None:
            progress(len(arts), len(arts), "indexed")
        return ids

    def _embed_into(
        self, space: Space, items: list[tuple[int, Item]], progress: Progress | None
    ) -> None:
        import numpy as np

        size = self.settings.batch_size
        for start in range(0, len(items), size):
            batch = items[start : start + size]
            if progress is not None:
                progress(start, len(items), f"embedding in {space.name}")
            try:
                vectors = space.embed([it for _, it in batch])
            except ToolError as exc:
                self.errors.append(f"{space.name}: {exc}")
                continue
            ids = np.asarray([i for i, _ in batch], dtype=np.int64)
            with self._lock:
                self.index(space).add(ids, np.asarray(vectors, dtype=np.float32))
                for i, _ in batch:
                    self.store.mark(i, space.name)

    def save(self) -> None:
        """Write every changed index (atomically: a crash leaves the previous file)."""
        with self._lock:
            for index in self._indexes.values():
                index.save()

    def submit(self, artifacts: Iterable[Artifact], session: str | None = None) -> None:
        """Index in a background thread (a run's reply does not wait for OCR and
        transcripts); ``flush`` waits for it."""
        arts = list(artifacts)
        if not arts:
            return
        self._queue.put((arts, session))
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="memory", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            try:
                arts, session = self._queue.get(timeout=1.0)
            except queue.Empty:
                return
            try:
                self.add(arts, session)
            except Exception as exc:  # indexing must never take a session down
                self.errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until everything submitted is indexed."""
        self._queue.join()

    # --- searching -----------------------------------------------------------------------

    def search(
        self,
        query: str | Artifact,
        modality: Modality | None = None,
        limit: int = 10,
    ) -> list[Hit]:
        """The artifacts closest to ``query`` (words, or an example artifact of any
        modality), best first, optionally only of ``modality``.

        Raises:
            ToolError: The query is empty, or no embedding space can take it.
        """
        from memory.derive import derive_text

        if isinstance(query, str):
            if not query.strip():
                raise ToolError("the search query is empty; say what to look for")
            item = Item(Modality.TEXT, None, query.strip())
            example = None
        else:
            text, _ = derive_text(query, self._context(), self.settings)
            item, example = Item(query.modality, query, text), query
        ranked: dict[int, float] = {}
        best: dict[int, tuple[float, str]] = {}
        used = []
        for space in self.spaces:
            if modality is not None and modality not in space.modalities:
                continue
            probe = item if item.modality in space.modalities else None
            if probe is None and item.text:  # the derived text stands in for the example
                probe = Item(Modality.TEXT, None, item.text)
            if probe is None or (probe.modality is Modality.TEXT and not probe.text):
                continue
            if probe.modality is Modality.TEXT and Modality.TEXT not in space.modalities:
                continue
            with self._lock:
                index = self.index(space)
                if not len(index):
                    continue
            used.append(space.name)
            vector = space.embed([probe])[0]
            found = index.search(vector, max(limit * 4, limit + 8))
            rows = self.store.rows([i for i, _ in found[0]])
            rank = 0
            for item_id, score in found[0]:
                row = rows.get(item_id)
                if row is None or (modality is not None and row.modality is not modality):
                    continue
                if example is not None and row.artifact_id == example.id:
                    continue
                rank += 1
                ranked[item_id] = ranked.get(item_id, 0.0) + 1.0 / (FUSION_K + rank)
                if item_id not in best or score > best[item_id][0]:
                    best[item_id] = (score, space.name)
        if not used and not self.spaces:
            raise ToolError(
                "no embedding model is installed for the memory: "
                + ("; ".join(self.missing.values()) or "check [memory] spaces")
            )
        order = sorted(ranked, key=lambda i: (-ranked[i], i))[:limit]
        rows = self.store.rows(order)
        hits = []
        for item_id in order:
            row = rows[item_id]
            similarity, space_name = best[item_id]
            hits.append(
                Hit(
                    id=row.artifact_id,
                    path=row.path,
                    modality=row.modality,
                    score=ranked[item_id],
                    space=space_name,
                    session=row.session,
                    name=row.name,
                    text=row.text,
                    created=row.created,
                    extra={"similarity": round(float(similarity), 6), "item": item_id},
                )
            )
        return hits

    def artifact(self, hit: Hit) -> Artifact:
        """The artifact a hit points at, with its score in the metadata."""
        row = self.store.find(hit.id)
        if row is None:
            raise ToolError(f"{hit.id[:12]} is no longer in the memory")
        art = row.to_artifact()
        return art.with_metadata(memory_score=round(hit.score, 6), space=hit.space)

    # --- upkeep --------------------------------------------------------------------------

    def forget(self, ref: str) -> Artifact:
        """Remove an artifact (by id, id prefix or path) from every index and the store.

        Raises:
            ToolError: Nothing in the memory matches ``ref``.
        """
        with self._lock:
            row = self.store.find(ref)
            if row is None:
                raise ToolError(
                    f"nothing in the memory matches {ref!r}; see `anymodal memory search`"
                )
            for space in self.spaces:
                if space.name in self.store.spaces_of(row.item_id):
                    self.index(space).remove([row.item_id])
            self.store.delete(row.item_id)
            self.save()
            return row.to_artifact()

    def rebuild(self, progress: Progress | None = None) -> dict[str, int]:
        """Embed every stored artifact afresh into new indexes (after a model change or a
        damaged index file); artifacts whose file is gone are forgotten. Returns counts."""
        from memory.index import VectorIndex

        with self._lock:
            rows = self.store.all()
            gone = [r for r in rows if not Path(r.path).is_file()]
            for r in gone:
                self.store.delete(r.item_id)
            for space in self.spaces:
                if space.name in self._indexes:  # a background rebuild would save over it
                    self._indexes[space.name].wait()
                path = self.root / f"{space.name}.faiss"
                path.unlink(missing_ok=True)
                self._indexes[space.name] = VectorIndex.open(path, space.dim, self.settings)
                for r in rows:
                    self.store.unmark(r.item_id, space.name)
        kept = [r for r in rows if r not in gone]
        for space in self.spaces:
            items = [
                (r.item_id, Item(r.modality, r.to_artifact(), r.text))
                for r in kept
                if r.modality in space.modalities
            ]
            self._embed_into(space, items, progress)
        self.save()
        return {"indexed": len(kept), "forgotten": len(gone)}

    def stats(self) -> dict[str, Any]:
        """Counts per modality, space and session; the indexes' kinds and sizes; the spaces
        that are configured but missing, and why."""
        out = dict(self.store.stats())
        out["indexes"] = {
            s.name: {"vectors": len(self.index(s)), "kind": self.index(s).kind, "dim": s.dim}
            for s in self.spaces
        }
        out["missing_spaces"] = dict(self.missing)
        out["root"] = str(self.root)
        out["errors"] = list(self.errors)
        return out

    def close(self) -> None:
        self.flush()
        with self._lock:
            for index in self._indexes.values():
                index.wait()
            if self._store is not None:
                self._store.close()
                self._store = None
