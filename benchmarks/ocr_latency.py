"""OCR latency per photo: rapidocr with its bundled PP-OCR models (tools.ocr), engine loaded
once (its load timed apart), then every .jpg photo in ../shared/media read a few times.

Per photo: the median seconds of a warm read (decode excluded), the first read's seconds, the
lines found at the read_text default confidence (0.5). Writes benchmarks/results/ocr_latency.json.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from results_io import write_results

from tools.ocr import BUNDLED, OCR_VERSION, build_engine, read_lines, upright_rgb

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
ROUNDS = 3
MIN_CONFIDENCE = 0.5


def main() -> None:
    from PIL import Image

    photos = sorted(MEDIA.glob("*.jpg"))
    if not photos:
        sys.exit(f"no .jpg photos in {MEDIA}")
    t0 = time.perf_counter()
    engine = build_engine()
    load_s = time.perf_counter() - t0
    per_photo = {}
    for photo in photos:
        with Image.open(photo) as img:
            rgb = upright_rgb(img)
        times = []
        for _ in range(ROUNDS + 1):
            t0 = time.perf_counter()
            lines = read_lines(engine, rgb, MIN_CONFIDENCE)
            times.append(time.perf_counter() - t0)
        per_photo[photo.name] = {
            "size": list(rgb.size),
            "first_s": round(times[0], 3),
            "median_s": round(statistics.median(times[1:]), 3),
            "lines": len(lines),
            "text": " / ".join(line["text"] for line in lines)[:120],
        }
    medians = [p["median_s"] for p in per_photo.values()]
    write_results(
        "ocr_latency",
        {
            "engine": f"rapidocr {OCR_VERSION} ({', '.join(BUNDLED.values())}), onnxruntime CPU",
            "photos": len(photos),
            "rounds": ROUNDS,
            "load_s": round(load_s, 3),
            "median_s_per_photo": round(statistics.median(medians), 3),
            "max_s_per_photo": round(max(medians), 3),
            "per_photo": per_photo,
        },
    )


if __name__ == "__main__":
    main()
