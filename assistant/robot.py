"""The slow loop above a VLA policy: ``Assistant.step(observation)`` decides the policy's next
subtask (about 0.1 to 2 times a second), keeping the episode's history in a session.

An episode is a session: its camera frames go to the session's artifact store, each step is a
line of ``episode.jsonl`` in the session's folder (so an episode continues after a restart),
and ``anymodal sessions list`` shows it. The decision comes from the configured chat model,
constrained to a small JSON schema, or from a script (``plan=``) without any model.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from assistant import paths
from assistant.decision import (
    DECISION_SCHEMA,
    Answer,
    checked,
    follow_script,
    parse_answer,
    read_script,
)
from assistant.observation import Observation, Outcome, parse_observation, state_summary
from assistant.sessions import new_session_id
from tools.artifact import Artifact
from tools.errors import ToolError
from tools.llm_retry import ask_with_repair

if TYPE_CHECKING:
    from assistant.api import Assistant

MAX_TOKENS = 256
"""Longest decision the model may write; the schema's limits keep a full one well under it."""
HISTORY = 12
"""Subtasks (runs of the same one count once) the model sees, the latest ones."""
EPISODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class DecisionError(RuntimeError):
    """No decision could be made (the model failed, or wrote nothing usable twice)."""


class NoDecisionModel(DecisionError):
    """No model is configured or installed, and no script was given."""


class Decision(BaseModel):
    """What ``step`` returns: the policy's next subtask and what the planner expects after it."""

    episode: str
    """The episode (a session id): pass it back to continue, or leave it out for the current."""
    step: int
    """1 for the episode's first decision, then 2, 3 ..."""
    subtask: str
    """The next instruction for the policy, a short imperative ('' when done)."""
    plan: list[str] = Field(default_factory=list)
    """The subtasks still to do, the next one first."""
    done: bool = False
    """The whole task is complete."""
    reason: str = ""
    """Why, in a sentence."""
    decided_by: str = ""
    """The model backend that decided ('llama.cpp', 'openai' ...), 'scripted', or 'kept': the
    policy reported the subtask still running and the model cannot see the cameras, so the
    subtask stays without asking it (nothing new to decide from)."""
    artifacts: list[Artifact] = Field(default_factory=list)
    """The camera frames of this step, stored in the episode's session."""
    timing: dict[str, float] = Field(default_factory=dict)
    """Milliseconds per phase: parse, store, decide, record, and total."""


class StepRecord(BaseModel):
    """One line of ``episode.jsonl``."""

    step: int
    time: float
    instruction: str
    reported: Outcome | None = None
    """What the observation said about the previous subtask."""
    subtask: str
    plan: list[str] = Field(default_factory=list)
    done: bool = False
    reason: str = ""
    decided_by: str = ""
    frames: list[str] = Field(default_factory=list)
    """Artifact ids of the camera frames."""
    script_index: int | None = None
    """Position in the script this step followed, for scripted episodes."""


@dataclass
class Episode:
    """An episode's steps, its script if it has one, kept in ``<session>/episode.jsonl``."""

    id: str
    folder: Path
    records: list[StepRecord] = field(default_factory=list)
    script: list[Any] | None = None
    script_start: int = 0
    """The number of steps taken before the script was given."""

    @classmethod
    def load(cls, episode: str) -> Episode:
        folder = paths.session_dir(episode)
        ep = cls(episode, folder)
        log = folder / "episode.jsonl"
        if log.is_file():
            lines = log.read_text(encoding="utf-8").splitlines()
            ep.records = [StepRecord.model_validate_json(line) for line in lines if line.strip()]
        script = folder / "script.json"
        if script.is_file():
            data = json.loads(script.read_text(encoding="utf-8"))
            ep.script, ep.script_start = data["items"], data["start"]
        return ep

    @property
    def instruction(self) -> str:
        return next((r.instruction for r in reversed(self.records) if r.instruction), "")

    def set_script(self, plan: Any) -> None:
        self.script, self.script_start = read_script(plan), len(self.records)
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {"items": self.script, "start": self.script_start}
        (self.folder / "script.json").write_text(json.dumps(data), encoding="utf-8")

    def append(self, record: StepRecord) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / "episode.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(record.model_dump_json() + "\n")
        self.records.append(record)

    def history(self, reported: Outcome | None) -> list[dict[str, Any]]:
        """The subtasks given so far with how each went (and how often it failed); repeats of
        one subtask count once.

        A step's outcome is what the next observation reported; the latest subtask's is
        ``reported`` (this observation's), or 'no report yet'.
        """
        out: list[dict[str, Any]] = []
        for i, r in enumerate(self.records):
            later = self.records[i + 1].reported if i + 1 < len(self.records) else reported
            outcome = later or ("no report" if i + 1 < len(self.records) else "no report yet")
            if r.done or not r.subtask:
                continue
            failed = int(outcome == "failure")
            if out and out[-1]["subtask"] == r.subtask:
                h = out[-1]
                h.update(outcome=outcome, times=h["times"] + 1, failures=h["failures"] + failed)
            else:
                out.append(
                    {"subtask": r.subtask, "outcome": outcome, "times": 1, "failures": failed}
                )
        return out[-HISTORY:]


