"""``anymodal mcp``: a real MCP client over stdio lists the tools and calls them; the argument
and schema rewriting is checked in-process too."""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO, make_png

pytest.importorskip("mcp", reason="the mcp extra is not installed")


def server_env(home: Path) -> dict[str, str]:
    return {
        "ANYMODAL_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "ANYMODAL_MEMORY__ENABLED": "false",
        "ANYMODAL_TOOL_MODULES": json.dumps(["tests.plugin_tools"]),
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
    }


async def talk(home: Path, png: Path, log: Path) -> dict:
    """Start `anymodal mcp` as a client would, and collect what it answers."""
    import mcp.types as types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from mcp.shared.exceptions import MCPError

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "assistant.cli", "mcp"],
        env=server_env(home),
        cwd=str(REPO),
    )
    got: dict = {"progress": []}
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        got["init"] = await session.initialize()
        got["tools"] = {t.name: t for t in (await session.list_tools()).tools}

        async def progress(value: float, total: float | None, message: str | None) -> None:
            got["progress"].append((value, message))

        got["resize"] = await session.call_tool("resize_image", {"image": str(png), "width": 64})
        got["count"] = await session.call_tool(
            "count", {"label": "hello", "log": str(log)}, progress_callback=progress
        )
        got["boom"] = await session.call_tool("boom", {"message": "the lamp is off; switch it on"})
        got["missing"] = await session.call_tool(
            "resize_image", {"image": "/no/such.png", "width": 8}
        )
        got["bad_args"] = await session.call_tool(
            "resize_image", {"image": str(png), "width": "big"}
        )
        got["unknown"] = await session.call_tool("resize_imag", {})
        links = [c for c in got["resize"].content if isinstance(c, types.ResourceLink)]
        got["read"] = await session.read_resource(links[0].uri)
        got["listed"] = (await session.list_resources()).resources
        try:
            await session.read_resource("file:///etc/hostname")
        except MCPError as exc:
            got["outside"] = exc.message
    return got


def test_a_client_lists_the_tools_and_calls_them_over_stdio(tmp_path):
    import anyio
    import mcp.types as types

    png = make_png(tmp_path / "in.png", (320, 200), (200, 30, 30))
    log = tmp_path / "count.log"
    got = anyio.run(talk, tmp_path / "server-home", png, log)

    assert "absolute paths" in (got["init"].instructions or "")
    tools = got["tools"]
    assert {"resize_image", "stitch_images", "boom", "noop"} <= set(tools)
    image_slot = tools["resize_image"].input_schema["properties"]["image"]
    assert image_slot["type"] == "string" and "x-modality" not in json.dumps(
        tools["resize_image"].input_schema
    )
    assert "absolute path" in image_slot["description"] and "$a1" not in image_slot["description"]

    resize = got["resize"]
    assert not resize.is_error
    (image,) = [c for c in resize.content if isinstance(c, types.ImageContent)]
    assert image.mime_type == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(image.data))) as img:
        assert img.size == (64, 40)
    (link,) = [c for c in resize.content if isinstance(c, types.ResourceLink)]
    out = Path(link.uri.removeprefix("file://"))
    assert out.is_file() and link.mime_type == "image/png"
    assert str(out).startswith(str(tmp_path / "server-home" / "data" / "sessions"))
    text = resize.content[0].text
    assert "resized in.png from 320x200 to 64x40" in text
    assert resize.structured_content["artifacts"][0]["path"] == str(out)
    assert got["read"].contents[0].blob == base64.b64encode(out.read_bytes()).decode()
    assert [r.uri for r in got["listed"]][-1] == link.uri
    assert "not an anymodal artifact" in got["outside"]

    count = got["count"]
    assert not count.is_error and log.read_text() == "hello\n"
    assert "hello done" in [c.text for c in count.content if isinstance(c, types.TextContent)]
    assert (0.5, "writing hello") in got["progress"]  # the tool's progress reached the client

    for key, message in [
        ("boom", "boom failed: the lamp is off; switch it on"),
        ("missing", "image: no file at /no/such.png; give an absolute path"),
        ("bad_args", "resize_image: invalid arguments: width: Input should be a valid integer"),
        ("unknown", "unknown tool 'resize_imag'; did you mean resize_image"),
    ]:
        result = got[key]
        assert result.is_error, key
        assert result.content[0].text.startswith(message), result.content[0].text


def test_file_paths_in_artifact_slots_become_attachments(tmp_path):
    from assistant.mcp_server import ArgumentError, attach_files, mcp_schema
    from tools import Registry

    reg = Registry.discover()
    a = make_png(tmp_path / "a.png", (8, 8), (1, 2, 3))
    b = make_png(tmp_path / "b.png", (8, 8), (3, 2, 1))
    stitch = reg.get("stitch_images").input_schema()
    args, files = attach_files({"images": [str(a), b.as_uri(), str(a)], "gap": 2}, stitch)
    assert args == {"images": ["$a1", "$a2", "$a1"], "gap": 2} and files == [a, b]

    # A text slot keeps literal text; an absolute path of a text file is read as that file.
    notes = tmp_path / "notes.txt"
    notes.write_text("some notes")
    summarize = reg.get("summarize_text").input_schema()
    assert attach_files({"text": "hello there"}, summarize) == ({"text": "hello there"}, [])
    assert attach_files({"text": str(notes)}, summarize) == ({"text": "$a1"}, [notes])

    # A slot taking text or other kinds (a memory query) keeps words, takes files.
    query = {
        "type": "object",
        "properties": {"q": {"type": "string", "x-modality": ["text", "image"]}},
    }
    assert attach_files({"q": "red dogs"}, query) == ({"q": "red dogs"}, [])
    assert attach_files({"q": str(a)}, query) == ({"q": "$a1"}, [a])

    with pytest.raises(ArgumentError, match=r"images\[1\]: no file at"):
        attach_files({"images": [str(a), str(tmp_path / "gone.png")]}, stitch)
    other = tmp_path / "elsewhere"
    other.mkdir()
    with pytest.raises(ArgumentError, match="is outside the folders this server reads"):
        attach_files({"images": [str(a), str(b)]}, stitch, roots=[other])

    schema = mcp_schema(reg.get("draw_boxes").input_schema())
    assert "x-modality" not in json.dumps(schema)
    assert schema["properties"]["detections"]["description"].endswith(
        "(text, or the absolute path of a text file)"
    )


def test_a_root_that_is_not_a_folder_is_a_usage_error(tmp_path):
    from tests.assistant.test_cli import anymodal

    proc = anymodal("mcp", "--root", str(tmp_path / "nope"), env={"ANYMODAL_HOME": str(tmp_path)})
    assert proc.returncode == 2 and "--root" in proc.stderr and "is not a folder" in proc.stderr
