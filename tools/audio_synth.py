"""Procedural music and sound, in numpy: the labelled fallback of generate_music and
generate_sound where no generator model is installed.

Nothing here pretends to be a model. A piece of music is a chord progression, a seeded melody,
an optional bass line and simple drums, in a tempo, key, mode and timbre picked from hints or
from words in the prompt; a sound is shaped noise (rain, wind, waves, fire, an engine or hum,
beeps and alarms, else a generic texture). The same parameters and seed give the same samples.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

RATE = 32_000
"""Sample rate of every procedural clip (MusicGen's)."""
NOTES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
PROGRESSIONS = {  # scale degrees, one chord a bar
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 0, 4), (0, 3, 4, 3)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 5, 3, 4), (0, 6, 5, 6)),
}
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII")
SLOW = "calm slow ambient relaxing relaxed chill lullaby peaceful meditation sleep soft gentle "
SLOW += "dreamy ballad lofi lo-fi quiet"
FAST = "fast upbeat energetic dance techno edm house rock punk metal action party workout"
MINOR_WORDS = "sad dark melancholy melancholic minor somber sombre moody gloomy tense horror "
MINOR_WORDS += "spooky mysterious tragic lonely eerie"
MAJOR_WORDS = "happy bright joyful cheerful major uplifting sunny playful triumphant"
INSTRUMENTS = {  # timbre: instruments named in the prompt, the first one wins
    "piano": "piano keys keyboard",
    "guitar": "guitar ukulele harp banjo",
    "strings": "strings violin viola cello orchestra",
    "organ": "organ",
    "synth": "synth synthesizer",
    "bell": "bell bells glockenspiel celesta marimba",
}
STYLE_TIMBRES = {  # else a timbre that suits the style
    "guitar": "acoustic folk country",
    "strings": "ambient cinematic orchestral pad epic",
    "organ": "church gospel",
    "synth": "electronic techno edm chiptune 8-bit retro house",
    "bell": "lullaby",
}
DRUM_WORDS = "drums drum beat beats percussion rock dance hip-hop techno edm house pop funk groove"
SOUND_KINDS = {
    "rain": "rain raining rainy drizzle shower downpour storm thunder thunderstorm",
    "wind": "wind windy breeze gust gusts blizzard howling",
    "ocean": "ocean waves wave sea surf beach shore",
    "fire": "fire crackle crackling campfire fireplace bonfire flames",
    "engine": "engine motor hum humming machine car truck generator drone fan idle",
    "alarm": "beep beeps beeping alarm siren buzzer timer bleep",
}


def _words(prompt: str) -> list[str]:
    return re.findall(r"[a-z0-9-]+", prompt.lower())


def _first(words: list[str], table: dict[str, str]) -> tuple[str, str] | None:
    """The entry of ``table`` whose word comes first in ``words``, with that word."""
    for word in words:
        for name, keys in table.items():
            if word in keys.split():
                return name, word
    return None


def _has(words: list[str], keys: str) -> bool:
    return any(w in keys.split() for w in words)


@dataclass(frozen=True)
class MusicPlan:
    """What a procedural piece is made of; reported in the artifact's metadata."""

    tempo: int
    key: str
    mode: str
    instrument: str
    drums: bool
    bass: bool
    progression: tuple[int, ...]

    def describe(self) -> dict[str, Any]:
        out = asdict(self)
        scale = SCALES[self.mode]
        major = [(scale[(d + 2) % 7] - scale[d]) % 12 == 4 for d in self.progression]
        roman = [
            ROMAN[d] if up else ROMAN[d].lower()
            for d, up in zip(self.progression, major, strict=True)
        ]
        out["progression"] = "-".join(roman)
        return out


