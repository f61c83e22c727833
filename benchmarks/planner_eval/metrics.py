"""Scores planner output against the gold plans of the planner evaluation set.

Standard library only, so a runner can load it by path (``importlib``) or after putting this
folder on ``sys.path``, without importing anymodal or any model library.

A plan is a dict ``{"steps": [{"id", "tool", "args"}, ...]}`` (a bare list of steps, JSON
text, or anymodal's ``Plan`` object are accepted too). Argument strings such as ``$a1`` (the
first attachment), ``$s1`` (step s1's first output), ``$s1.2`` (its second) and ``$s1.image``
(its first image) are references, exactly as in ``assistant/plan.py``.

- ``align`` matches predicted steps to gold steps one-to-one, by tool name.
- ``tool_f1``, ``edge_f1`` and ``exact`` compare one predicted plan with one gold plan.
- ``validate_plan_against_catalog`` checks a plan against ``tools.json``.
- ``score_prediction`` does both for one task and returns the record ``summarize`` takes.
- ``summarize`` aggregates records: overall, per category and per kind.

Catalog conventions (``tools.json``): an artifact slot is a JSON-schema string with
``"x-modality": [...]`` (an empty list accepts any modality). Its value must be a reference or
a 64-hex artifact id, except that a slot accepting ``text`` also takes literal text. A
reference in a string slot without ``x-modality`` is refused: it would be passed on as the
literal characters. ``output_modalities`` of a tool says what ``$sN`` / ``$sN.k`` resolve to;
an empty list means the tool may produce anything (``download_url``, ``search_memory``).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOOLS_PATH = HERE / "tools.json"
TASKS_PATH = HERE / "tasks.jsonl"

CATEGORIES = ("image", "audio", "video", "text", "memory", "3d", "spine", "cross")
KINDS = ("single", "chain", "branch")

# The same patterns as tools/base.py and assistant/plan.py (copied: this module imports nothing
# from the project).
REF_PATTERN = re.compile(r"^\$([A-Za-z][A-Za-z0-9_-]*)(?:\.([A-Za-z0-9]+))?$")
ATTACHMENT_PATTERN = re.compile(r"^a(\d+)$")
STEP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
ARTIFACT_ID = re.compile(r"^[0-9a-f]{64}$")
MODALITIES = ("text", "image", "audio", "video", "mesh", "file")

_UNMATCHED = "~"  # prefix for predicted steps with no gold partner; no step id starts with it


# ----------------------------------------------------------------------------- loading


def load_tools(path: str | Path = TOOLS_PATH) -> list[dict[str, Any]]:
    """The tool catalog: a list of specs shaped like ``anymodal tools list --json``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_tasks(path: str | Path = TASKS_PATH) -> list[dict[str, Any]]:
    """The tasks, one JSON object per non-empty line."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# ----------------------------------------------------------------------------- plan helpers


def steps_of(plan: Any) -> list[dict[str, Any]]:
    """Normalise a plan (dict, list of steps, JSON text, pydantic ``Plan``, None) to step dicts.

    Lenient on purpose: metrics must not crash on a malformed prediction (validation reports
    it). Entries that are not step-like are skipped.
    """
    if plan is None:
        return []
    if isinstance(plan, str | bytes):
        try:
            plan = json.loads(plan)
        except json.JSONDecodeError:
            return []
    if hasattr(plan, "model_dump"):
        plan = plan.model_dump()
    if isinstance(plan, Mapping):
        plan = plan.get("steps") or []
    if not isinstance(plan, Sequence) or isinstance(plan, str):
        return []
    out = []
    for s in plan:
        if hasattr(s, "model_dump"):
            s = s.model_dump()
        if not isinstance(s, Mapping):
            continue
        args = s.get("args")
        out.append(
            {
                "id": str(s.get("id")),
                "tool": str(s.get("tool")),
                "args": args if isinstance(args, Mapping) else {},
            }
        )
    return out


def references(value: Any) -> list[str]:
    """Names referenced anywhere in an argument value (``$s1.2`` -> ``s1``, ``$a1`` -> ``a1``)."""
    found: list[str] = []
    if isinstance(value, str):
        m = REF_PATTERN.match(value)
        if m:
            found.append(m.group(1))
    elif isinstance(value, Mapping):
        for v in value.values():
            found += references(v)
    elif isinstance(value, list | tuple):
        for v in value:
            found += references(v)
    return found


def _structure(steps: list[dict[str, Any]]) -> tuple[list[set[str]], list[set[str]]]:
    """Per step (by index): ids of the plan's steps it references, and attachments (``$a1``)."""
    ids = {s["id"] for s in steps}
    parents, attachments = [], []
    for s in steps:
        refs = references(s["args"])
        parents.append({r for r in refs if r in ids and r != s["id"]})
        attachments.append({"$" + r for r in refs if ATTACHMENT_PATTERN.match(r)})
    return parents, attachments


