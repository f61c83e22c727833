"""``anymodal memory add|search|stats|forget|rebuild``: the cross-modal memory from the command
line. ``register`` adds the command to the CLI's subparsers and ``run`` carries it out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
KINDS = ("text", "image", "audio", "video", "mesh")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``memory`` and its actions to ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "memory",
        help="the cross-modal memory: add, search, stats, forget, rebuild",
        description="Everything attached or made is indexed (config memory.enabled) and can "
        "be found again by words or by an example of any modality.",
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="index files (folders recursively)")
    add.add_argument("paths", nargs="+", metavar="PATH")
    add.add_argument("--modality", choices=KINDS, help="only files of this kind")
    add.add_argument("--note", default="", help="words to file them under")
    search = sub.add_parser("search", help="find artifacts by words or --like FILE")
    search.add_argument("query", nargs="?", default="", metavar="QUERY")
    search.add_argument("--like", metavar="FILE", help="an example: image, audio, video, text")
    search.add_argument("--modality", choices=KINDS, help="only return this kind")
    search.add_argument("--limit", type=int, default=10)
    search.add_argument("--json", action="store_true", help="print JSON")
    stats = sub.add_parser("stats", help="what the memory holds, and its indexes")
    stats.add_argument("--json", action="store_true", help="print JSON")
    forget = sub.add_parser("forget", help="remove an artifact (id, id prefix or path)")
    forget.add_argument("ref", metavar="ID")
    sub.add_parser("rebuild", help="embed everything afresh into new indexes")
    return p


def run(args: argparse.Namespace) -> int:
    """Carry out ``anymodal memory ACTION``: 0 done, 1 failed, 2 usage error."""
    from pydantic import ValidationError

    from assistant.api import Assistant
    from tools.errors import ToolError

    try:
        bot = Assistant()
    except ValidationError as exc:
        print(f"error: bad configuration: {exc}", file=sys.stderr)
        return EXIT_USAGE
    memory = bot.memory
    if memory is None:
        print("error: the memory needs faiss: pip install 'anymodal[memory]'", file=sys.stderr)
        return EXIT_FAILED
    actions = {"add": _add, "search": _search, "stats": _stats, "forget": _forget}
    actions["rebuild"] = _rebuild
    try:
        return actions[args.action](memory, args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        memory.close()


class UsageError(Exception):
    pass


def files_under(paths: list[str], modality: str | None) -> list[Path]:
    """The files named, folders walked recursively (hidden ones skipped), optionally only
    those whose kind (by extension) is ``modality``."""
    import mimetypes

    from tools.artifact import modality_of

    found: list[Path] = []
    for name in paths:
        p = Path(name).expanduser()
        if not p.exists():
            raise UsageError(f"not found: {p}")
        walk = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
        for f in walk:
            if any(part.startswith(".") for part in f.relative_to(p.parent).parts):
                continue
            mime = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
            if modality is None or modality_of(mime, f.suffix).value == modality:
                found.append(f)
    return found


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=True
    )


def _add(memory: Any, args: argparse.Namespace) -> int:
    from memory.memory import artifact_in_place

    files = files_under(args.paths, args.modality)
    if not files:
        raise UsageError("no files to add" + (f" of kind {args.modality}" if args.modality else ""))
    arts = [artifact_in_place(f) for f in files]
    with _progress() as bar:
        task = bar.add_task("indexing", total=len(arts))

        def report(done: int, total: int, what: str) -> None:
            bar.update(task, completed=min(done, total), total=total, description=what[:40])

        memory.add(arts, note=args.note, progress=report)
    st = memory.stats()
    print(f"added {len(arts)} file(s); the memory holds {st.get('items', '?')} artifact(s)")
    for name, why in st["missing_spaces"].items():
        print(f"note: {name} space off: {why}", file=sys.stderr)
    return EXIT_OK


def _search(memory: Any, args: argparse.Namespace) -> int:
    from memory.memory import artifact_in_place
    from tools.artifact import Modality

    if bool(args.query.strip()) == bool(args.like):
        raise UsageError("give a QUERY or --like FILE (one of them)")
    query: Any = args.query
    if args.like:
        like = Path(args.like).expanduser()
        if not like.is_file():
            raise UsageError(f"not found: {like}")
        query = artifact_in_place(like)
    hits = memory.search(query, Modality(args.modality) if args.modality else None, args.limit)
    if args.json:
        print(json.dumps([h.to_json() for h in hits], indent=2))
        return EXIT_OK
    if not hits:
        print("nothing found")
    for h in hits:
        print(f"{h.score:.4f}  {h.modality.value:<6} {h.path}")
    return EXIT_OK


def _stats(memory: Any, args: argparse.Namespace) -> int:
    st = memory.stats()
    if args.json:
        print(json.dumps(st, indent=2, default=str))
        return EXIT_OK
    for key, value in st.items():
        print(f"{key}: {value}")
    return EXIT_OK


def _forget(memory: Any, args: argparse.Namespace) -> int:
    art = memory.forget(args.ref)
    print(f"forgot {art.name or art.id[:12]} ({art.modality.value})")
    return EXIT_OK


def _rebuild(memory: Any, args: argparse.Namespace) -> int:
    with _progress() as bar:
        task = bar.add_task("rebuilding")

        def report(done: int, total: int, what: str) -> None:
            bar.update(task, completed=min(done, total), total=total, description=what[:40])

        counts = memory.rebuild(progress=report)
    print(f"rebuilt: {counts['indexed']} indexed, {counts['forgotten']} gone files forgotten")
    return EXIT_OK
