"""The scripted planner: returns plans it was given. For tests and batch pipelines."""

from __future__ import annotations

from assistant.plan import Plan, PlannerUnavailable
from assistant.planners.base import Planner, PlanRequest


class ScriptedPlanner(Planner):
    """Plans from a list: attempt N gets plan N; when they are used up, re-planning stops."""

    name = "scripted"

    def __init__(self, plans: Plan | list[Plan]):
        self.plans = [plans] if isinstance(plans, Plan) else list(plans)
        if not self.plans:
            raise ValueError("a scripted planner needs at least one plan")

    def plan(self, request: PlanRequest) -> Plan:
        if request.attempt > len(self.plans):
            raise PlannerUnavailable("no other plan to try: the given plans are used up")
        return self.plans[request.attempt - 1]
