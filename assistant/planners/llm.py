"""What every language-model planner shares: prompts, the plan schema, lenient parsing, and
the repair loop (a bad plan goes back to the model with the problem, at most twice).

A backend only has to implement ``ChatBackend.chat``; ``LLMPlanner`` does the rest.
"""

from __future__ import annotations

import json
import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from assistant.plan import Plan, PlanError, PlannerUnavailable
from assistant.planners.base import Planner, PlanRequest, RespondRequest
from tools.artifact import Modality
from tools.errors import ToolError

MAX_REPAIRS = 2
"""A plan that fails to parse or validate is re-asked at most this many times."""


@dataclass
class Reply:
    """What a chat model answered: text, and native tool calls where the backend has them."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """``{"name": ..., "arguments": {...}}`` in the order the model made them."""


TokenFn = Callable[[str], None]


class ChatBackend(Protocol):
    """A chat model. Messages are OpenAI-style; image parts are ``{"type": "image",
    "path": ...}`` and each backend turns them into what its model takes (or drops them)."""

    name: str
    sees_images: bool

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        schema: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        on_token: TokenFn | None = None,
    ) -> Reply:
        """Answer ``messages``. ``schema``: the reply must be JSON of this schema (constrain
        decoding where possible). ``tools``: offer these OpenAI-format tools for native calls."""
        ...


# --- the plan schema ---------------------------------------------------------------------------


RefsFor = Callable[[list[str]], str | None]
"""Given the modalities a slot takes, the regex of the references it may hold (None: none)."""


class _NoReference(Exception):
    """A slot that needs an artifact has nothing it could reference at this step."""


def _inline_refs(schema: Any, defs: dict[str, Any], refs_for: RefsFor | None = None) -> Any:
    """Replace ``$ref`` to ``#/$defs/X`` by the definition and drop keys models don't need.

    With ``refs_for``, every slot that takes only artifact references gets the pattern of the
    references that exist and fit its modality, so decoding cannot write any other.
    """
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline_refs(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, refs_for)
        kinds = schema.get("x-modality")
        if refs_for is not None and kinds is not None and kinds != ["text"]:
            # Text slots also take literal text; the others take references only; a slot
            # that takes text or another modality (search_memory's query) takes either.
            pattern = refs_for(kinds)
            if "text" in kinds:
                words = r"[^$][\s\S]*"
                refs = f"|{pattern[1:-1]}" if pattern else ""
                return {"type": "string", "maxLength": 600, "pattern": f"^(?:{words}{refs})$"}
            if pattern is None:
                raise _NoReference
            return {"type": "string", "pattern": pattern}
        out = {
            k: _inline_refs(v, defs, refs_for)
            for k, v in schema.items()
            if k not in ("$defs", "title", "x-modality", "default")
        }
        if out.get("type") == "string" and not {"enum", "pattern", "maxLength"} & out.keys():
            out["maxLength"] = 600  # bounds a model that would otherwise ramble on
            if refs_for is not None:  # a plain value: no reference can go here
                out["pattern"] = r"^([^$][\s\S]*)?$"
        return out
    if isinstance(schema, list):
        out_list = []
        for v in schema:
            try:
                out_list.append(_inline_refs(v, defs, refs_for))
            except _NoReference:  # one alternative of an anyOf can go (e.g. the artifact)
                continue
        if schema and not out_list:
            raise _NoReference
        return out_list
    return schema


def args_schema(spec: dict[str, Any], refs_for: RefsFor | None = None) -> dict[str, Any]:
    """A tool's argument schema, self-contained, for constrained decoding.

    Raises ``_NoReference`` when a required artifact slot could reference nothing.
    """
    schema = spec["input_schema"]
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    props = {}
    for name, prop in schema.get("properties", {}).items():
        try:
            props[name] = _inline_refs(prop, defs, refs_for)
        except _NoReference:
            if name in required:
                raise
    top = _inline_refs({k: v for k, v in schema.items() if k != "properties"}, defs)
    return {**top, "properties": props}


def reference_pattern(attachments: list[str], position: int, wanted: list[str]) -> str | None:
    """The references step ``position`` may put in a slot wanting ``wanted`` modalities:
    attachments of those modalities, and any earlier step (its output is known only then)."""
    names = [f"a{i}" for i, m in enumerate(attachments, 1) if not wanted or m in wanted]
    names += [f"s{j}" for j in range(1, position)]
    if not names:
        return None
    return r"^\$(" + "|".join(names) + r")(\.[a-z0-9]+)?$"


def plan_schema(
    tools: list[dict[str, Any]], attachments: list[str] | None = None, max_steps: int = 8
) -> dict[str, Any]:
    """JSON schema of a plan over ``tools``: each step names one tool and its arguments.

    Given the attachments' modalities, step N is called "sN" and its artifact slots can only
    reference attachments of the right modality and earlier steps, so no plan can refer to
    itself, to a later step, or to a file that is not there; a tool whose required slot
    could reference nothing is not offered at that step.
    """
    if attachments is None:
        kinds = [_step_kind(spec, "^s[1-9][0-9]?$", None) for spec in tools]
        steps: dict[str, Any] = {"type": "array", "items": {"anyOf": kinds}, "maxItems": max_steps}
    else:
        positions = []
        for i in range(1, max_steps + 1):

            def refs_for(wanted: list[str], i: int = i) -> str | None:
                return reference_pattern(attachments, i, wanted)

            kinds = []
            for spec in tools:
                try:
                    kinds.append(_step_kind(spec, f"^s{i}$", refs_for))
                except _NoReference:
                    continue
            positions.append({"anyOf": kinds})
        steps = {"type": "array", "prefixItems": positions, "items": False, "maxItems": max_steps}
    return {
        "type": "object",
        "properties": {"steps": steps, "reply": {"type": "string", "maxLength": 2000}},
        "required": ["steps"],
        "additionalProperties": False,
    }


def _step_kind(spec: dict[str, Any], step_id: str, refs_for: RefsFor | None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": step_id},
            "tool": {"const": spec["name"]},
            "args": args_schema(spec, refs_for),
        },
        "required": ["id", "tool", "args"],
        "additionalProperties": False,
    }


def openai_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools in OpenAI's function-calling format; every call gets an ``id`` argument."""
    out = []
    for spec in tools:
        params = args_schema(spec)
        step_id = {
            "type": "string",
            "pattern": "^s[1-9][0-9]?$",
            "description": "this step's id, so later calls can use its output as $s1",
        }
        params = {**params, "properties": {"id": step_id, **params.get("properties", {})}}
        out.append(
            {
                "type": "function",
                "function": {
                    "name": spec["name"],
                    "description": spec["description"],
                    "parameters": params,
                },
            }
        )
    return out


