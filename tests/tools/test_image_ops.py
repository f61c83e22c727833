"""The model-free image tools on real files, and their errors on bad ones."""

from __future__ import annotations

import pytest
from PIL import Image

from tools import ToolError, ToolSettings


def _size(art):
    with Image.open(art.path) as img:
        return img.size


def test_resize_keeps_aspect_ratio_with_one_side(run, images):
    assert _size(run("resize_image", [images[0]], image="$a1", width=320).artifacts[0]) == (
        320,
        240,
    )
    assert _size(run("resize_image", [images[1]], image="$a1", height=50).artifacts[0]) == (75, 50)
    both = run("resize_image", [images[0]], image="$a1", width=100, height=100).artifacts[0]
    assert _size(both) == (100, 100) and both.mime == "image/png"


def test_resize_refuses_huge_output(run, images):
    with pytest.raises(ToolError, match="limit is 16384 per side"):
        run("resize_image", [images[0]], image="$a1", width=20000)


def test_crop_cuts_the_box_and_checks_bounds(run, images):
    art = run(
        "crop_image", [images[0]], image="$a1", left=160, top=120, width=160, height=120
    ).artifacts[0]
    with Image.open(art.path) as img:
        assert img.size == (160, 120)
        assert img.getpixel((10, 10)) == (255, 255, 255)  # the white square in the fixture
    with pytest.raises(ToolError, match="falls outside a.png, which is 640x480"):
        run("crop_image", [images[0]], image="$a1", left=600, top=0, width=100, height=10)


@pytest.mark.parametrize(
    ("layout", "size"),
    [("horizontal", (940, 480)), ("vertical", (640, 680)), ("grid", (940, 480 + 200))],
)
def test_stitch_layouts(run, images, layout, size):
    files = [images[0], images[1]] if layout != "grid" else [images[0], images[1], images[1]]
    refs = [f"$a{i}" for i in range(1, len(files) + 1)]
    art = run("stitch_images", files, images=refs, layout=layout).artifacts[0]
    assert _size(art) == size


def test_convert_writes_a_decodable_file_in_the_new_format(run, images):
    art = run("convert_image", [images[0]], image="$a1", format="webp").artifacts[0]
    assert art.mime == "image/webp" and art.name == "a.webp"
    with Image.open(art.path) as img:
        assert img.format == "WEBP" and img.size == (640, 480)


def test_real_photo(run, media):
    art = run("resize_image", [media / "13181.jpg"], image="$a1", width=250).artifacts[0]
    assert _size(art) == (250, 192)
    assert art.mime == "image/jpeg"


def test_truncated_corrupt_and_empty_images(run, images, tmp_path):
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(images[1].read_bytes()[:400])
    with pytest.raises(ToolError, match="truncated or corrupt"):
        run("resize_image", [cut], image="$a1", width=10)
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    with pytest.raises(ToolError, match=r"fake.png (is not an image|could not be decoded)"):
        run("resize_image", [fake], image="$a1", width=10)


def test_pixel_limit_stops_decompression_bombs(run, tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (5000, 5000)).save(bomb)
    small_limit = ToolSettings(max_image_pixels=10_000_000)
    with pytest.raises(ToolError, match="5000x5000 .25 megapixels.; the limit is 10"):
        run("resize_image", [bomb], settings=small_limit, image="$a1", width=10)
