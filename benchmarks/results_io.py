"""Where benchmarks write their figures: benchmarks/results/NAME.json, also printed."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def write_results(name: str, figures: dict[str, Any]) -> Path:
    out = {
        "benchmark": name,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **figures,
    }
    dest = Path(__file__).parent / "results" / f"{name}.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return dest
