"""Planning without running: ``anymodal plan`` and the planner evaluation use this."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from assistant.plan import Plan, validate_plan
from assistant.planners.base import Planner, PlanRequest
from tools.artifact import Artifact, ArtifactStore, Modality
from tools.base import ToolContext
from tools.registry import Registry


def make_plan(
    planner: Planner,
    prompt: str,
    attachments: list[Artifact],
    registry: Registry,
    workspace: Path | None = None,
) -> Plan:
    """Ask ``planner`` for a plan of ``prompt`` over ``registry``; raises ``PlanError`` unless
    the plan is valid (the planner may repair its answer on the way)."""
    scratch = Path(workspace or tempfile.mkdtemp(prefix="anymodal-plan-"))
    ctx = ToolContext(
        store=ArtifactStore(scratch / "artifacts"),
        workspace=scratch,
        refs={f"a{i}": [a] for i, a in enumerate(attachments, 1)},
    )
    request = PlanRequest(
        prompt=prompt,
        attachments=attachments,
        tools=registry.specs(),
        check=lambda p: validate_plan(p, registry, attachments, ctx),
    )
    plan = planner.plan(request)
    validate_plan(plan, registry, attachments, ctx)
    return plan


def described_attachment(name: str, modality: str, **facts: Any) -> Artifact:
    """An attachment known only by name and modality (for evaluation, where no file exists)."""
    import hashlib

    digest = hashlib.sha256(name.encode()).hexdigest()
    return Artifact(
        id=digest,
        modality=Modality(modality),
        mime="application/octet-stream",
        path="",
        name=name,
        metadata=facts,
    )
