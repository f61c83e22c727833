"""The model-free audio tools on real files, and their errors on bad ones."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import make_wav
from tools import ArtifactStore, ToolError, ToolSettings


def test_trim_keeps_the_asked_span(run, wav):
    art = run("trim_audio", [wav], audio="$a1", start=0.5, end=1.25).artifacts[0]
    data, rate = sf.read(art.path)
    assert rate == 16000 and len(data) == 12000
    assert art.metadata["duration"] == pytest.approx(0.75)
    with pytest.raises(ToolError, match="past the end of tone.wav, which lasts 2.00s"):
        run("trim_audio", [wav], audio="$a1", start=5)
    with pytest.raises(ToolError, match="end .0.2s. must be after start"):
        run("trim_audio", [wav], audio="$a1", start=1, end=0.2)


def test_concat_matches_rates_and_channels(run, wav, tmp_path):
    stereo = make_wav(tmp_path / "st.wav", 1.0, rate=22050, channels=2, freq=220)
    art = run("concat_audio", [wav, stereo], audios=["$a1", "$a2"], gap=0.5).artifacts[0]
    info = sf.info(art.path)
    assert info.samplerate == 22050 and info.channels == 2
    assert info.frames / info.samplerate == pytest.approx(3.5, abs=0.01)


def test_convert_format_rate_and_channels(run, wav):
    art = run("convert_audio", [wav], audio="$a1", format="flac", sample_rate=8000).artifacts[0]
    info = sf.info(art.path)
    assert (art.mime, info.samplerate, info.duration) == ("audio/flac", 8000, 2.0)
    ogg = run("convert_audio", [wav], audio="$a1", format="ogg", channels=2).artifacts[0]
    assert sf.info(ogg.path).channels == 2


def test_m4a_round_trip_through_bundled_ffmpeg(run, wav, tmp_path):
    m4a = run("convert_audio", [wav], audio="$a1", format="m4a").artifacts[0]
    assert m4a.mime == "audio/mp4"
    copy = tmp_path / "x.m4a"
    copy.write_bytes(m4a.read_bytes())
    back = run("convert_audio", [copy], audio="$a1", format="wav").artifacts[0]
    assert sf.info(back.path).duration == pytest.approx(2.0, abs=0.1)


def test_real_speech_flac(run, media):
    src = media / "1284-1180-0003.flac"
    total = sf.info(src).duration
    art = run("trim_audio", [src], audio="$a1", start=1.0).artifacts[0]
    assert art.name.endswith(".flac") and art.metadata["sample_rate"] == 16000
    assert art.metadata["duration"] == pytest.approx(total - 1.0, abs=0.001)


def _wav_header(rate: int, channels: int, data_bytes: int) -> bytes:
    block = channels * 2
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def test_bad_audio_files_get_clear_errors(run, tmp_path):
    cases = {
        "rate.wav": (_wav_header(5, 1, 64) + b"\0" * 64, "sample rate of 5 Hz"),
        "no_samples.wav": (_wav_header(16000, 1, 0), "no audio samples|not audio"),
        "noise.mp3": (b"\xff\xfb" + bytes(range(256)) * 4, "not audio anymodal can decode"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ToolError, match=message):
            run("trim_audio", [path], audio="$a1", start=0)


def test_header_claiming_ten_hours_decodes_only_what_is_there(run, tmp_path):
    liar = tmp_path / "ten_hours.wav"
    liar.write_bytes(_wav_header(16000, 1, 16000 * 2 * 36000) + b"\0" * 64)
    art = run("trim_audio", [liar], audio="$a1", start=0).artifacts[0]
    assert art.metadata["frames"] == 32  # 64 bytes of 16-bit samples, not ten hours


def test_audio_limit_is_configurable(run, wav):
    with pytest.raises(ToolError, match="limit is 0.0 hours"):
        run("trim_audio", [wav], settings=ToolSettings(max_audio_seconds=1), audio="$a1")


def test_zero_channel_array_is_refused(tmp_path):
    with pytest.raises(ToolError, match="shaped"):
        ArtifactStore(tmp_path).add_audio(np.zeros((10, 0)), 8000)


def test_zero_channel_and_truncated_files_get_clear_errors(run, tmp_path, media):
    zero = tmp_path / "zero.wav"
    zero.write_bytes(_wav_header(16000, 0, 64) + b"\0" * 64)
    with pytest.raises(ToolError, match="zero.wav is not audio anymodal can decode"):
        run("trim_audio", [zero], audio="$a1")
    speech = (media / "1284-1180-0003.flac").read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(speech[: len(speech) // 3])
    with pytest.raises(ToolError, match="cut.flac could not be decoded .* truncated or corrupt"):
        run("trim_audio", [cut], audio="$a1")


def test_unsupported_codec_names_the_formats_that_work(run, tmp_path):
    odd = tmp_path / "odd.wav"  # a WAV header whose format tag (0x1234) no decoder knows
    header = bytearray(_wav_header(16000, 1, 64))
    header[20:22] = struct.pack("<H", 0x1234)
    odd.write_bytes(bytes(header) + b"\0" * 64)
    with pytest.raises(ToolError, match="use WAV, FLAC, OGG, MP3 or M4A"):
        run("trim_audio", [odd], audio="$a1")
