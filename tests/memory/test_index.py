"""The vector index: exact search, replacement, removal, files, approximate rebuilds (in the
background too), tombstones, and processes killed while saving."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memory.index import Kind, VectorIndex
from memory.settings import MemorySettings
from tools.errors import ToolError

DIM = 32


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, seed: int, dim: int = DIM, clusters: int = 20) -> np.ndarray:
    """Points around a few centres: real embeddings cluster like this."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    return unit(centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim)))


def exact_top(queries: np.ndarray, x: np.ndarray, ids: np.ndarray, k: int) -> list[list[int]]:
    sims = queries @ x.T
    return [list(ids[np.argsort(-row, kind="stable")[:k]]) for row in sims]


def recall(found: list[list[tuple[int, float]]], truth: list[list[int]]) -> float:
    hits = [len({i for i, _ in f} & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def test_exact_search_returns_the_true_neighbours_with_cosine_scores(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = unit(rng.standard_normal((500, 16)))
    ids = np.arange(1000, 1500)
    path = tmp_path / "text.faiss"
    index = VectorIndex.open(path, 16, MemorySettings())
    index.add(ids, x)
    assert not path.exists()  # nothing is written until save()
    assert (index.kind, index.dim, len(index)) == ("flat", 16, 500)

    queries = unit(rng.standard_normal((3, 16)))
    found = index.search(queries, 5)
    sims = queries @ x.T
    for row, q_sims in zip(found, sims, strict=True):
        order = np.argsort(-q_sims)[:5]
        assert [i for i, _ in row] == list(ids[order])
        assert [s for _, s in row] == pytest.approx(list(q_sims[order]), abs=1e-5)
        assert [s for _, s in row] == sorted((s for _, s in row), reverse=True)

    (one,) = index.search(x[7], 1)  # a single (dim,) query
    assert one[0][0] == 1007 and one[0][1] == pytest.approx(1.0, abs=1e-5)
    assert len(index.search(x[0], 10_000)[0]) == 500  # fewer than k when the index is small
    assert VectorIndex.open(tmp_path / "empty.faiss", 16, MemorySettings()).search(x[0], 3) == [[]]


def test_re_adding_an_id_replaces_it_and_remove_counts(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = unit(rng.standard_normal((10, 8)))
    index = VectorIndex.open(tmp_path / "i.faiss", 8, MemorySettings())
    index.add(np.arange(5), x[:5])
    index.add(np.array([2]), x[9:10])  # id 2 now holds vector 9
    assert len(index) == 5
    assert index.search(x[9], 1)[0][0][0] == 2
    assert dict(index.search(x[2], 5)[0])[2] == pytest.approx(float(x[2] @ x[9]), abs=1e-5)
    index.add(np.array([7, 7]), x[[5, 6]])  # the last vector given for an id wins
    assert index.search(x[6], 1)[0][0] == (7, pytest.approx(1.0, abs=1e-5))
    assert dict(index.search(x[5], 6)[0])[7] == pytest.approx(float(x[5] @ x[6]), abs=1e-5)

    assert index.remove([1, 2, 42]) == 2
    assert index.remove(np.array([1])) == 0
    assert len(index) == 4
    assert {i for i, _ in index.search(x[1], 10)[0]} == {0, 3, 4, 7}
    assert sorted(index.ids()) == [0, 3, 4, 7]


def test_bad_vectors_and_ids_are_refused_clearly(tmp_path: Path) -> None:
    index = VectorIndex.open(tmp_path / "i.faiss", 8, MemorySettings())
    with pytest.raises(ToolError, match=r"expected \(n, 8\)"):
        index.add(np.arange(2), np.zeros((2, 7), np.float32))
    with pytest.raises(ToolError, match="2 ids for 3 vectors"):
        index.add(np.arange(2), unit(np.ones((3, 8))))
    with pytest.raises(ToolError, match="NaN"):
        index.add(np.arange(1), np.full((1, 8), np.nan, np.float32))
    with pytest.raises(ToolError, match="non-negative"):
        index.add(np.array([-1]), unit(np.ones((1, 8))))
    with pytest.raises(ToolError, match="expected"):
        index.search(np.zeros(9, np.float32), 3)
    assert len(index) == 0


def test_save_and_open_round_trip_and_a_dimension_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "memory" / "clip.faiss"  # the folder is made on save
    x = clustered(300, seed=2)
    index = VectorIndex.open(path, DIM, MemorySettings())
    index.add(np.arange(300) * 3, x)
    index.remove([0, 3])
    index.save()
    assert [p.name for p in path.parent.iterdir()] == ["clip.faiss"]  # no temporary left

    again = VectorIndex.open(path, DIM, MemorySettings())
    assert (again.kind, len(again)) == ("flat", 298)
    assert again.search(x[:4], 3) == index.search(x[:4], 3)
    with pytest.raises(ToolError, match=r"32-dimensional.*embeds 64.*anymodal memory rebuild"):
        VectorIndex.open(path, 64, MemorySettings())


def test_a_corrupt_file_says_to_rebuild(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.faiss"
    garbage.write_bytes(b"this is not a faiss index" * 10)
    with pytest.raises(ToolError, match=r"cannot be read.*anymodal memory rebuild"):
        VectorIndex.open(garbage, DIM, MemorySettings())

    cut = tmp_path / "cut.faiss"
    index = VectorIndex.open(cut, DIM, MemorySettings())
    index.add(np.arange(100), clustered(100, seed=3))
    index.save()
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    with pytest.raises(ToolError, match=r"cannot be read.*anymodal memory rebuild"):
        VectorIndex.open(cut, DIM, MemorySettings())


@pytest.mark.parametrize(("approximate", "least_recall"), [("hnsw", 0.9), ("ivfpq", 0.9)])
def test_past_the_exact_limit_it_becomes_approximate(
    tmp_path: Path, approximate: str, least_recall: float
) -> None:
    path = tmp_path / "space.faiss"
    settings = MemorySettings(exact_limit=2000, approximate=approximate)
    x, ids = clustered(2500, seed=4), np.arange(2500) + 10
    index = VectorIndex.open(path, DIM, settings)
    for start in range(0, 2500, 500):
        index.add(ids[start : start + 500], x[start : start + 500])
    index.wait()
    assert (index.kind, len(index)) == (approximate, 2500)

    queries = clustered(100, seed=5)
    found = index.search(queries, 10)
    assert all(len(row) == 10 for row in found)
    assert recall(found, exact_top(queries, x, ids, 10)) >= least_recall
    assert_true_cosines(found, queries, x, ids)  # exact re-ranking (ivfpq), flat storage (hnsw)

    again = VectorIndex.open(path, DIM, settings)  # the rebuild was saved
    assert (again.kind, len(again)) == (approximate, 2500)
    assert again.search(queries[:5], 10) == found[:5]

    # A rebuild copies the exact vectors out of the index: nothing is lost to quantisation.
    assert again.remove(ids[:100]) == 100
    again.rebuild(background=False)
    assert (again.kind, again.tombstones, len(again)) == (approximate, 0, 2400)
    found = again.search(queries, 10)
    assert recall(found, exact_top(queries, x[100:], ids[100:], 10)) >= least_recall
    assert_true_cosines(found, queries, x, ids)


def assert_true_cosines(
    found: list[list[tuple[int, float]]], queries: np.ndarray, x: np.ndarray, ids: np.ndarray
) -> None:
    row_of = {int(i): n for n, i in enumerate(ids)}
    for query, hits in zip(queries, found, strict=True):
        for item_id, score in hits:
            assert score == pytest.approx(float(x[row_of[item_id]] @ query), abs=1e-4)


def test_a_background_rebuild_serves_searches_and_applies_changes_made_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "space.faiss"
    started, release = threading.Event(), threading.Event()
    real_build = VectorIndex._build
    builds: list[str] = []

    def held_build(self: VectorIndex, kind: Kind, ids: np.ndarray, vectors: np.ndarray) -> Any:
        builds.append(kind)
        started.set()
        release.wait(60)
        return real_build(self, kind, ids, vectors)

    monkeypatch.setattr(VectorIndex, "_build", held_build)
    x = clustered(2600, seed=6)
    index = VectorIndex.open(path, DIM, MemorySettings(exact_limit=2000))
    index.add(np.arange(2000), x[:2000])
    assert builds == [] and index.kind == "flat"
    index.add(np.arange(2000, 2100), x[2000:2100])  # crosses the limit
    assert started.wait(30)

    # The build is held: the old exact index keeps answering and taking changes.
    assert index.kind == "flat"
    assert index.search(x[5], 1)[0][0][0] == 5
    index.add(np.arange(2100, 2600), x[2100:2600])
    index.remove([0, 1, 2])
    index.add(np.array([3]), x[2599:2600])  # id 3 now holds vector 2599
    assert len(index) == 2597
    assert index.search(x[2300], 1)[0][0][0] == 2300
    assert not path.exists()

    release.set()
    index.wait()
    assert builds == ["hnsw"]  # one rebuild, though the adds meanwhile crossed the limit too
    assert (index.kind, len(index)) == ("hnsw", 2597)
    assert index.search(x[2300], 1)[0][0][0] == 2300  # added during the build
    assert {i for i, _ in index.search(x[0], 20)[0]}.isdisjoint({0, 1, 2})
    assert {i for i, _ in index.search(x[2599], 2)[0]} == {3, 2599}

    again = VectorIndex.open(path, DIM, MemorySettings(exact_limit=2000))
    assert (again.kind, len(again)) == ("hnsw", 2597)


def test_hnsw_removal_keeps_tombstones_until_the_next_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "space.faiss"
    settings = MemorySettings(exact_limit=500)
    x = clustered(800, seed=7)
    index = VectorIndex.open(path, DIM, settings)
    index.add(np.arange(800), x)
    index.wait()
    assert index.kind == "hnsw"

    neighbours = [i for i, _ in index.search(x[10], 10)[0]]
    assert neighbours[0] == 10
    assert index.remove(neighbours[:5]) == 5
    assert (index.tombstones, len(index)) == (5, 795)
    after = index.search(x[10], 10)[0]
    assert len(after) == 10 and {i for i, _ in after}.isdisjoint(neighbours[:5])
    assert [i for i, _ in after][:5] == neighbours[5:]

    index.add(np.array([neighbours[1]]), x[10:11])  # a removed id comes back
    index.add(np.array([20]), x[30:31])  # a held id is replaced: its old vector is a tombstone
    assert (index.tombstones, len(index)) == (6, 796)
    assert index.search(x[10], 1)[0][0][0] == neighbours[1]
    assert 20 not in [i for i, _ in index.search(x[20], 3)[0]]
    index.save()
    again = VectorIndex.open(path, DIM, settings)  # tombstones are saved with the index
    assert (again.kind, again.tombstones, len(again)) == ("hnsw", 6, 796)
    assert again.search(x[10], 10) == index.search(x[10], 10)

    again.rebuild(background=False)
    assert (again.kind, again.tombstones, len(again)) == ("hnsw", 0, 796)
    assert VectorIndex.open(path, DIM, settings).tombstones == 0

    # Removing past a quarter of the index rebuilds it; small enough, it is exact again.
    live = set(range(800)) - set(neighbours[:5]) | {neighbours[1]}
    assert again.remove(np.arange(300, 800)) == len({i for i in live if i >= 300})
    again.wait()
    assert (again.kind, again.tombstones) == ("flat", 0)
    assert sorted(again.ids()) == sorted(i for i in live if i < 300)


CHILD = """
import os, signal, sys
from pathlib import Path
import numpy as np
import faiss
import memory.index as mi
from memory.settings import MemorySettings

path, mode = Path(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
x = rng.standard_normal((300, 16)).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
index = mi.VectorIndex.open(path, 16, MemorySettings())
for b in range(2):
    index.add(np.arange(b * 100, b * 100 + 100), x[b * 100 : b * 100 + 100])
    index.save()

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

real_write = faiss.write_index
def half_write(index, name):
    real_write(index, name)
    with open(name, "r+b") as fh:
        fh.truncate(os.path.getsize(name) // 2)
    die()

if mode == "before-rename":
    mi.os.replace = die  # the temporary file is complete and fsynced, not yet renamed
elif mode == "mid-write":
    faiss.write_index = half_write
index.add(np.arange(200, 250), x[200:250])
if mode == "between-adds":
    die()
index.add(np.arange(250, 300), x[250:300])
index.save()
print("not killed")
"""


@pytest.mark.parametrize("mode", ["before-rename", "mid-write", "between-adds"])
def test_a_process_killed_while_saving_leaves_the_last_saved_index(
    tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "text.faiss"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    done = subprocess.run(
        [sys.executable, str(script), str(path), mode], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    temps = list(tmp_path.glob(".text.faiss.*.tmp"))
    assert len(temps) == (0 if mode == "between-adds" else 1)

    index = VectorIndex.open(path, 16, MemorySettings())
    assert not list(tmp_path.glob(".text.faiss.*.tmp"))  # the dead process's temporary is gone
    assert (index.kind, len(index)) == ("flat", 200)
    assert sorted(index.ids()) == list(range(200))
    rng = np.random.default_rng(0)
    x = unit(rng.standard_normal((300, 16)).astype(np.float32))
    assert index.search(x[150], 1)[0][0] == (150, pytest.approx(1.0, abs=1e-5))
    assert index.search(x[260], 1)[0][0][0] != 260
