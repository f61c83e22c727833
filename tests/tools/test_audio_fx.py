"""The audio editing tools (mix, fade, normalize, speed/pitch, effects, noise reduction) on
generated tones and a real LibriSpeech recording, and their errors on bad input."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import make_wav
from tools import ArtifactStore, Cancelled, Registry, ToolContext, ToolError
from tools.audio_effects import EffectName

pytest.importorskip("pedalboard")


def read(art) -> tuple[np.ndarray, int]:
    return sf.read(art.path, dtype="float32", always_2d=True)


def peak_hz(x: np.ndarray, rate: int) -> float:
    """The frequency of the strongest FFT bin of a mono signal."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)])


def band_db(x: np.ndarray, rate: int, lo: float, hi: float) -> float:
    """Energy (dB) of a mono signal between lo and hi Hz."""
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / rate)
    return float(10 * np.log10(spec[(f >= lo) & (f <= hi)].sum() + 1e-20))


def write(path: Path, data: np.ndarray, rate: int = 16000) -> Path:
    sf.write(path, data.astype(np.float32), rate)
    return path


def tones(path: Path, freqs: list[float], seconds: float = 1.0, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    return write(path, sum(0.2 * np.sin(2 * np.pi * f * t) for f in freqs), rate)


# --- mix_audio ---------------------------------------------------------------------------


def test_mix_matches_rates_channels_and_length(run, wav, tmp_path):
    stereo = make_wav(tmp_path / "st.wav", 1.0, rate=22050, channels=2, freq=220)
    res = run("mix_audio", [wav, stereo], audios=["$a1", "$a2"], offsets=[0, 1.5])
    data, rate = read(res.artifacts[0])
    assert (rate, data.shape[1]) == (22050, 2)
    assert len(data) / rate == pytest.approx(2.5, abs=0.001)  # the second clip ends at 2.5 s
    assert res.data["duration"] == pytest.approx(2.5, abs=0.001)
    assert not res.data["peak_limited"]  # 0.3 + 0.3 stays under the ceiling
    assert peak_hz(data[int(1.6 * rate) :, 0], rate) == pytest.approx(220, abs=5)


def test_mix_volumes_and_peak_limiting(run, wav, tmp_path):
    quiet = make_wav(tmp_path / "b.wav", 2.0, freq=1000)
    data, rate = read(
        run("mix_audio", [wav, quiet], audios=["$a1", "$a2"], volumes=[2, 0]).artifacts[0]
    )
    assert np.abs(data).max() == pytest.approx(0.6, abs=0.01)  # 2 x the 0.3 tone, nothing else
    assert peak_hz(data[:, 0], rate) == pytest.approx(440, abs=3)
    loud = run("mix_audio", [wav, quiet], audios=["$a1", "$a2"], volumes=[4, 4])
    data, _ = read(loud.artifacts[0])
    assert loud.data["peak_limited"] and loud.data["gain_reduction_db"] > 6
    assert np.abs(data).max() <= 10 ** (-0.3 / 20) + 1e-3  # no clipping


def test_mix_bad_arguments(run, wav):
    cases = [
        ({"volumes": [1.0]}, "volumes has 1 values for 2 clips; give one per clip"),
        ({"offsets": [0, 1, 2]}, "offsets has 3 values for 2 clips"),
        ({"volumes": [1.0, 5.0]}, "volumes.1: Input should be less than or equal to 4"),
    ]
    for extra, message in cases:
        with pytest.raises(ToolError, match=message):
            run("mix_audio", [wav, wav], audios=["$a1", "$a2"], **extra)
    with pytest.raises(ToolError, match="audios: List should have at least 2 items"):
        run("mix_audio", [wav], audios=["$a1"])


# --- fade_audio --------------------------------------------------------------------------


def test_fade_in_and_out(run, wav):
    res = run("fade_audio", [wav], audio="$a1", fade_in=0.5, fade_out=0.25)
    data, rate = read(res.artifacts[0])
    x = data[:, 0]
    assert (len(x), rate) == (32000, 16000)
    assert np.abs(x[:80]).max() < 0.01 * 0.3  # the first 5 ms are near silence
    assert np.abs(x[3900:4100]).max() == pytest.approx(0.15, abs=0.02)  # half way in: half
    assert np.abs(x[10000:20000]).max() == pytest.approx(0.3, abs=0.01)  # untouched middle
    assert np.abs(x[-40:]).max() < 0.01 * 0.3


def test_fade_curves_differ_in_the_middle(run, wav):
    mid = {}
    for curve in ("exponential", "linear", "logarithmic"):
        data, _ = read(run("fade_audio", [wav], audio="$a1", fade_in=1.0, curve=curve).artifacts[0])
        mid[curve] = np.abs(data[7800:8200, 0]).max() / 0.3
    assert mid["exponential"] < 0.1 < mid["linear"] < 0.6 < mid["logarithmic"]


def test_fade_errors(run, wav):
    with pytest.raises(ToolError, match="give fade_in and/or fade_out"):
        run("fade_audio", [wav], audio="$a1")
    with pytest.raises(
        ToolError, match="fade_out of 3s is longer than tone.wav, which lasts 2.00s"
    ):
        run("fade_audio", [wav], audio="$a1", fade_out=3)


# --- normalize_audio ---------------------------------------------------------------------


def lufs(art) -> float:
    import pyloudnorm

    data, rate = read(art)
    return pyloudnorm.Meter(rate).integrated_loudness(data.astype(np.float64))


def test_normalize_tone_reaches_target(run, tmp_path):
    stereo = make_wav(tmp_path / "st.wav", 2.0, rate=44100, channels=2, freq=440)
    res = run("normalize_audio", [stereo], audio="$a1", target_lufs=-23)
    assert lufs(res.artifacts[0]) == pytest.approx(-23, abs=0.5)
    assert res.data["lufs_before"] == pytest.approx(-11.2, abs=0.5)
    assert res.data["gain_db"] == pytest.approx(-11.8, abs=0.5)
    assert (res.data["sample_rate"], res.data["channels"]) == (44100, 2)


def test_normalize_speech_limits_the_true_peak(run, media):
    from scipy.signal import resample_poly

    res = run("normalize_audio", [media / "1284-1180-0003.flac"], audio="$a1", target_lufs=-12)
    art = res.artifacts[0]
    assert lufs(art) == pytest.approx(-12, abs=0.5)
    data, rate = read(art)
    true_peak = 20 * np.log10(np.abs(resample_poly(data, 4, 1, axis=0)).max())
    assert true_peak <= -1.0 + 0.1  # PCM16 rounding
    assert res.data["peak_limited_db"] > 0 and res.data["target_reached"]
    assert art.name.endswith(".flac") and rate == 16000


def test_normalize_errors(run, tmp_path):
    short = make_wav(tmp_path / "short.wav", 0.3)
    with pytest.raises(ToolError, match="lasts 0.300s; measuring loudness .* at least 0.4s"):
        run("normalize_audio", [short], audio="$a1")
    silent = write(tmp_path / "silent.wav", np.zeros(16000))
    with pytest.raises(ToolError, match="silent.wav is silent"):
        run("normalize_audio", [silent], audio="$a1")


# --- change_speed_pitch ------------------------------------------------------------------


def test_speed_two_halves_the_duration(run, tmp_path):
    stereo = make_wav(tmp_path / "st.wav", 2.0, rate=22050, channels=2, freq=440)
    data, rate = read(run("change_speed_pitch", [stereo], audio="$a1", speed=2).artifacts[0])
    assert (len(data), rate, data.shape[1]) == (22050, 22050, 2)
    assert peak_hz(data[:, 0], rate) == pytest.approx(440, rel=0.02)  # same pitch


def test_pitch_octave_up_keeps_duration(run, wav):
    res = run("change_speed_pitch", [wav], audio="$a1", semitones=12)
    data, rate = read(res.artifacts[0])
    assert (len(data), rate) == (32000, 16000)
    assert peak_hz(data[:, 0], rate) == pytest.approx(880, rel=0.02)


def test_slower_and_lower(run, wav):
    data, rate = read(
        run("change_speed_pitch", [wav], audio="$a1", speed=0.5, semitones=-12).artifacts[0]
    )
    assert len(data) == 64000
    assert peak_hz(data[:, 0], rate) == pytest.approx(220, rel=0.02)


def test_speed_pitch_errors(run, wav, tmp_path):
    with pytest.raises(ToolError, match="nothing to change"):
        run("change_speed_pitch", [wav], audio="$a1", speed=1, semitones=0)
    with pytest.raises(ToolError, match="speed: Input should be less than or equal to 4"):
        run("change_speed_pitch", [wav], audio="$a1", speed=5)
    short = make_wav(tmp_path / "blip.wav", 0.02)
    with pytest.raises(ToolError, match="blip.wav lasts 0.020s; .* at least 0.05s"):
        run("change_speed_pitch", [short], audio="$a1", speed=2)


# --- audio_effects -----------------------------------------------------------------------

EFFECTS = typing.get_args(EffectName)


def test_every_effect_changes_the_signal_and_keeps_the_format(run, tmp_path):
    src = make_wav(tmp_path / "st.wav", 0.5, rate=22050, channels=2, freq=440)
    dry, _ = sf.read(src, dtype="float32", always_2d=True)
    for effect in EFFECTS:
        res = run("audio_effects", [src], audio="$a1", effect=effect, amount=0.8)
        data, rate = read(res.artifacts[0])
        assert (rate, data.shape[1]) == (22050, 2), effect
        assert len(data) >= len(dry), effect
        assert np.abs(data[: len(dry)] - dry).max() > 0.01, effect
        assert res.data["mapping"], effect


def test_reverb_and_echo_keep_their_tail(run, wav):
    for effect in ("reverb", "echo"):
        res = run("audio_effects", [wav], audio="$a1", effect=effect, amount=1.0)
        data, rate = read(res.artifacts[0])
        assert res.data["tail_seconds"] > 0.2 and len(data) > 32000
        assert np.abs(data[32000 + 1600 :]).max() > 0.01  # still ringing after the clip ends


def test_lowpass_removes_a_high_tone(run, tmp_path):
    src = tones(tmp_path / "two.wav", [200, 4000])
    data, rate = read(
        run("audio_effects", [src], audio="$a1", effect="lowpass", amount=1).artifacts[0]
    )
    dry, _ = sf.read(src, dtype="float32")
    assert band_db(dry, rate, 3900, 4100) - band_db(data[:, 0], rate, 3900, 4100) > 40
    assert band_db(dry, rate, 150, 250) - band_db(data[:, 0], rate, 150, 250) < 6


def test_telephone_removes_low_frequencies(run, tmp_path):
    src = tones(tmp_path / "two.wav", [100, 1000])
    data, rate = read(
        run("audio_effects", [src], audio="$a1", effect="telephone", amount=0.5).artifacts[0]
    )
    x = data[1600:, 0]  # past the filter's start-up
    assert band_db(x, rate, 1, 299) < band_db(x, rate, 300, 3400) - 25


def test_effect_errors(run, wav, tmp_path):
    with pytest.raises(ToolError, match="effect: Input should be 'reverb', 'echo'"):
        run("audio_effects", [wav], audio="$a1", effect="flanger")
    with pytest.raises(ToolError, match="amount: Input should be less than or equal to 1"):
        run("audio_effects", [wav], audio="$a1", effect="reverb", amount=2)
    blip = write(tmp_path / "blip.wav", np.full(100, 0.1))
    with pytest.raises(ToolError, match="blip.wav lasts 0.006s; an effect needs at least 0.01s"):
        run("audio_effects", [blip], audio="$a1", effect="reverb")


def test_effects_stop_when_cancelled(tmp_path, wav):
    ctx = ToolContext(store=ArtifactStore(tmp_path / "store"), workspace=tmp_path)
    ctx.refs["a1"] = [ctx.store.add_file(wav)]
    ctx.cancel_event.set()
    with pytest.raises(Cancelled):
        Registry.discover().get("audio_effects")(ctx, audio="$a1", effect="echo")


# --- reduce_noise ------------------------------------------------------------------------


def noisy_bursts(path: Path, channels: int = 1) -> tuple[Path, np.ndarray]:
    """2 s of a 440 Hz tone switching on and off every 0.25 s, over white noise."""
    rate = 16000
    t = np.arange(2 * rate) / rate
    on = (t * 4).astype(int) % 2 == 0
    rng = np.random.default_rng(0)
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * on
    data = np.stack([x + 0.03 * rng.standard_normal(len(t)) for _ in range(channels)], 1)
    return write(path, data, rate), on


def db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x**2) + 1e-20))


