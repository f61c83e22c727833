"""The model-free drawing tools on real files: sizes and pixels, and clear errors on bad input.

The ``images`` fixture's a.png is 640x480 red (200, 30, 30) with a white square covering
x 160..320, y 120..240 (inclusive); b.jpg is a 300x200 blue JPEG.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tools import ToolError, ToolSettings

RED = (200, 30, 30)


def _pixels(art) -> np.ndarray:
    with Image.open(art.path) as img:
        return np.asarray(img.convert("RGB")).astype(int)


def _white_box(px: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1, inclusive) of the pure white pixels."""
    ys, xs = np.nonzero((px == 255).all(axis=2))
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@pytest.fixture
def noise(tmp_path):
    """A 200x100 PNG of seeded colour noise: any blur changes nearly every pixel."""
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, (100, 200, 3), dtype=np.uint8)).save(path)
    return path


def _mask(tmp_path, size, box, name="mask.png"):
    """A black mask with a white rectangle ``box`` (inclusive corners)."""
    img = Image.new("L", size, 0)
    if box:
        img.paste(255, (box[0], box[1], box[2] + 1, box[3] + 1))
    img.save(tmp_path / name)
    return tmp_path / name


# --- draw_boxes --------------------------------------------------------------------------------


def test_draw_boxes_draws_outlines_in_the_given_colour(run, images):
    dets = [{"label": "square", "box": [100, 300, 400, 450], "score": 0.9}]
    result = run(
        "draw_boxes", [images[0]], image="$a1", detections=json.dumps(dets), color="#00ff00"
    )
    px = _pixels(result.artifacts[0])
    assert px.shape == (480, 640, 3)
    assert tuple(px[375, 100]) == (0, 255, 0)  # left edge of the box
    assert tuple(px[450, 250]) == (0, 255, 0)  # bottom edge
    assert tuple(px[375, 250]) == RED  # inside the box: untouched
    assert tuple(px[10, 10]) == RED
    assert result.data["boxes"] == 1 and result.data["labels"] == ["square"]
    assert "drew 1 box(es)" in result.summary


def test_draw_boxes_reads_a_text_artifact_and_clips_to_the_image(run, images, tmp_path):
    dets = tmp_path / "dets.json"
    dets.write_text(
        json.dumps(
            {
                "detections": [
                    {"label": "big", "box": [-50, -50, 2000, 2000]},
                    {"label": "gone", "box": [700, 10, 800, 50], "score": 0.5},
                ]
            }
        )
    )
    result = run(
        "draw_boxes", [images[0], dets], image="$a1", detections="$a2", line_width=4, color="blue"
    )
    px = _pixels(result.artifacts[0])
    blue = (0, 0, 255)
    # the oversize box is clipped to the frame, so its outline runs along every border
    assert tuple(px[240, 0]) == blue and tuple(px[240, 639]) == blue
    assert tuple(px[0, 320]) == blue and tuple(px[479, 320]) == blue
    assert tuple(px[240, 100]) == RED
    assert result.data["boxes"] == 1 and result.data["outside"] == 1
    assert "1 box(es) lay outside the 640x480 image" in result.summary


def test_draw_boxes_scales_boxes_found_on_another_size(run, images):
    # detect_objects ran on a 320x240 copy; the boxes are drawn on the 640x480 original
    found = {
        "detections": [{"label": "sq", "box": [80, 60, 160, 120]}],
        "width": 320,
        "height": 240,
    }
    result = run(
        "draw_boxes", [images[0]], image="$a1", detections=found, color="lime", line_width=2
    )
    px = _pixels(result.artifacts[0])
    assert tuple(px[180, 160]) == (0, 255, 0) and tuple(px[240, 200]) == (0, 255, 0)
    assert "boxes scaled from 320x240 to 640x480" in result.summary


def test_draw_boxes_gives_each_label_its_own_colour(run, images):
    dets = [
        {"label": "a", "box": [10, 10, 100, 100]},
        {"label": "b", "box": [400, 300, 600, 450]},
    ]
    px = _pixels(run("draw_boxes", [images[0]], image="$a1", detections=dets).artifacts[0])
    assert tuple(px[50, 10]) != tuple(px[375, 400])
    assert tuple(px[50, 10]) != RED and tuple(px[375, 400]) != RED


