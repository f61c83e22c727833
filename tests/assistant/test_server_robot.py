"""The robot routes over real HTTP: OpenVLA's ``/act`` shape and ``/v1/step``."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from assistant import Assistant
from tests.assistant.server_harness import serving

SUBTASKS = ["pick up the red block", "place it in the bin"]


def numpy_json(array: np.ndarray) -> dict:
    """An array as json_numpy (which OpenVLA's client uses) writes it."""
    return {
        "__numpy__": base64.b64encode(array.tobytes()).decode(),
        "dtype": array.dtype.str,
        "shape": list(array.shape),
    }


def camera() -> np.ndarray:
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :32] = (200, 30, 30)
    return img


def test_act_in_openvlas_shape_keeps_the_episode_across_calls():
    with serving(Assistant()) as s, s.client() as http:
        body = {"image": numpy_json(camera()), "instruction": "tidy the table"}
        first = http.post("/act", json={**body, "unnorm_key": "bridge_orig", "plan": SUBTASKS})
        assert first.status_code == 200, first.text
        got = first.json()
        assert got["instruction"] == "pick up the red block" and not got["done"]
        assert got["step"] == 1 and got["plan"][0] == "pick up the red block"

        nxt = http.post("/act", json={**body, "outcome": "success"})  # the current episode
        assert nxt.json()["instruction"] == "place it in the bin"
        assert nxt.json()["episode"] == got["episode"] and nxt.json()["step"] == 2
        last = http.post(
            "/act",
            json={**body, "outcome": "success"},
            headers={"X-Anymodal-Episode": got["episode"]},
        )
        assert last.json()["done"] and last.json()["instruction"] == ""


def test_step_takes_lerobot_keys_and_links_the_stored_frames():
    with serving(Assistant()) as s, s.client() as http:
        obs = {
            "observation.images.top": camera().tolist(),
            "observation.state": [0.1, 0.2, 0.3],
            "task": "tidy the table",
            "plan": SUBTASKS,
        }
        got = http.post("/v1/step", json=obs)
        assert got.status_code == 200, got.text
        decision = got.json()
        assert decision["subtask"] == SUBTASKS[0] and decision["decided_by"] == "scripted"
        (frame,) = decision["artifacts"]
        image = http.get(frame["url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "words"),
    [
        ("/act", {"instruction": "tidy"}, 400, "bad_observation", "no 'image'"),
        ("/act", {"image": "/etc/passwd", "instruction": "tidy"}, 400, "bad_observation", "image"),
        (
            "/v1/step",
            {"observation.images.top": "/etc/hosts", "task": "x"},
            400,
            "bad_observation",
            "observation.images.top",
        ),
        ("/v1/step", [1, 2], 400, "invalid_request", "JSON object"),
        (
            "/act",
            {"image": numpy_json(camera()), "instruction": "x", "episode": "../x"},
            400,
            None,
            "session",
        ),
    ],
)
def test_bad_observations_are_400_naming_what_is_wrong(path, body, status, code, words):
    with serving(Assistant()) as s, s.client() as http:
        got = http.post(path, json=body)
        assert got.status_code == status, got.text
        error = got.json()["error"]
        assert code is None or error["code"] == code
        assert words in error["message"]


def test_no_decision_model_is_503_saying_how_to_configure_one_and_no_token_is_401():
    with serving(Assistant(llama={"model": "no-such-model"})) as s:
        with s.client() as http:
            body = {"image": numpy_json(camera()), "instruction": "tidy"}
            got = http.post("/act", json=body)
            assert (
                got.status_code == 503 and "anymodal models pull" in got.json()["error"]["message"]
            )
        with s.client(token=False) as anonymous:
            assert anonymous.post("/act", json=body).status_code == 401
