"""``anymodal mcp``: anymodal's tools as a Model Context Protocol server over stdio, for any
MCP client (Claude Desktop, IDE agents, ``mcp`` scripts).

Every registered tool is listed with its JSON schema. A call runs as a one-step plan in a new
session, so its outputs land in the artifact store like any run's. Artifact arguments take
file paths (or the ``file://`` URIs earlier results gave), which become the run's
attachments. A result carries the reply text, images inline (base64 PNG), text outputs
inline, and a resource link to every output file; a failed tool is an error result with the
tool's own message.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from assistant import paths
from assistant.events import Final, RunResult, StepProgress
from assistant.sessions import new_session_id
from tools.artifact import Artifact, Modality
from tools.errors import ToolError, require

if TYPE_CHECKING:
    from assistant.api import Assistant

log = logging.getLogger(__name__)

INLINE_IMAGE_SIDE = 2048
"""Images are sent inline at most this many pixels a side (clients refuse huge ones); the
link still names the full file."""
INLINE_TEXT_CHARS = 100_000
INSTRUCTIONS = (
    "anymodal's local multimodal tools: images, audio, speech, video, 3D and text. Give files "
    "as absolute paths (or file:// URIs from earlier results). Results come back as text, "
    "inline images, and links to the output files."
)
_ARTIFACT_NOTE = re.compile(r"\((\w[\w/]*|any) artifact: [^)]*\)$")
_TEXT_NOTE = "(literal text, or '$s1' for the text a step produced)"


class ArgumentError(ValueError):
    """A tool argument names a file that cannot be used."""


def mcp_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's input schema as MCP clients see it: artifact slots described as file paths,
    anymodal's ``x-modality`` markers removed."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items() if k != "x-modality"}
        kinds = node.get("x-modality")
        text = out.get("description", "")
        if kinds is not None and isinstance(text, str):
            if _TEXT_NOTE in text:
                text = text.replace(_TEXT_NOTE, "(text, or the absolute path of a text file)")
            else:
                what = "/".join(kinds) or "any"
                text = _ARTIFACT_NOTE.sub(f"({what} file: an absolute path or file:// URI)", text)
            out["description"] = text
        return out

    return dict(walk(copy.deepcopy(schema)))


def attach_files(
    args: dict[str, Any], schema: dict[str, Any], roots: Iterable[Path] = ()
) -> tuple[dict[str, Any], list[Path]]:
    """Replace the file paths in artifact slots by attachment references (``$a1`` ...).

    A slot that takes text (alone, or among other kinds, like search_memory's query) keeps a
    literal unless it is an absolute path (or ``file://`` URI) of an existing file. Returns the
    arguments and the files to attach, in order.

    Raises:
        ArgumentError: a file is missing, or outside ``roots`` when roots are given.
    """
    defs = schema.get("$defs", {})
    allowed = [Path(r).expanduser().resolve() for r in roots]
    files: list[Path] = []

    def ref(value: str, kinds: list[str], where: str) -> str:
        is_uri = value.startswith("file://")
        path = Path(unquote(urlparse(value).path)) if is_uri else Path(value).expanduser()
        if "text" in kinds and not (is_uri or path.is_absolute() and path.is_file()):
            return value  # literal text
        if not path.is_file():
            raise ArgumentError(f"{where}: no file at {path}; give an absolute path")
        path = path.resolve()
        if allowed and not any(path.is_relative_to(r) for r in allowed):
            shown = ", ".join(str(r) for r in allowed)
            raise ArgumentError(
                f"{where}: {path} is outside the folders this server reads ({shown})"
            )
        if path not in files:
            files.append(path)
        return f"$a{files.index(path) + 1}"

    def walk(value: Any, node: dict[str, Any], where: str) -> Any:
        if "$ref" in node:
            node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
        if "x-modality" in node:
            return ref(value, node["x-modality"], where) if isinstance(value, str) else value
        for alt in node.get("anyOf", []):
            if value is not None and alt.get("type") != "null":
                value = walk(value, alt, where)
        if isinstance(value, list) and isinstance(node.get("items"), dict):
            return [walk(v, node["items"], f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict) and "properties" in node:
            props = node["properties"]
            return {
                k: walk(v, props[k], f"{where}.{k}") if k in props else v for k, v in value.items()
            }
        return value

    props = schema.get("properties", {})
    out = {k: walk(v, props[k], k) if k in props else v for k, v in args.items()}
    return out, files


def build_server(assistant: Assistant, *, roots: Iterable[Path] = ()) -> Any:
    """The MCP server (mcp's low-level ``Server``) over ``assistant``'s tools.

    Args:
        roots: when given, the only folders whose files tool arguments may name.
    """
    require("mcp", "mcp")
    import anyio
    import mcp.types as types
    from mcp.server import Server
    from mcp.shared.exceptions import MCPError

    roots = tuple(roots)
    made: list[Artifact] = []  # this server's outputs, for resources/list

    async def list_tools(ctx: Any, params: Any) -> Any:
        tools = [
            types.Tool(
                name=t.name, description=t.description, input_schema=mcp_schema(t.input_schema())
            )
            for t in assistant.registry
        ]
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: Any) -> Any:
        name = params.name
        try:
            tool = assistant.registry.get(name)
            args, files = attach_files(dict(params.arguments or {}), tool.input_schema(), roots)
        except (ToolError, ArgumentError) as exc:
            return _error(types, str(exc))
        session = new_session_id()
        plan = {"steps": [{"id": "s1", "tool": name, "args": args}]}
        result: RunResult | None = None
        try:
            async for event in assistant.astream(f"mcp: {name}", files, session=session, plan=plan):
                if isinstance(event, StepProgress):
                    await ctx.session.report_progress(event.fraction, 1.0, event.message or None)
                elif isinstance(event, Final):
                    result = event.result
        except anyio.get_cancelled_exc_class():
            assistant.cancel(session)  # the client gave up: stop the tool too
            raise
        except (ValueError, RuntimeError, ToolError) as exc:  # attachments, plan, busy
            return _error(types, f"{name}: {exc}")
        if result is None:
            return _error(types, f"{name}: the run ended without a result")
        if result.status == "interrupted":
            return _error(
                types,
                f"{name} needs approval before it runs (config approve = "
                f"{assistant.config.approve!r}); allow it with approve = 'never' in config.toml "
                "or ANYMODAL_APPROVE=never in this server's environment",
            )
        if not result.ok:
            return _error(types, _failure(name, result))
        made.extend(result.artifacts)
        del made[:-200]
        return _content(types, result)

    async def list_resources(ctx: Any, params: Any) -> Any:
        return types.ListResourcesResult(resources=[_link(types, a) for a in reversed(made)])

    async def read_resource(ctx: Any, params: Any) -> Any:
        uri = str(params.uri)
        path = Path(unquote(urlparse(uri).path)) if uri.startswith("file://") else None
        store = (paths.data_dir() / "sessions").resolve()
        if path is None or not path.resolve().is_relative_to(store):
            raise MCPError(types.INVALID_PARAMS, f"{uri} is not an anymodal artifact")
        if not path.is_file():
            raise MCPError(types.INVALID_PARAMS, f"{uri} no longer exists (session deleted?)")
        from tools.artifact import sniff_mime

        data = path.read_bytes()
        mime = sniff_mime(data, path.name)
        if mime.startswith("text/") or mime == "application/json":
            text = data.decode("utf-8", "replace")
            content: Any = types.TextResourceContents(uri=uri, mime_type=mime, text=text)
        else:
            blob = base64.b64encode(data).decode("ascii")
            content = types.BlobResourceContents(uri=uri, mime_type=mime, blob=blob)
        return types.ReadResourceResult(contents=[content])

    return Server(
        "anymodal",
        version=_version(),
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
    )


async def serve_stdio(assistant: Assistant, *, roots: Iterable[Path] = ()) -> None:
    """Serve over this process's stdin and stdout until the client closes them."""
    from mcp.server.stdio import stdio_server

    server = build_server(assistant, roots=roots)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def _error(types: Any, message: str) -> Any:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def _failure(name: str, result: RunResult) -> str:
    """The tool's own error, or why the call could not run (bad arguments)."""
    step = result.steps.get("s1") or {}
    if step.get("error"):
        return f"{name} failed: {step['error']}"
    lines = [line.removeprefix("- ").strip() for line in result.text.splitlines()[1:]]
    said = "; ".join(line for line in lines if line) or result.text
    return re.sub(
        rf"^invalid plan: s1 \({re.escape(name)}\): ", f"{name}: invalid arguments: ", said
    )


def _content(types: Any, result: RunResult) -> Any:
    step = result.steps.get("s1") or {}
    data = step.get("data") or {}
    text = result.text
    if data:
        text += "\n\ndata: " + json.dumps(data, default=str)
    blocks: list[Any] = [types.TextContent(text=text)]
    for art in result.artifacts:
        if art.modality is Modality.IMAGE:
            png, note = _inline_png(art)
            if png is not None:
                blocks.append(types.ImageContent(data=png, mime_type="image/png"))
            if note:
                blocks.append(types.TextContent(text=note))
        elif (
            art.modality is Modality.TEXT and int(art.metadata.get("size", 0)) <= INLINE_TEXT_CHARS
        ):
            blocks.append(types.TextContent(text=art.read_text()))
        blocks.append(_link(types, art))
    structured = {
        "session": result.session,
        "data": data,
        "artifacts": [
            {
                "id": a.id,
                "modality": a.modality.value,
                "mime": a.mime,
                "path": a.path,
                "uri": Path(a.path).as_uri(),
                "metadata": a.metadata,
            }
            for a in result.artifacts
        ],
    }
    return types.CallToolResult(
        content=blocks, structured_content=json.loads(json.dumps(structured, default=str))
    )


def _link(types: Any, art: Artifact) -> Any:
    return types.ResourceLink(
        name=art.name or f"{art.modality.value}-{art.short_id}",
        uri=Path(art.path).as_uri(),
        mime_type=art.mime,
        size=art.metadata.get("size"),
        description=f"{art.modality.value} output at {art.path}",
    )


def _inline_png(art: Artifact) -> tuple[str | None, str]:
    """The image as base64 PNG (shrunk to ``INLINE_IMAGE_SIDE``), and a note if it was."""
    from PIL import Image

    try:
        with Image.open(art.path) as img:
            img.load()
            if art.mime == "image/png" and max(img.size) <= INLINE_IMAGE_SIDE:
                return base64.b64encode(art.read_bytes()).decode("ascii"), ""
            shown = img.copy()
    except Exception as exc:  # an image PIL cannot read is still linked
        return None, f"(cannot show {art.label()} inline: {exc})"
    note = ""
    if max(shown.size) > INLINE_IMAGE_SIDE:
        shown.thumbnail((INLINE_IMAGE_SIDE, INLINE_IMAGE_SIDE))
        note = f"(shown at {shown.width}x{shown.height}; the full image is {art.path})"
    if shown.mode not in ("RGB", "RGBA", "L", "LA"):
        shown = shown.convert("RGBA")
    buf = io.BytesIO()
    shown.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii"), note


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("anymodal")
    except PackageNotFoundError:
        return "0"
