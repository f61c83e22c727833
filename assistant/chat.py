"""``anymodal chat`` as a plain terminal loop (rich output, artifacts as paths).

The Textual app replaces this as the default; the loop stays for dumb terminals and pipes.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

HELP = """\
Type a request and press Enter. Commands:
  /attach PATH...   attach files to the next message ($a1, $a2 ... in plans)
  /detach           drop the pending attachments
  /plan FILE        run a plan file (JSON) with the pending attachments
  /yes, /no         answer a pending approval
  /session          show the session id and where its files are
  /new              start a new session
  /help             this text
  /quit             leave (Ctrl+D works too)"""


class ChatLoop:
    """State of one chat: the assistant, the session and the pending attachments."""

    def __init__(self, assistant: Any, console: Any, session: str | None = None):
        self.assistant = assistant
        self.console = console
        self.session = session
        self.pending: list[str] = []
        self.waiting_approval = False
        self.commands: dict[str, Callable[[list[str]], bool]] = {
            "attach": self.attach,
            "detach": self.detach,
            "plan": self.plan,
            "yes": lambda _: self.answer(True),
            "no": lambda _: self.answer(False),
            "session": self.show_session,
            "new": self.new,
            "help": self.help,
            "quit": lambda _: False,
            "exit": lambda _: False,
        }

    def handle(self, line: str) -> bool:
        """Handle one input line; False ends the loop."""
        line = line.strip()
        if not line:
            return True
        if line.startswith("/"):
            try:
                name, *rest = shlex.split(line[1:])
            except ValueError as exc:
                self.console.print(f"[red]{exc}[/]")
                return True
            command = self.commands.get(name)
            if command is None:
                self.console.print(f"[red]unknown command /{name}[/]; /help lists them")
                return True
            return command(rest)
        self._run(lambda: self.assistant.stream(line, self.pending, session=self.session))
        return True

    def _run(self, make_events: Callable[[], Any]) -> None:
        from assistant.api import AttachmentError, SessionNotFound
        from assistant.plan import PlanError
        from assistant.render import render_events

        try:
            result = render_events(make_events(), self.console)
        except (AttachmentError, PlanError, SessionNotFound) as exc:
            self.console.print(f"[red]error:[/] {exc}")  # nothing ran; nothing is lost
            return
        self.session = result.session
        self.pending = []
        self.waiting_approval = result.status == "interrupted"
        style = "green" if result.ok else "yellow"
        self.console.print(f"[{style}]anymodal:[/] {result.text}")

    def attach(self, paths: list[str]) -> bool:
        for p in paths:
            if Path(p).expanduser().is_file():
                self.pending.append(str(Path(p).expanduser()))
                self.console.print(f"attached $a{len(self.pending)}: {p}")
            else:
                self.console.print(f"[red]not a file:[/] {p}")
        return True

    def detach(self, _: list[str]) -> bool:
        self.pending = []
        self.console.print("attachments dropped")
        return True

    def plan(self, rest: list[str]) -> bool:
        if len(rest) != 1:
            self.console.print("usage: /plan FILE")
            return True
        self._run(
            lambda: self.assistant.stream(
                "", self.pending, session=self.session, plan=Path(rest[0])
            )
        )
        return True

    def answer(self, yes: bool) -> bool:
        if not (self.waiting_approval and self.session):
            self.console.print("nothing is waiting for approval")
            return True
        session = self.session
        self._run(lambda: self.assistant.stream_resume(session, approve=yes))
        return True

    def show_session(self, _: list[str]) -> bool:
        from assistant import paths

        if self.session is None:
            self.console.print("no session yet: it starts with your first message")
        else:
            self.console.print(f"session {self.session}: {paths.session_dir(self.session)}")
        return True

    def new(self, _: list[str]) -> bool:
        self.session, self.pending = None, []
        self.console.print("new session")
        return True

    def help(self, _: list[str]) -> bool:
        self.console.print(HELP, markup=False)
        return True


def chat_loop(assistant: Any, session: str | None = None) -> int:
    from rich.console import Console

    console = Console()
    console.print("[bold]anymodal[/] - type /help for commands, /quit to leave")
    loop = ChatLoop(assistant, console, session)
    while True:
        try:
            line = console.input("[bold cyan]you>[/] ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return 0
        if not loop.handle(line):
            return 0
