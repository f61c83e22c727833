"""The ROS 2 action server's logic with plain objects standing in for ROS messages and the
goal handle: no ROS installation needed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from assistant import Assistant
from assistant.ros2 import StepActionServer, image_array, joint_state

SUBTASKS = ["pick up the red block", "place it in the bin"]


class Feedback:
    def __init__(self) -> None:
        self.subtask, self.plan, self.step, self.episode = "", [], 0, ""


class Result:
    def __init__(self) -> None:
        self.done, self.reason, self.episode, self.steps = False, "", "", 0


class FakeGoal:
    """Records what the server does with a goal; cancel is requested after ``cancel_after``
    feedback messages."""

    def __init__(self, instruction: str, cancel_after: int | None = None):
        self.request = SimpleNamespace(instruction=instruction)
        self.feedback: list[Feedback] = []
        self.ended = ""
        self.cancel_after = cancel_after

    @property
    def is_cancel_requested(self) -> bool:
        return self.cancel_after is not None and len(self.feedback) >= self.cancel_after

    def publish_feedback(self, feedback: Feedback) -> None:
        self.feedback.append(feedback)

    def succeed(self) -> None:
        self.ended = "succeeded"

    def abort(self) -> None:
        self.ended = "aborted"

    def canceled(self) -> None:
        self.ended = "canceled"


def bgr8(h: int = 6, w: int = 5, pad: int = 3) -> SimpleNamespace:
    """A sensor_msgs/Image of pure red in bgr8, with padding at the end of each row."""
    row = np.zeros((w * 3 + pad,), np.uint8)
    row[: w * 3].reshape(w, 3)[:] = (0, 0, 255)  # B, G, R
    return SimpleNamespace(
        height=h, width=w, encoding="bgr8", step=w * 3 + pad, data=np.tile(row, h).tobytes()
    )


def test_messages_become_arrays_and_named_joints():
    pixels = image_array(bgr8())
    assert pixels.shape == (6, 5, 3) and tuple(pixels[0, 0]) == (255, 0, 0)
    mono = SimpleNamespace(height=2, width=3, encoding="mono8", step=3, data=bytes(range(6)))
    assert image_array(mono).tolist() == [[0, 1, 2], [3, 4, 5]]
    jpeg = SimpleNamespace(format="jpeg", data=b"\xff\xd8...")
    assert image_array(jpeg) == b"\xff\xd8..."
    with pytest.raises(ValueError, match="encoding '16UC1' is not supported"):
        image_array(SimpleNamespace(height=1, width=1, encoding="16UC1", step=2, data=b"\0\0"))
    joints = SimpleNamespace(name=["shoulder", "elbow"], position=[0.5, -1.0], velocity=[])
    assert joint_state(joints) == {"shoulder": [0.5], "elbow": [-1.0]}
    assert joint_state(SimpleNamespace(data=[1, 2])) == {"state": [1.0, 2.0]}


def make_server(assistant: Assistant, policy: list[str], **kw) -> StepActionServer:
    """A server whose sleep plays a fake policy: each new subtask succeeds one tick later."""
    server: StepActionServer

    def sleep(_seconds: float) -> None:
        server.on_outcome(SimpleNamespace(data="success" if policy else "running"))

    server = StepActionServer(
        assistant,
        feedback_type=Feedback,
        result_type=Result,
        rate_hz=2.0,
        send_subtask=policy.append,
        sleep=sleep,
        **kw,
    )
    server.on_image("front", bgr8())
    server.on_state(SimpleNamespace(name=["gripper"], position=[0.02]))
    return server


def test_a_goal_runs_the_episode_to_done_with_feedback_and_a_result():
    a = Assistant()
    policy: list[str] = []
    server = make_server(a, policy, plan=SUBTASKS)
    goal = FakeGoal("put the red block in the bin")
    result = server.execute(goal)
    assert goal.ended == "succeeded"
    assert (result.done, result.steps, result.reason) == (True, 3, "all 2 subtasks are done")
    assert policy == SUBTASKS  # each subtask sent to the policy once
    assert [f.subtask for f in goal.feedback] == [*SUBTASKS, ""]
    assert [f.step for f in goal.feedback] == [1, 2, 3]
    assert goal.feedback[0].plan == SUBTASKS and goal.feedback[0].episode == result.episode
    history = a.robot.history(result.episode)
    assert history[0].instruction == "put the red block in the bin"
    with Image.open(a.store(result.episode).get(history[0].frames[0])) as img:
        r, g, b = img.convert("RGB").getpixel((2, 2))
        assert r > 200 and g < 40 and b < 40  # bgr8 arrived as red
    # A second goal is a new episode.
    again = server.execute(FakeGoal("put the red block in the bin"))
    assert again.episode != result.episode and again.done


def test_a_cancelled_goal_stops_and_a_bad_camera_aborts():
    a = Assistant()
    server = make_server(a, [], plan=SUBTASKS)
    goal = FakeGoal("put the red block in the bin", cancel_after=1)
    result = server.execute(goal)
    assert goal.ended == "canceled" and not result.done and result.reason == "cancelled"
    assert result.steps == 1
    server.on_image(
        "depth", SimpleNamespace(height=1, width=1, encoding="32FC1", step=4, data=b"\0" * 4)
    )
    bad = FakeGoal("put the red block in the bin")
    result = server.execute(bad)
    assert bad.ended == "aborted" and not result.done
    assert "camera 'depth'" in result.reason and "'32FC1' is not supported" in result.reason


def test_a_goal_still_running_after_max_steps_is_aborted():
    a = Assistant()
    server = make_server(a, [], plan=SUBTASKS, max_steps=3)
    server.sleep = lambda _s: server.on_outcome(SimpleNamespace(data="running"))
    goal = FakeGoal("put the red block in the bin")
    result = server.execute(goal)
    assert goal.ended == "aborted" and result.reason == "not done after 3 steps"
    assert [f.subtask for f in goal.feedback] == [SUBTASKS[0]] * 3
