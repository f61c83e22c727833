"""generate_image's overhead over calling the same diffusers pipeline directly: argument
validation, seeding, one progress report and cancel check per step, previews, and storing the
PNG, on a tiny random Stable Diffusion at 64x64 with 4 steps (the pipeline already loaded).

Writes benchmarks/results/image_gen_overhead.json. Target: under 5% with previews off and at
the default preview interval.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from results_io import write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.tiny_diffusion

ROUNDS = 41
STEPS = 4
SIZE = 64


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from tests.tiny_diffusion import build_tiny_sd
    from tools import ArtifactStore, ModelManager, ToolContext, ToolSettings
    from tools.image_gen import generate_image

    torch.set_num_threads(1)
    home = Path(tempfile.mkdtemp(prefix="anymodal-bench-"))
    folder = build_tiny_sd(home / "tiny-sd")
    models = ModelManager(home / "cache", device="cpu", dtype="float32")
    events: list[str] = []

    def context(preview_every: int) -> ToolContext:
        settings = ToolSettings(image={"generator": str(folder), "preview_every": preview_every})
        return ToolContext(
            store=ArtifactStore(home / "store"),
            workspace=home,
            settings=settings,
            models=models,
            progress_fn=lambda f, m, p: events.append(m),
        )

    args = {"prompt": "a red fox in the snow", "width": SIZE, "height": SIZE, "steps": STEPS}
    generate_image(context(0), **args, seed=0)  # loads the pipeline into the model manager
    pipe = models.load(f"diffusers:{folder}", lambda: None).pipe

    def direct(seed: int, encode: bool = False) -> None:
        out = pipe(
            prompt=args["prompt"],
            negative_prompt=None,
            width=SIZE,
            height=SIZE,
            num_inference_steps=STEPS,
            guidance_scale=7.5,
            num_images_per_prompt=1,
            generator=[torch.Generator("cpu").manual_seed(seed)],
        )
        if encode:  # what storing costs at least: the PNG encoding
            out.images[0].save(io.BytesIO(), format="PNG")

    def direct_png(seed: int) -> None:
        direct(seed, encode=True)

    figures: dict[str, dict] = {}
    for label, every in (("previews_off", 0), ("preview_every_4", 4), ("preview_every_1", 1)):
        ctx = context(every)

        def tool(seed: int, ctx: ToolContext = ctx) -> None:
            generate_image(ctx, **args, seed=seed)

        ours: list[float] = []
        theirs: list[float] = []
        theirs_png: list[float] = []
        for i in range(ROUNDS):
            seed = 1000 + i  # a new image each round: the store writes a new file every time
            order = [(ours, tool), (theirs, direct), (theirs_png, direct_png)]
            for times, fn in order[i % 3 :] + order[: i % 3]:
                t0 = time.perf_counter()
                fn(seed)
                times.append(time.perf_counter() - t0)
        tool_ms, direct_ms = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
        png_ms = statistics.median(theirs_png) * 1000
        figures[label] = {
            "tool_ms_median": round(tool_ms, 2),
            "direct_ms_median": round(direct_ms, 2),
            "direct_plus_png_encode_ms_median": round(png_ms, 2),
            "overhead_ms": round(tool_ms - direct_ms, 2),
            "overhead_percent": round((tool_ms - direct_ms) / direct_ms * 100, 2),
            "overhead_percent_vs_direct_plus_png": round((tool_ms - png_ms) / png_ms * 100, 2),
        }
        print(f"{label}: overhead {figures[label]['overhead_percent']}%", file=sys.stderr)
    write_results(
        "image_gen_overhead",
        {
            "model": "tiny random StableDiffusionPipeline (tests/tiny_diffusion.py)",
            "size": f"{SIZE}x{SIZE}",
            "steps": STEPS,
            "rounds": ROUNDS,
            "torch_threads": 1,
            "target_percent": 5.0,
            "results": figures,
        },
    )


if __name__ == "__main__":
    main()
