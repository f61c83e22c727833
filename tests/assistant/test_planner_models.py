"""Choosing the planning model: the catalog's choices and switching (``/model``, use_model)."""

from __future__ import annotations

import pytest

from assistant import Assistant
from assistant.planner_models import current, planner_models
from assistant.planners.base import NoPlanner


def test_the_catalog_planning_models_and_the_one_in_use():
    a = Assistant()
    rows = {m.name: m for m in planner_models(a.config, a.models)}
    default = rows["qwen2.5-coder-1.5b-instruct-q4_k_m"]
    assert default.backend == "llama" and default.in_use and default.installed  # the pack
    assert rows["llava-interleave-qwen-0.5b"].backend == "transformers"
    assert not rows["llava-interleave-qwen-0.5b"].in_use
    assert "sd-turbo" not in rows and "all-minilm-l6-v2" not in rows  # they cannot plan
    assert current(a.config) == ("llama", "qwen2.5-coder-1.5b-instruct-q4_k_m")


def test_switching_models(tmp_path):
    a = Assistant()
    assert a.use_model("openai:llama3.2") == "planning with llama3.2 at http://127.0.0.1:11434/v1"
    assert current(a.config) == ("openai", "llama3.2")
    gguf = tmp_path / "mine.gguf"
    with pytest.raises(ValueError, match="no GGUF file"):
        a.use_model(str(gguf))
    gguf.write_bytes(b"GGUF")
    a.use_model(str(gguf))
    assert current(a.config) == ("llama", str(gguf))
    a.use_model("qwen2.5-coder-1.5b-instruct-q4_k_m")
    assert current(a.config) == ("llama", "qwen2.5-coder-1.5b-instruct-q4_k_m")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("sd-turbo", "'sd-turbo' is not a planning model; choose one of: "),
        ("no-such-model", "or openai:MODEL"),
        ("openai:", "not a planning model"),
    ],
)
def test_a_name_that_cannot_plan_is_refused_and_nothing_changes(name, message):
    a = Assistant()
    with pytest.raises(ValueError, match=message):
        a.use_model(name)
    assert current(a.config) == ("llama", "qwen2.5-coder-1.5b-instruct-q4_k_m")


def test_an_assistant_given_a_planner_object_does_not_switch():
    a = Assistant(planner=NoPlanner("fixed"))
    with pytest.raises(ValueError, match="given a planner object"):
        a.use_model("qwen2.5-coder-1.5b-instruct-q4_k_m")
