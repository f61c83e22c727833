"""A labelled procedural sketch: the language model writes a simple SVG, which is sanitized and
rendered to PNG. generate_image falls back on it when no text-to-image weights are installed;
the result says plainly that it is a sketch, not a diffusion image."""

from __future__ import annotations

import io
import math
import re
from typing import Any

from tools.artifact import Artifact, Modality, slug
from tools.base import ToolContext
from tools.errors import ToolError, require
from tools.image_io import check_output_size
from tools.llm_retry import ask_twice

LABEL = "procedural sketch (not a diffusion image)"
SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
MAX_REPLY_CHARS = 200_000
"""A longer reply is refused: a sketch is tens of shapes, not a vector-art file."""
MAX_ELEMENTS = 4_000

# Elements kept; everything else (script, image, feImage, foreignObject, iframe, metadata ...)
# is dropped with its children.
# fmt: off
ALLOWED = frozenset({
    "svg", "g", "defs", "title", "desc", "symbol", "use", "a", "style", "marker", "pattern",
    "rect", "circle", "ellipse", "line", "polyline", "polygon", "path", "text", "tspan",
    "textPath", "linearGradient", "radialGradient", "stop", "clipPath", "mask", "filter",
    "feGaussianBlur", "feOffset", "feFlood", "feComposite", "feMerge", "feMergeNode", "feBlend",
    "feColorMatrix", "feDropShadow", "feMorphology", "feTurbulence", "feDisplacementMap",
    "feComponentTransfer", "feFuncR", "feFuncG", "feFuncB", "feFuncA", "feDiffuseLighting",
    "feSpecularLighting", "feDistantLight", "fePointLight", "feSpotLight", "feTile",
})
# fmt: on
SHAPES = frozenset(
    {"rect", "circle", "ellipse", "line", "polyline", "polygon", "path", "text", "use"}
)
TEXT_BEARING = frozenset({"text", "tspan", "textPath", "title", "desc", "style"})
_URL = re.compile(r"url\(\s*['\"]?\s*([^'\")\s]*)", re.IGNORECASE)
_FENCE = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)```", re.DOTALL)


class UnusableSvg(Exception):
    """The reply holds no SVG that can be drawn; the message tells the model why."""


def _split(name: str) -> tuple[str, str]:
    """(namespace, local name) of an ElementTree tag or attribute name."""
    if name.startswith("{"):
        ns, _, local = name[1:].partition("}")
        return ns, local
    return "", name


def _external(value: str) -> bool:
    """True if a value points at anything but a fragment of this document."""
    return any(not m.group(1).startswith("#") for m in _URL.finditer(value))


def parse_reply(reply: str) -> Any:
    """The first ``<svg>...</svg>`` in the reply (in a code fence or not), parsed.

    Raises:
        UnusableSvg: no SVG, cut off, not well-formed, or declaring a DOCTYPE or ENTITY.
    """
    import xml.etree.ElementTree as ET

    if len(reply) > MAX_REPLY_CHARS:
        raise UnusableSvg(f"it is {len(reply)} characters long; keep it to a few dozen shapes")
    if re.search(r"<!\s*(DOCTYPE|ENTITY)", reply, re.IGNORECASE):
        raise UnusableSvg("it declares a DOCTYPE or an ENTITY, which is not allowed")
    problem = "it contains no <svg> element"
    for text in [m.group(1) for m in _FENCE.finditer(reply)] + [reply]:
        start = re.search(r"<svg\b", text, re.IGNORECASE)
        if start is None:
            continue
        closes = list(re.finditer(r"</svg\s*>", text[start.start() :], re.IGNORECASE))
        if not closes:
            problem = "the SVG stops before its closing </svg> tag (cut off: draw fewer shapes)"
            continue
        for close in dict.fromkeys((closes[0], closes[-1])):
            try:
                return ET.fromstring(text[start.start() : start.start() + close.end()])
            except ET.ParseError as exc:
                problem = f"the SVG is not well-formed XML ({exc})"
    raise UnusableSvg(problem)


def _view_box(root: Any, width: int, height: int) -> str:
    """The root's viewBox; else one from its width and height; else the canvas."""
    parts = re.split(r"[\s,]+", root.get("viewBox", "").strip())
    try:
        x, y, w, h = (float(p) for p in parts)
        if w > 0 and h > 0 and all(map(math.isfinite, (x, y, w, h))):
            return " ".join(f"{v:g}" for v in (x, y, w, h))
    except ValueError:
        pass
    sizes = [re.fullmatch(r"\s*([\d.]+)\s*(px)?\s*", root.get(k, "")) for k in ("width", "height")]
    if all(sizes):
        try:
            w, h = (float(m.group(1)) for m in sizes if m)
            if w > 0 and h > 0:
                return f"0 0 {w:g} {h:g}"
        except ValueError:
            pass
    return f"0 0 {width} {height}"


def _clean(el: Any, removed: list[str]) -> Any:
    """A copy of ``el`` with only allowed elements and safe attributes; None to drop it."""
    import xml.etree.ElementTree as ET

    ns, tag = _split(el.tag) if isinstance(el.tag, str) else ("?", "?")
    if ns not in ("", SVG_NS) or tag not in ALLOWED:
        removed.append(f"<{tag}>")
        return None
    if tag == "style" and ("@import" in (el.text or "") or _external(el.text or "")):
        removed.append("<style> with external resources")
        return None
    out = ET.Element("g" if tag == "a" else tag)
    for key, value in el.attrib.items():
        ans, name = _split(key)
        if ans == XLINK_NS and name == "href":
            ans = ""
        if ans or name.lower().startswith("on"):
            removed.append(f"{name} attribute")
            continue
        if (name == "href" and not value.strip().startswith("#")) or _external(value):
            if tag in ("use", "textPath"):
                removed.append(f"<{tag}> of an external resource")
                return None
            removed.append(f"external {name}")
            continue
        if tag != "a" or name != "href":
            out.set(name, value)
    if tag in TEXT_BEARING:
        out.text = el.text
    for child in el:
        kept = _clean(child, removed)
        if kept is not None:
            if tag in TEXT_BEARING:
                kept.tail = child.tail
            out.append(kept)
    return out


def sanitize_svg(reply: str, width: int, height: int) -> tuple[str, list[str]]:
    """A safe SVG document of exactly ``width`` x ``height`` from a model's reply, and what
    was removed from it.

    Only drawing elements survive: no scripts, event handlers, foreign content, raster images,
    or references outside the document (hrefs and ``url()`` must start with ``#``).

    Raises:
        UnusableSvg: there is nothing safe and drawable in the reply.
    """
    import xml.etree.ElementTree as ET

    root = parse_reply(reply)
    if _split(root.tag)[1] != "svg":
        raise UnusableSvg(f"its root element is <{_split(root.tag)[1]}>, not <svg>")
    count = sum(1 for _ in root.iter())
    if count > MAX_ELEMENTS:
        raise UnusableSvg(f"it has {count} elements; a sketch needs at most a few dozen shapes")
    removed: list[str] = []
    clean = _clean(root, removed)
    if not any(_split(el.tag)[1] in SHAPES for el in clean.iter()):
        extra = f" once {', '.join(dict.fromkeys(removed))} were removed" if removed else ""
        raise UnusableSvg(f"it draws no shapes{extra}; use rect, circle, polygon and path")
    for attr in ("x", "y", "preserveAspectRatio"):
        clean.attrib.pop(attr, None)
    clean.set("viewBox", _view_box(root, width, height))
    clean.set("width", str(width))
    clean.set("height", str(height))
    clean.set("xmlns", SVG_NS)
    return ET.tostring(clean, encoding="unicode"), list(dict.fromkeys(removed))


def render_svg(svg: str, width: int, height: int) -> Any:
    """Render an SVG onto white, as an RGB PIL image of exactly ``width`` x ``height``."""
    from PIL import Image

    resvg = require("resvg_py", "image")
    try:
        png = resvg.svg_to_bytes(svg_string=svg, width=width, height=height, background="#ffffff")
    except ValueError as exc:
        raise UnusableSvg(f"the SVG renderer rejected it ({str(exc).splitlines()[0]})") from None
    with Image.open(io.BytesIO(bytes(png))) as decoded:
        img = decoded.convert("RGB")
    if img.size != (width, height):  # the viewBox's shape differs: fit it and pad with white
        img.thumbnail((width, height), Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (width, height), (255, 255, 255))
        canvas.paste(img, ((width - img.width) // 2, (height - img.height) // 2))
        img = canvas
    if img.getcolors(maxcolors=1) is not None:  # one colour: nothing recognisable drawn
        raise UnusableSvg(
            "it rendered as one flat colour; draw the subject in its own colours on a "
            "background of another colour"
        )
    return img


def draw_sketch(ctx: ToolContext, prompt: str, width: int, height: int, reason: str) -> Artifact:
    """Ask the language model for an SVG illustration of ``prompt`` and store it as a PNG.

    The PNG is labelled as what it is (``metadata["procedural"]``, ``["label"]``); the
    sanitized SVG source is stored beside it (``metadata["svg"]`` is its artifact id). The
    model gets one second chance, told what was wrong, when its first reply is unusable.

    Args:
        ctx: The running tool's context; ``ctx.llm`` must be set.
        prompt: What the picture should show.
        width: Width of the PNG in pixels.
        height: Height of the PNG in pixels.
        reason: Why a sketch was drawn instead of a real image (kept in the metadata).

    Raises:
        ToolError: no language model, a bad size, or no usable SVG after the second try.
    """
    from prompts import render

    if ctx.llm is None:
        raise ToolError(
            "no language model is configured, so no sketch can be drawn either; install "
            "text-to-image weights for generate_image, or the planner model (make setup)"
        )
    if not prompt.strip():
        raise ToolError("the sketch needs a prompt saying what the picture should show")
    if width < 1 or height < 1:
        raise ToolError(f"a sketch of {width}x{height} pixels is impossible; use positive sizes")
    check_output_size(width, height, ctx.settings)
    require("resvg_py", "image")
    size = {"width": width, "height": height}
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": render("sketch_system.j2", **size)},
        {"role": "user", "content": render("sketch_user.j2", prompt=prompt, problem="", **size)},
    ]
    ctx.report(0.05, "asking the language model to draw an SVG sketch")

    def draw(reply: str) -> tuple[str, list[str], Any]:
        svg, removed = sanitize_svg(reply, width, height)
        ctx.report(0.85, "rendering the sketch")
        return svg, removed, render_svg(svg, width, height)

    def retry(problem: str) -> str:
        return render("sketch_user.j2", prompt=prompt, problem=problem, **size)

    try:
        (svg, removed, img), attempt = ask_twice(
            ctx, messages, draw, retry, UnusableSvg, "the sketch"
        )
    except UnusableSvg as exc:
        raise ToolError(
            f"the language model could not draw a sketch of {prompt!r}: {exc}. "
            "Install text-to-image weights for real images (anymodal models list)"
        ) from None
    name = slug(prompt, "sketch")
    source = ctx.store.add_bytes(
        svg.encode("utf-8"),
        name=f"sketch-{name}.svg",
        mime="image/svg+xml",
        modality=Modality.FILE,
        metadata={"procedural": True, "kind": "svg-source", "prompt": prompt},
    )
    art = ctx.store.add_image(
        img,
        name=f"sketch-{name}.png",
        metadata={
            "procedural": True,
            "kind": "svg-sketch",
            "label": LABEL,
            "reason": reason,
            "prompt": prompt,
            "svg": source.id,
            "attempts": attempt,
            "removed": removed,
            "source_step": ctx.step_id,
        },
    )
    ctx.report(1.0, f"drew a {LABEL}")
    return art
