"""Asking the language model for something the caller must parse (an SVG sketch, a shape
scene, a robot's next subtask), with one second chance: the first unusable reply goes back to
the model with what was wrong."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tools.base import ToolContext

T = TypeVar("T")
REPLY_ECHO_CHARS = 4000
"""Characters of an unusable reply sent back with the problem (the model needs the gist)."""


def ask_with_repair(
    ask: Callable[[list[dict[str, Any]]], str],
    messages: list[dict[str, Any]],
    parse: Callable[[str], T],
    retry: Callable[[str], str],
    unusable: type[Exception],
    on_retry: Callable[[Exception], None] | None = None,
) -> tuple[T, int]:
    """``parse(ask(messages))``; when it raises ``unusable``, ask once more with the reply and
    ``retry(problem)`` (the next user message) appended, after telling ``on_retry``.

    Returns:
        What ``parse`` made, and the attempt (1 or 2) that made it.

    Raises:
        unusable: The second reply was unusable too (the caller words the error).
    """
    for attempt in (1, 2):
        reply = ask(messages)
        try:
            return parse(reply), attempt
        except unusable as exc:
            if attempt == 2:
                raise
            if on_retry is not None:
                on_retry(exc)
            messages = [
                *messages,
                {"role": "assistant", "content": reply[:REPLY_ECHO_CHARS]},
                {"role": "user", "content": retry(str(exc))},
            ]
    raise AssertionError("unreachable")


def ask_twice(
    ctx: ToolContext,
    messages: list[dict[str, Any]],
    parse: Callable[[str], T],
    retry: Callable[[str], str],
    unusable: type[Exception],
    what: str,
    schema: dict[str, Any] | None = None,
    max_tokens: int | None = None,
) -> tuple[T, int]:
    """``parse(reply)`` of the model's reply to ``messages``; when it raises ``unusable``, ask
    once more with the reply and ``retry(problem)`` (the next user message) appended. The
    replies are not streamed: they are material for the tool, not the answer. ``schema`` and
    ``max_tokens`` go to the model (``tools.base.LanguageModel``): a JSON schema constrains
    the reply where the backend can.

    Returns:
        What ``parse`` made, and the attempt (1 or 2) that made it.

    Raises:
        unusable: The second reply was unusable too (the caller words the error).
        Cancelled: The step was cancelled while the model wrote.
    """
    llm = ctx.llm
    if llm is None:
        raise ValueError("ask_twice needs ctx.llm; callers check for a language model first")

    def ask(messages: list[dict[str, Any]]) -> str:
        ctx.check_cancelled()
        if schema is None and max_tokens is None:
            reply = llm(messages, None)
        else:
            reply = llm(messages, None, schema=schema, max_tokens=max_tokens)
        ctx.check_cancelled()
        return reply

    def on_retry(exc: Exception) -> None:
        ctx.report(0.45, f"{what} was unusable ({exc}); asking once more")

    return ask_with_repair(ask, messages, parse, retry, unusable, on_retry)
