"""The scripted planner: returns plans it was given. For tests and batch pipelines."""

from __future__ import annotations

from collections.abc import Iterator

from assistant.plan import Plan, PlansUsedUp
from assistant.planners.base import Planner, PlanRequest, RespondRequest


class ScriptedPlanner(Planner):
    """Plans from a list: attempt N gets plan N; when they are used up, re-planning stops."""

    name = "scripted"

    def __init__(self, plans: Plan | list[Plan], responder: Planner | None = None):
        self.plans = [plans] if isinstance(plans, Plan) else list(plans)
        if not self.plans:
            raise ValueError("a scripted planner needs at least one plan")
        self.responder = responder
        """Writes the final answer when given (a model planner); else the template does."""
        self.backend = getattr(responder, "backend", None)

    def plan(self, request: PlanRequest) -> Plan:
        if request.attempt > len(self.plans):
            raise PlansUsedUp("no other plan to try: the given plans are used up")
        return self.plans[request.attempt - 1]

    def respond(self, request: RespondRequest) -> Iterator[str]:
        if self.responder is not None:
            return self.responder.respond(request)
        return super().respond(request)
