"""Loading all-MiniLM-L6-v2 (from its offline pack) through the model manager: the first
``load()`` (resolve and verify the files, then transformers ``from_pretrained``) against the
second ``load()`` of the same name, which the manager answers from memory. Several rounds,
each in a fresh manager over the same cache. ``resolve_ms`` shows file resolution alone: in
a cold cache it hashes the 87 MB weights; after that it trusts the verified-marker.

Writes benchmarks/results/model_load.json. Target: the second use at least 20x faster.
Run: cd benchmarks && python model_load.py
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from results_io import write_results  # noqa: E402

from tools.models import ModelManager  # noqa: E402

NAME = "all-minilm-l6-v2"
ROUNDS = 7


def load_minilm(path: Path) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def main() -> None:
    import torch
    import transformers  # noqa: F401  (imported up front: not part of any timing)

    torch.set_num_threads(1)
    first, second, resolve = [], [], []
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(ROUNDS):
            manager = ModelManager(Path(cache), device="cpu")
            t0 = time.perf_counter()
            manager.resolve(NAME)
            resolve.append(time.perf_counter() - t0)
            manager = ModelManager(Path(cache), device="cpu")  # fresh: nothing loaded
            t0 = time.perf_counter()
            tokenizer, model = manager.load(NAME, load_minilm)
            first.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            again = manager.load(NAME, load_minilm)
            second.append(time.perf_counter() - t0)
            if again[1] is not model:
                raise SystemExit("the second load() built a new model")
            if len(first) < ROUNDS:  # free this round's model outside the timed sections
                del tokenizer, model, again, manager
                gc.collect()
        with torch.no_grad():
            out = model(**tokenizer(["a cat on a mat"], return_tensors="pt"))
        dim = int(out.last_hidden_state.shape[-1])
    ratio = statistics.median(first) / statistics.median(second)
    write_results(
        "model_load",
        {
            "model": NAME,
            "device": "cpu",
            "torch_threads": 1,
            "rounds": ROUNDS,
            "hidden_size": dim,
            "first_load_ms": [round(t * 1000, 1) for t in first],
            "second_load_us": [round(t * 1e6, 1) for t in second],
            "first_load_median_ms": round(statistics.median(first) * 1000, 1),
            "second_load_median_us": round(statistics.median(second) * 1e6, 1),
            "speedup_second_vs_first": round(ratio),
            "target_speedup": 20,
            "resolve_ms": {
                "cold_cache_hashes_weights": round(resolve[0] * 1000, 1),
                "warm_median": round(statistics.median(resolve[1:]) * 1000, 2),
            },
        },
    )


if __name__ == "__main__":
    main()