def plan_music(
    prompt: str,
    seed: int,
    tempo: int | None = None,
    key: str | None = None,
    mode: str | None = None,
) -> MusicPlan:
    """Tempo, key, mode and timbre from the hints, else from words in the prompt
    ("calm" is slow, "sad" minor, "piano" a piano ...), else seeded choices."""
    rng = np.random.default_rng([seed, 1])
    words = _words(prompt)
    if tempo is None:
        base = 72 if _has(words, SLOW) else 128 if _has(words, FAST) else 100
        base = 84 if base == 100 and _has(words, MINOR_WORDS) else base
        tempo = base + int(rng.integers(-4, 5))
    if mode is None:
        mode = "minor" if _has(words, MINOR_WORDS) and not _has(words, MAJOR_WORDS) else "major"
    if key is None:
        named = re.search(r"\bin ([A-G][#b]?)\b", prompt)
        key = named.group(1) if named else str(rng.choice(["C", "D", "Eb", "F", "G", "A", "Bb"]))
    key = key[0].upper() + key[1:]
    found = _first(words, INSTRUMENTS) or _first(words, STYLE_TIMBRES)
    instrument = found[0] if found else "piano"
    no_drums = re.search(r"\b(no|without) (drums|percussion|beat)", prompt.lower())
    drums = _has(words, DRUM_WORDS) and not no_drums
    bass = drums or "bass" in words
    options = PROGRESSIONS[mode]
    progression = options[int(rng.integers(len(options)))]
    return MusicPlan(tempo, key, mode, instrument, bool(drums), bass, progression)


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _tone(freq: float, seconds: float, timbre: str) -> np.ndarray:
    """One note: a sum of partials under an envelope that suits the timbre."""
    n = max(1, int(seconds * RATE))
    t = np.arange(n) / RATE
    if timbre == "bell":
        partials = [(1.0, 1.0, 1.6), (2.76, 0.4, 0.7), (5.4, 0.2, 0.35), (8.93, 0.1, 0.2)]
    elif timbre in ("strings", "organ", "synth"):
        count = {"strings": 8, "organ": 6, "synth": 12}[timbre]
        ratios = (1, 2, 3, 4, 6, 8) if timbre == "organ" else range(1, count + 1)
        partials = [(float(k), 1.0 / (i + 1), 99.0) for i, k in enumerate(ratios)]
    else:  # piano and guitar: struck or plucked, upper partials fade first
        tau = 1.2 if timbre == "piano" else 0.6
        partials = [(k * (1 + 0.0004 * k * k), 1.0 / k**1.3, tau / k**0.5) for k in range(1, 8)]
    wave = np.zeros(n)
    # Vibrato on strings: 5 Hz, +-0.4 %; the phase is the integral of the wobbling frequency.
    clock = t - 0.004 / (2 * np.pi * 5) * np.cos(2 * np.pi * 5 * t) if timbre == "strings" else t
    for ratio, amp, decay in partials:
        f = freq * ratio
        if f < RATE * 0.45:
            wave += amp * np.sin(2 * np.pi * f * clock) * np.exp(-t / decay)
    attack = {"strings": 0.25, "organ": 0.02, "synth": 0.03}.get(timbre, 0.004)
    env = np.minimum(1.0, t / attack)
    release = min(0.08, seconds / 4)
    env *= np.clip((seconds - t) / release, 0.0, 1.0)
    return wave * env / max(1.0, sum(a for _, a, _ in partials) * 0.6)


def _drum(kind: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.35 * RATE)) / RATE
    if kind == "kick":
        sweep = 45 + 80 * np.exp(-t / 0.03)
        return np.sin(2 * np.pi * np.cumsum(sweep) / RATE) * np.exp(-t / 0.18)
    noise = rng.standard_normal(len(t))
    if kind == "snare":
        body = 0.5 * np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.05)
        return 0.5 * (np.diff(noise, prepend=0) * np.exp(-t / 0.07) + body)
    return 0.25 * np.diff(np.diff(noise, prepend=0), prepend=0) * np.exp(-t / 0.025)  # hi-hat


def _place(buf: np.ndarray, start: float, sound: np.ndarray, gain: float, pan: float) -> None:
    """Mix ``sound`` into the stereo ``buf`` at ``start`` seconds; pan -1 (left) .. 1."""
    i = int(start * RATE)
    if i >= len(buf):
        return
    part = sound[: len(buf) - i] * gain
    buf[i : i + len(part), 0] += part * (1 - pan) / 2 * 1.4
    buf[i : i + len(part), 1] += part * (1 + pan) / 2 * 1.4