class RobotLoop:
    """Episodes of one ``Assistant``; ``Assistant.step`` and ``Assistant.robot`` lead here."""

    def __init__(self, assistant: Assistant):
        self.assistant = assistant
        self.current: str | None = None
        """The episode ``step`` continues when none is named."""
        self._episodes: dict[str, Episode] = {}
        self._lock = threading.Lock()

    def new_episode(self, episode: str | None = None) -> str:
        """Start a new episode (a fresh session unless ``episode`` names an unused id); the
        following ``step`` calls continue it."""
        with self._lock:
            ep = self._open(episode or new_session_id())
            if ep.records:
                raise ValueError(f"episode {ep.id!r} already has steps; name a new one")
            self.current = ep.id
            return ep.id

    def history(self, episode: str | None = None) -> list[StepRecord]:
        """The steps of an episode (the current one by default), oldest first."""
        name = episode or self.current
        if name is None:
            return []
        with self._lock:
            return list(self._open(name).records)

    def step(
        self,
        observation: Mapping[str, Any] | Observation,
        *,
        episode: str | None = None,
        plan: Any = None,
    ) -> Decision:
        """See ``Assistant.step``."""
        t0 = time.perf_counter()
        obs = parse_observation(observation)
        ep = self._select(episode, obs)
        marks = {"parse": time.perf_counter()}
        with self.assistant._claim(ep.id):
            instruction = obs.instruction or ep.instruction
            if not instruction:
                raise ValueError(
                    "the first observation of an episode needs an instruction ('task', "
                    "'prompt' or 'instruction'): the planner has no goal otherwise"
                )
            if plan is not None:
                ep.set_script(plan)
            n = len(ep.records) + 1
            frames = self._store_frames(ep.id, obs, n)
            marks["store"] = time.perf_counter()
            index: int | None = None
            if ep.script is not None:
                reply, index = follow_script(ep.script, ep.records[ep.script_start :], obs.outcome)
                by = "scripted"
            else:
                reply, by = self._ask_model(ep, obs, instruction, frames)
            marks["decide"] = time.perf_counter()
            ep.append(
                StepRecord(
                    step=n,
                    time=time.time(),
                    instruction=obs.instruction,
                    reported=obs.outcome,
                    **reply.model_dump(),
                    decided_by=by,
                    frames=[a.id for a in frames],
                    script_index=index,
                )
            )
            sessions = self.assistant.sessions
            sessions.start_turn(ep.id, f"robot: {instruction}")
            sessions.set_status(ep.id, "ok")
            marks["record"] = time.perf_counter()
        return Decision(
            episode=ep.id,
            step=n,
            **reply.model_dump(),
            decided_by=by,
            artifacts=frames,
            timing=_timing(t0, marks),
        )

    def _store_frames(self, episode: str, obs: Observation, n: int) -> list[Artifact]:
        """The cameras' images as JPEG artifacts in the episode's store (quality 90: small
        and fast to write at a few hertz, and what a model reads as well as a PNG)."""
        store = self.assistant.store(episode)
        return [
            store.add_image(
                img,
                name=f"{cam}.jpg",
                save_options={"quality": 90},
                metadata={"camera": cam, "episode_step": n},
            )
            for cam, img in obs.images.items()
        ]

    # --- episodes ------------------------------------------------------------------------------

    def _select(self, episode: str | None, obs: Observation) -> Episode:
        with self._lock:
            if episode is None:
                name = new_session_id() if obs.reset or self.current is None else self.current
            else:
                name = episode
            ep = self._open(name)
            if obs.reset and ep.records:
                raise ValueError(
                    f"reset asks for a new episode, but episode {name!r} already has steps; "
                    "leave episode out (or name a new one) to start afresh"
                )
            self.current = name
            return ep

    def _open(self, name: str) -> Episode:
        if not EPISODE_ID.match(name):
            raise ValueError(
                f"episode id {name!r} must be letters, digits, '.', '_' or '-' (at most 64)"
            )
        ep = self._episodes.get(name)
        if ep is not None and (not ep.records or (ep.folder / "episode.jsonl").is_file()):
            return ep
        ep = Episode.load(name)  # from disk: an earlier process, or deleted meanwhile
        if not ep.records and self.assistant.sessions.get(name) is not None:
            raise ValueError(
                f"session {name!r} is a conversation, not a robot episode; use another id"
            )
        self._episodes[name] = ep
        return ep

    # --- the model -----------------------------------------------------------------------------

    def _ask_model(
        self, ep: Episode, obs: Observation, instruction: str, frames: list[Artifact]
    ) -> tuple[Answer, str]:
        from prompts import render

        backend = self._backend()
        name = str(getattr(backend, "name", "model"))
        sees = bool(getattr(backend, "sees_images", False))
        last = ep.records[-1] if ep.records else None
        if not sees and obs.outcome == "running" and last and last.subtask and not last.done:
            # Only the cameras could show that a running subtask should change.
            why = "the policy is still running it, and the model cannot see the cameras"
            return Answer(subtask=last.subtask, plan=last.plan, reason=why), "kept"
        text = render(
            "robot_user.j2",
            instruction=instruction,
            history=ep.history(obs.outcome),
            state=state_summary(obs.state),
            cameras=list(obs.images),
            sees=sees,
        )
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if sees:
            content += [{"type": "image", "path": a.path} for a in frames]
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": render("robot_system.j2")},
            {"role": "user", "content": content},
        ]

        def ask(messages: list[dict[str, Any]]) -> str:
            try:
                return str(
                    backend.chat(messages, schema=DECISION_SCHEMA, max_tokens=MAX_TOKENS).text
                )
            except ToolError as exc:
                raise DecisionError(f"the model ({name}) failed: {exc}") from None

        try:  # one repair: a robot loop cannot wait for more
            answer, _ = ask_with_repair(
                ask,
                messages,
                lambda said: checked(parse_answer(said)),
                lambda problem: render("repair.j2", problem=problem),
                ValueError,
            )
        except ValueError as exc:
            raise DecisionError(
                f"the model ({name}) wrote no usable decision in 2 tries; the last problem: {exc}"
            ) from None
        return answer, name

    def _backend(self) -> Any:
        if self.assistant.config.planner == "scripted":
            raise NoDecisionModel(
                "planner = 'scripted' has no model to decide with: pass plan=[subtasks] "
                "(or a list of decisions), or configure a model planner"
            )
        try:
            return self.assistant._chat_backend()
        except ToolError as exc:
            raise NoDecisionModel(
                f"no model can decide the next subtask: {exc}. Install the embedded default "
                "(pip install 'anymodal[llm]', then `anymodal models pull "
                f"{self.assistant.config.llama.model}`), or set planner = 'openai' (any "
                "OpenAI-compatible server) or 'transformers' (a vision-language model) in "
                "config.toml; or pass plan=[subtasks] to step() for a scripted episode"
            ) from None


def _timing(t0: float, marks: dict[str, float]) -> dict[str, float]:
    """Milliseconds per phase from the times each ended, and the total."""
    timing, last = {}, t0
    for phase, at in marks.items():
        timing[phase] = round((at - last) * 1000, 3)
        last = at
    timing["total"] = round((last - t0) * 1000, 3)
    return timing
