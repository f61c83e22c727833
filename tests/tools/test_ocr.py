"""read_text on real photos with rapidocr's bundled PP-OCR models, offline."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from tools import ToolError

pytest.importorskip("rapidocr")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """OCR must never reach the network (rapidocr downloads models it cannot find)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("read_text tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _words(result) -> str:
    return result.data["text"].upper()


def test_reads_the_police_car(run, media):
    result = run("read_text", [media / "13426.jpg"], image="$a1")
    assert "POLIZEI" in _words(result)
    text, drawn = result.artifacts
    assert text.read_text() == result.data["text"] and text.mime == "text/plain"
    with Image.open(drawn.path) as img:
        assert img.size == (500, 375) and img.format == "PNG"
    for line in result.data["lines"]:
        assert line["confidence"] >= 0.5
        x0, y0, x1, y1 = line["box"]
        assert 0 <= x0 < x1 <= 500 and 0 <= y0 < y1 <= 375
        assert len(line["polygon"]) == 4
    assert result.summary.startswith("read ") and "POLIZEI" in result.summary


def test_reads_the_atm_sign_in_reading_order(run, media):
    result = run("read_text", [media / "14095.jpg"], image="$a1")
    assert "CHASE" in _words(result)
    tops = [line["box"][1] for line in result.data["lines"]]
    assert tops[0] == min(tops)  # the first line is the topmost
    rows: dict[int, list[str]] = {}
    for line in result.data["lines"]:
        rows.setdefault(line["row"], []).append(line["text"])
    assert result.data["text"].split("\n") == [" ".join(texts) for texts in rows.values()]


def test_min_confidence_drops_uncertain_lines(run, media):
    everything = run("read_text", [media / "14095.jpg"], image="$a1", min_confidence=0)
    sure = run("read_text", [media / "14095.jpg"], image="$a1", min_confidence=0.95)
    assert len(sure.data["lines"]) < len(everything.data["lines"])
    assert all(line["confidence"] >= 0.95 for line in sure.data["lines"])


def test_blank_image_has_no_text(run, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (320, 200), "white").save(blank)
    result = run("read_text", [blank], image="$a1")
    assert result.summary.startswith("no text found in blank.png")
    assert result.data["lines"] == [] and result.data["text"] == ""


def test_reads_latin_script_beyond_english(run, tmp_path):
    font_file = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not font_file.is_file():
        pytest.skip("DejaVu Sans is not installed")
    img = Image.new("RGBA", (400, 200), (0, 0, 0, 0))  # transparent: flattened onto white
    draw, font = ImageDraw.Draw(img), ImageFont.truetype(str(font_file), 40)
    draw.text((20, 30), "Größe Straße", fill="black", font=font)
    draw.text((20, 120), "Übergröße 42", fill="black", font=font)
    path = tmp_path / "german.png"
    img.save(path)
    result = run("read_text", [path], image="$a1", language="German")
    assert result.data["text"] == "Größe Straße\nÜbergröße 42"
    assert result.data["language"] == "de"


@pytest.mark.parametrize("language", ["korean", "ar", "klingon"])
def test_unsupported_language_is_refused_with_what_works(run, images, language):
    with pytest.raises(ToolError, match=f"cannot read '{language}'.*Chinese.*English.*German"):
        run("read_text", [images[0]], image="$a1", language=language)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("zh", "ch"),
        ("English", "en"),
        ("german", "de"),
        ("DE", "de"),
        ("zh-TW", "chinese_cht"),
        ("auto", None),
    ],
)
def test_language_names_and_codes(name, code):
    from tools.ocr import check_language

    assert check_language(name) == code


def test_reading_order_rows_then_columns():
    from tools.ocr import plain_text, reading_order

    def line(text: str, box: list[int]) -> dict:
        return {"text": text, "box": box}

    lines = [
        line("right", [200, 12, 300, 40]),
        line("below", [0, 60, 100, 90]),
        line("left", [0, 10, 100, 42]),
    ]
    ordered = reading_order(lines)
    assert [(ln["text"], ln["row"]) for ln in ordered] == [("left", 0), ("right", 0), ("below", 1)]
    assert plain_text(ordered) == "left right\nbelow"


def test_engine_is_built_once_through_the_model_manager(tmp_path, media):
    from tools import ArtifactStore, ToolContext
    from tools.models import ModelManager
    from tools.ocr import MODEL_KEY, read_text

    ctx = ToolContext(
        store=ArtifactStore(tmp_path / "store"),
        workspace=tmp_path / "w",
        models=ModelManager(tmp_path / "cache"),
    )
    ctx.refs["a1"] = [ctx.store.add_file(media / "13426.jpg")]
    first = read_text(ctx, image="$a1")
    assert ctx.models.loaded() == [MODEL_KEY]
    engine = ctx.models.load(MODEL_KEY, lambda: None)  # a hit: the loader is not called
    assert callable(engine)
    assert read_text(ctx, image="$a1").data == first.data
    assert ctx.models.load(MODEL_KEY, lambda: None) is engine
    assert ctx.models.used_bytes > 20_000_000  # the three bundled ONNX files


def test_exif_orientation_is_honoured(run, media, tmp_path):
    with Image.open(media / "13426.jpg") as img:
        turned = img.rotate(90, expand=True)  # stored sideways ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... and tagged "rotate 90 degrees clockwise to view"
    path = tmp_path / "sideways.jpg"
    turned.save(path, exif=exif, quality=95)
    result = run("read_text", [path], image="$a1")
    assert "POLIZEI" in _words(result)
    with Image.open(result.artifacts[1].path) as drawn:
        assert drawn.size == (500, 375)  # the boxes are drawn on the upright image


def test_missing_rapidocr_names_the_extra(run, images, monkeypatch):
    from tools import ocr

    monkeypatch.setattr(ocr, "_cache", {})
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # import rapidocr now fails
    with pytest.raises(ToolError, match=r"pip install 'anymodal\[ocr\]'"):
        run("read_text", [images[0]], image="$a1")
