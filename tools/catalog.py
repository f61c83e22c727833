"""The model catalog: named models, their pinned files, and the sources to get them from.

The built-in entries live in ``tools/catalog.toml`` (package data); users add or override
entries with the same fields under ``[models.NAME]`` in their config, which reaches this
module as a plain dict. Offline packs are read as data through ``importlib.metadata``; their
modules are never imported.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from importlib import metadata, resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tools.errors import ToolError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class UnknownModel(ToolError):
    """A name that is not in the catalog; the message lists close matches."""

    def __init__(self, name: str, known: list[str]):
        self.name = name
        lowered = name.lower()
        close = difflib.get_close_matches(lowered, known, n=3, cutoff=0.5)
        close += [k for k in known if lowered in k.lower() and k not in close][:3]
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        super().__init__(
            f"unknown model '{name}'{hint} `anymodal models list` shows the catalog; "
            f'add your own under [models."{name}"] in config.toml'
        )


class CatalogError(ToolError):
    """A catalog entry (built-in or from the config) that does not make sense."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelFile(_Strict):
    """One file of a model, by its path inside the model's folder."""

    name: str
    """Relative path inside the model folder, e.g. 'model.bin' or '1_Pooling/config.json'."""
    sha256: str | None = None
    """Upstream sha256 (lower-case hex); unset, the file is only checked to exist."""
    size: int | None = Field(None, ge=0)
    """Size in bytes, for display."""

    @model_validator(mode="after")
    def _check(self) -> ModelFile:
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ValueError(f"sha256 of {self.name} must be 64 lower-case hex digits")
        if Path(self.name).is_absolute() or ".." in Path(self.name).parts:
            raise ValueError(f"file name {self.name!r} must be a path inside the model folder")
        return self


class PathSource(_Strict):
    """A local folder holding the files (or, for a one-file model, the file itself)."""

    kind: Literal["path"]
    path: str

    def describe(self) -> str:
        return f"path {self.path}"


class PackSource(_Strict):
    """An offline pack: model files shipped as data in distributions on the package index.

    Files not named in ``pieces`` are ``folder/NAME`` in distribution ``package``. A pack with
    no pieces is used in place; one with pieces is assembled once into the cache.
    """

    kind: Literal["pack"]
    package: str | None = None
    """The distribution holding the files (the pip name)."""
    folder: str = ""
    """The files' folder inside that distribution."""
    pieces: dict[str, list[str]] = Field(default_factory=dict)
    """File name -> ``"DIST:PATH"`` chunks, concatenated in order into that file."""

    @model_validator(mode="after")
    def _check(self) -> PackSource:
        for file, chunks in self.pieces.items():
            if not chunks or any(":" not in c for c in chunks):
                raise ValueError(f"pieces of {file} must be a non-empty list of 'DIST:PATH'")
        if self.package is None and not self.pieces:
            raise ValueError("a pack source needs a package, pieces, or both")
        return self

    def chunks(self, file: str) -> list[tuple[str, str]]:
        """The (distribution, path) chunks that make up ``file``, in order."""
        if file in self.pieces:
            return [tuple(c.split(":", 1)) for c in self.pieces[file]]  # type: ignore[misc]
        if self.package is None:
            raise CatalogError(f"pack source has no package for {file} and no pieces")
        return [(self.package, f"{self.folder}/{file}" if self.folder else file)]

    def packages(self) -> list[str]:
        """Every distribution involved, in order, for the ``pip install`` line."""
        names = [self.package] if self.package else []
        for chunks in self.pieces.values():
            names += [c.split(":", 1)[0] for c in chunks]
        return list(dict.fromkeys(names))

    def in_place(self) -> bool:
        """Whether the files can be used where pip put them (nothing to concatenate)."""
        return not self.pieces

    def describe(self) -> str:
        names = self.packages()
        if len(names) <= 2:
            return f"pack {' + '.join(names)}"
        return f"pack {names[0]} ... {names[-1]} ({len(names)} packages)"


class HubSource(_Strict):
    """A Hugging Face Hub download; repository and revision default to the entry's."""

    kind: Literal["hub"]
    repo: str | None = None
    revision: str | None = None
    subfolder: str = ""
    """Folder of the files inside the repository (piper voices keep them in sub-folders)."""
    include: list[str] = Field(default_factory=list)
    """For an entry without listed files: glob patterns of the repository files to fetch
    (e.g. skip the fp16 and .bin copies of a diffusers pipeline); empty, all of them."""

    def describe(self) -> str:
        return f"hub {self.repo}@{self.revision or 'main'}"


Source = Annotated[PathSource | PackSource | HubSource, Field(discriminator="kind")]


