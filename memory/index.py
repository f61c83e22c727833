"""One FAISS index per embedding space: exact while small, approximate past a limit.

Vectors arrive L2-normalised, so inner product is cosine similarity. Up to
``MemorySettings.exact_limit`` vectors the index is exact (``IndexIDMap2(IndexFlatIP)``); past
it, it is rebuilt in a background thread as HNSW or IVF-PQ while searches keep using the old
one. Every kind is wrapped in ``IndexIDMap2``, whose id map is saved inside the FAISS file, so
the item ids of the metadata store survive a save and a load.

HNSW cannot delete, and IVF-PQ behind an id map cannot either (its lists keep their positions
while the id map and the re-ranking store would shift); both keep tombstones instead: the id
map entry of a removed vector becomes -1 (so tombstones are saved with the index, in the one
file), searches skip those positions through an ``IDSelector``, and the next rebuild drops
them. The vectors a rebuild needs are copied out of the index itself: the flat index and
HNSW's flat storage hold them exactly, and IVF-PQ is built with an exact re-ranking step
(``IndexRefineFlat``) whose flat store holds them too, so no second file has to be kept
consistent with the first (the price: IVF-PQ here saves no memory over HNSW's vectors; it
saves the graph and trains faster).

Nothing touches the disk until ``save()``, which writes a temporary file beside the index,
fsyncs it and renames it over the old one: a process killed at any point leaves a loadable
file, the previous one or the new one.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from memory.settings import MemorySettings
from tools.errors import ToolError, require

log = logging.getLogger(__name__)

Kind = Literal["flat", "hnsw", "ivfpq"]

EF_CONSTRUCTION = 64
"""HNSW build breadth (faiss's default is 40): more finds better links, and builds slower."""
REFINE_FACTOR = 50
"""IVF-PQ returns this many times k candidates, re-ranked by exact inner product."""
TOMBSTONE_SHARE = 0.25
"""Past this share of removed vectors still held by HNSW or IVF-PQ, a rebuild is started."""
TRAIN_PER_LIST = 64
"""IVF training sample: this many vectors per list (faiss needs at least 39)."""
CHUNK = 65_536
"""Vectors added per faiss call (bounds the temporaries of IVF assignment)."""
IVF_MIN = 2 * 39
"""Fewest vectors IVF-PQ is trained on (two lists of 39); below it the index stays exact."""

_REBUILD_HINT = "run `anymodal memory rebuild` to rebuild it from the memory's items"


def _faiss() -> Any:
    return require("faiss", "memory")


def _id_view(index: Any) -> np.ndarray:
    """The id map of an ``IndexIDMap2`` as a writable numpy view (position -> item id).

    A view, not a copy: writing -1 into it is how a tombstone is made. It is invalidated by
    the next add (the vector may move), so it is fetched afresh for every operation.
    """
    size = index.id_map.size()
    if size == 0:
        return np.empty(0, np.int64)
    return _faiss().rev_swig_ptr(index.id_map.data(), size)


def ivf_lists(n: int) -> int:
    """IVF lists for ``n`` vectors: about 4 sqrt(n), and at least 39 training points each."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def pq_shape(dim: int, n: int) -> tuple[int, int]:
    """(sub-quantizers, bits each) of the product quantiser: about 8 dimensions per
    sub-quantizer (4 trains 20 times slower in faiss 1.15, and the exact re-ranking makes up
    for coarse codes), 8 bits (256 centroids) when there are enough vectors to train them."""
    m = max((q for q in range(1, max(1, dim // 8) + 1) if dim % q == 0), default=1)
    nbits = max(1, min(8, int(math.log2(max(2, n // 39)))))
    return m, nbits


@dataclass
class _State:
    """One built faiss index and what searching it needs: its kind, its tombstone count and
    the selector that skips tombstones (kept here so its Python objects stay alive)."""

    index: Any
    """An ``IndexIDMap2``."""
    kind: Kind
    dead: int = 0
    selector: Any = None

    @classmethod
    def wrap(cls, index: Any, path: Path | str = "index") -> _State:
        """Check a loaded index is one this module writes, and find its kind and tombstones."""
        faiss = _faiss()
        if not isinstance(index, faiss.IndexIDMap2):
            raise ToolError(
                f"the vector index {path} is not an id-mapped FAISS index; " + _REBUILD_HINT
            )
        inner = faiss.downcast_index(index.index)
        kind: Kind
        if isinstance(inner, faiss.IndexFlat):
            kind = "flat"
        elif isinstance(inner, faiss.IndexHNSWFlat):
            kind = "hnsw"
        elif isinstance(inner, faiss.IndexRefine) and isinstance(
            faiss.downcast_index(inner.base_index), faiss.IndexIVFPQ
        ):
            kind = "ivfpq"
        else:
            raise ToolError(
                f"the vector index {path} is a {type(inner).__name__}, not a kind "
                "this version writes (flat, HNSW, IVF-PQ); " + _REBUILD_HINT
            )
        if inner.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ToolError(f"the vector index {path} does not use inner product; " + _REBUILD_HINT)
        state = cls(index, kind)
        state.dead = int((_id_view(index) < 0).sum())
        return state

    @property
    def inner(self) -> Any:
        return _faiss().downcast_index(self.index.index)

    def __len__(self) -> int:
        return int(self.index.ntotal) - self.dead

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors, replacing those already held under the same ids."""
        self.remove(ids)
        for start in range(0, len(ids), CHUNK):
            self.index.add_with_ids(vectors[start : start + CHUNK], ids[start : start + CHUNK])

    def remove(self, ids: np.ndarray) -> int:
        view = _id_view(self.index)
        hit = np.isin(view, ids)
        count = int(hit.sum())
        if count == 0:
            return 0
        if self.kind == "flat":
            self.index.remove_ids(_faiss().IDSelectorBatch(ids))
        else:
            view[hit] = -1
            self.dead += count
            self.selector = None
        return count

    def _skip_tombstones(self) -> Any:
        """An IDSelector over positions that leaves out tombstones (None when there are none)."""
        if self.dead == 0:
            return None
        if self.selector is None:
            faiss = _faiss()
            batch = faiss.IDSelectorBatch(np.flatnonzero(_id_view(self.index) < 0))
            self.selector = (faiss.IDSelectorNot(batch), batch)
        return self.selector[0]

    def search(
        self, queries: np.ndarray, k: int, settings: MemorySettings, refine: int
    ) -> list[list[tuple[int, float]]]:
        faiss = _faiss()
        k = min(k, len(self))
        if k <= 0:
            return [[] for _ in range(len(queries))]
        inner, sel = self.inner, self._skip_tombstones()
        if self.kind == "flat":
            scores, pos = inner.search(queries, k)
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(settings.ef_search, k)
            if sel is not None:
                params.sel = sel
            scores, pos = inner.search(queries, k, params=params)
        else:
            ivf = faiss.SearchParametersIVF()
            ivf.nprobe = settings.nprobe
            if sel is not None:
                ivf.sel = sel
            if refine > 0:
                params = faiss.IndexRefineSearchParameters()
                params.k_factor = float(refine)
                params.base_index_params = ivf
                scores, pos = inner.search(queries, k, params=params)
            else:
                base = faiss.downcast_index(inner.base_index)
                scores, pos = base.search(queries, k, params=ivf)
        view = _id_view(self.index)
        ids = np.where(pos >= 0, view[np.maximum(pos, 0)], -1)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every live vector: one copy out of the flat store that every
        kind keeps (the index itself, HNSW's storage, IVF-PQ's re-ranking store)."""
        faiss = _faiss()
        inner = self.inner
        if isinstance(inner, faiss.IndexHNSWFlat):
            store = faiss.downcast_index(inner.storage)
        elif isinstance(inner, faiss.IndexRefine):
            store = faiss.downcast_index(inner.refine_index)
        else:
            store = inner
        view = _id_view(self.index)
        live = view >= 0
        n, dim = int(store.ntotal), int(store.d)
        if n == 0:
            return np.empty(0, np.int64), np.empty((0, dim), np.float32)
        vectors = faiss.rev_swig_ptr(store.get_xb(), n * dim).reshape(n, dim)
        return view[live].copy(), vectors[live]


class VectorIndex:
    """The vectors of one embedding space, searchable by cosine similarity, keyed by item id.

    Thread-safe: one lock guards every mutation, search and the swap of a rebuilt index.
    """

    def __init__(
        self, path: Path | None, dim: int, settings: MemorySettings, index: Any = None
    ) -> None:
        if dim <= 0:
            raise ToolError(f"an index needs a positive dimension, not {dim}")
        faiss = _faiss()
        self.path = path
        self.settings = settings
        self.refine_factor = REFINE_FACTOR
        """IVF-PQ re-ranking: k times this many candidates re-scored exactly; 0: none (the
        scores are then PQ estimates)."""
        self._dim = dim
        self._lock = threading.RLock()
        self._state = (
            _State.wrap(index, path or "index")
            if index is not None
            else _State(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), "flat")
        )
        self._journal: list[tuple[np.ndarray, np.ndarray | None]] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._auto = True

    @classmethod
    def open(cls, path: Path, dim: int, settings: MemorySettings) -> VectorIndex:
        """Load the index saved at ``path``, or start an empty exact one (written on save)."""
        faiss = _faiss()
        path = Path(path)
        _remove_stale_temps(path)
        if not path.exists():
            return cls(path, dim, settings)
        try:
            index = faiss.read_index(str(path))
        except Exception as exc:  # faiss raises RuntimeError; a garbled header, MemoryError
            reason = str(exc).strip().splitlines()[-1:] or [type(exc).__name__]
            raise ToolError(
                f"the vector index {path} cannot be read ({reason[0][:200]}); " + _REBUILD_HINT
            ) from exc
        if index.d != dim:
            raise ToolError(
                f"the vector index {path} holds {index.d}-dimensional vectors but its space "
                f"embeds {dim} dimensions (was the model changed?); " + _REBUILD_HINT
            )
        return cls(path, dim, settings, index)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def kind(self) -> Kind:
        return self._state.kind

    @property
    def tombstones(self) -> int:
        """Removed vectors an approximate index still holds until its next rebuild."""
        return self._state.dead

    def __len__(self) -> int:
        with self._lock:
            return len(self._state)

    def ids(self) -> np.ndarray:
        """The item ids held (to reconcile with the metadata store after a crash)."""
        with self._lock:
            view = _id_view(self._state.index)
            return view[view >= 0].copy()

    def _check_vectors(self, vectors: Any) -> np.ndarray:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self._dim:
            raise ToolError(
                f"vectors of shape {np.shape(vectors)} do not fit an index of {self._dim} "
                f"dimensions; expected (n, {self._dim})"
            )
        if not np.isfinite(arr.sum(dtype=np.float64)):  # NaN and infinity survive a sum
            raise ToolError("vectors contain NaN or infinity; the embedding model failed")
        return np.ascontiguousarray(arr)

    @staticmethod
    def _check_ids(ids: Any) -> np.ndarray:
        arr = np.atleast_1d(np.asarray(ids))
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise ToolError(f"ids must be a 1-D array of integers, not {arr.dtype} {arr.shape}")
        arr = arr.astype(np.int64)
        if arr.size and arr.min() < 0:
            raise ToolError("ids must be non-negative (-1 marks a removed vector)")
        return arr

    def _checked(self, ids: Any, vectors: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validated ids and vectors, one vector per id (the last given for an id wins)."""
        ids = self._check_ids(ids)
        vectors = self._check_vectors(vectors)
        if len(ids) != len(vectors):
            raise ToolError(f"{len(ids)} ids for {len(vectors)} vectors; give one id per vector")
        if len(np.unique(ids)) != len(ids):
            _, last = np.unique(ids[::-1], return_index=True)
            keep = np.sort(len(ids) - 1 - last)
            ids, vectors = ids[keep], vectors[keep]
        return ids, vectors

    @classmethod
    def from_vectors(
        cls,
        ids: np.ndarray,
        vectors: np.ndarray,
        settings: MemorySettings,
        *,
        kind: Kind | None = None,
        path: Path | None = None,
    ) -> VectorIndex:
        """An index built at once (the code path of a rebuild): of ``kind``, else of the kind
        the count calls for. Not saved until ``save()``."""
        index = cls(path, int(np.shape(vectors)[-1]), settings)
        ids, vectors = index._checked(ids, vectors)
        index._state = index._build(kind or index._target_kind(len(ids)), ids, vectors)
        return index

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace) vectors under item ids. Past ``exact_limit`` this starts a
        background rebuild as the configured approximate index."""
        ids, vectors = self._checked(ids, vectors)
        if len(ids) == 0:
            return
        with self._lock:
            self._state.add(ids, vectors)
            if self._journal is not None:
                self._journal.append((ids, vectors))
            if self._needs_rebuild():
                self.rebuild(background=True)

    def remove(self, ids: Any) -> int:
        """Remove vectors by item id; returns how many were held."""
        ids = self._check_ids(ids)
        with self._lock:
            count = self._state.remove(ids)
            if self._journal is not None:
                self._journal.append((ids, None))
            if count and self._needs_rebuild():
                self.rebuild(background=True)
            return count

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Per query, up to ``k`` (item id, cosine score) pairs, best first."""
        queries = self._check_vectors(vectors)
        with self._lock:
            return self._state.search(queries, int(k), self.settings, self.refine_factor)

    def _target_kind(self, count: int) -> Kind:
        """Exact up to ``exact_limit`` (and while too few vectors to train IVF-PQ)."""
        if count <= self.settings.exact_limit:
            return "flat"
        if self.settings.approximate == "ivfpq" and count < IVF_MIN:
            return "flat"
        return self.settings.approximate

    def _needs_rebuild(self) -> bool:
        state = self._state
        if not self._auto or self._journal is not None:
            return False
        if state.kind == "flat":
            return self._target_kind(len(state)) != "flat"
        return state.dead > TOMBSTONE_SHARE * state.index.ntotal

    def rebuild(self, background: bool = True) -> None:
        """Rebuild from the vectors held: exact up to ``exact_limit``, else the configured
        approximate kind; tombstones are dropped. Saved afterwards when the index has a path.

        In the background, searches and changes go on against the old index; the changes are
        also journaled and replayed onto the new one just before it is swapped in.
        """
        if not background:
            self.wait()
        with self._lock:
            if self._journal is not None:  # a background rebuild is already running
                return
            ids, vectors = self._state.snapshot()
            kind = self._target_kind(len(ids))
            if not background:
                self._state = self._build(kind, ids, vectors)
                if self.path is not None:
                    self._save_locked()
                return
            self._journal = []
            self._error = None
            self._thread = threading.Thread(
                target=self._build_in_background,
                args=(kind, ids, vectors),
                name=f"rebuild-{kind}-index",
                daemon=True,
            )
            self._thread.start()

    def _build_in_background(self, kind: Kind, ids: np.ndarray, vectors: np.ndarray) -> None:
        try:
            state = self._build(kind, ids, vectors)
            with self._lock:
                for jids, jvectors in self._journal or []:
                    if jvectors is None:
                        state.remove(jids)
                    else:
                        state.add(jids, jvectors)
                self._state, self._journal = state, None
                if self.path is not None:
                    self._save_locked()
            log.info("vector index rebuilt as %s (%d vectors)", kind, len(state))
        except BaseException as exc:
            with self._lock:
                self._journal = None
                self._error = exc
                self._auto = False  # do not start a failing rebuild again on every add
            log.warning("rebuilding the vector index as %s failed: %s", kind, exc)

    def wait(self) -> None:
        """Wait for a background rebuild; raise its error if it failed."""
        thread = self._thread
        if thread is not None:
            thread.join()
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            if isinstance(error, ToolError):
                raise error
            raise ToolError(f"rebuilding the vector index failed: {error}") from error

    def _build(self, kind: Kind, ids: np.ndarray, vectors: np.ndarray) -> _State:
        """A new index of ``kind`` holding ``vectors`` under ``ids`` (no lock needed: the new
        index is private to the caller until it is swapped in)."""
        faiss = _faiss()
        dim, settings = self._dim, self.settings
        if kind == "flat":
            inner = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = EF_CONSTRUCTION
            inner.hnsw.efSearch = settings.ef_search
        else:
            inner = self._trained_ivfpq(vectors)
        state = _State(faiss.IndexIDMap2(inner), kind)
        for start in range(0, len(ids), CHUNK):
            state.index.add_with_ids(vectors[start : start + CHUNK], ids[start : start + CHUNK])
        return state

    def _trained_ivfpq(self, vectors: np.ndarray) -> Any:
        faiss = _faiss()
        n, dim = vectors.shape
        if n < IVF_MIN:
            raise ToolError(f"IVF-PQ needs {IVF_MIN} vectors to train; this index holds {n}")
        nlist = ivf_lists(n)
        m, nbits = pq_shape(dim, n)
        quantizer = faiss.IndexFlatIP(dim)
        ivf = faiss.IndexIVFPQ(quantizer, dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
        ivf.nprobe = self.settings.nprobe
        rng = np.random.default_rng(0)
        size = min(n, max(TRAIN_PER_LIST * nlist, 39 * 2**nbits))
        sample = vectors if size == n else vectors[np.sort(rng.choice(n, size, replace=False))]
        ivf.train(sample)
        refine = faiss.IndexRefineFlat(ivf)
        refine.k_factor = float(self.refine_factor)
        return refine

    def save(self) -> None:
        """Write the index atomically: a temporary file beside it, fsync, rename."""
        with self._lock:
            self._save_locked()

    def _save_locked(self) -> None:
        if self.path is None:
            raise ToolError("this vector index has no file to save to")
        faiss = _faiss()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            faiss.write_index(self._state.index, str(tmp))
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, RuntimeError | OSError):
                raise ToolError(f"could not save the vector index {self.path}: {exc}") from exc
            raise
        _fsync_dir(self.path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_temps(path: Path) -> None:
    """Delete temporary files that processes killed while saving left beside the index."""
    if not path.parent.is_dir():
        return
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 : -4]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True
