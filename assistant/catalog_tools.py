"""Tools known only by their description (a catalog file), for planning without running.

``anymodal plan --tools CATALOG.json`` plans against such a catalog, so any tool set can be
evaluated; plans are checked against each tool's JSON schema and artifact modalities.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tools.artifact import Artifact, Modality
from tools.base import REF_PATTERN, Tool, ToolContext, ToolResult
from tools.errors import ToolError
from tools.registry import Registry


class _Described(BaseModel):
    """Placeholder input model: a catalog tool's real schema is the JSON it came with."""


class SpecTool(Tool):
    """A tool described by ``{name, description, input_schema, input_modalities,
    output_modalities}``; it can be planned and checked, not run."""

    inputs = _Described

    def __init__(self, spec: Mapping[str, Any]):
        from jsonschema import Draft202012Validator

        self.name = spec["name"]  # type: ignore[misc]
        self.description = spec.get("description", "")  # type: ignore[misc]
        self.outputs = tuple(Modality(m) for m in spec.get("output_modalities", []))  # type: ignore[misc]
        self._schema = dict(spec.get("input_schema") or {"type": "object"})
        self._inputs = tuple(Modality(m) for m in spec.get("input_modalities", []))
        self._validator = Draft202012Validator(self._schema)

    @property
    def input_modalities(self) -> tuple[Modality, ...]:
        return self._inputs

    def input_schema(self) -> dict[str, Any]:
        return self._schema

    def check_args(self, args: Mapping[str, Any], resolve: Callable[[str], Artifact]) -> str | None:
        problems = [
            f"{'.'.join(str(p) for p in err.absolute_path) or '(arguments)'}: {err.message}"
            for err in self._validator.iter_errors(dict(args))
        ]
        for name, prop in self._schema.get("properties", {}).items():
            wanted = _modalities(prop)
            values = args.get(name)
            values = values if isinstance(values, list) else [values]
            for value in values:
                if not (wanted and isinstance(value, str) and REF_PATTERN.match(value)):
                    continue
                try:
                    art = resolve(value)
                except ToolError as exc:
                    problems.append(f"{name}: {exc}")
                    continue
                if art.modality.value not in wanted and not art.metadata.get("any_modality"):
                    problems.append(
                        f"{name}: {value} is {art.modality.value}; this needs " + "/".join(wanted)
                    )
        return "; ".join(problems) or None

    def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        raise ToolError(f"{self.name} is only described in a tool catalog; it cannot run here")


def _modalities(prop: Mapping[str, Any]) -> list[str]:
    """The modalities an argument's schema accepts: directly, per list item, or in an anyOf
    (how optional slots are written)."""
    if prop.get("x-modality"):
        return list(prop["x-modality"])
    for sub in [prop.get("items"), *(prop.get("anyOf") or [])]:
        if isinstance(sub, Mapping) and (found := _modalities(sub)):
            return found
    return []


def load_catalog(path: str | Path) -> Registry:
    """A registry of ``SpecTool`` from a JSON list of tool specs."""
    try:
        specs = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ToolError(f"cannot read the tool catalog {path}: {exc}") from None
    if not isinstance(specs, list) or not all(isinstance(s, dict) and "name" in s for s in specs):
        raise ToolError(f"{path} must hold a JSON list of tool specs with a 'name' each")
    return Registry(SpecTool(s) for s in specs)
