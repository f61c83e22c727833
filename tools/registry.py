"""Finding tools (entry points, modules), wrapping typed functions, exporting to langchain."""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from tools.artifact import Artifact, Modality
from tools.base import Tool, ToolContext, ToolResult
from tools.errors import ToolError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "anymodal.tools"


class Registry:
    """The tools a run can use, by name."""

    def __init__(self, tools: Iterable[Tool] = ()):
        self._tools: dict[str, Tool] = {}
        self.load_errors: dict[str, str] = {}
        """Plugins that failed to load, with why: shown by ``anymodal tools list``."""
        for t in tools:
            self.add(t)

    def add(self, tool: Tool) -> None:
        if not isinstance(tool, Tool):
            raise TypeError(f"{tool!r} is not a Tool")
        if tool.name in self._tools and self._tools[tool.name] is not tool:
            raise ValueError(f"two tools are named {tool.name!r}")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._tools, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ToolError(f"unknown tool {name!r}{hint}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(sorted(self._tools.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def specs(self) -> list[dict[str, Any]]:
        return [t.spec() for t in self]

    def as_langchain_tools(self, make_context: Callable[[], ToolContext]) -> list[Any]:
        """Every tool as a langchain-core tool (see ``as_langchain_tool``)."""
        return [as_langchain_tool(t, make_context) for t in self]

    @classmethod
    def discover(cls, modules: Iterable[str] = (), disabled: Iterable[str] = ()) -> Registry:
        """Tools from the ``anymodal.tools`` entry points plus any extra modules.

        An entry point may name a ``Tool`` instance, a ``Tool`` subclass, or a callable that
        returns tools. A plugin that fails to import is skipped and recorded in
        ``load_errors``; it never stops the others.
        """
        reg = cls()
        skip = set(disabled)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                found = list(_as_tools(ep.load()))
            except Exception as exc:  # a broken plugin must not take the others down
                reg.load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                log.warning("tool plugin %s failed to load: %s", ep.name, exc)
                continue
            for t in found:
                if t.name not in skip:
                    reg.add(t)
        for name in modules:
            module = importlib.import_module(name)
            for value in vars(module).values():
                if isinstance(value, Tool) and value.name not in skip:
                    reg.add(value)
        return reg


def _as_tools(obj: Any) -> Iterator[Tool]:
    if isinstance(obj, Tool):
        yield obj
    elif inspect.isclass(obj) and issubclass(obj, Tool):
        yield obj()
    elif callable(obj):
        for item in obj():
            yield from _as_tools(item)
    else:
        raise TypeError(f"{obj!r} is not a tool")


_ARG_LINE = re.compile(r"^\s{2,}(\w+)(?:\s*\([^)]*\))?:\s*(.+)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """First paragraph as the description; Google-style ``Args:`` as argument docs."""
    doc = inspect.cleandoc(doc or "")
    summary = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    params: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        if line.strip() in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args:
            m = _ARG_LINE.match(line)
            if m:
                params[m.group(1)] = m.group(2).strip()
            elif line and not line.startswith(" "):
                in_args = False
    return summary, params


class FunctionTool(Tool):
    """A tool made from a typed Python function (see ``function_tool``)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        outputs: Iterable[Modality] = (),
        needs_approval: bool = False,
        timeout: float | None = None,
    ):
        summary, arg_docs = _parse_docstring(fn.__doc__ or "")
        self.fn = fn
        self.name = name or fn.__name__  # type: ignore[misc]
        self.description = description or summary  # type: ignore[misc]
        if not self.description:
            raise ValueError(f"{self.name}: give the function a docstring or a description")
        hints = hints_of(fn, self.name)
        self.outputs = tuple(outputs) or _outputs_from_return(hints)  # type: ignore[misc]
        self.needs_approval = needs_approval  # type: ignore[misc]
        self.timeout = timeout  # type: ignore[misc]
        fields: dict[str, Any] = {}
        self._wants_ctx = False
        for pname, param in inspect.signature(fn).parameters.items():
            if pname == "ctx" or hints.get(pname) is ToolContext:
                self._wants_ctx = True
                continue
            if pname not in hints:
                raise TypeError(f"{self.name}: parameter {pname!r} needs a type hint")
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[pname] = (hints[pname], Field(default, description=arg_docs.get(pname)))
        model_name = "".join(p.title() for p in self.name.split("_")) + "Args"
        self.inputs = create_model(  # type: ignore[misc]
            model_name, __config__=ConfigDict(extra="forbid"), **fields
        )

    def run(self, args: BaseModel, ctx: ToolContext) -> ToolResult:
        kwargs = {name: getattr(args, name) for name in type(args).model_fields}
        if self._wants_ctx:
            kwargs["ctx"] = ctx
        return to_result(self.fn(**kwargs), ctx, self.name)


def hints_of(fn: Callable[..., Any], name: str) -> dict[str, Any]:
    try:
        return get_type_hints(fn, include_extras=True)
    except NameError as exc:
        raise TypeError(
            f"{name}: cannot read its type hints ({exc}); define the function and the "
            "types it names at module level"
        ) from None


def _outputs_from_return(hints: dict[str, Any]) -> tuple[Modality, ...]:
    """What a plain function's return annotation says it produces (str is a text artifact)."""
    ret = hints.get("return")
    if ret is str:
        return (Modality.TEXT,)
    if getattr(ret, "__module__", "").startswith("PIL"):
        return (Modality.IMAGE,)
    return ()


def to_result(value: Any, ctx: ToolContext, tool_name: str) -> ToolResult:
    """Normalise what a function returned: a result, artifacts, text, data, or an image."""
    if isinstance(value, ToolResult):
        return value
    if value is None:
        return ToolResult()
    if isinstance(value, Artifact):
        return ToolResult(artifacts=[value])
    if isinstance(value, list) and all(isinstance(v, Artifact) for v in value):
        return ToolResult(artifacts=value)
    if isinstance(value, str):
        art = ctx.store.add_text(
            value, name=f"{tool_name}.txt", metadata={"source_step": ctx.step_id}
        )
        return ToolResult(artifacts=[art], summary=value[:200])
    if isinstance(value, dict):
        return ToolResult(data=value)
    if hasattr(value, "save") and hasattr(value, "size"):  # a PIL image
        return ToolResult(artifacts=[ctx.store.add_image(value, name=f"{tool_name}.png")])
    raise TypeError(f"{tool_name} returned {type(value).__name__}, which is not a tool result")


def function_tool(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Wrap a typed, documented function as a tool: ``@function_tool`` or
    ``@function_tool(outputs=[Modality.IMAGE])``.

    Parameters become the input schema (artifact slots such as ``ImageInput`` included); a
    parameter named ``ctx`` receives the ``ToolContext``. The function may return a
    ``ToolResult``, artifacts, a string (kept as a text artifact), a dict, or a PIL image.
    """
    if fn is None:
        return lambda f: FunctionTool(f, **options)
    return FunctionTool(fn, **options)


def as_langchain_tool(tool: Tool, make_context: Callable[[], ToolContext]) -> Any:
    """Expose a tool as a langchain-core ``StructuredTool``.

    The langchain tool takes the same JSON arguments the planner writes; artifact references
    resolve through the context ``make_context`` returns. It answers with a short text for the
    model and the ``ToolResult`` as the artifact (``response_format="content_and_artifact"``).
    """
    from langchain_core.tools import StructuredTool

    def call(**kwargs: Any) -> tuple[str, ToolResult]:
        ctx = make_context()
        result = tool.run(tool.parse(kwargs, ctx), ctx)
        lines = [result.summary or f"{tool.name} done"]
        lines += [f"{a.modality.value} artifact {a.id} at {a.path}" for a in result.artifacts]
        return "\n".join(lines), result

    return StructuredTool.from_function(
        func=call,
        name=tool.name,
        description=tool.description,
        args_schema=tool.input_schema(),
        response_format="content_and_artifact",
    )