# --- reading what the model wrote ------------------------------------------------------------

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """The first JSON value in ``text``: inside a code fence, or surrounded by prose."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for chunk in candidates:
        for start, ch in enumerate(chunk):
            if ch in "{[":
                try:
                    value, _ = decoder.raw_decode(chunk[start:])
                except json.JSONDecodeError:
                    continue
                return value
    raise PlanError(
        "the planner's answer holds no complete JSON plan"
        + (" (it looks cut off)" if text.count("{") > text.count("}") else "")
    )


def plan_from_reply(reply: Reply) -> Plan:
    """Turn native tool calls or JSON text into a ``Plan``; raises ``PlanError``."""
    if reply.tool_calls:
        steps = []
        for i, call in enumerate(reply.tool_calls, 1):
            args = call.get("arguments") or {}
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError as exc:
                    raise PlanError(
                        f"tool call {i} ({call.get('name')}) has arguments that are not JSON: {exc}"
                    ) from None
            args = dict(args)
            sid = str(args.pop("id", None) or f"s{i}")
            steps.append({"id": sid, "tool": call.get("name"), "args": args})
        return Plan.parse({"steps": steps, "reply": reply.text.strip() or None})
    data = extract_json(reply.text)
    if isinstance(data, dict) and "steps" not in data and "tool" in data:
        data = {"steps": [{"id": "s1", **data}]}  # a single step given bare
    return Plan.parse(data)


# --- the planner -----------------------------------------------------------------------------


def tool_signature(spec: dict[str, Any]) -> str:
    """``resize_image(image: image, width?: int, height?: int)``: compact, for small models."""
    schema = spec["input_schema"]
    required = set(schema.get("required", []))
    parts = []
    for name, prop in schema.get("properties", {}).items():
        parts.append(f"{name}{'' if name in required else '?'}: {_type_name(prop, schema)}")
    return f"{spec['name']}({', '.join(parts)})"


def _type_name(prop: dict[str, Any], root: dict[str, Any]) -> str:
    if "$ref" in prop:
        prop = root.get("$defs", {}).get(prop["$ref"].rsplit("/", 1)[-1], {})
    if prop.get("x-modality") is not None:
        kinds = prop["x-modality"]
        return "/".join(kinds) if kinds else "artifact"
    if "enum" in prop:
        return "|".join(json.dumps(v) for v in prop["enum"])
    if "anyOf" in prop:
        names = [_type_name(p, root) for p in prop["anyOf"] if p.get("type") != "null"]
        return " or ".join(names)
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type_name(prop.get('items', {}), root)}"
    return {"integer": "int", "number": "number", "string": "text", "boolean": "bool"}.get(
        kind, kind
    )


class LLMPlanner(Planner):
    """Plans and answers with a chat model through a ``ChatBackend``."""

    def __init__(
        self,
        backend: ChatBackend,
        *,
        native_tools: bool = False,
        max_tokens: int = 512,
        shortlist: Callable[[PlanRequest], list[dict[str, Any]]] | None = None,
    ):
        self.backend = backend
        self.name = backend.name
        self.native_tools = native_tools
        self.max_tokens = max_tokens
        self.shortlist = shortlist

    def messages(self, request: PlanRequest, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from prompts import render

        tool_lines = [
            {"signature": tool_signature(t), "description": t["description"]} for t in tools
        ]
        system = render("planner_system.j2", tools=tool_lines, native=self.native_tools)
        user_text = render("planner_user.j2", r=request)
        content: list[dict[str, Any]] = [{"type": "text", "text": user_text}]
        if self.backend.sees_images:
            content += [
                {"type": "image", "path": a.path}
                for a in request.attachments
                if a.modality is Modality.IMAGE
            ]
        return [{"role": "system", "content": system}, {"role": "user", "content": content}]

    def plan(self, request: PlanRequest) -> Plan:
        from prompts import render

        tools = self.shortlist(request) if self.shortlist else request.tools
        messages = self.messages(request, tools)
        problem = ""
        for _ in range(1 + MAX_REPAIRS):
            try:
                if self.native_tools:
                    reply = self.backend.chat(
                        messages, tools=openai_tools(tools), max_tokens=self.max_tokens
                    )
                else:
                    schema = plan_schema(tools, [a.modality.value for a in request.attachments])
                    reply = self.backend.chat(messages, schema=schema, max_tokens=self.max_tokens)
            except ToolError as exc:  # the model itself failed: asking again will not help
                raise PlannerUnavailable(f"the planner ({self.name}) failed: {exc}") from None
            try:
                plan = plan_from_reply(reply)
                if request.check is not None:
                    request.check(plan)
                return plan
            except PlanError as exc:
                problem = str(exc)
            said = reply.text or json.dumps(reply.tool_calls)
            messages = [
                *messages,
                {"role": "assistant", "content": said},
                {"role": "user", "content": render("repair.j2", problem=problem)},
            ]
        # Already re-asked: the graph should not ask the same model the same thing again.
        raise PlannerUnavailable(
            f"the planner ({self.name}) wrote no valid plan in "
            f"{1 + MAX_REPAIRS} tries; the last problem: {problem}"
        )

    def respond(self, request: RespondRequest) -> Iterator[str]:
        """Stream the final answer from the model, token by token."""
        from prompts import render

        messages = [
            {"role": "system", "content": render("respond_system.j2")},
            {"role": "user", "content": render("respond_user.j2", r=request)},
        ]
        tokens: queue.Queue[Any] = queue.Queue()
        done = object()

        def produce() -> None:
            try:
                self.backend.chat(messages, max_tokens=self.max_tokens, on_token=tokens.put)
            except Exception as exc:  # the caller sees it, in order
                tokens.put(exc)
            finally:
                tokens.put(done)

        threading.Thread(target=produce, daemon=True, name="respond").start()
        said = False
        while (item := tokens.get()) is not done:
            if isinstance(item, Exception):
                if said:
                    yield f"\n(the answer was cut off: {item})"
                    break
                # The model failed before saying anything: the template still answers.
                yield from super().respond(request)
                return
            said = True
            yield item
        facts = render("facts.md.j2", r=request).rstrip()
        if facts:
            yield "\n" + facts
