"""Tool, its context and result, and the artifact slots tool inputs declare."""

from __future__ import annotations

import dataclasses
import random
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Protocol

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)

from tools.artifact import Artifact, ArtifactStore, Modality
from tools.errors import ToolError
from tools.settings import ToolSettings

REF_PATTERN = re.compile(r"^\$([A-Za-z][A-Za-z0-9_-]*)(?:\.([A-Za-z0-9]+))?$")
"""``$a1`` (first attachment), ``$s1`` (step s1's first output), ``$s1.2`` (its second),
``$s1.image`` (its first image)."""

ATTACHMENT_PATTERN = re.compile(r"^a(\d+)$")


class Cancelled(ToolError):
    """The step was cancelled (by the user, or because it ran past its timeout)."""


def _format_location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(arguments)"


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line per problem: ``width: Input should be a valid integer (got 'abc')``."""
    lines = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        where = _format_location(err["loc"])
        if err["type"] in ("missing", "value_error", "assertion_error") or isinstance(got, dict):
            lines.append(f"{where}: {msg}")
        else:
            lines.append(f"{where}: {msg} (got {got!r})")
    return "; ".join(lines)


def resolve_reference(value: str, info: ValidationInfo) -> Artifact:
    """Resolve through the resolver the caller put in the validation context."""
    resolver = (info.context or {}).get("resolve")
    if resolver is None:
        raise ValueError(f"cannot resolve artifact reference {value!r} outside a run")
    try:
        return resolver(value)
    except ToolError as exc:
        raise ValueError(str(exc)) from None


def artifact_input(*modalities: Modality, description: str = "") -> Any:
    """An input slot that takes an artifact reference and hands the tool an ``Artifact``.

    In a plan the value is a string: ``$a1`` (an attachment), ``$s1`` / ``$s1.2`` (an earlier
    step's output), or an artifact id. Validation resolves it through the resolver the
    executor puts in the validation context, and checks the modality.
    """
    wanted = tuple(modalities)
    kinds = "/".join(m.value for m in wanted) or "any"

    def resolve(value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, Artifact):
            art = value
        elif isinstance(value, str):
            art = resolve_reference(value, info)
        elif isinstance(value, Mapping) and {"id", "path", "modality"} <= value.keys():
            art = Artifact.model_validate(value)
        else:
            raise ValueError(
                f"expected an artifact reference such as '$a1' or '$s1', got {value!r}"
            )
        if wanted and art.modality not in wanted and not art.metadata.get("any_modality"):
            raise ValueError(f"{art.label()} is {art.modality.value}; this needs {kinds}")
        return art

    schema = {
        "type": "string",
        "description": (description + " " if description else "")
        + f"({kinds} artifact: '$a1' for the first attachment, '$s1' for step s1's output)",
        "x-modality": [m.value for m in wanted],
    }
    return Annotated[Artifact, BeforeValidator(resolve), WithJsonSchema(schema)]


ImageInput = artifact_input(Modality.IMAGE)
AudioInput = artifact_input(Modality.AUDIO)
VideoInput = artifact_input(Modality.VIDEO)
MeshInput = artifact_input(Modality.MESH)
TextInput = artifact_input(Modality.TEXT)
AnyInput = artifact_input()


def text_input(description: str = "") -> Any:
    """An input slot for text: literal text, or a reference to a text artifact whose content
    the tool receives instead (``"$s1"`` after a transcription, say)."""

    def resolve(value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, Artifact):
            art = value
        elif isinstance(value, str) and REF_PATTERN.match(value):
            art = resolve_reference(value, info)
        else:
            return value
        if art.metadata.get("placeholder"):
            if art.modality not in (Modality.TEXT,) and not art.metadata.get("any_modality"):
                raise ValueError(f"{value} is {art.modality.value}; this needs text")
            return ""  # checked at plan time; the real text arrives when the step runs
        if art.modality is not Modality.TEXT:
            raise ValueError(f"{art.label()} is {art.modality.value}; this needs text")
        return art.read_text()

    schema = {
        "type": "string",
        "description": (description + " " if description else "")
        + "(literal text, or '$s1' for the text a step produced)",
        "x-modality": [Modality.TEXT.value],
    }
    return Annotated[str, BeforeValidator(resolve), WithJsonSchema(schema)]


TextLike = text_input()


StartTime = Annotated[float, Field(ge=0, description="start time in seconds")]
EndTime = Annotated[float | None, Field(gt=0, description="end time in seconds (default: the end)")]


def end_after_start(args: Any) -> Any:
    """A model validator for ``start: StartTime`` / ``end: EndTime`` fields; use it as
    ``_order = model_validator(mode="after")(end_after_start)`` in the model."""
    if args.end is not None and args.end <= args.start:
        raise ValueError(f"end ({args.end}s) must be after start ({args.start}s)")
    return args


def span_end(args: Any, duration: float, label: str) -> float:
    """Where ``args.start..args.end`` ends inside a clip of ``duration`` seconds (the clip's
    end when ``end`` is unset or past it).

    Raises:
        ToolError: ``start`` is at or past the end of the clip.
    """
    if args.start >= duration:
        raise ToolError(
            f"start {args.start:g}s is past the end of {label}, which lasts {duration:.2f}s"
        )
    return min(args.end if args.end is not None else duration, duration)


def check_limit(name: str, value: float | None, limit: float, setting: str) -> None:
    """Refuse ``value`` over ``limit``, naming the setting that sets it (``tools.mesh.max_steps``).

    Raises:
        ToolError: ``value`` is over ``limit``.
    """
    if value is not None and value > limit:
        raise ToolError(
            f"{name} {value:g} is over the limit of {limit:g} ({setting}); "
            "ask for less or raise that setting"
        )


def with_notes(what: str, notes: list[str]) -> str:
    """A tool's one-line summary: what it did, then its notes ("...; rounded to 48 frames")."""
    return what + "".join(f"; {n}" for n in notes)


def seed_field() -> Any:
    """The ``seed`` argument of a generating tool: None for a fresh random seed."""
    text = "random seed, for a repeatable result (default: random)"
    return Field(None, ge=0, le=2**63 - 1, description=text)


def pick_seed(seed: int | None) -> int:
    """``seed``, or a fresh random one when it is None: what a repeatable call records.

    Raises:
        ToolError: ``seed`` is outside what torch's generators take.
    """
    if seed is None:
        return random.SystemRandom().randrange(2**32)
    if not 0 <= seed < 2**63:
        raise ToolError(f"seed {seed} is out of range; use a number from 0 to 2**63-1")
    return seed


def input_modalities_of(model: type[BaseModel]) -> tuple[Modality, ...]:
    """The modalities an input model's artifact slots accept, in schema order."""
    found: list[Modality] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for m in node.get("x-modality", ()):
                if Modality(m) not in found:
                    found.append(Modality(m))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(model.model_json_schema())
    return tuple(found)


class ToolResult(BaseModel):
    """What a tool returns: artifacts, JSON-able data, and a one-line summary."""

    artifacts: list[Artifact] = Field(default_factory=list)
    """Outputs, in order: ``$s1`` is the first, ``$s1.2`` the second."""
    data: dict[str, Any] = Field(default_factory=dict)
    """Structured results (boxes, segments, facts) for the planner and callers."""
    summary: str = ""
    """One line saying what was done, used in the reply."""


ProgressFn = Callable[[float, str, Artifact | None], None]


def _no_progress(fraction: float, message: str, preview: Artifact | None) -> None:
    return None


class LanguageModel(Protocol):
    """The configured chat model as tools call it: ``llm(messages, on_token)`` returns the
    reply's text, streaming tokens to ``on_token`` when it is given. ``schema`` constrains
    the reply to JSON of that schema where the backend can (llama.cpp grammars, OpenAI
    structured output); others ignore it, so callers still check what comes back.
    ``max_tokens`` raises the backend's default reply length."""

    def __call__(
        self,
        messages: list[dict[str, Any]],
        on_token: Callable[[str], None] | None,
        /,
        *,
        schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> str: ...


@dataclass
class ToolContext:
    """What a running tool may use: the store, progress, cancellation, settings, models."""

    store: ArtifactStore
    workspace: Path
    settings: ToolSettings = field(default_factory=ToolSettings)
    models: Any = None
    """The model manager (``tools.models.ModelManager``): loads models lazily, cached."""
    config: Any = None
    """The assistant's full config, for tools that need more than ``settings``."""
    step_id: str = ""
    progress_fn: ProgressFn = _no_progress
    cancel_event: threading.Event = field(default_factory=threading.Event)
    refs: dict[str, list[Artifact]] = field(default_factory=dict)
    """Named outputs a reference can point at: ``{"a1": [...], "s1": [...]}``."""
    allowed_roots: tuple[Path, ...] = ()
    """Folders, besides the store and workspace, whose files a tool argument may name."""
    llm: LanguageModel | None = None
    """The configured language model: ``llm(messages, on_token) -> text``; None if none."""
    token_fn: Callable[[str], None] | None = None
    """Streams text a tool writes (e.g. ``write_text``) to the event stream as it comes."""
    memory: Any = None
    """The cross-modal memory (``memory.Memory``) when it is on, for search_memory and
    remember; None otherwise."""
    session: str | None = None
    """The session the step runs in, if any."""

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise ``Cancelled`` if the step was cancelled; call it between units of work."""
        if self.cancel_event.is_set():
            raise Cancelled("cancelled")

    def report(self, fraction: float, message: str = "", preview: Artifact | None = None) -> None:
        """Report progress (0..1) with a message and optionally a preview artifact."""
        self.progress_fn(max(0.0, min(1.0, fraction)), message, preview)

    def phase(self, lo: float, hi: float, label: str = "", stream: bool = True) -> ToolContext:
        """This context with its progress 0..1 mapped into ``lo..hi`` of the whole, messages
        after ``label``, cancellation shared: a part of a tool that reports its own 0..1 (a
        pipeline, an encoder) never sends the bar backwards. ``stream=False`` stops the part's
        tokens reaching the event stream (a frame caption is not the answer)."""

        def report(fraction: float, message: str, preview: Artifact | None) -> None:
            text = f"{label}: {message}" if label and message else label or message
            self.report(lo + (hi - lo) * fraction, text, preview)

        token_fn = self.token_fn if stream else None
        return dataclasses.replace(self, progress_fn=report, token_fn=token_fn)

    def resolve(self, value: str) -> Artifact:
        """Turn a reference, an artifact id or a path inside the session into an artifact."""
        m = REF_PATTERN.match(value)
        if m:
            name, sel = m.group(1), m.group(2)
            if name not in self.refs:
                kind = "attachment" if ATTACHMENT_PATTERN.match(name) else "step output"
                raise ToolError(
                    f"{value} names no {kind}; known: "
                    + (", ".join("$" + k for k in self.refs) or "none")
                )
            return select_output(self.refs[name], sel, value)
        found = self.store.get(value) if re.fullmatch(r"[0-9a-f]{12,64}", value) else None
        if found is not None:
            return self.store.add_file(found)
        path = Path(value).expanduser()
        roots = (self.store.root, self.workspace, *self.allowed_roots)
        if not any(_inside(path, root) for root in roots):
            raise ToolError(
                f"path {value} is outside the session; attach the file instead "
                "(anymodal run -a FILE, or attachments=[...]) and refer to it as $a1"
            )
        return self.store.add_file(path)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def select_output(outputs: list[Artifact], selector: str | None, ref: str) -> Artifact:
    """Pick from a step's outputs: none means the first, a number is 1-based, else a modality."""
    if not outputs:
        raise ToolError(f"{ref}: that step produced no artifacts")
    if selector is None:
        return outputs[0]
    if selector.isdigit():
        index = int(selector)
        if not 1 <= index <= len(outputs):
            raise ToolError(f"{ref}: that step produced {len(outputs)} artifact(s)")
        return outputs[index - 1]
    for art in outputs:
        if art.modality.value == selector:
            return art
    raise ToolError(f"{ref}: that step produced no {selector} artifact")


class Tool:
    """A capability the planner can call. Subclasses set the class attributes and ``run``.

    Heavy setup (models) belongs in ``run``, through ``ctx.models``, never in ``__init__``.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    inputs: ClassVar[type[BaseModel]]
    outputs: ClassVar[tuple[Modality, ...]] = ()
    """Modalities of the artifacts the tool returns, for plan checks and the catalog."""
    needs_approval: ClassVar[bool] = False
    """Ask the user before running (e.g. the tool spends money or touches the network)."""
    timeout: ClassVar[float | None] = None
    """Seconds before the step is stopped; None uses the config's ``step_timeout``."""

    def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        raise NotImplementedError

    @property
    def input_modalities(self) -> tuple[Modality, ...]:
        return input_modalities_of(self.inputs)

    def input_schema(self) -> dict[str, Any]:
        return self.inputs.model_json_schema()

    def check_args(self, args: Mapping[str, Any], resolve: Callable[[str], Artifact]) -> str | None:
        """What is wrong with ``args`` as a plan gives them (None if nothing), resolving
        references through ``resolve``; used to check plans before they run."""
        try:
            self.inputs.model_validate(dict(args), context={"resolve": resolve})
        except ValidationError as exc:
            return describe_validation_error(exc)
        return None

    def parse(self, args: Mapping[str, Any], ctx: ToolContext) -> BaseModel:
        """Validate raw arguments, resolving artifact references through ``ctx``."""
        try:
            return self.inputs.model_validate(dict(args), context={"resolve": ctx.resolve})
        except ValidationError as exc:
            raise ToolError(f"{self.name}: {describe_validation_error(exc)}") from None

    def __call__(self, ctx: ToolContext, /, **args: Any) -> ToolResult:
        """Validate ``args`` and run: the direct way to use a tool from Python."""
        return self.run(self.parse(args, ctx), ctx)

    def spec(self) -> dict[str, Any]:
        """The catalog entry the planner and ``anymodal tools list`` see."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema(),
            "input_modalities": [m.value for m in self.input_modalities],
            "output_modalities": [m.value for m in self.outputs],
        }

    def __repr__(self) -> str:
        return f"<tool {self.name}>"
