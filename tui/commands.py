"""The one command registry: slash commands in the input and the command palette both use it.

A command is a name, a usage line, a help line and an async function of the app and its
arguments. ``binding`` names the key binding (by id) that does the same, so /help can show it.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.screens import TextScreen

if TYPE_CHECKING:
    from tui.app import AnymodalApp


class CommandError(ValueError):
    """A line that starts like a command but is not one (unknown name, bad quoting)."""


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    run: Callable[[AnymodalApp, list[str]], Awaitable[None]]
    binding: str | None = None
    """Id of the key binding that does the same."""
    idle_only: bool = False
    """Refused while a task runs (it would replace the transcript the task writes into)."""


COMMANDS: dict[str, Command] = {}


def command(
    usage: str, help: str, *, binding: str | None = None, idle_only: bool = False
) -> Callable[[Callable[[AnymodalApp, list[str]], Awaitable[None]]], Command]:
    """Register the decorated coroutine as the command named by ``usage``'s first word."""

    def register(fn: Callable[[AnymodalApp, list[str]], Awaitable[None]]) -> Command:
        name = usage.split()[0].lstrip("/")
        cmd = Command(name, usage, help, fn, binding, idle_only)
        COMMANDS[name] = cmd
        return cmd

    return register


@command("/new", "start a new session (the transcript empties; old sessions stay)", idle_only=True)
async def _new(app: AnymodalApp, args: list[str]) -> None:
    await app.new_session()


@command("/sessions", "list earlier sessions and open one", binding="sessions", idle_only=True)
async def _sessions(app: AnymodalApp, args: list[str]) -> None:
    app.action_sessions()


@command("/attach PATH...", "attach files to the next message", binding="attach")
async def _attach(app: AnymodalApp, args: list[str]) -> None:
    if args:
        await app.attach_paths(args)
    else:
        app.action_attach()


@command("/plan FILE", "run a plan file (JSON) with the pending attachments", idle_only=True)
async def _plan(app: AnymodalApp, args: list[str]) -> None:
    if len(args) != 1:
        app.notify("usage: /plan FILE", severity="warning")
        return
    await app.send("", plan=Path(args[0]).expanduser())


@command("/export [DIR]", "write this session as Markdown and JSON with its files (default: .)")
async def _export(app: AnymodalApp, args: list[str]) -> None:
    app.export_session(Path(args[0]).expanduser() if args else Path.cwd())


@command("/clear", "clear the screen (the session keeps its history)", idle_only=True)
async def _clear(app: AnymodalApp, args: list[str]) -> None:
    await app.clear_transcript()


@command("/model [NAME]", "show the planning models, or plan with NAME from the next message")
async def _model(app: AnymodalApp, args: list[str]) -> None:
    from assistant.planner_models import current, planner_models

    assistant = app.assistant
    if args:
        try:
            app.notify(assistant.use_model(" ".join(args)))
        except ValueError as exc:
            app.notify(str(exc), severity="error")
        return
    backend, model = current(assistant.config)
    lines = [f"In use: **{model}** ({backend}).", "", "| model | runs on | installed |"]
    lines.append("|---|---|---|")
    for m in await asyncio.to_thread(planner_models, assistant.config, assistant.models):
        mark = " (in use)" if m.in_use else ""
        lines.append(f"| `{m.name}`{mark} | {m.backend} | {'yes' if m.installed else 'no'} |")
    lines += ["", "`/model NAME` switches; `/model openai:MODEL` uses the OpenAI endpoint."]
    app.push_screen(TextScreen("Planning models", "\n".join(lines), id="models"))


@command("/tools", "list the tools the planner can use")
async def _tools(app: AnymodalApp, args: list[str]) -> None:
    lines = [f"- **{t.name}**: {t.description}" for t in app.assistant.registry]
    app.push_screen(TextScreen(f"{len(lines)} tools", "\n".join(lines), id="tools"))


@command("/help", "commands and key bindings")
async def _help(app: AnymodalApp, args: list[str]) -> None:
    app.push_screen(TextScreen("Help", help_markdown(key_table(app)), id="help"))


@command("/quit", "leave (the session is saved)", binding="quit")
async def _quit(app: AnymodalApp, args: list[str]) -> None:
    await app.action_quit()


def parse(line: str) -> tuple[Command, list[str]] | None:
    """The command a line names and its arguments, or None when the line is a message.

    A line starting with '/' whose first word is an existing file (``/tmp/cat.png make it
    small``) is a message. Raises ``CommandError`` for an unknown command.
    """
    line = line.strip()
    if not line.startswith("/"):
        return None
    first = line.split(maxsplit=1)[0]
    name = first[1:]
    if name not in COMMANDS:
        if Path(first).exists():
            return None
        raise CommandError(f"unknown command {first}; /help lists them")
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise CommandError(f"{first}: {exc}") from None
    return COMMANDS[name], words[1:]


async def execute(app: AnymodalApp, cmd: Command, args: list[str]) -> None:
    if cmd.idle_only and app.running:
        app.notify(f"/{cmd.name} waits until the task ends (Esc stops it)", severity="warning")
        return
    await cmd.run(app, args)


def key_table(app: AnymodalApp) -> list[tuple[str, str, str]]:
    """``(id, keys, description)`` for every binding with an id, after the app's keymap."""
    from tui.composer import Composer

    keymap = app.keymap()
    rows = []
    for binding in [*app.BINDINGS, *Composer.BINDINGS]:
        if isinstance(binding, Binding) and binding.id:
            rows.append((binding.id, keymap.get(binding.id, binding.key), binding.description))
    return rows


def help_markdown(keys: list[tuple[str, str, str]]) -> str:
    """/help's page: commands, then bindings as ``(id, keys, description)``."""
    lines = ["## Commands", "", "| command | what it does | key |", "|---|---|---|"]
    bound = {binding_id: key for binding_id, key, _ in keys}
    for cmd in COMMANDS.values():
        key = bound.get(cmd.binding or "", "")
        lines.append(f"| `{cmd.usage}` | {cmd.help} | {key} |")
    lines += [
        "",
        "Paths typed or pasted in a message are attached when they name existing files.",
        "",
        "## Key bindings",
        "",
        'Remap them by id in config.toml: `[tui.keys]` then `cancel = "ctrl+g"`.',
        "",
        "| id | keys | what it does |",
        "|---|---|---|",
    ]
    lines += [f"| `{bid}` | {key} | {desc} |" for bid, key, desc in keys]
    return "\n".join(lines)


class CommandsProvider(Provider):
    """The registry in Textual's command palette (Ctrl+P): every command, without arguments."""

    def _title(self, cmd: Command) -> str:
        return f"/{cmd.name}: {cmd.help}"

    def _runner(self, cmd: Command) -> Callable[[], Awaitable[None]]:
        return partial(execute, cast("AnymodalApp", self.app), cmd, [])

    async def discover(self) -> Hits:
        for cmd in COMMANDS.values():
            yield DiscoveryHit(self._title(cmd), self._runner(cmd), help=cmd.usage)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query.lstrip("/"))
        for cmd in COMMANDS.values():
            title = self._title(cmd)
            if (score := matcher.match(title)) > 0:
                yield Hit(score, matcher.highlight(title), self._runner(cmd), help=cmd.usage)
