"""Plans: a DAG of tool steps whose arguments may reference attachments and earlier outputs.

A plan is checked completely before anything runs: unknown tools, invalid arguments,
references to missing attachments or steps, wrong modalities and cycles are all refused.
"""

from __future__ import annotations

import json
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tools.artifact import Artifact, Modality
from tools.base import (
    ATTACHMENT_PATTERN,
    REF_PATTERN,
    ToolContext,
    describe_validation_error,
)
from tools.errors import ToolError
from tools.registry import Registry

STEP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")


class PlanError(ValueError):
    """A plan that must not run; the message lists every problem found."""


class PlannerUnavailable(PlanError):
    """No planner can plan this request at all; asking again would not help."""


class PlansUsedUp(PlannerUnavailable):
    """A scripted planner has no further plan: the earlier attempt's outcome stands."""


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    """Unique name, referenced by later steps as ``$<id>``."""
    tool: str
    """Name of a registered tool."""
    args: dict[str, Any] = Field(default_factory=dict)
    """Arguments; strings like ``$a1`` or ``$s1.2`` are references."""

    @field_validator("id")
    @classmethod
    def _valid_id(cls, v: str) -> str:
        if not STEP_ID.match(v) or ATTACHMENT_PATTERN.match(v):
            raise ValueError(
                f"step id {v!r} must be a short name like 's1' (not 'a1', "
                "which names an attachment)"
            )
        return v


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[Step] = Field(default_factory=list)
    """The steps; their order does not matter, references decide it."""
    reply: str | None = None
    """Optional text for the final answer (a plan with no steps is a plain reply)."""

    @classmethod
    def parse(cls, data: Any) -> Plan:
        """From a dict, a list of steps, or JSON text; raises ``PlanError``."""
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise PlanError(f"the plan is not valid JSON: {exc}") from None
        if isinstance(data, list):
            data = {"steps": data}
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise PlanError(f"the plan is malformed: {describe_validation_error(exc)}") from None

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise PlanError(f"cannot read plan file {p}: {exc.strerror}") from None
        return cls.parse(text)

    def dependencies(self) -> dict[str, set[str]]:
        """Step id -> ids of the steps whose outputs it references."""
        ids = {s.id for s in self.steps}
        return {s.id: {r for r in references(s.args) if r in ids} for s in self.steps}

    def order(self) -> list[list[str]]:
        """Waves of step ids: every step's dependencies are in earlier waves."""
        sorter = TopologicalSorter(self.dependencies())
        sorter.prepare()
        waves = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready())
            waves.append(ready)
            sorter.done(*ready)
        return waves


def references(value: Any) -> list[str]:
    """Names referenced anywhere inside an argument value (``$s1.2`` -> ``s1``)."""
    found: list[str] = []
    if isinstance(value, str):
        m = REF_PATTERN.match(value)
        if m:
            found.append(m.group(1))
    elif isinstance(value, dict):
        for v in value.values():
            found += references(v)
    elif isinstance(value, list | tuple):
        for v in value:
            found += references(v)
    return found


def _takes_artifacts(prop: dict[str, Any], defs: dict[str, Any]) -> bool:
    if "$ref" in prop:
        prop = defs.get(prop["$ref"].rsplit("/", 1)[-1], {})
    if prop.get("x-modality") is not None:
        return True
    subs = [prop.get("items"), *(prop.get("anyOf") or [])]
    return any(isinstance(sub, dict) and _takes_artifacts(sub, defs) for sub in subs)


def misplaced_references(args: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """References written where the tool takes a plain value (``"url": "$a1"``)."""
    props, defs = schema.get("properties", {}), schema.get("$defs", {})
    return [
        f"{name}: {value!r} is a reference, but {name} takes a plain value, not an artifact"
        for name, value in args.items()
        if name in props and not _takes_artifacts(props[name], defs)
        for _ in references(value)[:1]
    ]


def _placeholder(name: str, modality: Modality | None) -> Artifact:
    """Stands in for an output that does not exist yet; ``None`` means any modality."""
    return Artifact(
        id="0" * 64,
        modality=modality or Modality.FILE,
        mime="application/octet-stream",
        path="",
        name=f"${name}",
        metadata={"placeholder": True, "any_modality": modality is None},
    )


def validate_plan(
    plan: Plan, registry: Registry, attachments: list[Artifact], ctx: ToolContext
) -> None:
    """Check a plan against the tools and attachments; raise ``PlanError`` listing problems."""
    problems: list[str] = []
    ids = [s.id for s in plan.steps]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        problems.append(f"step ids used twice: {', '.join(dupes)}")
    steps = {s.id: s for s in plan.steps}
    for step in plan.steps:
        try:
            tool = registry.get(step.tool)
        except ToolError as exc:
            problems.append(f"{step.id}: {exc}")
            continue
        problems += [
            f"{step.id} ({tool.name}): {p}"
            for p in misplaced_references(step.args, tool.input_schema())
        ]
        for name in references(step.args):
            if name == step.id:
                problems.append(f"{step.id}: refers to its own output (${name})")
            elif ATTACHMENT_PATTERN.match(name):
                n = int(name[1:])
                if not 1 <= n <= len(attachments):
                    problems.append(
                        f"{step.id}: ${name} names attachment {n}, but "
                        f"{len(attachments)} file(s) were attached"
                    )
            elif name not in steps:
                problems.append(f"{step.id}: ${name} names no step in this plan")

        def resolve(value: str, _step: Any = step) -> Artifact:
            m = REF_PATTERN.match(value)
            if m is None:
                return ctx.resolve(value)  # an artifact id or a path: checked for real
            name, sel = m.group(1), m.group(2)
            if ATTACHMENT_PATTERN.match(name):
                n = int(name[1:])
                if 1 <= n <= len(attachments):
                    return attachments[n - 1]
                return _placeholder(name, None)  # reported above
            source = steps.get(name)
            if source is None or source.tool not in registry:
                return _placeholder(name, None)  # reported above
            outputs = registry.get(source.tool).outputs
            if sel and not sel.isdigit():
                if sel not in set(Modality):
                    raise ToolError(f"${name}.{sel}: '{sel}' is neither a number nor a modality")
                return _placeholder(name, Modality(sel))
            # A tool that declares no outputs may produce anything: checked at run time.
            if not outputs:
                return _placeholder(name, None)
            return _placeholder(name, outputs[min(int(sel or 1), len(outputs)) - 1])

        try:
            problem = tool.check_args(step.args, resolve)
        except ToolError as exc:  # a selector that is neither a number nor a modality
            problem = str(exc)
        if problem:
            problems.append(f"{step.id} ({tool.name}): {problem}")
    if not problems:
        try:
            plan.order()
        except CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            problems.append(f"the steps form a cycle: {cycle}")
    if problems:
        raise PlanError("invalid plan: " + "; ".join(problems))
