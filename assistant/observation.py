"""What a robot's slow loop hands ``Assistant.step``: camera images, robot state and an
instruction, under the key names the common VLA stacks already use.

LeRobot  ``observation.images.<camera>`` / ``observation.image``, ``observation.state``,
         ``task``; images as CHW float tensors in [0, 1] (a batch of one is fine).
openpi   ``observation/image``, ``observation/wrist_image`` (any ``observation/*image*``),
         ``observation/state`` and other ``observation/<name>`` vectors, ``prompt``.
OpenVLA  ``image``, ``instruction``, ``unnorm_key``.

Besides: ``images`` (a dict of camera -> image, or a list), ``state`` (a vector, or a dict of
named values), ``outcome`` (how the policy did with the last subtask: ``running``,
``success``, ``failure`` or a bool) and ``reset`` (start a new episode). Images may be numpy
arrays (HWC uint8, HWC/CHW float in [0, 1]), torch tensors, PIL images, JSON-numpy dicts,
nested lists, encoded bytes, base64 strings, or (from Python only) file paths.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal["running", "success", "failure"]

INSTRUCTION_KEYS = ("instruction", "task", "prompt", "language_instruction")
"""Where the instruction may be, in order of preference (OpenVLA, LeRobot, openpi, RLDS)."""
STATE_KEYS = ("observation.state", "observation/state", "state")
IGNORED_KEYS = {
    # LeRobot dataset bookkeeping, often left in a sample handed over as is.
    "index",
    "episode_index",
    "frame_index",
    "task_index",
    "timestamp",
    "action",
    "next.done",
    "next.reward",
    "next.success",
}
_OUTCOMES: dict[str, Outcome] = {
    "running": "running",
    "in_progress": "running",
    "success": "success",
    "succeeded": "success",
    "done": "success",
    "failure": "failure",
    "failed": "failure",
}


class Observation(BaseModel):
    """One observation, whatever convention it came in: cameras by name, named state vectors."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    instruction: str = ""
    """What the robot should do overall; may be left out after an episode's first step."""
    images: dict[str, Image.Image] = Field(default_factory=dict)
    """Camera name -> RGB image ('image', 'wrist_image', 'top' ...)."""
    state: dict[str, list[float]] = Field(default_factory=dict)
    """Name -> values ('state' for a plain vector, 'joint_position', 'gripper' ...)."""
    outcome: Outcome | None = None
    """How the fast policy did with the last subtask it was given, when the caller knows."""
    unnorm_key: str | None = None
    """OpenVLA's dataset key for un-normalising actions; kept for the caller, unused here."""
    reset: bool = False
    """Start a new episode with this observation."""


def parse_observation(raw: Mapping[str, Any] | Observation, *, paths: bool = True) -> Observation:
    """Read an observation in any of the conventions above.

    Args:
        raw: the observation dict (or an ``Observation``, returned as is).
        paths: whether strings in image slots may name local files (False for data that
            arrives over a network: only inline images are read then).

    Raises:
        ValueError: naming the key, for an image of the wrong shape or type, a state that is
            not numbers, an unknown outcome, or an observation with neither an image nor an
            instruction.
    """
    if isinstance(raw, Observation):
        return raw
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"an observation is a dict (LeRobot, openpi or OpenVLA keys), not a "
            f"{type(raw).__name__}"
        )
    images: dict[str, Image.Image] = {}
    state: dict[str, list[float]] = {}
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        key = str(key)
        if key in IGNORED_KEYS or value is None:
            continue
        if key in INSTRUCTION_KEYS:
            fields.setdefault(key, _text(value, key))
        elif key == "outcome":
            fields["outcome"] = parse_outcome(value)
        elif key == "unnorm_key":
            fields["unnorm_key"] = _text(value, key)
        elif key == "reset":
            fields["reset"] = bool(value)
        elif key in ("images", "observation.images", "observation/images"):
            items = value.items() if isinstance(value, Mapping) else enumerate(_as_list(value, key))
            for cam, img in items:
                images[str(cam)] = to_image(img, f"{key}[{cam!r}]", paths=paths)
        elif key.startswith("observation.images."):
            images[key.removeprefix("observation.images.")] = to_image(value, key, paths=paths)
        elif _is_image_key(key):
            images[_last_segment(key)] = to_image(value, key, paths=paths)
        elif key in STATE_KEYS:
            state.update(_state(value, key, "state"))
        elif key.startswith(("observation.", "observation/")):
            state.update(_state(value, key, _last_segment(key)))
    instruction = next((fields[k] for k in INSTRUCTION_KEYS if fields.get(k)), "")
    if not images and not instruction:
        seen = ", ".join(repr(str(k)) for k in raw) or "none"
        raise ValueError(
            f"the observation has neither a camera image nor an instruction (keys: {seen}); "
            "give images as 'observation.images.<camera>' (LeRobot), 'observation/image' "
            "(openpi) or 'image' (OpenVLA), and the instruction as 'task', 'prompt' or "
            "'instruction'"
        )
    return Observation(
        instruction=instruction,
        images=images,
        state=state,
        outcome=fields.get("outcome"),
        unnorm_key=fields.get("unnorm_key"),
        reset=fields.get("reset", False),
    )


