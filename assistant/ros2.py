"""A ROS 2 action server for the slow loop: a goal carries the task's instruction, the latest
camera and joint-state messages make each observation, ``Assistant.step`` decides, and every
decision goes out as action feedback (and as the VLA policy's instruction) until the task is
done, which is the action's result.

``StepActionServer`` holds the logic and touches no ROS module: messages are read by their
fields (``sensor_msgs/Image``, ``CompressedImage``, ``JointState``, ``std_msgs/String``), so
it is tested with plain objects. ``serve`` wires it to rclpy. Any action type whose goal has
an ``instruction`` string works; feedback and result fields are filled where they exist, e.g.::

    # Instruct.action
    string instruction
    ---
    bool done
    string reason
    string episode
    int32 steps
    ---
    string subtask
    string[] plan
    string reason
    string episode
    int32 step
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from assistant.observation import Outcome, parse_outcome

if TYPE_CHECKING:
    from assistant.api import Assistant

log = logging.getLogger(__name__)

_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc1": 1, "8uc3": 3}


class GoalHandle(Protocol):
    """What the server needs of rclpy's ``ServerGoalHandle``."""

    request: Any

    @property
    def is_cancel_requested(self) -> bool: ...

    def publish_feedback(self, feedback: Any) -> None: ...

    def succeed(self) -> None: ...

    def abort(self) -> None: ...

    def canceled(self) -> None: ...


def image_array(msg: Any) -> np.ndarray | bytes:
    """A camera message as an HxWxC RGB array (``sensor_msgs/Image``) or its encoded bytes
    (``sensor_msgs/CompressedImage``).

    Raises:
        ValueError: an encoding other than 8-bit RGB/BGR(A)/mono, or a size that does not
            match the data.
    """
    if not hasattr(msg, "encoding"):
        return bytes(msg.data)  # CompressedImage: JPEG or PNG
    enc = str(msg.encoding).lower()
    channels = _CHANNELS.get(enc)
    if channels is None:
        raise ValueError(
            f"image encoding {msg.encoding!r} is not supported; publish rgb8, bgr8, rgba8, "
            "bgra8 or mono8 (depth images are not camera images for the planner)"
        )
    data = np.frombuffer(bytes(msg.data), np.uint8)
    h, w, step = int(msg.height), int(msg.width), int(msg.step or msg.width * channels)
    if data.size < h * step or step < w * channels:
        raise ValueError(f"image of {w}x{h} {enc} (step {step}) has only {data.size} bytes")
    pixels = data[: h * step].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    if enc.startswith("bgr"):
        pixels = pixels[..., [2, 1, 0, 3][:channels]]
    return pixels[..., 0] if channels == 1 else pixels


def joint_state(msg: Any) -> dict[str, list[float]]:
    """Joint positions by joint name (``sensor_msgs/JointState``), or a plain vector
    (``std_msgs/Float64MultiArray``'s ``data``) as 'state'."""
    if hasattr(msg, "position"):
        names = list(getattr(msg, "name", []) or [])
        values = [float(v) for v in msg.position]
        if len(names) == len(values):
            return {n: [v] for n, v in zip(names, values, strict=True)}
        return {"position": values}
    return {"state": [float(v) for v in msg.data]}


