"""``anymodal chat``: the Textual app on the same event stream as the CLI.

The graph runs in a thread worker that iterates ``Assistant.stream`` and hands each event to
the UI with ``call_from_thread``, so the UI never waits on a tool. Approvals are asked in a
modal from inside that worker (it waits on the answer) and the run continues with
``stream_resume``. Key bindings have ids and are remapped from ``Config.tui.keys``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.notifications import SeverityLevel
from textual.widgets import Footer, Header

from assistant.events import ApprovalRequired, Event, Final, StepProgress
from tools.artifact import Artifact
from tui import commands
from tui.artifacts import ArtifactAction
from tui.chat import (
    AssistantMessage,
    AttachmentChips,
    Chip,
    UserMessage,
    without_artifact_list,
)
from tui.composer import Composer
from tui.files import artifact_action, files_named_in
from tui.pickers import FilePickerScreen, SessionDeleted, SessionsScreen
from tui.plan import PlanPanel
from tui.screens import ApprovalScreen
from tui.turn import Turn

PROGRESS_EVERY = 0.1
"""Seconds between progress-bar updates (tools may report far more often)."""


class AnymodalApp(App[int]):
    """The chat app around one ``Assistant``.

    Args:
        assistant: the engine; tests pass one with test tools and a scripted planner.
        session: a session to continue (its transcript is shown).
        plans: for tests and demos: plans that the next messages run (one each, in order)
            instead of asking the planner, as ``Assistant.stream(plan=...)`` takes them.
    """

    CSS_PATH = "app.tcss"
    TITLE = "anymodal"
    COMMANDS = App.COMMANDS | {commands.CommandsProvider}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Stop", id="cancel"),
        Binding("ctrl+o", "attach", "Attach", id="attach"),
        Binding("ctrl+p", "command_palette", "Commands", id="palette", priority=True, show=False),
        Binding("ctrl+r", "sessions", "Sessions", id="sessions"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]

    def __init__(self, assistant: Any, session: str | None = None, *, plans: Any = None) -> None:
        super().__init__()
        self.assistant = assistant
        self.session = session
        self.plans: list[Any] = list(plans or [])
        self.turn: Turn | None = None
        """The message being answered, from its send until its worker has ended."""

    # --- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            yield VerticalScroll(id="transcript")
            yield PlanPanel(id="plan")
        yield AttachmentChips(id="chips")
        yield Composer(id="composer")
        yield Footer()

    @property
    def transcript(self) -> VerticalScroll:
        return self.query_one("#transcript", VerticalScroll)

    @property
    def plan_panel(self) -> PlanPanel:
        return self.query_one(PlanPanel)

    @property
    def chips(self) -> AttachmentChips:
        return self.query_one(AttachmentChips)

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    def keymap(self) -> dict[str, str]:
        """Binding id -> keys: the config's ``tui.keys`` over the defaults; with
        ``enter_sends = false`` Enter writes a new line and Ctrl+Enter sends."""
        tui = self.assistant.config.tui
        keys: dict[str, str] = {} if tui.enter_sends else {"send": "ctrl+enter"}
        keys.update(tui.keys)
        return keys

    async def on_mount(self) -> None:
        self.set_keymap(self.keymap())
        self.set_interval(PROGRESS_EVERY, self._show_progress)
        self.transcript.anchor()
        self.composer.focus()
        if self.session:
            await self.open_session(self.session)
        self._show_session()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Notifications as plain text by default: they carry paths and error messages,
        whose brackets are not markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def _show_session(self) -> None:
        self.sub_title = f"session {self.session}" if self.session else "new session"

    # --- sending -----------------------------------------------------------------------------

    @on(Composer.Submitted)
    async def _submitted(self, event: Composer.Submitted) -> None:
        text = event.text
        try:
            parsed = commands.parse(text)
        except commands.CommandError as exc:
            self.notify(str(exc), severity="error")
            return
        if parsed is not None:
            self.composer.remember(text)
            self.composer.clear()
            await commands.execute(self, *parsed)
            return
        if text.strip() or self.chips.items:
            await self.send(text)

    async def send(self, text: str, *, plan: Any = None) -> None:
        """Start a turn with ``text``, the pending chips and any existing files it names."""
        if self.turn is not None:
            if self.turn.cancelled:
                busy = "the last task is still stopping; send again in a moment"
            else:
                busy = "a task is running; wait for it, or Esc stops it"
            self.notify(busy, severity="warning")
            return
        attachments = list(self.chips.items)
        seen = {a.resolve() for a in attachments if isinstance(a, Path)}
        for path in files_named_in(text):
            if path.resolve() not in seen:
                attachments.append(path)
                seen.add(path.resolve())
        if plan is None and self.plans:
            plan = self.plans.pop(0)
        if self.session is None:
            from assistant.sessions import new_session_id

            self.session = new_session_id()
            self._show_session()
        shown = text if plan is None or text else f"(plan {plan})"
        view = AssistantMessage()
        await self.transcript.mount_all([UserMessage(shown, attachments), view])
        self.composer.remember(text)
        self.composer.clear()
        await self.chips.clear()
        await self.plan_panel.planning()
        config = self.assistant.config
        self.turn = Turn(
            text, attachments, view, self.plan_panel, config=config, notify=self.notify
        )
        self.refresh_bindings()
        self._run_turn(self.turn, self.session, plan)

    @property
    def running(self) -> bool:
        """True from a send until its worker has ended (a cancelled run included)."""
        return self.turn is not None

    @work(thread=True, exclusive=True, group="turn", exit_on_error=False)
    def _run_turn(self, turn: Turn, session: str, plan: Any) -> None:
        """Drive one turn (and its approvals) in this thread; the UI gets every event."""
        from assistant.api import AttachmentError, SessionNotFound
        from assistant.plan import PlanError

        try:
            events: Iterator[Event] | None = self.assistant.stream(
                turn.prompt, turn.attachments, session=session, plan=plan
            )
            while events is not None:
                pending: ApprovalRequired | None = None
                for event in events:
                    if isinstance(event, StepProgress):
                        turn.buffer(event)
                        continue
                    if isinstance(event, ApprovalRequired):
                        pending = event
                    self._ui(self._on_event, turn, event)
                if pending is None:
                    break
                approve = bool(self._ui(self._ask_approval, pending.steps))
                self._ui(turn.answered, approve)
                events = self.assistant.stream_resume(session, approve=approve)
        except (AttachmentError, PlanError, SessionNotFound) as exc:
            self._from_thread(self._turn_error, turn, str(exc), True)
        except Exception as exc:  # a bug in a tool or the engine: shown, never a crash
            self._from_thread(self._turn_error, turn, f"{type(exc).__name__}: {exc}", False)
        finally:
            self._from_thread(self._turn_done, turn)

    def _ui(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the UI thread and wait for it (it may be a coroutine function)."""
        return self.call_from_thread(cast(Any, fn), *args, **kwargs)

    def _from_thread(self, fn: Callable[..., Any], *args: Any) -> None:
        """``_ui`` for the last words of a worker: an app that has gone is not an error."""
        try:
            self._ui(fn, *args)
        except RuntimeError:  # the app has gone: stop the run instead of reporting to it
            self.assistant.cancel(self.session)

    def _show_progress(self) -> None:
        if self.turn is not None:
            self.turn.show_progress()

    async def _on_event(self, turn: Turn, event: Event) -> None:
        if turn.cancelled:
            self.assistant.cancel(self.session)  # a run that began after Esc was pressed stops too
        if isinstance(event, Final):
            self.session = event.session
            self._show_session()
        await turn.show(event)

    async def _ask_approval(self, steps: list[dict[str, Any]]) -> bool:
        """Open the approval dialog and wait (the worker waits on this) for the answer."""
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def done(ok: bool | None) -> None:
            if not answer.done():
                answer.set_result(bool(ok))

        self.push_screen(ApprovalScreen(steps), callback=done)
        return await answer

    async def _turn_error(self, turn: Turn, message: str, nothing_ran: bool) -> None:
        await turn.error(message)
        if nothing_ran:  # nothing was lost: the message goes back to the input
            await self._restore(turn)

    async def _turn_done(self, turn: Turn) -> None:
        await turn.view.finish()
        self.turn = None
        self.refresh_bindings()

    async def _restore(self, turn: Turn) -> None:
        if not self.composer.text.strip():
            self.composer.restore(turn.prompt)
        for item in turn.attachments:
            await self.chips.add(item)

    # --- actions (key bindings; the commands call these too) ---------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Esc means "stop" only while a task runs (the footer shows it then)."""
        if action == "cancel":
            return self.turn is not None and not self.turn.cancelled
        return True

    async def action_cancel(self) -> None:
        """Stop the running task and put the message back in the input."""
        turn = self.turn
        if turn is None or turn.cancelled:
            return
        self.assistant.cancel(self.session)
        await turn.cancel()
        self.refresh_bindings()
        await self._restore(turn)
        self.notify("cancelled", severity="warning")

    def action_attach(self) -> None:
        def chosen(paths: list[Path] | None) -> None:
            if paths:
                self.run_worker(self.attach_paths(map(str, paths)), group="attach")

        self.push_screen(FilePickerScreen(), chosen)

    def action_sessions(self) -> None:
        if self.running:
            self.notify("sessions open when the task ends (Esc stops it)", severity="warning")
            return

        def chosen(session: str | None) -> None:
            if session:
                self.run_worker(self.open_session(session), group="sessions")

        self.push_screen(SessionsScreen(self.assistant, self.session), chosen)

    async def action_quit(self) -> None:
        self.exit(0)

    def on_unmount(self) -> None:
        """However the app ends, a turn still running stops (its thread would go on)."""
        if self.running:
            self.assistant.cancel(self.session)

    # --- what the commands do ----------------------------------------------------------------

    async def attach_paths(self, paths: Iterable[str]) -> None:
        for raw in paths:
            path = Path(raw).expanduser()
            if path.is_file():
                await self.chips.add(path)
            else:
                self.notify(f"not a file: {raw}", severity="error")

    async def new_session(self) -> None:
        self.session = None
        await self.clear_transcript()
        await self.chips.clear()
        self._show_session()
        self.notify("new session")

    async def clear_transcript(self) -> None:
        await self.transcript.remove_children()
        await self.plan_panel.clear()

    async def open_session(self, session: str) -> None:
        """Show ``session``'s messages; the next message continues it."""
        try:
            messages = self.assistant.messages(session)
        except KeyError as exc:
            self.notify(str(exc), severity="error")
            if self.session == session:  # the one given at start: begin a new one instead
                self.session = None
            return
        await self.clear_transcript()
        self.session = session
        self._show_session()
        for m in messages:
            arts = [Artifact.model_validate(a) for a in m.get("artifacts") or []]
            if m.get("role") == "user":
                await self.transcript.mount(UserMessage(m.get("content") or "", arts))
            else:
                view = AssistantMessage(without_artifact_list(m.get("content") or "", arts))
                await self.transcript.mount(view)
                await view.add_artifacts(arts, self.assistant.config)
        self.transcript.scroll_end(animate=False)

    @on(SessionDeleted)
    async def _session_deleted(self, message: SessionDeleted) -> None:
        if message.session == self.session:  # its transcript shows what no longer exists
            await self.new_session()

    @work(thread=True, group="export", exit_on_error=False)
    def export_session(self, folder: Path, session: str | None = None) -> None:
        """Write ``session`` (this one by default) into ``folder`` (a thread: artifacts may
        be large files)."""
        session = session or self.session
        if session is None:
            self._ui(self.notify, "nothing to export yet", severity="warning")
            return
        try:
            written = self.assistant.export(session, folder)
        except (OSError, KeyError) as exc:
            self._ui(self.notify, f"export failed: {exc}", severity="error")
            return
        self._ui(self.notify, f"exported {len(written)} file(s) to {folder}")

    @on(Chip.Removed)
    def _chip_removed(self) -> None:
        self.composer.focus()  # back to writing, not on to the next chip

    @on(ArtifactAction)
    async def _artifact_action(self, message: ArtifactAction) -> None:
        if message.action == "attach":
            if await self.chips.add(message.art):
                self.notify(f"{message.art.label()} goes with your next message")
            return
        if message.action == "copy":
            self.copy_to_clipboard(message.art.path)
            self.notify(f"copied {message.art.path}")
            return
        # A thread: saving copies the file, which may be a large video.
        self.notify(await asyncio.to_thread(artifact_action, message.art, message.action))


def run_app(assistant: Any, session: str | None = None) -> int:
    """Run the app until the user quits; the exit code for ``anymodal chat``."""
    result = AnymodalApp(assistant, session).run()
    return int(result or 0)
