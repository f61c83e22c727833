"""Robot routes: ``POST /act`` in the shape of OpenVLA's deploy server, and ``POST /v1/step``.

OpenVLA's ``/act`` takes ``{"image", "instruction", "unnorm_key"?}`` and answers an action;
here it answers the next subtask instruction for the robot's own policy, so a robot stack that
talks to an OpenVLA server can put anymodal above its policy by changing the URL (and adding
the bearer token). ``/v1/step`` takes any observation ``Assistant.step`` reads (LeRobot, openpi
or OpenVLA keys) and answers the whole decision. Both keep one episode per ``episode`` (field
or ``X-Anymodal-Episode`` header), the current one when none is named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from assistant.observation import openvla_request, parse_observation
from assistant.robot import DecisionError, NoDecisionModel
from assistant.server.context import parse_json, server_state
from assistant.server.runs import with_urls
from assistant.server.security import ApiError, check_session_id

router = APIRouter()

CONTROL = ("episode", "plan")
"""Body fields that steer the call rather than describe the observation."""


async def _body(request: Request) -> dict[str, Any]:
    body = parse_json(await request.body())
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object (an observation)")
    return body


async def _decide(request: Request, body: dict[str, Any], *, openvla: bool) -> dict[str, Any]:
    """Run ``Assistant.step`` in a worker thread; its errors as the API's error shape."""
    episode = body.get("episode") or request.headers.get("x-anymodal-episode")
    if episode is not None:
        check_session_id(str(episode))
    observation: Mapping[str, Any] = {k: v for k, v in body.items() if k not in CONTROL}
    try:
        if openvla:
            parsed = openvla_request(observation)
        else:  # over the network: images inline only, never a path on this machine
            parsed = parse_observation(observation, paths=False)
    except ValueError as exc:
        raise ApiError(400, "bad_observation", str(exc)) from None
    assistant = server_state(request).assistant
    try:
        decision = await run_in_threadpool(
            assistant.step, parsed, episode=episode, plan=body.get("plan")
        )
    except NoDecisionModel as exc:
        raise ApiError(503, "no_decision_model", str(exc)) from None
    except DecisionError as exc:
        raise ApiError(502, "decision_failed", str(exc)) from None
    except ValueError as exc:  # a script of the wrong shape
        raise ApiError(400, "bad_plan", str(exc)) from None
    data: dict[str, Any] = with_urls(decision.model_dump(mode="json"), decision.episode)
    return data


@router.post("/act")
async def act(request: Request) -> dict[str, Any]:
    """OpenVLA's request shape; the answer's ``instruction`` is the policy's next subtask
    ('' once ``done``), with the episode, the remaining plan and the reason beside it."""
    decision = await _decide(request, await _body(request), openvla=True)
    return {
        "instruction": decision["subtask"],
        "done": decision["done"],
        "plan": decision["plan"],
        "reason": decision["reason"],
        "episode": decision["episode"],
        "step": decision["step"],
        "timing": decision["timing"],
    }


@router.post("/v1/step")
async def step(request: Request) -> dict[str, Any]:
    """Any observation ``Assistant.step`` reads; the answer is the ``Decision`` as JSON (its
    stored camera frames with download URLs)."""
    return await _decide(request, await _body(request), openvla=False)
