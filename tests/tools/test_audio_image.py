"""audio_to_image's spectrogram and waveform pictures on tones, silence and real speech,
and its errors on bad input. (The 'scene' style is the integrator's and is not tested here.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tests.conftest import make_wav
from tools import ToolError
from tools.audio_image import BACKGROUND, MAGMA


def picture(res) -> np.ndarray:
    img = Image.open(res.artifacts[0].path)
    assert img.format == "PNG" and img.mode == "RGB"
    return np.asarray(img).astype(int)


def plot_of(res, pixels: np.ndarray) -> np.ndarray:
    left, top, right, bottom = res.data["plot_box"]
    return pixels[top:bottom, left:right]


def brightest_row(plot: np.ndarray) -> int:
    return int(np.argmax(plot.sum(axis=2).mean(axis=1)))


def mel(hz: float) -> float:
    return 2595 * np.log10(1 + hz / 700)


@pytest.mark.parametrize("freq", [440, 3000])
def test_tone_spectrogram_is_brightest_at_its_frequency(run, tmp_path, freq):
    src = make_wav(tmp_path / "tone.wav", 1.0, rate=16000, freq=freq)
    res = run("audio_to_image", [src], audio="$a1", style="spectrogram", width=640, height=320)
    pixels = picture(res)
    assert pixels.shape == (320, 640, 3)
    plot = plot_of(res, pixels)
    assert res.data["frequency_scale"] == "mel" and res.data["max_hz"] == 8000
    expected = (1 - mel(freq) / mel(8000)) * len(plot)  # low frequencies at the bottom
    assert brightest_row(plot) == pytest.approx(expected, abs=3)
    assert not res.data["silent"] and res.artifacts[0].name == "tone-spectrogram.png"


def test_spectrogram_of_stereo_speech_has_axes(run, media, tmp_path):
    speech, rate = sf.read(media / "1284-1180-0003.flac", dtype="float32")
    stereo = tmp_path / "speech.flac"
    sf.write(stereo, np.stack([speech, 0.5 * speech], 1), rate)
    res = run("audio_to_image", [stereo], audio="$a1", style="spectrogram", width=800, height=400)
    pixels = picture(res)
    assert pixels.shape == (400, 800, 3) and res.data["channels"] == 2
    left, top, right, bottom = res.data["plot_box"]
    assert 0 < left < 80 and bottom < 400  # room for the kHz and time labels
    labels = pixels[bottom + 3 :, left:right]
    assert (np.abs(labels - BACKGROUND).sum(axis=2) > 200).any()  # light text below the plot
    plot = plot_of(res, pixels)
    # Speech is loudest in its low harmonics: the bottom third outshines the top third.
    third = len(plot) // 3
    assert plot[-third:].sum() > 2 * plot[:third].sum()


def test_waveform_has_one_lane_per_channel(run, tmp_path):
    rate = 16000
    t = np.arange(rate) / rate
    src = tmp_path / "left.wav"
    sf.write(src, np.stack([0.5 * np.sin(2 * np.pi * 1000 * t), np.zeros(rate)], 1), rate)
    res = run("audio_to_image", [src], audio="$a1", style="waveform", width=500, height=300)
    pixels = picture(res)
    assert pixels.shape == (300, 500, 3)
    plot = plot_of(res, pixels)
    lit = (np.abs(plot - BACKGROUND).sum(axis=2) > 60).sum(axis=0)  # lit pixels per column
    half = len(plot) // 2
    upper = (np.abs(plot[:half] - BACKGROUND).sum(axis=2) > 60).sum(axis=0)
    # The tone's lane (top) spans about half its height; the silent lane is a flat line.
    assert np.median(upper) == pytest.approx(0.5 * half, rel=0.1)
    assert np.median(lit - upper) <= 2


def test_small_picture_has_no_axes(run, wav):
    res = run("audio_to_image", [wav], audio="$a1", style="waveform", width=64, height=64)
    assert picture(res).shape == (64, 64, 3)
    assert res.data["plot_box"] == [0, 0, 64, 64]


def test_silence_gives_a_dark_spectrogram_and_a_flat_waveform(run, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(8000), 16000)
    res = run("audio_to_image", [silent], audio="$a1", style="spectrogram", width=300, height=200)
    assert res.data["silent"] and "silent" in res.summary
    plot = plot_of(res, picture(res))
    assert (plot == MAGMA[0]).all()  # the darkest colour everywhere
    res = run("audio_to_image", [silent], audio="$a1", style="waveform", width=300, height=200)
    lit = (np.abs(plot_of(res, picture(res)) - BACKGROUND).sum(axis=2) > 0).sum(axis=0)
    assert res.data["silent"] and lit.max() <= 1


def test_bad_input(run, wav, tmp_path: Path):
    blip = tmp_path / "blip.wav"
    sf.write(blip, np.full(200, 0.1), 44100)
    with pytest.raises(ToolError, match="blip.wav lasts 4.5 ms; a picture needs at least 10 ms"):
        run("audio_to_image", [blip], audio="$a1", style="waveform")
    with pytest.raises(ToolError, match="width: Input should be greater than or equal to 64"):
        run("audio_to_image", [wav], audio="$a1", style="spectrogram", width=10)
    with pytest.raises(ToolError, match="style: Input should be 'scene', 'spectrogram' or"):
        run("audio_to_image", [wav], audio="$a1", style="sonogram")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(ToolError, match="empty .0-byte. file"):
        run("audio_to_image", [empty], audio="$a1", style="waveform")