@pytest.mark.parametrize(
    ("detections", "message"),
    [
        ('[{"label": "x", "box": [50, 10, 20, 40]}]', "needs x1 >= x0 and y1 >= y0"),
        ('[{"label": "x", "box": [1, 2, 3]}]', "a box is four numbers"),
        ('[{"label": "x"}]', "a box is four numbers"),
        ('[{"label": "x", "box": ["a", 1, 2, 3]}]', "a box is four numbers"),
        ("not json at all", "detections is not JSON"),
        ('{"answer": 3}', "must be a list"),
        ("   ", "detections is empty"),
    ],
)
def test_draw_boxes_refuses_malformed_detections(run, images, detections, message):
    with pytest.raises(ToolError, match=message):
        run("draw_boxes", [images[0]], image="$a1", detections=detections)


def test_draw_boxes_refuses_an_unknown_colour(run, images):
    with pytest.raises(ToolError, match="unknown colour 'blurple'"):
        run("draw_boxes", [images[0]], image="$a1", detections="[]", color="blurple")


# --- blur_outside_mask -------------------------------------------------------------------------


def test_blur_changes_pixels_outside_the_mask_only(run, noise, tmp_path):
    mask = _mask(tmp_path, (200, 100), (0, 0, 99, 99))  # keep the left half
    result = run("blur_outside_mask", [noise, mask], image="$a1", mask="$a2", radius=5)
    before, after = _pixels_of(noise), _pixels(result.artifacts[0])
    assert after.shape == before.shape
    assert (after[:, :100] == before[:, :100]).all()
    changed = (after[:, 110:] != before[:, 110:]).any(axis=2).mean()
    assert changed > 0.95
    assert after[:, 110:].std() < before[:, 110:].std() / 2  # blurred: much smoother
    assert result.data["kept_fraction"] == 0.5


def _pixels_of(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).astype(int)


def test_grayscale_outside_the_mask_keeps_colour_inside(run, images, tmp_path):
    mask = _mask(tmp_path, (640, 480), (0, 0, 99, 479))  # keep a left strip
    result = run(
        "blur_outside_mask", [images[0], mask], image="$a1", mask="$a2", effect="grayscale"
    )
    px = _pixels(result.artifacts[0])
    outside = px[:, 100:]
    assert (outside[..., 0] == outside[..., 1]).all() and (outside[..., 1] == outside[..., 2]).all()
    assert tuple(px[240, 50]) == RED  # colour kept inside the mask
    assert tuple(px[180, 240]) == (255, 255, 255)  # white stays white when grey


def test_a_mask_of_another_size_is_resized_with_a_note(run, images, tmp_path):
    mask = _mask(tmp_path, (64, 48), (0, 0, 31, 47))  # the left half, at a tenth of the size
    result = run(
        "blur_outside_mask", [images[0], mask], image="$a1", mask="$a2", effect="grayscale"
    )
    assert "was resized to the image (640x480)" in result.summary
    assert result.data["notes"]
    px = _pixels(result.artifacts[0])
    assert tuple(px[10, 10]) == RED and len(set(px[10, 630])) == 1


def test_an_all_black_mask_is_refused(run, images, tmp_path):
    mask = _mask(tmp_path, (640, 480), None)
    with pytest.raises(ToolError, match="is all black, so nothing would be kept"):
        run("blur_outside_mask", [images[0], mask], image="$a1", mask="$a2")


def test_blur_radius_is_bounded(run, images, tmp_path):
    mask = _mask(tmp_path, (640, 480), (0, 0, 10, 10))
    with pytest.raises(ToolError, match="radius"):
        run("blur_outside_mask", [images[0], mask], image="$a1", mask="$a2", radius=5000)


# --- rotate_image ------------------------------------------------------------------------------


def test_rotate_90_clockwise_swaps_sides_and_moves_the_square(run, images):
    result = run("rotate_image", [images[0]], image="$a1", degrees=90)
    px = _pixels(result.artifacts[0])
    assert px.shape == (640, 480, 3)
    # (x, y) goes to (h - 1 - y, x): the square x 160..320, y 120..240 lands at x 239..359.
    assert _white_box(px) == (239, 160, 359, 320)
    assert result.data["lossless"] is True


