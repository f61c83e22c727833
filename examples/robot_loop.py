"""A robot's slow loop in a few lines: a toy table with blocks, a fake fast policy that carries
out one subtask at a time (10 Hz), and ``Assistant.step`` deciding the next subtask once a
simulated second, from the camera image, the robot state and how the policy is doing.

    python examples/robot_loop.py --scripted      # a written list of subtasks, no model
    python examples/robot_loop.py                 # the embedded default model decides
    python examples/robot_loop.py --realtime --out frames/

No ROS: swap ``World`` for your robot's camera and state, and ``Policy`` for your VLA (LeRobot,
openpi, OpenVLA); the observation already uses LeRobot's key names. Time is simulated unless
``--realtime`` is given.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

TASK = "put the red block and the blue block in the bin"
SCRIPT = [
    "pick up the red block",
    "place it in the bin",
    "pick up the blue block",
    "place it in the bin",
]
BIN = (0.85, 0.85)
COLORS = {"red": (220, 40, 40), "blue": (40, 80, 220), "green": (40, 170, 70)}


@dataclass
class World:
    """A 1x1 table seen from above: blocks, a bin in one corner, and a gripper."""

    blocks: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"red": (0.2, 0.3), "blue": (0.6, 0.15), "green": (0.3, 0.75)}
    )
    gripper: tuple[float, float] = (0.5, 0.5)
    holding: str | None = None
    in_bin: set[str] = field(default_factory=set)

    def render(self, size: int = 160) -> np.ndarray:
        """The overhead camera: an HxWx3 uint8 array, as a real camera driver hands it over."""
        img = Image.new("RGB", (size, size), (235, 225, 205))
        draw = ImageDraw.Draw(img)
        bx, by = (int(v * size) for v in BIN)
        draw.rectangle([bx - 18, by - 18, bx + 18, by + 18], fill=(120, 120, 120))
        for color, (x, y) in self.blocks.items():
            cx, cy = int(x * size), int(y * size)
            draw.rectangle([cx - 7, cy - 7, cx + 7, cy + 7], fill=COLORS[color])
        gx, gy = (int(v * size) for v in self.gripper)
        draw.ellipse([gx - 10, gy - 10, gx + 10, gy + 10], outline=(0, 0, 0), width=3)
        return np.asarray(img)

    def observation(self) -> dict:
        """LeRobot-style keys; named state values help a model that cannot see the image."""
        return {
            "observation.images.top": self.render(),
            "observation.state": {
                "gripper_xy": list(self.gripper),
                "gripper_closed": [1.0 if self.holding else 0.0],
            },
            "observation.environment_state": {
                **{f"{c}_block_xy": list(p) for c, p in self.blocks.items()},
                **{f"{c}_block_in_bin": [1.0 if c in self.in_bin else 0.0] for c in self.blocks},
            },
        }


class Policy:
    """A fake VLA policy: understands 'pick up the <color> block' and 'place it in the bin'
    (or 'put the <color> block in the bin'); anything else fails at once, and so does picking
    up a block while holding another."""

    SPEED = 0.05  # table widths per tick: a subtask takes one or two seconds

    def __init__(self, world: World):
        self.world = world
        self.subtask = ""
        self.status: str | None = None  # running / success / failure, reported to step()
        self.goals: list[tuple[str, str]] = []

    def start(self, subtask: str) -> None:
        self.subtask, self.status = subtask, "running"
        pick = re.search(r"\b(?:pick up|grasp|grab|take) the (\w+) block", subtask)
        put = re.search(
            r"\b(?:put|place|drop|move) (?:it|the (\w+) block) (?:in|into) the bin", subtask
        )
        holding = self.world.holding
        if pick and holding and pick.group(1) != holding:
            self.goals, self.status = [], "failure"  # the gripper is already full
        elif pick and pick.group(1) in self.world.blocks:
            self.goals = [("pick", pick.group(1))]
        elif put and put.group(1) in self.world.blocks:
            self.goals = [("pick", put.group(1)), ("place", put.group(1))]
        elif put and holding:
            self.goals = [("place", holding)]
        else:
            self.goals, self.status = [], "failure"

    def tick(self) -> None:
        """One 10 Hz control step."""
        if self.status != "running":
            return
        w = self.world
        kind, color = self.goals[0]
        if kind == "place" and w.holding != color:
            self.status = "failure"  # nothing in the gripper to place
            return
        target = w.blocks[color] if kind == "pick" else BIN
        dx, dy = target[0] - w.gripper[0], target[1] - w.gripper[1]
        dist = math.hypot(dx, dy)
        step = min(self.SPEED, dist)
        if dist > 0:
            w.gripper = (w.gripper[0] + dx / dist * step, w.gripper[1] + dy / dist * step)
        if w.holding:
            w.blocks[w.holding] = w.gripper
        if dist <= self.SPEED:
            if kind == "pick":
                w.holding = color
            else:
                w.holding = None
                w.in_bin.add(color)
            self.goals.pop(0)
            if not self.goals:
                self.status = "success"


def run_episode(
    assistant: Any,
    *,
    scripted: bool,
    max_steps: int = 30,
    realtime: bool = False,
    out: Path | None = None,
    say: bool = True,
) -> World:
    """The loop: a decision each second, ten policy ticks in between."""
    world = World()
    policy = Policy(world)
    for n in range(max_steps):
        started = time.monotonic()
        obs = {**world.observation(), "task": TASK, "outcome": policy.status}
        decision = assistant.step(obs, plan=SCRIPT if scripted and n == 0 else None)
        if say:
            what = decision.subtask or "done"
            print(
                f"t={n:>2}s  {what:<28} {policy.status or '-':<8} "
                f"{decision.decided_by} {decision.timing['total']:.0f} ms  {decision.reason}"
            )
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            Image.fromarray(obs["observation.images.top"]).save(out / f"frame-{n:03d}.png")
        if decision.done:
            break
        if decision.subtask != policy.subtask or policy.status in ("failure", "success"):
            policy.start(decision.subtask)
        for _ in range(10):
            policy.tick()
            if realtime:
                time.sleep(0.1)
        if realtime:
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    if say:
        print(f"in the bin: {sorted(world.in_bin) or 'nothing'}; episode {decision.episode}")
    return world


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scripted", action="store_true", help="follow a written list of subtasks")
    parser.add_argument("--steps", type=int, default=30, help="the most decisions to make")
    parser.add_argument("--realtime", action="store_true", help="run at 1 Hz in real time")
    parser.add_argument("--out", type=Path, help="save each camera frame here")
    args = parser.parse_args(argv)

    from assistant import Assistant

    assistant = Assistant()
    world = run_episode(
        assistant,
        scripted=args.scripted,
        max_steps=args.steps,
        realtime=args.realtime,
        out=args.out,
    )
    return 0 if {"red", "blue"} <= world.in_bin else 1


if __name__ == "__main__":
    sys.exit(main())