def openvla_request(payload: Mapping[str, Any]) -> Observation:
    """An OpenVLA ``/act`` request body (``{"image", "instruction", "unnorm_key"?}``) as an
    observation. The image arrives inline (JSON-numpy, nested lists, base64 or a data URL);
    file paths are refused, since the body comes over the network.

    Raises:
        ValueError: a field is missing or unreadable; the message names it.
    """
    if not isinstance(payload, Mapping):
        raise ValueError("an OpenVLA request is a JSON object with 'image' and 'instruction'")
    missing = [k for k in ("image", "instruction") if payload.get(k) in (None, "")]
    if missing:
        raise ValueError(
            f"the OpenVLA request has no {' and no '.join(repr(k) for k in missing)}; send "
            '{"image": <HxWx3 uint8 array>, "instruction": "...", "unnorm_key": "..."}'
        )
    keys = ("image", "instruction", "unnorm_key", "outcome", "reset")
    return parse_observation({k: payload[k] for k in keys if k in payload}, paths=False)


def to_image(value: Any, key: str, *, paths: bool = True) -> Image.Image:
    """One camera image as an RGB PIL image.

    Raises:
        ValueError: naming ``key``: an array of the wrong shape or range, undecodable bytes,
            a missing file, or a type that is not an image.
    """
    if isinstance(value, Image.Image):
        return value if value.mode == "RGB" else value.convert("RGB")
    if isinstance(value, bytes | bytearray | memoryview):
        return _decode(bytes(value), key)
    if isinstance(value, Mapping) and "__numpy__" in value:
        return _from_array(_json_numpy(value, key), key)
    if isinstance(value, str) and value.startswith("data:"):
        return _decode(_b64(value.partition(",")[2], key), key)
    if isinstance(value, str | Path):
        return _from_path(value, key, paths)
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().float().numpy()
    if isinstance(value, list | tuple):
        try:
            value = np.asarray(value)
        except ValueError:
            raise ValueError(f"{key}: a nested list that is not a rectangular array") from None
    if isinstance(value, np.ndarray):
        return _from_array(value, key)
    raise ValueError(
        f"{key}: cannot read a {type(value).__name__} as an image; give a numpy array (HWC "
        "uint8 or CHW float in [0, 1]), a PIL image, encoded bytes or a file path"
    )


def _from_path(value: str | Path, key: str, paths: bool) -> Image.Image:
    text = str(value)
    if not paths:
        # Over a network a string is base64 data; a path would read the server's own files.
        return _decode(_b64(text, key), key)
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValueError(f"{key}: no image file at {path}")
    return _decode(path.read_bytes(), key)


