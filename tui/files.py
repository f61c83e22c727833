"""Saving and opening artifacts from the app: no dialogs, a line that says what happened."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tools.artifact import Artifact


def save_copy(art: Artifact, folder: Path | None = None) -> Path:
    """Copy ``art`` into ``folder`` (the current directory) under its name, never over an
    existing file: ``cat.png`` becomes ``cat-1.png`` when ``cat.png`` is there."""
    folder = folder or Path.cwd()
    src = Path(art.path)
    name = Path(art.name).name if art.name else src.name
    if not Path(name).suffix:
        name += src.suffix
    dest = folder / name
    n = 1
    while dest.exists():
        dest = folder / f"{Path(name).stem}-{n}{Path(name).suffix}"
        n += 1
    shutil.copyfile(src, dest)
    return dest


def opener() -> list[str] | None:
    """The platform's 'open with the default application' command, if there is one."""
    if sys.platform == "darwin":
        found = shutil.which("open")
    elif sys.platform == "win32":
        return ["cmd", "/c", "start", ""]
    else:
        found = shutil.which("xdg-open")
    return [found] if found else None


def artifact_action(art: Artifact, action: str) -> str:
    """Do "save" or "open" for ``art``; the notification text."""
    if action == "save":
        try:
            return f"saved {save_copy(art)}"
        except OSError as exc:
            return f"could not save {art.label()}: {exc.strerror or exc}"
    command = opener()
    if command is None or not os.path.exists(art.path):
        return f"saved at {art.path}"
    try:
        subprocess.Popen(
            [*command, art.path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return f"saved at {art.path}"
    return f"opening {art.label()}"


def files_named_in(text: str) -> list[Path]:
    """Existing files named by whole words of ``text`` (typed or pasted, quoted or not).

    Conservative: a word counts only if it looks like a path (a separator, ``~`` or a file
    suffix) and names an existing file, so ordinary words are never taken for files.
    """
    found = []
    for word in split_words(text):
        word = word.removeprefix("file://")
        if not ("/" in word or "\\" in word or word.startswith("~") or Path(word).suffix):
            continue
        path = Path(word).expanduser()
        try:
            if path.is_file():
                found.append(path)
        except OSError:  # a name too long for the file system, say
            continue
    return found


def shown_path(path: str | Path) -> str:
    """``path`` for reading on screen: the home folder written as ``~``."""
    path = Path(path)
    try:
        return str(Path("~") / path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def split_words(text: str) -> list[str]:
    """Shell-like words (quotes and backslash escapes group); plain words on bad quoting."""
    try:
        return shlex.split(text)
    except ValueError:  # an unclosed quote
        return text.split()