@pytest.mark.parametrize(
    ("degrees", "box"), [(180, (319, 239, 479, 359)), (-90, (120, 319, 240, 479))]
)
def test_rotate_right_angles_are_exact(run, images, degrees, box):
    px = _pixels(run("rotate_image", [images[0]], image="$a1", degrees=degrees).artifacts[0])
    assert _white_box(px) == box
    assert set(map(tuple, px.reshape(-1, 3))) == {RED, (255, 255, 255)}  # no resampling


@pytest.mark.parametrize(
    ("flip", "box"), [("horizontal", (319, 120, 479, 240)), ("vertical", (160, 239, 320, 359))]
)
def test_flip_mirrors(run, images, flip, box):
    result = run("rotate_image", [images[0]], image="$a1", flip=flip)
    px = _pixels(result.artifacts[0])
    assert px.shape == (480, 640, 3) and _white_box(px) == box


def test_rotate_45_expands_the_canvas_and_fills_the_corners(run, images):
    result = run("rotate_image", [images[0]], image="$a1", degrees=45, background="black")
    px = _pixels(result.artifacts[0])
    side = round((640 + 480) * 2**-0.5)
    assert abs(px.shape[1] - side) <= 1 and abs(px.shape[0] - side) <= 1
    assert tuple(px[2, 2]) == (0, 0, 0)
    assert tuple(px[px.shape[0] // 2, px.shape[1] // 2]) != (0, 0, 0)
    kept = run("rotate_image", [images[0]], image="$a1", degrees=45, expand=False)
    assert _pixels(kept.artifacts[0]).shape == (480, 640, 3)


def test_rotate_transparent_corners_write_a_png(run, images):
    art = run("rotate_image", [images[1]], image="$a1", degrees=30, background="transparent")
    with Image.open(art.artifacts[0].path) as img:
        assert img.format == "PNG" and img.mode == "RGBA"
        assert img.getpixel((0, 0))[3] == 0


def test_rotate_refuses_doing_nothing_and_unknown_colours(run, images):
    with pytest.raises(ToolError, match="nothing to do"):
        run("rotate_image", [images[0]], image="$a1", degrees=360)
    with pytest.raises(ToolError, match="unknown background colour"):
        run("rotate_image", [images[0]], image="$a1", degrees=10, background="nope")
    with pytest.raises(ToolError, match="degrees"):
        run("rotate_image", [images[0]], image="$a1", degrees=1000)


def test_rotate_refuses_a_huge_result(run, images):
    small = ToolSettings(max_image_side=700)
    with pytest.raises(ToolError, match="limit is 700 per side"):
        run("rotate_image", [images[0]], settings=small, image="$a1", degrees=45)


def test_rotate_real_photo(run, media):
    art = run("rotate_image", [media / "13181.jpg"], image="$a1", degrees=270).artifacts[0]
    with Image.open(media / "13181.jpg") as src, Image.open(art.path) as out:
        assert out.size == (src.height, src.width) and out.format == "JPEG"


# --- add_text_to_image -------------------------------------------------------------------------


def _changed_rows(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.nonzero((before != after).any(axis=(1, 2)))[0]


@pytest.mark.parametrize("position", ["top", "bottom", "center"])
def test_text_changes_pixels_in_the_asked_band(run, images, position):
    result = run("add_text_to_image", [images[0]], image="$a1", text="Hello", position=position)
    before, after = _pixels_of(images[0]), _pixels(result.artifacts[0])
    assert after.shape == before.shape
    rows = _changed_rows(before, after)
    assert len(rows) > 10
    if position == "top":
        assert rows.max() < 160
    elif position == "bottom":
        assert rows.min() > 320
    else:
        assert rows.min() > 160 and rows.max() < 320
    x0, y0, x1, y1 = result.data["box"]
    assert rows.min() >= y0 - 2 and rows.max() <= y1 + 2


def test_text_in_a_corner_stays_in_that_corner(run, images):
    result = run("add_text_to_image", [images[0]], image="$a1", text="(c) me", position="top-right")
    before, after = _pixels_of(images[0]), _pixels(result.artifacts[0])
    cols = np.nonzero((before != after).any(axis=(0, 2)))[0]
    assert cols.min() > 320 and _changed_rows(before, after).max() < 160


def test_text_is_readable_outlined_or_on_a_band(run, images):
    outlined = _pixels(
        run("add_text_to_image", [images[0]], image="$a1", text="Hi", color="white").artifacts[0]
    )
    colours = set(map(tuple, outlined[380:].reshape(-1, 3)))
    assert (255, 255, 255) in colours and (0, 0, 0) in colours  # white letters, black stroke
    band = run("add_text_to_image", [images[0]], image="$a1", text="Hi", band=True)
    px = _pixels(band.artifacts[0])
    y = band.data["box"][1] - 2
    assert px[y, 5].sum() < sum(RED)  # darkened band across the width, behind the text
    dark = run("add_text_to_image", [images[0]], image="$a1", text="Hi", band=True, color="black")
    px = _pixels(dark.artifacts[0])
    assert px[dark.data["box"][1] - 2, 5].min() > min(RED)  # a light band behind dark text


def test_long_text_wraps_to_the_image_width(run, images):
    text = "the quick brown fox jumps over the lazy dog " * 6
    result = run("add_text_to_image", [images[1]], image="$a1", text=text, size=20)
    assert result.data["lines"] > 2
    x0, _, x1, _ = result.data["box"]
    assert x0 >= 0 and x1 <= 300
    huge = run("add_text_to_image", [images[1]], image="$a1", text=text, size=200)
    assert huge.data["size"] < 200 and "shrunk from 200 px" in huge.summary


def test_text_refuses_empty_text_and_unknown_colour(run, images):
    with pytest.raises(ToolError, match="the text to write is empty"):
        run("add_text_to_image", [images[0]], image="$a1", text="  \n ")
    with pytest.raises(ToolError, match="unknown text colour"):
        run("add_text_to_image", [images[0]], image="$a1", text="x", color="notacolour")
    with pytest.raises(ToolError, match="does not fit"):
        run("add_text_to_image", [images[1]], image="$a1", text="word " * 399)


def test_text_from_a_text_artifact(run, images, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("From a file")
    result = run("add_text_to_image", [images[0], note], image="$a1", text="$a2")
    assert result.artifacts[0].metadata["text"] == "From a file"


# --- contact_sheet -----------------------------------------------------------------------------


@pytest.mark.parametrize(("columns", "grid"), [(None, (2, 2)), (3, (3, 1)), (1, (1, 3))])
def test_contact_sheet_size_follows_columns_and_rows(run, images, columns, grid):
    files = [images[0], images[1], images[0]]
    args = {"columns": columns} if columns else {}
    result = run(
        "contact_sheet", files, images=["$a1", "$a2", "$a3"], cell=100, labels=False, **args
    )
    cols, rows = grid
    gap = 4
    assert (result.data["columns"], result.data["rows"]) == grid
    px = _pixels(result.artifacts[0])
    assert px.shape[:2] == (rows * 100 + (rows + 1) * gap, cols * 100 + (cols + 1) * gap)


def test_contact_sheet_thumbnails_keep_their_aspect_ratio_and_get_labels(run, images):
    result = run("contact_sheet", list(images), images=["$a1", "$a2"], cell=100, columns=2)
    px = _pixels(result.artifacts[0])
    cell_y0 = 4
    # a.png (640x480) becomes 100x75, centred vertically: rows 4+12 .. 4+12+74 hold it
    first = px[cell_y0 : cell_y0 + 100, 4:104]
    red_rows = np.nonzero((np.abs(first - RED) < 40).all(axis=2).any(axis=1))[0]
    assert red_rows.min() == 12 or red_rows.min() == 13
    assert 73 <= red_rows.max() - red_rows.min() + 1 <= 76
    labels = px[cell_y0 + 100 :, :]
    assert (labels < 128).all(axis=2).any()  # dark label text under the thumbnails
    assert px.shape[0] > 100 + 2 * 4


def test_contact_sheet_checks_counts_and_size(run, images):
    with pytest.raises(ToolError, match="at least 2"):
        run("contact_sheet", [images[0]], images=["$a1"])
    with pytest.raises(ToolError, match="limit is 500 per side"):
        run(
            "contact_sheet",
            list(images),
            settings=ToolSettings(max_image_side=500),
            images=["$a1", "$a2"],
            columns=2,
        )
