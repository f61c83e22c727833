"""Observations in the LeRobot, openpi and OpenVLA conventions, and the clear errors for the
ones that cannot be used."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from assistant.observation import openvla_request, parse_observation, state_summary


def half_red(h: int = 48, w: int = 64) -> np.ndarray:
    """HWC uint8: the left half red, the right half blue, so orientation errors show."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (255, 0, 0)
    img[:, w // 2 :] = (0, 0, 255)
    return img


def check_half_red(img: Image.Image, size: tuple[int, int] = (64, 48)) -> None:
    assert img.mode == "RGB" and img.size == size
    assert img.getpixel((2, 2)) == (255, 0, 0)
    assert img.getpixel((size[0] - 3, size[1] - 3)) == (0, 0, 255)


def test_lerobot_keys_with_chw_float_tensors_in_a_batch_of_one():
    torch = pytest.importorskip("torch")
    chw = torch.from_numpy(half_red().astype(np.float32) / 255.0).permute(2, 0, 1)
    obs = parse_observation(
        {
            "observation.images.top": chw.unsqueeze(0),  # (1, 3, H, W) as a policy gets it
            "observation.images.wrist": half_red(32, 64),
            "observation.state": torch.tensor([[0.25, -1.5, 3.0]]),
            "task": ["Pick up the red block"],
            "episode_index": torch.tensor([4]),  # bookkeeping: ignored
            "timestamp": torch.tensor([0.1]),
        }
    )
    assert set(obs.images) == {"top", "wrist"}
    check_half_red(obs.images["top"])
    check_half_red(obs.images["wrist"], (64, 32))
    assert obs.state == {"state": [0.25, -1.5, 3.0]}
    assert obs.instruction == "Pick up the red block"


def test_openpi_keys():
    obs = parse_observation(
        {
            "observation/image": half_red(),
            "observation/wrist_image": half_red(24, 64),
            "observation/exterior_image_1_left": half_red(),
            "observation/state": np.arange(8, dtype=np.float32),
            "observation/gripper_position": np.array([0.04]),
            "prompt": "put the  bowl on the plate",
        }
    )
    assert set(obs.images) == {"image", "wrist_image", "exterior_image_1_left"}
    check_half_red(obs.images["image"])
    assert obs.state["state"] == [float(i) for i in range(8)]
    assert obs.state["gripper_position"] == [pytest.approx(0.04)]
    assert obs.instruction == "put the bowl on the plate"  # whitespace tidied


def test_openvla_keys_and_request_with_a_json_numpy_image():
    img = half_red()
    payload = {
        "image": {
            "__numpy__": base64.b64encode(img.tobytes()).decode(),
            "dtype": "|u1",
            "shape": list(img.shape),
        },
        "instruction": "open the drawer",
        "unnorm_key": "bridge_orig",
    }
    obs = openvla_request(payload)
    check_half_red(obs.images["image"])
    assert obs.instruction == "open the drawer" and obs.unnorm_key == "bridge_orig"
    same = parse_observation({"image": img, "instruction": "open the drawer"})
    assert same.images["image"].tobytes() == obs.images["image"].tobytes()


def test_openvla_request_takes_nested_lists_and_base64_but_never_a_path(tmp_path):
    png = io.BytesIO()
    Image.fromarray(half_red()).save(png, format="PNG")
    b64 = base64.b64encode(png.getvalue()).decode()
    check_half_red(openvla_request({"image": b64, "instruction": "x"}).images["image"])
    url = f"data:image/png;base64,{b64}"
    check_half_red(openvla_request({"image": url, "instruction": "x"}).images["image"])
    check_half_red(
        openvla_request({"image": half_red().tolist(), "instruction": "x"}).images["image"]
    )
    path = tmp_path / "secret.png"
    path.write_bytes(png.getvalue())
    with pytest.raises(ValueError, match="image: a string here must be base64"):
        openvla_request({"image": str(path), "instruction": "x"})
    with pytest.raises(ValueError, match="no 'instruction'"):
        openvla_request({"image": b64})


def test_pil_images_paths_bytes_and_float_hwc(tmp_path):
    path = tmp_path / "cam.png"
    Image.fromarray(half_red()).save(path)
    obs = parse_observation(
        {
            "images": {"a": Image.fromarray(half_red()), "b": str(path), "c": path.read_bytes()},
            "image": half_red().astype(np.float64) / 255.0,
            "instruction": "x",
        }
    )
    for name in "abc":
        check_half_red(obs.images[name])
    check_half_red(obs.images["image"])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "observation.images.top",
            np.zeros(5, np.uint8),
            r"observation\.images\.top: .*shape \(5,\)",
        ),
        (
            "observation/image",
            np.zeros((2, 8, 8, 3), np.uint8),
            r"observation/image: .*\(2, 8, 8, 3\)",
        ),
        ("image", np.full((8, 8, 3), -2.0), r"image: pixel values run from -2 to -2.*normalised"),
        ("image", "not/a/file.png", r"image: no image file at not/a/file\.png"),
        ("image", b"not an image", r"image: the bytes are not an image"),
        ("image", {"a": 1}, r"image: cannot read a dict as an image"),
        ("observation.state", ["high", "low"], r"observation\.state: robot state must be numbers"),
        ("outcome", "maybe", r"outcome: 'maybe' is not one of running, success, failure"),
    ],
)
def test_bad_fields_are_named(key, value, message):
    raw = {"instruction": "pick up the block", key: value}
    with pytest.raises(ValueError, match=message):
        parse_observation(raw)


def test_no_image_and_no_instruction_lists_the_keys_it_saw():
    with pytest.raises(ValueError) as info:
        parse_observation({"observation.state": [1.0], "instuction": "typo"})
    text = str(info.value)
    assert "neither a camera image nor an instruction" in text
    assert "'instuction'" in text and "'observation.state'" in text
    with pytest.raises(ValueError, match="an observation is a dict"):
        parse_observation([1, 2])  # type: ignore[arg-type]


def test_outcome_reset_and_state_summary():
    obs = parse_observation({"instruction": "x", "outcome": True, "reset": 1})
    assert obs.outcome == "success" and obs.reset
    assert parse_observation({"instruction": "x", "outcome": "Failed"}).outcome == "failure"
    assert state_summary({"state": [0.123456, 2.0]}) == "[0.123, 2]"
    named = state_summary({"joints": [1.0] * 30, "gripper": [0.5]})
    assert named.startswith("joints: [1, 1") and "(30 values)" in named
    assert named.endswith("gripper: 0.5")