def render_music(
    plan: MusicPlan, seconds: float, seed: int, tick: Callable[[float], None] | None = None
) -> np.ndarray:
    """``seconds`` of stereo float32 music at ``RATE``; ``tick(fraction)`` runs once a bar
    (it may raise to stop)."""
    rng = np.random.default_rng([seed, 2])
    frames = round(seconds * RATE)
    buf = np.zeros((frames, 2))
    scale = SCALES[plan.mode]
    root = 60 + NOTES[plan.key[0]] + {"#": 1, "b": -1}.get(plan.key[1:], 0)
    beat = 60.0 / plan.tempo
    bar = 4 * beat
    step = beat if plan.tempo < 90 else beat / 2  # melody notes: quarters when slow
    sustained = plan.instrument in ("strings", "organ", "synth")
    drums = {k: _drum(k, rng) for k in ("kick", "snare", "hat")} if plan.drums else {}
    degree, bars = 7, int(np.ceil(seconds / bar))

    def pitch(d: int) -> int:
        return root + 12 * (d // 7) + scale[d % 7]

    for b in range(bars):
        if tick:
            tick(b / bars)
        start, chord = b * bar, plan.progression[b % len(plan.progression)]
        triad = [chord, chord + 2, chord + 4]
        if sustained:
            for d in triad:
                _place(buf, start, _tone(_midi_hz(pitch(d) - 12), bar, plan.instrument), 0.22, 0.3)
        else:
            for half in (0, 2):
                for j, d in enumerate(triad):  # a slight strum
                    note = _tone(_midi_hz(pitch(d) - 12), 2 * beat, plan.instrument)
                    _place(buf, start + half * beat + 0.012 * j, note, 0.2, 0.3)
        if plan.bass:
            for k in range(0, 4, 1 if plan.tempo >= 110 else 2):
                note = _tone(_midi_hz(pitch(chord) - 24), beat * 0.95, "guitar")
                _place(buf, start + k * beat, note, 0.45, 0.0)
        for k in range(4):
            hit = start + k * beat
            if drums:
                _place(buf, hit, drums["kick" if k % 2 == 0 else "snare"], 0.55, 0.0)
                _place(buf, hit, drums["hat"], 0.4, 0.4)
                _place(buf, hit + beat / 2, drums["hat"], 0.3, 0.4)
        t = start
        while t < start + bar - 1e-9:
            strong = abs((t - start) / beat - round((t - start) / beat)) < 1e-6
            if strong and rng.random() < 0.6:  # chord tones on the beat
                target = chord + 7 + 2 * int(rng.integers(3))
                degree += int(np.clip(target - degree, -3, 3))
            else:
                degree += int(rng.choice([-2, -1, -1, 0, 1, 1, 2]))
            degree = int(np.clip(degree, 4, 13))
            length = step * (2 if rng.random() < 0.25 else 1)
            if rng.random() > 0.1:
                note = _tone(_midi_hz(pitch(degree)), length * 1.1, plan.instrument)
                _place(buf, t, note, 0.38, -0.3)
            t += length
    return _finish(buf, seconds)


def _finish(buf: np.ndarray, seconds: float) -> np.ndarray:
    """Peak-normalise to -2 dBFS and fade in and out, so the clip starts and ends cleanly."""
    peak = float(np.abs(buf).max())
    if peak > 0:
        buf = buf * (0.8 / peak)
    fade_in, fade_out = int(0.01 * RATE), int(min(1.0, seconds * 0.1) * RATE)
    buf[:fade_in] *= np.linspace(0, 1, fade_in)[:, None]
    if fade_out:
        buf[-fade_out:] *= np.linspace(1, 0, fade_out)[:, None]
    return buf.astype(np.float32)


# --- sound ------------------------------------------------------------------------------------


def plan_sound(prompt: str) -> dict[str, Any]:
    """Which noise recipe fits the prompt, by its first keyword (else a generic texture)."""
    words = _words(prompt)
    found = _first(words, SOUND_KINDS)
    kind, word = found if found else ("texture", None)
    heavy = _has(words, "heavy downpour storm thunderstorm loud strong intense")
    light = _has(words, "light drizzle gentle soft quiet distant")
    intensity = "heavy" if heavy else "light" if light else "medium"
    params: dict[str, Any] = {"kind": kind, "keyword": word, "intensity": intensity}
    if kind == "rain":
        params["thunder"] = _has(words, "storm thunder thunderstorm")
    if kind == "engine":
        params["hum"] = _has(words, "hum humming") and not _has(words, "engine motor car truck")
    if kind == "alarm":
        params["style"] = next((w for w in ("siren", "alarm", "buzzer") if w in words), "beep")
    return params


def _shaped(rng: np.random.Generator, n: int, tilt: float, lo: float, hi: float) -> np.ndarray:
    """Noise with a 1/f**tilt power spectrum between ``lo`` and ``hi`` Hz, unit peak."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    gain = np.where(f > 0, np.maximum(f, 1.0) ** (-tilt / 2), 0.0)
    gain *= 1 / (1 + (lo / np.maximum(f, 1e-3)) ** 4) / (1 + (f / hi) ** 4)
    out = np.fft.irfft(spec * gain, n)
    return out / (np.abs(out).max() or 1.0)


def _drift(rng: np.random.Generator, n: int, every: float, low: float, high: float) -> np.ndarray:
    """A slow random envelope between ``low`` and ``high``, a new target every ``every`` s."""
    points = max(2, int(n / (every * RATE)) + 2)
    knots = rng.uniform(low, high, points)
    x = np.linspace(0, points - 1, n)
    i = np.minimum(x.astype(int), points - 2)
    w = (1 - np.cos(np.pi * (x - i))) / 2
    return knots[i] * (1 - w) + knots[i + 1] * w


def _events(
    rng: np.random.Generator, out: np.ndarray, per_second: float, make: Callable[[], np.ndarray]
) -> None:
    """Add ``make()`` at Poisson-random times (drops, crackles)."""
    count = rng.poisson(per_second * len(out) / RATE)
    for at in np.sort(rng.integers(0, len(out), count)):
        grain = make()[: len(out) - at]
        out[at : at + len(grain)] += grain


def _decay(rng: np.random.Generator, freq: float, tau: float, amp: float) -> np.ndarray:
    t = np.arange(int(tau * 6 * RATE) + 1) / RATE
    return amp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.28)) * np.exp(-t / tau)


def render_sound(params: dict[str, Any], seconds: float, seed: int) -> np.ndarray:
    """``seconds`` of mono float32 sound at ``RATE`` following ``plan_sound``'s params."""
    rng = np.random.default_rng([seed, 3])
    n = round(seconds * RATE)
    kind = params["kind"]
    scale = {"light": 0.5, "medium": 1.0, "heavy": 2.0}[params["intensity"]]
    t = np.arange(n) / RATE
    if kind == "rain":
        out = 0.5 * _shaped(rng, n, 1.0, 400, 9000) * _drift(rng, n, 3.0, 0.8, 1.0)
        _events(rng, out, 40 * scale, lambda: _decay(rng, rng.uniform(2e3, 6e3), 0.004, 0.3))
        if params.get("thunder"):
            rumble = _shaped(rng, n, 2.0, 20, 200)
            for at in rng.uniform(0, max(seconds - 1, 0.1), 1 + int(seconds // 8)):
                out += 1.5 * rumble * np.exp(-np.maximum(t - at, 0) / 2.5) * (t >= at)
    elif kind == "wind":
        out = _shaped(rng, n, 1.5, 120, 1500) * _drift(rng, n, 2.5, 0.15, 1.0)
        out += 0.4 * _shaped(rng, n, 0.5, 500, 1100) * _drift(rng, n, 1.7, 0.0, 1.0) ** 2
    elif kind == "ocean":
        swell = np.zeros(n)
        at = -rng.uniform(0, 4)
        while at < seconds:  # one wave after another, each 6-10 s
            period = rng.uniform(6, 10)
            phase = np.clip((t - at) / period, 0, 1)
            swell += rng.uniform(0.6, 1.0) * np.sin(np.pi * phase) ** 3
            at += period * 0.8
        out = _shaped(rng, n, 1.8, 40, 2500) * (0.15 + swell)
        out += 0.3 * _shaped(rng, n, 0.7, 2000, 7000) * np.roll(swell, int(0.8 * RATE)) ** 2
    elif kind == "fire":
        out = 0.4 * _shaped(rng, n, 2.0, 30, 300) * _drift(rng, n, 1.0, 0.5, 1.0)
        crackle = lambda: min(rng.pareto(3), 3.0) * rng.standard_normal(64) * 0.15  # noqa: E731
        _events(rng, out, 12 * scale, crackle)
        _events(rng, out, 1.5 * scale, lambda: _decay(rng, rng.uniform(300, 900), 0.01, 0.5))
    elif kind == "engine":
        f0 = (50.0 if params.get("hum") else rng.uniform(28, 45)) * _drift(rng, n, 1.5, 0.98, 1.02)
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        out = sum(np.sin(k * phase) / k ** (0.8 if k % 2 else 1.2) for k in range(1, 12))
        out = out / 3 + 0.25 * _shaped(rng, n, 1.5, 30, 1200)
    elif kind == "alarm":
        style = params["style"]
        if style == "siren":
            sweep = 900 + 300 * np.sin(2 * np.pi * t / 1.5)
            out = np.sin(2 * np.pi * np.cumsum(sweep) / RATE)
        else:
            freq, on, cycle = {"alarm": (880, 0.25, 0.5), "buzzer": (220, 0.6, 1.0)}.get(
                style, (1000, 0.15, 0.5)
            )
            alt = (
                np.where((t % (2 * cycle)) < cycle, freq, freq * 0.75) if style == "alarm" else freq
            )
            gate = np.clip(np.minimum(t % cycle, on - t % cycle) / 0.005, 0, 1)
            out = (np.sin(2 * np.pi * alt * t) + 0.3 * np.sin(6 * np.pi * alt * t)) * gate
    else:  # a generic texture: band-limited noise that breathes, with a few grains
        centre = rng.uniform(200, 3000)
        out = _shaped(rng, n, 1.0, centre / 2, centre * 2) * _drift(rng, n, 2.0, 0.3, 1.0)
        _events(rng, out, 3, lambda: _decay(rng, centre * rng.uniform(0.5, 2), 0.05, 0.3))
    return _finish(np.asarray(out, dtype=float)[:, None], seconds)[:, 0]