class ModelEntry(_Strict):
    """One named model: what it is, which files it has, where to get them."""

    name: str
    task: str
    """What the model does: 'llm', 'text-embedding', 'speech-recognition', ..."""
    description: str = ""
    repo: str | None = None
    """Upstream Hugging Face repository."""
    revision: str | None = None
    """Upstream commit (or tag) the pinned files come from."""
    license: str = "unknown"
    size: int | None = Field(None, ge=0)
    """Bytes the model takes in memory once loaded; unset, the sum of the file sizes."""
    main: str | None = None
    """The file callers load; unset, callers get the model's folder."""
    files: list[ModelFile] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _fill_sources(cls, data: Any) -> Any:
        """No sources and an upstream repo: the Hub. Hub sources default to the entry's repo."""
        if not isinstance(data, dict):
            return data
        sources = list(data.get("sources") or []) or ([{"kind": "hub"}] if data.get("repo") else [])
        filled = []
        for s in sources:
            if isinstance(s, dict) and s.get("kind") == "hub":
                s = {**s, "repo": s.get("repo") or data.get("repo")}
                s["revision"] = s.get("revision") or data.get("revision")
            filled.append(s)
        return {**data, "sources": filled}

    @model_validator(mode="after")
    def _check(self) -> ModelEntry:
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError("file names must be unique")
        if self.main is not None and names and self.main not in names:
            raise ValueError(f"main file {self.main!r} is not among the files")
        if not self.sources:
            raise ValueError("give sources (a path, a pack or the hub) or an upstream repo")
        for s in self.sources:
            if isinstance(s, HubSource) and s.repo is None:
                raise ValueError("a hub source needs a repo (on the source or the entry)")
            if isinstance(s, PackSource):
                if not self.files:
                    raise ValueError("a pack source needs the files listed")
                unknown = set(s.pieces) - set(names)
                if unknown:
                    raise ValueError(f"pieces name files not in the entry: {sorted(unknown)}")
        return self

    @property
    def total_size(self) -> int | None:
        """Memory estimate in bytes: ``size``, else the sum of the file sizes when all known."""
        if self.size is not None:
            return self.size
        sizes = [f.size for f in self.files]
        return sum(s for s in sizes if s is not None) if sizes and None not in sizes else None

    def packages(self) -> list[str]:
        """Offline pack distributions this model can come from."""
        out: list[str] = []
        for s in self.sources:
            if isinstance(s, PackSource):
                out += s.packages()
        return list(dict.fromkeys(out))

    def hub(self) -> HubSource | None:
        return next((s for s in self.sources if isinstance(s, HubSource)), None)


class Catalog:
    """The built-in entries plus the user's, looked up by name.

    A malformed entry does not break the others: asking for it raises ``CatalogError``, and
    ``errors`` lists what is wrong with each such entry.
    """

    def __init__(self, entries: dict[str, ModelEntry], errors: dict[str, str] | None = None):
        self._entries = dict(sorted(entries.items()))
        self.errors: dict[str, str] = dict(errors or {})
        """Name -> what is wrong with that entry (with the config key to fix)."""

    @classmethod
    def load(cls, extra: dict[str, dict[str, Any]] | None = None) -> Catalog:
        """The built-in catalog with ``extra`` (the config's ``models``) merged over it.

        A user entry with a built-in name overrides the fields it gives and keeps the rest.
        """
        raw: dict[str, Any] = builtin_entries()
        for name, fields in (extra or {}).items():
            raw[name] = {**raw.get(name, {}), **fields} if isinstance(fields, dict) else fields
        entries, errors = {}, {}
        for name, fields in raw.items():
            where = f"models.{name} in the config" if name in (extra or {}) else name
            if not isinstance(fields, dict):
                errors[name] = f"bad model catalog entry {where}: it must be a table of fields"
                continue
            try:
                entries[name] = ModelEntry.model_validate({**fields, "name": name})
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}"
                    for e in exc.errors()
                )
                errors[name] = f"bad model catalog entry {where}: {problems}"
        return cls(entries, errors)

    def get(self, name: str) -> ModelEntry:
        """The entry called ``name``.

        Raises:
            UnknownModel: No such name (the message lists close matches).
            CatalogError: The entry is malformed.
        """
        if name in self.errors:
            raise CatalogError(self.errors[name])
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownModel(name, list(self._entries)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self.errors

    def names(self) -> list[str]:
        """The usable entries' names, sorted."""
        return list(self._entries)

    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())


def builtin_entries() -> dict[str, dict[str, Any]]:
    """The raw tables of ``tools/catalog.toml``."""
    text = resources.files("tools").joinpath("catalog.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def pack_file(dist: str, path: str) -> Path | None:
    """Where an installed distribution keeps a data file, or None when it is not there."""
    try:
        found = metadata.distribution(dist).locate_file(path)
    except metadata.PackageNotFoundError:
        return None
    found = Path(str(found))
    return found if found.is_file() else None


def pack_installed(dist: str) -> bool:
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return False
    return True