def _depths(steps: list[dict[str, Any]], parents: list[set[str]]) -> list[int]:
    """Longest path from a source to each step (its wave); bounded, so cycles cannot hang it."""
    index: dict[str, int] = {}
    for i, s in enumerate(steps):
        index.setdefault(s["id"], i)
    depth = [0] * len(steps)
    for _ in range(len(steps)):
        changed = False
        for i, ps in enumerate(parents):
            d = max((depth[index[p]] + 1 for p in ps), default=0)
            d = min(d, len(steps))
            if d != depth[i]:
                depth[i], changed = d, True
        if not changed:
            break
    return depth


def plan_shape(plan: Any) -> str:
    """``empty``, ``single`` (one step), ``chain`` (steps in one line: each feeds the next) or
    ``branch`` (anything else: parallel steps, fan-out, joins)."""
    steps = steps_of(plan)
    if not steps:
        return "empty"
    if len(steps) == 1:
        return "single"
    parents, _ = _structure(steps)
    children: Counter[str] = Counter(p for ps in parents for p in ps)
    edges = sum(len(ps) for ps in parents)
    is_path = (
        edges == len(steps) - 1
        and all(len(ps) <= 1 for ps in parents)
        and all(c <= 1 for c in children.values())
        and sum(1 for ps in parents if not ps) == 1
    )
    return "chain" if is_path else "branch"


# ----------------------------------------------------------------------------- alignment


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _multiset_overlap(a: Counter[str], b: Counter[str]) -> float:
    if not a and not b:
        return 1.0
    return sum((a & b).values()) / sum((a | b).values())


