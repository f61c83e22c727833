"""Speech synthesis speed: the piper joe voice (offline pack, onnxruntime CPU) through
tools.tts, its load timed apart, then three texts (a short line, a 15-word sentence, a
paragraph of seven sentences) spoken a few times each.

Per text: the audio seconds, the median seconds of a warm synthesis (every sentence of the
text, as speak does, without encoding), the first synthesis' seconds, the speed factor
(audio seconds per synthesis second; above 1 is faster than real time) and the median of the
whole speak call (splitting, synthesis, WAV encoding, storing). Writes
benchmarks/results/speak_rtf.json.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from results_io import write_results

from tools import ArtifactStore, ModelManager, ToolContext, ToolSettings
from tools.tts import find_voice, load_voice, speak, split_sentences, synthesize

VOICE = "piper-en_US-joe-medium"
ROUNDS = 3
TEXTS = {
    "short": "Hello there.",
    "sentence_15_words": (
        "The old lighthouse keeper walked slowly along the rocky shore every single morning "
        "before sunrise."
    ),
    "paragraph": (
        "Dr. Alvarez opened the clinic at seven, as she had for twenty years. The first patient "
        "was a fisherman with a cut hand, and the second a child with a fever of 38.5 degrees. "
        "By noon the waiting room was full. She worked without a break, listening more than "
        "she spoke. In the afternoon the rain came in from the sea... and the roads flooded. "
        "Nobody else arrived after four. She locked the door at six and walked home along the "
        "harbour, tired but content."
    ),
}


def main() -> None:
    models = ModelManager(device="cpu", dtype="float32")
    with tempfile.TemporaryDirectory(prefix="speak-rtf-") as tmp:
        ctx = ToolContext(
            store=ArtifactStore(Path(tmp) / "store"),
            workspace=Path(tmp),
            settings=ToolSettings(),
            models=models,
        )
        voice = find_voice(VOICE, models)
        if voice is None:
            sys.exit(f"{VOICE} names no voice")
        t0 = time.perf_counter()
        engine = load_voice(ctx, voice)
        load_s = time.perf_counter() - t0
        per_text = {}
        for label, text in TEXTS.items():
            pieces = [s for s, _ in split_sentences(text)]
            times, audio_s = [], 0.0
            for _ in range(ROUNDS + 1):
                t0 = time.perf_counter()
                audio_s = 0.0
                for piece in pieces:
                    samples, rate = synthesize(voice, engine, piece, 1.0)
                    audio_s += len(samples) / rate
                times.append(time.perf_counter() - t0)
            calls = []
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                result = speak(ctx, text=text)
                calls.append(time.perf_counter() - t0)
            synth_s = statistics.median(times[1:])
            per_text[label] = {
                "words": result.data["words"],
                "sentences": len(pieces),
                "audio_s": round(audio_s, 2),
                "spoken_file_s": result.data["duration"],
                "first_synthesis_s": round(times[0], 3),
                "synthesis_s": round(synth_s, 3),
                "speed_factor": round(audio_s / synth_s, 1),
                "speak_call_s": round(statistics.median(calls), 3),
            }
    write_results(
        "speak_rtf",
        {
            "voice": f"{VOICE} ({Path(voice.source).name}), piper-tts, onnxruntime CPU",
            "rounds": ROUNDS,
            "load_s": round(load_s, 3),
            "per_text": per_text,
        },
    )


if __name__ == "__main__":
    main()
