"""``Assistant.step`` with the embedded default (Qwen2.5-Coder-1.5B on llama.cpp, offline pack)
on a real photo: the model's answer comes back as a usable decision, and the episode's history
reaches it on the next call. A few seconds a call on two cores."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from assistant import Assistant
from assistant.decision import DECISION_SCHEMA

pytestmark = pytest.mark.model


def test_step_decides_from_a_real_photo_and_keeps_the_episode(planner, media):
    a = Assistant(planner=planner)
    photo = np.asarray(Image.open(media / "11135.jpg").convert("RGB"))  # a table full of dishes
    task = "clear the table: put every dish in the sink"
    first = a.step(
        {"observation.images.front": photo, "observation.state": [0.0, 0.3, 0.1], "task": task}
    )
    assert first.decided_by == "llama.cpp" and first.step == 1
    assert not first.done and first.subtask  # nothing is done at the start
    limit = DECISION_SCHEMA["properties"]["subtask"]["maxLength"]
    assert len(first.subtask) <= limit and first.subtask == first.subtask.strip()
    assert first.subtask[0].islower() and not first.subtask.endswith(".")
    assert first.plan[0] == first.subtask
    with Image.open(first.artifacts[0].path) as img:
        assert img.size == (photo.shape[1], photo.shape[0])
    assert first.timing["decide"] > 0

    second = a.step(
        {
            "observation.images.front": photo,
            "observation.state": [0.2, 0.1, 0.0],
            "outcome": "success",
        }
    )
    assert second.episode == first.episode and second.step == 2
    assert second.done or second.subtask  # a usable decision either way
    history = a.robot.history()
    assert [r.reported for r in history] == [None, "success"]
    assert history[0].subtask == first.subtask and history[0].instruction == task