def _from_array(array: np.ndarray, key: str) -> Image.Image:
    a = array
    while a.ndim > 3 and a.shape[0] == 1:  # a batch of one (LeRobot hands over batches)
        a = a[0]
    if a.ndim == 3 and a.shape[-1] not in (1, 3, 4) and a.shape[0] in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)  # CHW -> HWC
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))) or 0 in a.shape:
        raise ValueError(
            f"{key}: expected an image as an HxWx3 (or HxW) uint8 array or a 3xHxW float array "
            f"in [0, 1]; got an array of shape {tuple(array.shape)}"
        )
    if a.dtype != np.uint8:
        a = _to_uint8(a, key)
    img = Image.fromarray(np.ascontiguousarray(a))
    return img if img.mode == "RGB" else img.convert("RGB")


def _to_uint8(a: np.ndarray, key: str) -> np.ndarray:
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{key}: image values of type {a.dtype} are not pixels")
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if np.issubdtype(a.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        return np.round(a * 255.0).astype(np.uint8)
    if lo >= 0.0 and hi <= 255.0:
        return np.round(a).astype(np.uint8)
    raise ValueError(
        f"{key}: pixel values run from {lo:.3g} to {hi:.3g}, which looks normalised; give "
        "uint8 (0-255) or floats in [0, 1]"
    )


def _decode(data: bytes, key: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.convert("RGB")
    except Exception as exc:  # PIL raises several kinds for bad data
        raise ValueError(f"{key}: the bytes are not an image PIL can read ({exc})") from None


def _b64(text: str, key: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"{key}: a string here must be base64 image data (or a data: URL)"
        ) from None


def _json_numpy(value: Mapping[str, Any], key: str) -> np.ndarray:
    """An array as json_numpy writes it: ``{"__numpy__": base64, "dtype", "shape"}``."""
    try:
        data = base64.b64decode(value["__numpy__"])
        return np.frombuffer(data, dtype=np.dtype(value["dtype"])).reshape(value["shape"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ValueError(f"{key}: an unreadable JSON-numpy array ({exc})") from None


def _state(value: Any, key: str, name: str) -> dict[str, list[float]]:
    if isinstance(value, Mapping):
        out: dict[str, list[float]] = {}
        for sub, v in value.items():
            out.update(_state(v, f"{key}[{sub!r}]", str(sub)))
        return out
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().float().numpy()
    try:
        flat = np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        raise ValueError(
            f"{key}: robot state must be numbers (a vector, or a dict of named values); "
            f"got {type(value).__name__}"
        ) from None
    return {name: [float(x) for x in flat]}


def parse_outcome(value: Any) -> Outcome:
    """How the policy did: 'running', 'success' or 'failure' (a few synonyms, or a bool)."""
    if isinstance(value, bool):
        return "success" if value else "failure"
    found = _OUTCOMES.get(str(value).strip().lower())
    if found is None:
        raise ValueError(f"outcome: {value!r} is not one of running, success, failure")
    return found


def _text(value: Any, key: str) -> str:
    if isinstance(value, list | tuple) and len(value) == 1:  # a batch of one
        value = value[0]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected text, got {type(value).__name__}")
    return " ".join(value.split())


def _as_list(value: Any, key: str) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError(f"{key}: expected a dict of camera name -> image, or a list of images")


def _last_segment(key: str) -> str:
    return key.replace("/", ".").rsplit(".", 1)[-1]


def _is_image_key(key: str) -> bool:
    last = _last_segment(key)
    return "image" in last or last in ("rgb", "camera")


def state_summary(state: Mapping[str, list[float]], limit: int = 24) -> str:
    """The state as one line a language model can read: ``joints: [0.12, -0.3]; gripper: 1``
    (a plain vector alone goes without its name)."""
    parts = []
    for name, values in state.items():
        shown = [f"{v:.3g}" for v in values[:limit]]
        more = f", ... ({len(values)} values)" if len(values) > limit else ""
        text = shown[0] if len(shown) == 1 else f"[{', '.join(shown)}{more}]"
        parts.append(text if list(state) == ["state"] else f"{name}: {text}")
    return "; ".join(parts)