def test_reduce_noise_lowers_the_noise_floor(run, tmp_path):
    src, on = noisy_bursts(tmp_path / "noisy.wav", channels=2)
    dry, _ = sf.read(src, dtype="float32")
    res = run("reduce_noise", [src], audio="$a1", strength=0.9)
    data, rate = read(res.artifacts[0])
    assert data.shape == dry.shape and rate == 16000
    gaps = ~on
    gaps[np.flatnonzero(np.diff(on.astype(int))) + 1] = False  # away from the edges
    for c in range(2):
        assert db(data[gaps, c]) < db(dry[gaps, c]) - 10  # noise between the bursts
        kept = band_db(data[on, c], rate, 430, 450) - band_db(dry[on, c], rate, 430, 450)
        assert kept > -4  # the tone itself survives
    assert res.data["noise_floor_after_db"] < res.data["noise_floor_before_db"] - 10


def test_reduce_noise_strength_sets_how_much_goes(run, tmp_path):
    src, on = noisy_bursts(tmp_path / "noisy.wav")
    dry, _ = sf.read(src, dtype="float32")
    gaps = {}
    for strength in (0, 0.3, 0.9):
        data, _ = read(run("reduce_noise", [src], audio="$a1", strength=strength).artifacts[0])
        gaps[strength] = db(data[~on, 0])
    assert gaps[0] == pytest.approx(db(dry[~on]), abs=0.01)  # strength 0 keeps everything
    assert gaps[0] - 2 > gaps[0.3] > gaps[0.9] + 5


def test_reduce_noise_edge_cases(run, tmp_path):
    short = make_wav(tmp_path / "short.wav", 0.3)
    with pytest.raises(ToolError, match="short.wav lasts 0.300s; .* at least 0.5s"):
        run("reduce_noise", [short], audio="$a1")
    silent = write(tmp_path / "silent.wav", np.zeros(16000))
    data, _ = read(run("reduce_noise", [silent], audio="$a1").artifacts[0])
    assert len(data) == 16000 and not np.any(data)