def _assign(cost: list[list[float]]) -> list[int]:
    """Minimum-cost assignment (Hungarian method) for an n x m matrix with n <= m.

    Returns, for each row, the column it gets.
    """
    n, m = len(cost), len(cost[0])
    inf = math.inf
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    p, way = [0] * (m + 1), [0] * (m + 1)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = [inf] * (m + 1), [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    rows = [-1] * n
    for j in range(1, m + 1):
        if p[j]:
            rows[p[j] - 1] = j - 1
    return rows


def align(pred_steps: Any, gold_steps: Any) -> dict[str, str]:
    """Match predicted steps to gold steps one-to-one; returns ``{pred_id: gold_id}``.

    Only steps with the same tool are matched. Among those, the assignment maximises, per
    pair: the overlap of referenced attachments (weight 2), the overlap of the tools of the
    steps they reference (1), closeness of their wave in topological order (1), and closeness
    of their rank in that order (0.01, a tie-break). Unmatched steps are left out.
    Accepts step lists or whole plans.
    """
    pred, gold = steps_of(pred_steps), steps_of(gold_steps)
    facts = []
    for steps in (pred, gold):
        parents, atts = _structure(steps)
        depth = _depths(steps, parents)
        tool_of = {}
        for s in steps:
            tool_of.setdefault(s["id"], s["tool"])
        order = sorted(range(len(steps)), key=lambda i, d=depth: (d[i], i))
        rank = {i: r for r, i in enumerate(order)}
        parent_tools = [Counter(tool_of[p] for p in ps) for ps in parents]
        facts.append((atts, depth, rank, parent_tools))
    (p_att, p_depth, p_rank, p_ptools), (g_att, g_depth, g_rank, g_ptools) = facts

    def score(i: int, j: int) -> float:
        return (
            2.0 * _jaccard(p_att[i], g_att[j])
            + 1.0 * _multiset_overlap(p_ptools[i], g_ptools[j])
            + 1.0 / (1 + abs(p_depth[i] - g_depth[j]))
            + 0.01 / (1 + abs(p_rank[i] - g_rank[j]))
        )

    mapping: dict[str, str] = {}
    for tool in sorted({s["tool"] for s in pred} & {s["tool"] for s in gold}):
        ps = [i for i, s in enumerate(pred) if s["tool"] == tool]
        gs = [j for j, s in enumerate(gold) if s["tool"] == tool]
        if len(ps) <= len(gs):
            cols = _assign([[-score(i, j) for j in gs] for i in ps])
            pairs = [(ps[r], gs[c]) for r, c in enumerate(cols)]
        else:
            cols = _assign([[-score(i, j) for i in ps] for j in gs])
            pairs = [(ps[c], gs[r]) for r, c in enumerate(cols)]
        for i, j in pairs:
            mapping.setdefault(pred[i]["id"], gold[j]["id"])
    return mapping


# ----------------------------------------------------------------------------- plan metrics


def _f1(matched: int, n_pred: int, n_gold: int) -> float:
    """Harmonic mean of precision and recall; two empty sides agree perfectly."""
    if n_pred == 0 and n_gold == 0:
        return 1.0
    return 2.0 * matched / (n_pred + n_gold)


def tool_f1(pred: Any, gold: Any) -> float:
    """F1 over plan nodes as multisets of tool names."""
    p = Counter(s["tool"] for s in steps_of(pred))
    g = Counter(s["tool"] for s in steps_of(gold))
    return _f1(sum((p & g).values()), sum(p.values()), sum(g.values()))


def plan_edges(plan: Any, rename: Mapping[str, str] | None = None) -> set[tuple[str, str]]:
    """Dependency edges ``(source, step_id)``: source is a step id, or ``$aN`` for an attachment.

    ``rename`` maps step ids (both ends) before the edge is formed; ids it lacks are kept.
    References to steps the plan does not have are ignored (validation reports them).
    """
    steps = steps_of(plan)
    ids = {s["id"] for s in steps}

    def name(i: str) -> str:
        return rename.get(i, i) if rename is not None else i

    edges: set[tuple[str, str]] = set()
    for s in steps:
        for r in references(s["args"]):
            if ATTACHMENT_PATTERN.match(r):
                edges.add(("$" + r, name(s["id"])))
            elif r in ids:
                edges.add((name(r), name(s["id"])))
    return edges


def _aligned_edges(pred: Any, gold: Any) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    mapping = align(pred, gold)
    rename = {s["id"]: mapping.get(s["id"], _UNMATCHED + s["id"]) for s in steps_of(pred)}
    return plan_edges(pred, rename), plan_edges(gold)


def edge_f1(pred: Any, gold: Any) -> float:
    """F1 over dependency edges (step -> step, ``$aN`` -> step), predicted ids mapped by align."""
    p, g = _aligned_edges(pred, gold)
    return _f1(len(p & g), len(p), len(g))


def exact(pred: Any, gold: Any) -> bool:
    """Same multiset of tools and the same edge set after alignment (other args not compared)."""
    p_tools = Counter(s["tool"] for s in steps_of(pred))
    g_tools = Counter(s["tool"] for s in steps_of(gold))
    if p_tools != g_tools:
        return False
    p, g = _aligned_edges(pred, gold)
    return p == g


def score_plan(pred: Any, gold: Any) -> dict[str, Any]:
    """``{tool_f1, edge_f1, exact}`` for one prediction; a missing one (None) scores 0."""
    if pred is None:
        return {"tool_f1": 0.0, "edge_f1": 0.0, "exact": False}
    return {
        "tool_f1": tool_f1(pred, gold),
        "edge_f1": edge_f1(pred, gold),
        "exact": exact(pred, gold),
    }


def score_prediction(
    task: Mapping[str, Any],
    pred: Any,
    tools: Any,
    latency_s: float | None = None,
) -> dict[str, Any]:
    """The record ``summarize`` takes, for one task and its prediction (None when missing).

    An invalid prediction keeps its problems in ``problems`` and scores 0.
    """
    attachments = task.get("attachments") or []
    problems = (
        ["no plan was produced"]
        if pred is None
        else validate_plan_against_catalog(
            pred, tools, len(attachments), [a.get("modality") for a in attachments]
        )
    )
    valid = not problems
    scores = score_plan(pred if valid else None, task["gold"])
    return {
        "id": task.get("id"),
        "category": task.get("category"),
        "kind": task.get("kind"),
        "valid": valid,
        "problems": problems,
        **scores,
        "latency_s": latency_s,
    }


# ----------------------------------------------------------------------------- summary


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100), interpolating linearly between ranks (numpy's default)."""
    xs = sorted(float(v) for v in values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _figures(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    def metric(r: Mapping[str, Any], key: str) -> float:
        if not r.get("valid"):
            return 0.0
        v = r.get(key)
        return 0.0 if v is None else float(v)

    latencies = [float(r["latency_s"]) for r in records if r.get("latency_s") is not None]
    return {
        "n": len(records),
        "valid_plan_rate": _mean([1.0 if r.get("valid") else 0.0 for r in records]),
        "tool_f1": _mean([metric(r, "tool_f1") for r in records]),
        "edge_f1": _mean([metric(r, "edge_f1") for r in records]),
        "exact_plan_rate": _mean([metric(r, "exact") for r in records]),
        "latency_median_s": percentile(latencies, 50),
        "latency_p90_s": percentile(latencies, 90),
    }


def summarize(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate per-task records ``{valid, tool_f1, edge_f1, exact, latency_s, category, kind}``.

    Returns ``n``, ``valid_plan_rate``, mean ``tool_f1`` and ``edge_f1``, ``exact_plan_rate``,
    ``latency_median_s`` and ``latency_p90_s`` (over records with a latency; None if none),
    and the same figures under ``by_category`` and ``by_kind``. A record that is not valid (or
    has no score) counts 0 for the F1s and exact. Rates and means are None for no records.
    """
    records = list(records)
    out = _figures(records)
    for key, group in (("category", "by_category"), ("kind", "by_kind")):
        names = sorted({str(r.get(key)) for r in records})
        out[group] = {
            name: _figures([r for r in records if str(r.get(key)) == name]) for name in names
        }
    return out


# ----------------------------------------------------------------------------- validation


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "array"
    if isinstance(v, Mapping):
        return "object"
    return type(v).__name__


def _is_type(v: Any, t: str) -> bool:
    actual = _json_type(v)
    if t == "number":
        return actual in ("integer", "number") and math.isfinite(v)
    if t == "integer":
        return actual == "integer" or (actual == "number" and float(v).is_integer())
    return actual == t


def _has_type(v: Any, t: str | list[str]) -> bool:
    return any(_is_type(v, x) for x in ([t] if isinstance(t, str) else t))


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``True`` is not ``1``."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


class _Refs:
    """Resolves references for one step of one plan."""

    def __init__(
        self,
        step_id: str,
        steps: Mapping[str, str],
        catalog: Mapping[str, Mapping[str, Any]],
        n_attachments: int,
        attachment_modalities: Sequence[str | None] | None,
    ):
        self.step_id = step_id
        self.steps = steps  # step id -> tool name
        self.catalog = catalog
        self.n = n_attachments
        self.att_mods = attachment_modalities

    def check(self, value: str, wanted: Sequence[str], where: str) -> list[str]:
        kinds = "/".join(wanted) or "any"
        m = REF_PATTERN.match(value)
        if m is None:
            if ARTIFACT_ID.match(value) or "text" in wanted:
                return []
            return [
                f"{where}: expected an artifact reference ({kinds}) such as '$a1' or '$s1', "
                f"got {value!r}"
            ]
        name, sel = m.group(1), m.group(2)
        a = ATTACHMENT_PATTERN.match(name)
        if a:
            k = int(a.group(1))
            if not 1 <= k <= self.n:
                return [
                    f"{where}: ${name} names attachment {k}, but {self.n} file(s) were attached"
                ]
            mod = self.att_mods[k - 1] if self.att_mods and k <= len(self.att_mods) else None
            if mod and wanted and mod not in wanted:
                return [f"{where}: ${name} is {mod}; this needs {kinds}"]
            return []
        if name == self.step_id:
            return [f"{where}: refers to its own output (${name})"]
        if name not in self.steps:
            return [f"{where}: ${name} names no step in this plan"]
        source = self.catalog.get(self.steps[name])
        if source is None:
            return []  # unknown tool: reported on that step
        outputs = list(source.get("output_modalities") or [])
        if sel and not sel.isdigit():
            if sel not in MODALITIES:
                return [f"{where}: ${name}.{sel}: '{sel}' is neither a number nor a modality"]
            if outputs and sel not in outputs:
                return [f"{where}: ${name}.{sel}: {source['name']} produces no {sel}"]
            mod = sel
        elif sel == "0" or (sel and int(sel) == 0):
            return [f"{where}: ${name}.{sel}: outputs are numbered from 1"]
        elif not outputs:
            return []  # a tool that may produce anything: checked at run time
        else:
            mod = outputs[min(int(sel or 1), len(outputs)) - 1]
        if wanted and mod not in wanted:
            return [f"{where}: ${name} is {mod} (from {source['name']}); this needs {kinds}"]
        return []


def _check(value: Any, schema: Mapping[str, Any], where: str, refs: _Refs) -> list[str]:
    """The JSON-schema subset the catalog uses, plus anymodal's ``x-modality`` slots."""
    errs: list[str] = []
    for key in ("anyOf", "oneOf"):
        if key in schema:
            results = [_check(value, branch, where, refs) for branch in schema[key]]
            ok = sum(1 for r in results if not r)
            if ok == 0 or (key == "oneOf" and ok > 1):
                typed = [
                    r
                    for r, b in zip(results, schema[key], strict=True)
                    if "type" not in b or _has_type(value, b["type"])
                ]
                if len(typed) == 1:
                    errs += typed[0]
                else:
                    errs.append(f"{where}: {value!r} matches none of the allowed forms")
    for branch in schema.get("allOf", ()):
        errs += _check(value, branch, where, refs)
    if "const" in schema and not _same(value, schema["const"]):
        errs.append(f"{where}: must be {schema['const']!r} (got {value!r})")
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        allowed = ", ".join(repr(e) for e in schema["enum"])
        errs.append(f"{where}: must be one of {allowed} (got {value!r})")
    if "type" in schema and not _has_type(value, schema["type"]):
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        errs.append(f"{where}: should be {' or '.join(types)}, got {_json_type(value)} {value!r}")
        return errs

    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errs.append(f"{where}: should have at least {schema['minLength']} character(s)")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errs.append(f"{where}: should have at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errs.append(f"{where}: should match {schema['pattern']!r} (got {value!r})")
        if "x-modality" in schema:
            errs += refs.check(value, schema["x-modality"], where)
        elif REF_PATTERN.match(value) and not any(k in schema for k in ("anyOf", "oneOf")):
            errs.append(f"{where}: {value!r} looks like a reference, but this takes no artifact")
    elif _json_type(value) in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errs.append(f"{where}: should be >= {schema['minimum']} (got {value!r})")
        if "maximum" in schema and value > schema["maximum"]:
            errs.append(f"{where}: should be <= {schema['maximum']} (got {value!r})")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            errs.append(f"{where}: should be > {schema['exclusiveMinimum']} (got {value!r})")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            errs.append(f"{where}: should be < {schema['exclusiveMaximum']} (got {value!r})")
    elif isinstance(value, list | tuple):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errs.append(f"{where}: should have at least {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append(f"{where}: should have at most {schema['maxItems']} items")
        if isinstance(schema.get("items"), Mapping):
            for i, item in enumerate(value):
                errs += _check(item, schema["items"], f"{where}.{i}", refs)
    elif isinstance(value, Mapping):
        props = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                errs.append(f"{_join(where, name)}: required argument missing")
        extra = schema.get("additionalProperties", True)
        for name, v in value.items():
            if name in props:
                errs += _check(v, props[name], _join(where, name), refs)
            elif extra is False:
                allowed = ", ".join(props) or "none"
                errs.append(f"{_join(where, name)}: unexpected argument (allowed: {allowed})")
            elif isinstance(extra, Mapping):
                errs += _check(v, extra, _join(where, name), refs)
    return errs


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _catalog(tools: Any) -> dict[str, Mapping[str, Any]]:
    if isinstance(tools, str | Path):
        tools = load_tools(tools)
    if isinstance(tools, Mapping):
        return dict(tools)
    return {t["name"]: t for t in tools}


def validate_plan_against_catalog(
    plan: Any,
    tools: Any,
    n_attachments: int,
    attachment_modalities: Sequence[str | None] | None = None,
) -> list[str]:
    """Every problem with a plan, checked against catalog specs; an empty list means valid.

    ``plan``: a dict ``{"steps": [...], "reply"?: str}``, a list of steps, or JSON text.
    ``tools``: the catalog (a list of specs, a name -> spec mapping, or a path to tools.json).
    ``attachment_modalities`` (optional): the attachments' modalities, to check that ``$aN``
    goes to a slot that takes it.

    Reports: malformed plans and steps, duplicate or bad step ids, unknown tools, missing
    required arguments, wrong JSON types, enum and range violations, unexpected arguments,
    references to missing attachments or steps, references whose modality the slot does not
    take, and cycles.
    """
    catalog = _catalog(tools)
    if isinstance(plan, str | bytes):
        try:
            plan = json.loads(plan)
        except json.JSONDecodeError as exc:
            return [f"the plan is not valid JSON: {exc}"]
    if isinstance(plan, list):
        plan = {"steps": plan}
    if not isinstance(plan, Mapping):
        return [f"a plan must be an object with 'steps', got {_json_type(plan)}"]
    problems = [f"unexpected plan key {k!r}" for k in plan if k not in ("steps", "reply")]
    if plan.get("reply") is not None and not isinstance(plan.get("reply"), str):
        problems.append("reply: should be a string")
    raw = plan.get("steps", [])
    if not isinstance(raw, list):
        return [*problems, f"steps: should be a list, got {_json_type(raw)}"]

    steps: list[tuple[str, str, Mapping[str, Any]]] = []
    for n, s in enumerate(raw, 1):
        label = f"step {n}"
        if not isinstance(s, Mapping):
            problems.append(f"{label}: should be an object with id, tool and args")
            continue
        extra = [k for k in s if k not in ("id", "tool", "args")]
        if extra:
            problems.append(f"{label}: unexpected key(s) {', '.join(map(repr, extra))}")
        sid, tool, args = s.get("id"), s.get("tool"), s.get("args", {})
        if not isinstance(sid, str) or not STEP_ID.match(sid) or ATTACHMENT_PATTERN.match(sid):
            problems.append(f"{label}: step id {sid!r} must be a short name like 's1' (not 'a1')")
            continue
        if not isinstance(tool, str):
            problems.append(f"{sid}: tool should be a name, got {_json_type(tool)}")
            continue
        if not isinstance(args, Mapping):
            problems.append(f"{sid}: args should be an object, got {_json_type(args)}")
            continue
        steps.append((sid, tool, args))

    ids = [sid for sid, _, _ in steps]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        problems.append(f"step ids used twice: {', '.join(dupes)}")
    tool_of = {sid: tool for sid, tool, _ in steps}
    for sid, tool, args in steps:
        spec = catalog.get(tool)
        if spec is None:
            problems.append(f"{sid}: unknown tool {tool!r}")
            continue
        refs = _Refs(sid, tool_of, catalog, n_attachments, attachment_modalities)
        for err in _check(args, spec.get("input_schema", {}), "", refs):
            problems.append(f"{sid} ({tool}): {err}")

    deps = {sid: {r for r in references(args) if r in tool_of} for sid, _, args in steps}
    try:
        TopologicalSorter(deps).prepare()
    except CycleError as exc:
        problems.append(f"the steps form a cycle: {' -> '.join(exc.args[1])}")
    return problems
