"""Tools used only by the tests: loaded through the ``tool_modules`` config, like a plugin."""

from __future__ import annotations

import time
from pathlib import Path

from tools import TextInput, ToolContext, ToolError, function_tool


@function_tool
def boom(message: str = "boom") -> str:
    """Always fail with a ToolError carrying ``message``.

    Args:
        message: the error text
    """
    raise ToolError(message)


@function_tool
def crash() -> str:
    """Raise an unexpected exception (a bug, not a ToolError)."""
    raise RuntimeError("unexpected bug")


@function_tool(timeout=0.5)
def hang(seconds: float = 30.0) -> str:
    """Sleep without ever checking for cancellation (a hung tool).

    Args:
        seconds: how long to sleep
    """
    time.sleep(seconds)
    return "woke up"


@function_tool
def count(label: str, log: str, after: TextInput | None = None, ctx: ToolContext = None) -> str:  # type: ignore[assignment]
    """Append ``label`` to the file ``log`` (so a test can count runs) and return it as text.

    Args:
        label: what to write
        log: the file to append to
        after: an output this step must wait for
    """
    ctx.report(0.5, f"writing {label}")
    with open(log, "a") as fh:
        fh.write(label + "\n")
    return f"{label} done"


@function_tool
def gate(marker: str, release: str, after: TextInput | None = None, ctx: ToolContext = None) -> str:  # type: ignore[assignment]
    """Write ``marker``, then wait until the file ``release`` exists.

    Args:
        marker: a file appended to when the step starts
        release: the file whose appearance lets the step finish
        after: an output this step must wait for
    """
    with open(marker, "a") as fh:
        fh.write("started\n")
    while not Path(release).exists():
        ctx.check_cancelled()
        time.sleep(0.05)
    return "released"


@function_tool
def noop(value: int = 0) -> dict:
    """Return its input as data: the cheapest possible step.

    Args:
        value: any number
    """
    return {"value": value}
