"""A tiny random-weight VITS (the MMS-TTS architecture) with its character tokenizer, saved with
``save_pretrained`` so tests load it back through the ``from_pretrained`` path real MMS-TTS
voices take. It speaks noise, at the configured sampling rate, about 256 samples per
character (the upsampling product) at speaking rate 1.
"""

from __future__ import annotations

import json
from pathlib import Path

CHARS = list(" abcdefghijklmnopqrstuvwxyz0123456789'-")
"""The vocabulary after the blank (id 0): lower-case letters, digits, space, ' and -, as in
MMS-TTS English (which drops other punctuation)."""
SAMPLING_RATE = 16_000


def build_tiny_vits(
    folder: Path, language: str = "eng", sampling_rate: int = SAMPLING_RATE, seed: int = 0
) -> Path:
    """Write the model (config.json, model.safetensors) and tokenizer files to ``folder``;
    ``language`` (an ISO 639-3 code, as MMS-TTS tokenizers record it) is the voice's."""
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, **{c: i for i, c in enumerate(CHARS, 1)}, "<unk>": len(CHARS) + 1}
    vocab_file = folder / "vocab.json"
    vocab_file.write_text(json.dumps(vocab))
    tokenizer = VitsTokenizer(
        vocab_file=str(vocab_file),
        language=language,
        add_blank=True,
        normalize=True,
        phonemize=False,
        is_uroman=False,
    )
    config = VitsConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        flow_size=16,
        spectrogram_bins=17,
        upsample_initial_channel=16,
        upsample_rates=[8, 8, 4],
        upsample_kernel_sizes=[16, 16, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        duration_predictor_filter_channels=16,
        duration_predictor_num_flows=1,
        depth_separable_num_layers=1,
        prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1,
        sampling_rate=sampling_rate,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    VitsModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
