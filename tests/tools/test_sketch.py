"""The labelled SVG sketch fallback: a scripted language model writes the SVG; resvg renders it."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from PIL import Image

from tools import ArtifactStore, ToolContext, ToolError, ToolSettings
from tools.errors import MissingExtra
from tools.sketch import LABEL, draw_sketch, sanitize_svg

BLUE, RED, GREEN, WHITE = (0, 0, 255), (255, 0, 0), (0, 128, 0), (255, 255, 255)

SCENE = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 160 120" width="160" height="120">
  <rect x="0" y="0" width="160" height="120" fill="#0000ff"/>
  <circle cx="80" cy="50" r="20" fill="red"/>
  <rect x="0" y="90" width="40" height="30" fill="green"/>
</svg>"""

CHATTY = f"""Sure! Here is a simple flat illustration of a red sun over the sea:

```svg
{SCENE}
```

The blue background is the sky, and the red circle is the sun. Let me know if you want changes!"""


class ScriptedLLM:
    """Answers with the given replies in turn and records what it was asked."""

    def __init__(self, *replies: str):
        self.replies = list(replies)
        self.calls: list[tuple[list[dict], object]] = []

    def __call__(self, messages, on_token):
        self.calls.append(([dict(m) for m in messages], on_token))
        return self.replies[min(len(self.calls), len(self.replies)) - 1]


@pytest.fixture
def context(tmp_path):
    def make(llm, **kwargs) -> ToolContext:
        return ToolContext(
            store=ArtifactStore(tmp_path / "store"), workspace=tmp_path, llm=llm, **kwargs
        )

    return make


def _png(art) -> Image.Image:
    with Image.open(art.path) as img:
        assert img.format == "PNG"
        return img.convert("RGB")


def test_sketch_renders_the_svg_in_the_reply_at_the_asked_size(context):
    llm = ScriptedLLM(CHATTY)
    progress: list[tuple[float, str]] = []
    ctx = context(llm, progress_fn=lambda f, m, p: progress.append((f, m)), step_id="s1")
    art = draw_sketch(ctx, "a red sun over the sea", 160, 120, "no text-to-image weights")
    img = _png(art)
    assert img.size == (160, 120)
    assert img.getpixel((80, 50)) == RED  # the circle's centre
    assert img.getpixel((150, 10)) == BLUE  # the background
    assert img.getpixel((10, 110)) == GREEN  # the rect in the bottom-left corner
    meta = art.metadata
    assert meta["procedural"] is True and meta["kind"] == "svg-sketch" and meta["label"] == LABEL
    assert (
        meta["reason"] == "no text-to-image weights" and meta["prompt"] == "a red sun over the sea"
    )
    assert meta["attempts"] == 1 and meta["removed"] == [] and meta["source_step"] == "s1"
    svg = Path(ctx.store.get(meta["svg"])).read_text()
    assert svg.startswith("<svg") and "<circle" in svg and "Sure!" not in svg
    # one call, nothing streamed to the user; the prompts carry the size and the request
    ((messages, on_token),) = llm.calls
    assert on_token is None
    assert [m["role"] for m in messages] == ["system", "user"]
    assert 'viewBox="0 0 160 120"' in messages[0]["content"]
    assert "a red sun over the sea" in messages[1]["content"]
    assert progress[-1][0] == 1.0 and [f for f, _ in progress] == sorted(f for f, _ in progress)


def test_unfenced_svg_in_another_viewbox_is_fitted_and_padded(context):
    square = (
        '<svg viewBox="0 0 100 100"><rect width="100" height="100" fill="red"/></svg> hope it helps'
    )
    art = draw_sketch(context(ScriptedLLM("Here: " + square)), "a red square", 200, 100, "r")
    img = _png(art)
    assert img.size == (200, 100)
    assert img.getpixel((100, 50)) == RED and img.getpixel((55, 50)) == RED
    assert img.getpixel((10, 50)) == WHITE and img.getpixel((190, 50)) == WHITE  # padding


def test_width_and_height_without_a_viewbox_become_the_viewbox(context):
    svg = '<svg width="50px" height="25"><rect x="25" width="25" height="25" fill="blue"/></svg>'
    img = _png(draw_sketch(context(ScriptedLLM(svg)), "half blue", 100, 50, "r"))
    assert img.size == (100, 50)
    assert img.getpixel((75, 25)) == BLUE and img.getpixel((25, 25)) == WHITE


