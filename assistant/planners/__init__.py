"""Planner backends: turn a request into a ``Plan`` and write the final reply."""

from assistant.planners.base import Planner, PlanRequest, RespondRequest, make_planner
from assistant.planners.scripted import ScriptedPlanner

__all__ = ["PlanRequest", "Planner", "RespondRequest", "ScriptedPlanner", "make_planner"]
