"""What the slow loop's planner answers, and how an answer is read: the JSON schema the model
is held to, the checks that tidy or refuse an answer, and scripted answers (``plan=``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError

from assistant.observation import Outcome

if TYPE_CHECKING:
    from assistant.robot import StepRecord

DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "maxLength": 60},
        "done": {"type": "boolean"},
        "subtask": {"type": "string", "maxLength": 80},
        "plan": {"type": "array", "items": {"type": "string", "maxLength": 80}, "maxItems": 5},
    },
    "required": ["reason", "done", "subtask", "plan"],
    "additionalProperties": False,
}
"""What the model answers, in this order (the grammar keeps it): a short reason first, so a
small model says where things stand before it decides (without it, one that had just written
done: false went on repeating a finished subtask)."""


class Answer(BaseModel):
    """A decision as the model (or a script) writes it."""

    subtask: str = ""
    plan: list[str] = Field(default_factory=list)
    done: bool = False
    reason: str = ""


# --- scripts -----------------------------------------------------------------------------------


def read_script(plan: Any) -> list[Any]:
    """``plan=`` as a list of subtasks (strings) or a list of decisions (dicts)."""
    items = [plan] if isinstance(plan, str | Mapping | BaseModel) else plan
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(
            "plan= is a list of subtasks ['pick up the red block', ...] or a list of "
            "decisions [{'subtask': ..., 'done': false}, ...]"
        )
    if all(isinstance(i, str) for i in items):
        return [_subtask(i) for i in items]
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            raise ValueError("plan=: give all subtasks (strings) or all decisions (dicts)")
        data = item.model_dump() if isinstance(item, BaseModel) else dict(item)
        try:
            out.append(checked(Answer.model_validate(data)).model_dump())
        except (ValidationError, ValueError) as exc:
            raise ValueError(f"plan= decision {i + 1}: {exc}") from None
    return out


def follow_script(
    script: list[Any], steps: list[StepRecord], outcome: Outcome | None
) -> tuple[Answer, int]:
    """The scripted decision for this step, and its position in the script.

    Decisions: one per step. Subtasks: the next after a success (or, when the caller reports
    nothing, at every call); the same one while it runs or after a failure.
    """
    decisions = isinstance(script[0], dict)
    i = 0
    if steps:
        last = steps[-1]
        i = last.script_index or 0
        if decisions or (not last.done and outcome in (None, "success")):
            i += 1
    if decisions:
        if i < len(script):
            return Answer.model_validate(script[i]), i
        return Answer(done=True, reason=f"the {len(script)} scripted decisions are used up"), i
    if i >= len(script):
        return Answer(done=True, reason=f"all {len(script)} subtasks are done"), i
    if outcome == "failure":
        reason = f"retrying subtask {i + 1} of {len(script)} after a failure"
    else:
        reason = f"subtask {i + 1} of {len(script)}"
    return Answer(subtask=script[i], plan=list(script[i:]), reason=reason), i


# --- reading the model's answer ----------------------------------------------------------------


def parse_answer(text: str) -> Answer:
    """The model's answer read leniently (JSON in prose or a fence); a ``ValueError`` says what
    was wrong, for the repair prompt."""
    from assistant.planners.llm import extract_json

    try:
        data = extract_json(text)
        return Answer.model_validate(data)
    except ValidationError as exc:
        raise ValueError(
            f"the decision does not fit the schema: {exc.errors()[0]['msg']}"
        ) from None
    except Exception as exc:  # PlanError: no JSON at all
        raise ValueError(f"no JSON decision in the answer ({exc})") from None


def checked(reply: Answer) -> Answer:
    """Tidy a decision (subtasks as short lower-case imperatives) and refuse an empty one."""
    subtask = _subtask(reply.subtask)
    plan = [s for s in (_subtask(p) for p in reply.plan) if s]
    if reply.done:
        subtask, plan = "", []
    elif not subtask:
        raise ValueError("subtask is empty but done is false: give the next subtask, or done")
    elif " " not in subtask:
        raise ValueError(
            f"subtask {subtask!r} is not an instruction the policy can follow: write a short "
            "imperative, a verb and its object"
        )
    elif not plan or plan[0] != subtask:
        plan = [subtask, *plan]
    return Answer(subtask=subtask, plan=plan, done=reply.done, reason=_reason(reply.reason))


def _reason(text: str) -> str:
    """The reason in one line; one cut off at the schema's length loses its last, partial word
    (constrained decoding squeezes the words that still fit into it)."""
    text = " ".join(text.split())
    if len(text) >= DECISION_SCHEMA["properties"]["reason"]["maxLength"] and " " in text:
        text = text.rsplit(" ", 1)[0].rstrip(",;:") + " ..."
    return text


def _subtask(text: str) -> str:
    text = " ".join(str(text).split()).strip(" .!;")
    first, _, rest = text.partition(" ")
    if first and not first.isupper():
        first = first[0].lower() + first[1:]
    return f"{first} {rest}".strip()