def test_malicious_svg_is_sanitized(context, tmp_path):
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), RED).save(secret)
    evil = f"""```svg
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     viewBox="0 0 64 64" onload="alert(1)">
  <script>alert('x')</script>
  <style>@import url(http://evil.example/x.css);</style>
  <rect width="64" height="64" fill="blue" onclick="steal()"/>
  <image href="{secret}" x="0" y="0" width="64" height="64"/>
  <image xlink:href="http://evil.example/a.png" width="64" height="64"/>
  <use xlink:href="{secret}#frag"/>
  <foreignObject width="64" height="64"><div xmlns="http://www.w3.org/1999/xhtml">hi</div>
  </foreignObject>
  <circle cx="32" cy="32" r="5" fill="url(http://evil.example/p.svg#p)"/>
  <a href="http://evil.example"><rect x="0" y="0" width="8" height="8" fill="green"/></a>
</svg>
```"""
    # Unsanitized, resvg really would read the local file named by <image>:
    import resvg_py

    raw = evil.split("```svg")[1].split("```")[0]
    leaked = Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=raw))))
    assert leaked.convert("RGB").getpixel((50, 50)) == RED

    ctx = context(ScriptedLLM(evil))
    art = draw_sketch(ctx, "a blue square", 64, 64, "r")
    img = _png(art)
    assert img.getpixel((50, 50)) == BLUE  # no local file drawn over the square
    assert img.getpixel((4, 4)) == GREEN  # the link's content kept, as a plain group
    svg = Path(ctx.store.get(art.metadata["svg"])).read_text()
    for bad in (
        "script",
        "alert",
        "onload",
        "onclick",
        "evil.example",
        "<image",
        "secret",
        "foreignObject",
        "@import",
        "<a ",
        "<use",
    ):
        assert bad not in svg, bad
    removed = art.metadata["removed"]
    assert "<script>" in removed and "<image>" in removed and "<foreignObject>" in removed
    assert "onload attribute" in removed and "<style> with external resources" in removed


def test_internal_references_survive_sanitizing():
    svg, removed = sanitize_svg(
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<defs><linearGradient id="g"><stop offset="0" stop-color="red"/></linearGradient>'
        '<circle id="c" r="4" fill="url(#g)"/></defs><use xlink:href="#c" x="5" y="5"/></svg>',
        32,
        16,
    )
    assert removed == []
    assert 'href="#c"' in svg and 'fill="url(#g)"' in svg
    assert 'width="32"' in svg and 'height="16"' in svg and 'viewBox="0 0 32 16"' in svg


def test_entities_are_refused_and_the_model_gets_one_repair(context):
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
        '<svg xmlns="http://www.w3.org/2000/svg"><text>&b;</text></svg>'
    )
    llm = ScriptedLLM(bomb, CHATTY)
    art = draw_sketch(context(llm), "a red sun", 160, 120, "r")
    assert art.metadata["attempts"] == 2
    assert _png(art).getpixel((80, 50)) == RED
    repair = llm.calls[1][0]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert "DOCTYPE or an ENTITY" in repair[-1]["content"]


def test_no_svg_twice_is_a_clear_error_after_exactly_one_repair(context):
    llm = ScriptedLLM("I am sorry, I cannot draw.", "Still no drawing, sorry.")
    with pytest.raises(ToolError, match="could not draw a sketch of 'a cat'.*no <svg> element"):
        draw_sketch(context(llm), "a cat", 64, 64, "r")
    assert len(llm.calls) == 2
    assert "contains no <svg> element" in llm.calls[1][0][-1]["content"]


@pytest.mark.parametrize(
    ("first", "problem"),
    [
        ('<svg viewBox="0 0 10 10"><rect width="10" height="10" fill="red"/>', "cut off"),
        ('<svg viewBox="0 0 10 10"><rect width="10"></svg>', "not well-formed XML"),
        ('<svg viewBox="0 0 10 10"><script>x()</script></svg>', "draws no shapes once <script>"),
    ],
)
def test_each_kind_of_unusable_reply_is_explained_to_the_model(context, first, problem):
    llm = ScriptedLLM(first, CHATTY)
    draw_sketch(context(llm), "sun", 32, 24, "r")
    assert problem in llm.calls[1][0][-1]["content"]


def test_no_language_model_is_a_clear_error(context):
    with pytest.raises(ToolError, match="no language model is configured"):
        draw_sketch(context(None), "a cat", 64, 64, "r")


def test_size_limits_and_empty_prompts(context):
    llm = ScriptedLLM(CHATTY)
    small = ToolSettings(max_image_side=100)
    with pytest.raises(ToolError, match="limit is 100 per side"):
        draw_sketch(context(llm, settings=small), "sun", 200, 50, "r")
    with pytest.raises(ToolError, match="needs a prompt"):
        draw_sketch(context(llm), "  ", 64, 64, "r")
    assert llm.calls == []


def test_missing_renderer_names_the_extra(context, monkeypatch):
    monkeypatch.setitem(sys.modules, "resvg_py", None)
    with pytest.raises(MissingExtra, match=r"anymodal\[image\]"):
        draw_sketch(context(ScriptedLLM(CHATTY)), "sun", 64, 64, "r")


def test_a_single_flat_colour_is_sent_back_once(context):
    flat = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8">'
        '<rect width="8" height="8" fill="red"/></svg>'
    )
    llm = ScriptedLLM(flat, SCENE)
    art = draw_sketch(context(llm), "a red apple", 32, 32, "no weights")
    assert art.metadata["attempts"] == 2
    assert "one flat colour" in llm.calls[1][0][-1]["content"]