class StepActionServer:
    """Runs goals: one episode each, one ``step`` per tick at ``rate_hz``.

    Args:
        assistant: the assistant whose ``step`` decides.
        feedback_type / result_type: the action's ``Feedback`` and ``Result`` classes.
        rate_hz: decisions per second (the slow loop: 0.1 to 2).
        max_steps: a goal still running after this many decisions is aborted.
        send_subtask: called with each new subtask (publish it to the VLA policy).
        plan: a script for every goal instead of the model (see ``Assistant.step``).
        instruction_field: the goal's field holding the instruction.
        sleep / clock: time, replaceable in tests.
    """

    def __init__(
        self,
        assistant: Assistant,
        *,
        feedback_type: Callable[[], Any],
        result_type: Callable[[], Any],
        rate_hz: float = 1.0,
        max_steps: int = 500,
        send_subtask: Callable[[str], None] | None = None,
        plan: Any = None,
        instruction_field: str = "instruction",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be above 0, not {rate_hz}")
        self.assistant = assistant
        self.feedback_type = feedback_type
        self.result_type = result_type
        self.period = 1.0 / rate_hz
        self.max_steps = max_steps
        self.send_subtask = send_subtask
        self.plan = plan
        self.instruction_field = instruction_field
        self.sleep = sleep
        self.clock = clock
        self._lock = threading.Lock()
        self._images: dict[str, Any] = {}
        self._state: dict[str, list[float]] = {}
        self._outcome: Outcome | None = None

    # --- subscriptions -------------------------------------------------------------------------

    def on_image(self, camera: str, msg: Any) -> None:
        """Keep the camera's latest message; it is converted only when a step uses it."""
        with self._lock:
            self._images[camera] = msg

    def on_state(self, msg: Any) -> None:
        state = joint_state(msg)
        with self._lock:
            self._state = state

    def on_outcome(self, msg: Any) -> None:
        """The policy's report on its subtask: ``std_msgs/String`` (running, success,
        failure) or ``std_msgs/Bool`` (success or failure)."""
        try:
            outcome = parse_outcome(msg.data)
        except ValueError as exc:
            log.warning("ignoring the policy's outcome message: %s", exc)
            return
        with self._lock:
            self._outcome = outcome

    def observation(self, instruction: str) -> dict[str, Any]:
        """The latest messages as an observation for ``step``.

        Raises:
            ValueError: a camera's message cannot be read (the message names the camera).
        """
        with self._lock:
            images, state, outcome = dict(self._images), dict(self._state), self._outcome
        obs: dict[str, Any] = {"instruction": instruction, "state": state, "outcome": outcome}
        for camera, msg in images.items():
            try:
                obs[f"observation.images.{camera}"] = image_array(msg)
            except ValueError as exc:
                raise ValueError(f"camera {camera!r}: {exc}") from None
        return obs

    # --- goals ---------------------------------------------------------------------------------

    def execute(self, goal: GoalHandle) -> Any:
        """The action's execute callback: decide until done, cancelled, failed or out of steps."""
        instruction = str(getattr(goal.request, self.instruction_field, "") or "").strip()
        episode = self.assistant.robot.new_episode()
        subtask = ""
        with self._lock:
            self._outcome = None
        for n in range(1, self.max_steps + 1):
            started = self.clock()
            if goal.is_cancel_requested:
                goal.canceled()
                return self._result(False, "cancelled", episode, n - 1)
            try:
                decision = self.assistant.step(
                    self.observation(instruction),
                    episode=episode,
                    plan=self.plan if n == 1 else None,
                )
            except Exception as exc:  # the goal fails with why; the server keeps serving
                log.warning("goal aborted: %s", exc)
                goal.abort()
                return self._result(False, f"{type(exc).__name__}: {exc}", episode, n - 1)
            goal.publish_feedback(
                _fill(
                    self.feedback_type(),
                    subtask=decision.subtask,
                    plan=decision.plan,
                    reason=decision.reason,
                    episode=episode,
                    step=decision.step,
                )
            )
            if decision.done:
                goal.succeed()
                return self._result(True, decision.reason, episode, n)
            if decision.subtask != subtask:
                subtask = decision.subtask
                with self._lock:  # a report from now on is about the new subtask
                    self._outcome = "running"
                if self.send_subtask is not None:
                    self.send_subtask(subtask)
            self.sleep(max(0.0, self.period - (self.clock() - started)))
        goal.abort()
        return self._result(False, f"not done after {self.max_steps} steps", episode, n)

    def _result(self, done: bool, reason: str, episode: str, steps: int) -> Any:
        return _fill(self.result_type(), done=done, reason=reason, episode=episode, steps=steps)


def _fill(msg: Any, **values: Any) -> Any:
    """Set the fields ``msg`` has; an action without some of them still works."""
    for name, value in values.items():
        if hasattr(msg, name):
            setattr(msg, name, value)
    return msg


def serve(
    assistant: Assistant,
    action_type: Any,
    *,
    action_name: str = "anymodal/instruct",
    cameras: Mapping[str, str] | None = None,
    compressed: bool = False,
    state_topic: str | None = "/joint_states",
    outcome_topic: str | None = None,
    subtask_topic: str | None = "/vla/instruction",
    rate_hz: float = 1.0,
    plan: Any = None,
    node_name: str = "anymodal",
) -> None:
    """Run the action server in a ROS 2 node until shut down (Ctrl+C).

    Args:
        action_type: the action (e.g. ``from my_msgs.action import Instruct``).
        cameras: camera name -> image topic (default ``{"image": "/camera/image_raw"}``).
        compressed: the topics carry ``sensor_msgs/CompressedImage``.
        state_topic: ``sensor_msgs/JointState`` topic, or None.
        outcome_topic: ``std_msgs/String`` topic where the policy reports running / success /
            failure; without one, every tick asks for the next subtask.
        subtask_topic: ``std_msgs/String`` topic the subtasks go to, for the VLA policy.
    """
    try:
        import rclpy
        from rclpy.action import ActionServer, CancelResponse
        from rclpy.callback_groups import ReentrantCallbackGroup
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs.msg import CompressedImage, Image, JointState
        from std_msgs.msg import String
    except ImportError as exc:
        raise RuntimeError(
            f"ROS 2 is not importable here ({exc}); source its setup first, e.g. "
            "`source /opt/ros/jazzy/setup.bash`, and run with the same Python"
        ) from None

    rclpy.init()
    node = Node(node_name)
    group = ReentrantCallbackGroup()
    send = None
    if subtask_topic:
        publisher = node.create_publisher(String, subtask_topic, 10)

        def send(text: str) -> None:
            publisher.publish(String(data=text))

    server = StepActionServer(
        assistant,
        feedback_type=action_type.Feedback,
        result_type=action_type.Result,
        rate_hz=rate_hz,
        send_subtask=send,
        plan=plan,
    )
    kind = CompressedImage if compressed else Image
    for camera, topic in (cameras or {"image": "/camera/image_raw"}).items():
        node.create_subscription(
            kind, topic, lambda m, c=camera: server.on_image(c, m), 1, callback_group=group
        )
    if state_topic:
        node.create_subscription(JointState, state_topic, server.on_state, 10, callback_group=group)
    if outcome_topic:
        node.create_subscription(String, outcome_topic, server.on_outcome, 10, callback_group=group)
    ActionServer(
        node,
        action_type,
        action_name,
        execute_callback=server.execute,
        cancel_callback=lambda _request: CancelResponse.ACCEPT,
        callback_group=group,
    )
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    finally:
        node.destroy_node()
        rclpy.shutdown()
