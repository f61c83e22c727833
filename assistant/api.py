"""The Python API: ``Assistant().run(...)``, ``.stream(...)``, ``.resume(...)`` and async twins."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant import paths
from assistant.config import Config, load_config, model_manager
from assistant.events import ApprovalRequired, Event, Final, RunResult
from assistant.graph import build_graph
from assistant.plan import Plan, PlanError
from assistant.planners.base import Planner, make_planner
from assistant.sessions import (
    SessionIndex,
    SessionInfo,
    connect,
    export_session,
    new_session_id,
)
from assistant.state import RunContext, artifacts_of
from tools.artifact import Artifact, ArtifactStore
from tools.errors import ToolError
from tools.registry import Registry

if TYPE_CHECKING:
    from assistant.observation import Observation
    from assistant.robot import Decision, RobotLoop

Attachment = str | Path | bytes | Artifact | Any
"""A path, raw bytes, an ``Artifact``, a PIL image, or ``(waveform, sample_rate)``."""
PlanInput = Plan | dict[str, Any] | list[Any] | str | Path


class AttachmentError(ValueError):
    """An attachment cannot be used (missing, empty, unreadable); nothing was run."""


class SessionBusy(RuntimeError):
    """A turn is already running in this session; wait for it or cancel it."""

    def __str__(self) -> str:
        return f"session {self.args[0]!r} is already running a turn; wait for it or cancel it"


class SessionNotFound(KeyError):
    def __str__(self) -> str:
        return f"no session {self.args[0]!r}; `anymodal sessions list` shows them"


class Assistant:
    """Plans and runs requests; every run belongs to a session that can be resumed.

    Args:
        config: the config; by default read from config.toml and ``ANYMODAL_*`` variables.
        planner: a planner object to use instead of the one the config names, or the name
            of a configured backend ("llama", "openai", "transformers").
        registry: the tools; by default every registered tool (entry points, tool_modules).
        allowed_roots: folders whose files tool arguments may name directly.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        planner: Planner | None = None,
        registry: Registry | None = None,
        allowed_roots: Iterable[Path] = (),
        **overrides: Any,
    ):
        if isinstance(planner, str):  # a backend name from the config's choices
            overrides["planner"], planner = planner, None
        self.config = config or load_config(**overrides)
        self.registry = registry or Registry.discover(
            self.config.tool_modules, self.config.disabled_tools
        )
        self.planner = planner
        self.models = model_manager(self.config)
        self.allowed_roots = tuple(Path(p) for p in allowed_roots)
        self._cancels: dict[str, threading.Event] = {}  # the running turns, by session
        self._lock = threading.Lock()
        self._graph: Any = None
        self._index: SessionIndex | None = None
        self._text_backend: Any = None
        self._memory: Any = None
        self._robot: RobotLoop | None = None

    # --- plumbing ----------------------------------------------------------------------------

    def _open(self) -> tuple[Any, SessionIndex]:
        with self._lock:
            if self._graph is None:
                from langgraph.checkpoint.sqlite import SqliteSaver

                db = paths.sessions_db()
                saver = SqliteSaver(connect(db))
                saver.setup()
                self._graph = build_graph(saver)
                self._index = SessionIndex(connect(db))
            assert self._index is not None
            return self._graph, self._index

    @property
    def memory(self) -> Any:
        """The cross-modal memory (``memory.Memory``), or None without the memory extra."""
        with self._lock:
            if self._memory is None:
                import importlib.util

                if importlib.util.find_spec("faiss") is None:
                    return None
                from memory.memory import Memory

                root = paths.data_dir() / "memory"
                self._memory = Memory(root, self.config.memory, self.models, self.config.tools)
            return self._memory

    def _remember(self, session: str, result: RunResult) -> None:
        """Index the turn's attachments and outputs in the background (config memory.enabled)."""
        memory = self.memory if self.config.memory.enabled else None
        if memory is None:
            return
        graph, _ = self._open()
        values = graph.get_state(self._run_config(session)).values
        attached = artifacts_of(values.get("attachments") or [])
        memory.submit([*attached, *result.artifacts], session)

    def close(self) -> None:
        """Finish background indexing and close the memory's files."""
        if self._memory is not None:
            self._memory.close()

    @property
    def sessions(self) -> SessionIndex:
        return self._open()[1]

    def store(self, session: str) -> ArtifactStore:
        return ArtifactStore(paths.session_dir(session) / "artifacts")

    def _context(self, session: str, planner: Planner) -> RunContext:
        workspace = paths.session_dir(session) / "work"
        workspace.mkdir(parents=True, exist_ok=True)
        c = self.config
        return RunContext(
            session=session,
            registry=self.registry,
            planner=planner,
            store=self.store(session),
            workspace=workspace,
            settings=c.tools,
            step_timeout=c.step_timeout,
            max_replans=c.max_replans,
            approve=c.approve,
            models=self.models,
            config=c,
            cancel=self._cancels[session],
            allowed_roots=self.allowed_roots,
            llm=self._language_model,
            memory=self.memory,
        )

    def _language_model(
        self,
        messages: list[dict[str, Any]],
        on_token: Callable[[str], None] | None,
        /,
        *,
        schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """The configured chat model, for text tools: the planner's own when it has one
        (``tools.base.LanguageModel``)."""
        backend = self._chat_backend()
        reply = backend.chat(messages, on_token=on_token, schema=schema, max_tokens=max_tokens)
        return str(reply.text)

    def _chat_backend(self) -> Any:
        """The chat model behind the planner, else the configured one (``ChatBackend``).

        Raises ``ToolError`` when none can start (no model installed, server unreachable).
        """
        from assistant.planners.base import configured_planner

        backend = getattr(self.planner, "backend", None)
        if backend is None:
            with self._lock:  # built once: the OpenAI backend checks its server when built
                if self._text_backend is None:
                    self._text_backend = configured_planner(self.config, self.models).backend
            backend = self._text_backend
        return backend

    @contextmanager
    def _claim(self, session: str) -> Iterator[threading.Event]:
        """Hold ``session`` for one turn (its cancel flag); ``SessionBusy`` if one is running."""
        with self._lock:
            if session in self._cancels:
                raise SessionBusy(session)
            event = self._cancels[session] = threading.Event()
        try:
            yield event
        finally:
            with self._lock:
                self._cancels.pop(session, None)

    def _run_config(self, session: str) -> dict[str, Any]:
        return {
            "configurable": {"thread_id": session},
            "max_concurrency": self.config.max_workers,
            "recursion_limit": 100_000,
        }

    def _ingest(self, session: str, attachments: Iterable[Attachment]) -> list[dict[str, Any]]:
        """Put attachments in the session's store, refusing missing and empty files."""
        arts = attach(self.store(session), attachments)
        return [a.model_dump(mode="json") for a in arts]

    # --- running -----------------------------------------------------------------------------

    def stream(
        self,
        prompt: str = "",
        attachments: Iterable[Attachment] = (),
        *,
        session: str | None = None,
        plan: PlanInput | list[PlanInput] | None = None,
    ) -> Iterator[Event]:
        """Run one turn and yield its events; the last one is ``Final``.

        Raises ``AttachmentError`` (nothing run, session unchanged) for an unusable file and
        ``PlanError`` for a plan file that cannot be read.
        """
        session = session or new_session_id()
        if session in self.running():  # before anything is stored (_drive checks again, atomically)
            raise SessionBusy(session)
        script = _script(plan)
        atts = self._ingest(session, list(attachments))
        graph, index = self._open()
        planner = make_planner(self.config, self.models, script, self.planner)
        index.start_turn(session, prompt or "(plan)")
        state_in = {"prompt": prompt, "attachments": atts, "script": script}
        yield from self._drive(session, state_in, planner)

    def run(self, prompt: str = "", attachments: Iterable[Attachment] = (), **kw: Any) -> RunResult:
        """Run one turn to the end and return its result."""
        return _last(self.stream(prompt, attachments, **kw))

    def stream_resume(self, session: str, *, approve: bool | None = None) -> Iterator[Event]:
        """Continue a session that was interrupted (crash, kill, approval) where it stopped.

        Completed steps are not run again. ``approve`` answers a pending approval.
        """
        from langgraph.types import Command

        graph, index = self._open()
        if index.get(session) is None:
            raise SessionNotFound(session)
        snapshot = graph.get_state(self._run_config(session))
        planner = make_planner(
            self.config, self.models, snapshot.values.get("script"), self.planner
        )
        if not snapshot.next:
            yield Final(session=session, result=self._result(session))
            return
        waiting = any(t.interrupts for t in snapshot.tasks)
        if waiting and approve is None:
            yield from self._approval_events(session)
            return
        index.set_status(session, "running")
        yield from self._drive(session, Command(resume=bool(approve)) if waiting else None, planner)

    def resume(self, session: str, *, approve: bool | None = None) -> RunResult:
        return _last(self.stream_resume(session, approve=approve))

    def _drive(self, session: str, graph_input: Any, planner: Planner) -> Iterator[Event]:
        graph, index = self._open()
        waiting = False
        with self._claim(session):  # released before the last events go out
            try:
                context = self._context(session, planner)
                for mode, chunk in graph.stream(
                    graph_input,
                    self._run_config(session),
                    context=context,
                    stream_mode=["custom", "updates"],
                    durability=self.config.durability,
                ):
                    if mode == "custom":
                        yield chunk
                    elif "__interrupt__" in chunk:
                        waiting = True
                        break
            except BaseException:
                index.set_status(session, "failed")
                raise
        if waiting:
            index.set_status(session, "waiting")
            yield from self._approval_events(session)
            return
        result = self._result(session)
        index.set_status(session, result.status)
        self._remember(session, result)
        yield Final(session=session, result=result)

    def _approval_events(self, session: str) -> Iterator[Event]:
        graph, _ = self._open()
        snapshot = graph.get_state(self._run_config(session))
        steps = [s for t in snapshot.tasks for i in t.interrupts for s in i.value["steps"]]
        yield ApprovalRequired(session=session, steps=steps)
        text = (
            "waiting for approval to run: "
            + ", ".join(f"{s['id']} ({s['tool']})" for s in steps)
            + f"; answer with `anymodal run --resume {session} --yes` (or --no)"
        )
        yield Final(
            session=session,
            result=RunResult(
                session=session, status="interrupted", text=text, plan=snapshot.values.get("plan")
            ),
        )

    def _result(self, session: str) -> RunResult:
        graph, _ = self._open()
        values = graph.get_state(self._run_config(session)).values
        final = values.get("final") or {
            "status": "failed",
            "text": "the run did not finish",
            "artifacts": [],
            "steps": {},
        }
        return RunResult(
            session=session,
            status=final["status"],
            text=final["text"],
            artifacts=[Artifact.model_validate(a) for a in final["artifacts"]],
            steps=final["steps"],
            plan=values.get("plan"),
        )

    def use_model(self, name: str) -> str:
        """Plan (and write text) with the model ``name`` from the next turn on; see
        ``assistant.planner_models.use_model``. Returns what is in use, in words."""
        from assistant.planner_models import use_model

        if self.planner is not None:
            raise ValueError("this Assistant was given a planner object; it cannot switch models")
        described = use_model(self.config, self.models, name)
        with self._lock:
            self._text_backend = None
        return described

    def cancel(self, session: str | None = None) -> bool:
        """Stop a running turn (``session``), or every running turn when no session is named:
        running steps are told to stop, pending ones are skipped. Returns whether one was running.
        """
        with self._lock:
            events = [self._cancels[session]] if session in self._cancels else []
            if session is None:
                events = list(self._cancels.values())
        for event in events:
            event.set()
        return bool(events)

    def running(self) -> list[str]:
        """The sessions with a turn running now."""
        with self._lock:
            return list(self._cancels)

    # --- robots ------------------------------------------------------------------------------

    @property
    def robot(self) -> RobotLoop:
        """The robot episodes (``new_episode``, ``history``, ``current``) behind ``step``."""
        from assistant.robot import RobotLoop

        with self._lock:
            if self._robot is None:
                self._robot = RobotLoop(self)
            return self._robot

    def step(
        self,
        observation: Mapping[str, Any] | Observation,
        *,
        episode: str | None = None,
        plan: Any = None,
    ) -> Decision:
        """Decide a VLA policy's next subtask from one observation: the slow loop of a robot.

        Args:
            observation: camera images, robot state and the instruction, with LeRobot
                (``observation.images.<cam>``, ``observation.state``, ``task``), openpi
                (``observation/image``, ``observation/state``, ``prompt``) or OpenVLA
                (``image``, ``instruction``) keys; ``outcome`` tells how the last subtask went
                and ``reset`` starts a new episode (see ``assistant.observation``).
            episode: the episode (a session id) to continue; by default the current one, or a
                new one on the first call.
            plan: a script instead of the model: subtasks (``["pick up the red block", ...]``,
                each given until the policy reports success) or decisions (dicts), one a call.

        Returns a ``Decision``: subtask, plan, done, reason, the stored frames and timings.
        Raises ``ValueError`` for an unusable observation, ``SessionBusy`` while the episode
        is deciding, ``NoDecisionModel`` (no model and no script) and ``DecisionError``.
        """
        return self.robot.step(observation, episode=episode, plan=plan)

    async def astep(
        self,
        observation: Mapping[str, Any] | Observation,
        *,
        episode: str | None = None,
        plan: Any = None,
    ) -> Decision:
        return await asyncio.to_thread(self.step, observation, episode=episode, plan=plan)

    # --- async twins -------------------------------------------------------------------------

    async def astream(
        self, prompt: str = "", attachments: Iterable[Attachment] = (), **kw: Any
    ) -> AsyncIterator[Event]:
        async for event in _to_async(lambda: self.stream(prompt, attachments, **kw)):
            yield event

    async def arun(
        self, prompt: str = "", attachments: Iterable[Attachment] = (), **kw: Any
    ) -> RunResult:
        return await asyncio.to_thread(self.run, prompt, attachments, **kw)

    async def aresume(self, session: str, *, approve: bool | None = None) -> RunResult:
        return await asyncio.to_thread(self.resume, session, approve=approve)

    async def astream_resume(
        self, session: str, *, approve: bool | None = None
    ) -> AsyncIterator[Event]:
        async for event in _to_async(lambda: self.stream_resume(session, approve=approve)):
            yield event

    # --- sessions ----------------------------------------------------------------------------

    def list_sessions(self, limit: int = 50) -> list[SessionInfo]:
        return self.sessions.list(limit)

    def messages(self, session: str) -> list[dict[str, Any]]:
        graph, index = self._open()
        if index.get(session) is None:
            raise SessionNotFound(session)
        return list(graph.get_state(self._run_config(session)).values.get("messages") or [])

    def export(self, session: str, folder: Path | str) -> list[Path]:
        info = self.sessions.get(session)
        if info is None:
            raise SessionNotFound(session)
        return export_session(info, self.messages(session), Path(folder))

    def rename(self, session: str, title: str) -> None:
        """Give a session a new title (shown by ``anymodal sessions list`` and the TUI)."""
        if not title.strip():
            raise ValueError("a session title cannot be empty")
        if self.sessions.get(session) is None:
            raise SessionNotFound(session)
        self.sessions.rename(session, title)

    def delete(self, session: str) -> None:
        graph, index = self._open()
        if index.get(session) is None:
            raise SessionNotFound(session)
        if session in self.running():
            raise SessionBusy(session)
        graph.checkpointer.delete_thread(session)
        index.delete(session)
        shutil.rmtree(paths.session_dir(session), ignore_errors=True)


def _script(plan: PlanInput | list[PlanInput] | None) -> list[dict[str, Any]] | None:
    """Normalise ``plan=`` (one plan, or one per attempt) to plain dicts, checked for shape."""
    if plan is None:
        return None
    items: list[Any]
    if (
        isinstance(plan, list)
        and plan
        and isinstance(plan[0], Plan | dict)
        and (isinstance(plan[0], Plan) or "steps" in plan[0])
    ):
        items = plan
    else:
        items = [plan]
    out = []
    for item in items:
        if isinstance(item, Path):
            item = Plan.load(item)
        elif not isinstance(item, Plan):
            item = Plan.parse(item)
        out.append(item.model_dump())
    return out


def attach(store: ArtifactStore, items: Iterable[Attachment]) -> list[Artifact]:
    """Store attachments with cheap facts (size, duration) in their metadata.

    Raises ``AttachmentError`` for a missing, empty or unusable item; nothing is half-done
    that matters: the store is content-addressed, so a retry writes nothing twice.
    """
    from tools.facts import probe

    out = []
    for item in items:
        art = _to_artifact(store, item)
        out.append(art.with_metadata(**probe(art)))
    return out


def _to_artifact(store: ArtifactStore, item: Attachment) -> Artifact:
    if isinstance(item, Artifact):
        return item
    if isinstance(item, str | Path):
        path = Path(item).expanduser()
        if not path.exists():
            raise AttachmentError(f"attachment not found: {path}")
        if path.is_dir():
            raise AttachmentError(f"attachment {path} is a folder; attach the files in it")
        if path.stat().st_size == 0:
            raise AttachmentError(f"attachment {path} is empty (0 bytes); nothing to work on")
        try:
            return store.add_file(path)
        except ToolError as exc:
            raise AttachmentError(str(exc)) from None
    if isinstance(item, bytes):
        if not item:
            raise AttachmentError("an attachment is empty (0 bytes); nothing to work on")
        return store.add_bytes(item)
    if isinstance(item, tuple) and len(item) == 2:
        return store.add_audio(item[0], int(item[1]))
    if hasattr(item, "save") and hasattr(item, "size"):
        return store.add_image(item)
    raise AttachmentError(
        f"cannot attach a {type(item).__name__}; give a path, bytes, a PIL "
        "image or (waveform, sample_rate)"
    )


def _last(events: Iterator[Event]) -> RunResult:
    final = None
    for event in events:
        if isinstance(event, Final):
            final = event
    if final is None:
        raise RuntimeError("the run ended without a final event")
    return final.result


async def _to_async(make: Any) -> AsyncIterator[Event]:
    """Drive a blocking generator in a worker thread and yield its items here."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    done = object()

    def pump() -> None:
        try:
            for item in make():
                loop.call_soon_threadsafe(queue.put_nowait, item)
        except BaseException as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, done)

    task = asyncio.ensure_future(asyncio.to_thread(pump))
    while (item := await queue.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
    await task


__all__ = ["Assistant", "AttachmentError", "PlanError", "SessionNotFound"]
