"""Tiny random-weight Whisper models, saved in each library's own format so the transcribe
tool loads them through the code path real weights take:

- openai-whisper: a ``.pt`` checkpoint ``{"dims", "model_state_dict"}``, as
  ``whisper.load_model`` reads it (its tokenizer ships inside the package, so nothing else is
  needed);
- transformers: a ``WhisperForConditionalGeneration`` folder written with ``save_pretrained``,
  with a ``WhisperProcessor`` built offline from a faster-whisper pack's ``tokenizer.json``.

Random weights decode gibberish (or nothing); the models keep decoding short so tests stay fast.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

ENGLISH_VOCAB = 51864
"""Tokens of an English-only Whisper (``.en``): GPT-2's 50257, specials, 1501 timestamps."""
MULTILINGUAL_VOCAB = 51865
"""Tokens of a multilingual Whisper with 99 languages."""
TIMESTAMPS = 1501
"""Timestamp tokens <|0.00|> .. <|30.00|>, every 0.02 s."""


def build_tiny_openai_whisper(path: Path, multilingual: bool = False, text_ctx: int = 32) -> Path:
    """Save a random tiny openai-whisper checkpoint at ``path`` (a ``.pt`` file).

    ``text_ctx`` bounds decoding: whisper samples at most ``text_ctx // 2`` tokens per window.
    """
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=32,
        n_audio_head=2,
        n_audio_layer=1,
        n_vocab=MULTILINGUAL_VOCAB if multilingual else ENGLISH_VOCAB,
        n_text_ctx=text_ctx,
        n_text_state=32,
        n_text_head=2,
        n_text_layer=1,
    )
    model = Whisper(dims)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


def build_tiny_hf_whisper(
    folder: Path, tokenizer_json: Path, alignment_heads: bool = True, max_length: int = 24
) -> Path:
    """Save a random WhisperForConditionalGeneration and its processor.

    Args:
        folder: Where to write (config.json, model.safetensors, generation_config.json,
            tokenizer and feature extractor files).
        tokenizer_json: A Whisper ``tokenizer.json`` from a faster-whisper folder: English-only
            (tiny.en) or multilingual (base); its timestamp tokens are added here, as the
            Hub's Whisper tokenizers have them.
        alignment_heads: Give the generation config alignment heads (needed for word
            timestamps); without them the tool falls back to segment timestamps.
        max_length: The most tokens one window decodes (keeps random decoding short).
    """
    import torch
    from tokenizers import AddedToken
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    tokenizer = WhisperTokenizerFast(tokenizer_file=str(tokenizer_json))
    stamps = [AddedToken(f"<|{i * 0.02:.2f}|>", lstrip=False, rstrip=False) for i in range(1501)]
    tokenizer.add_tokens(stamps)
    vocab = len(tokenizer)
    if vocab not in (ENGLISH_VOCAB, MULTILINGUAL_VOCAB):
        raise ValueError(f"{tokenizer_json} is not a Whisper tokenizer ({vocab} tokens)")
    multilingual = vocab == MULTILINGUAL_VOCAB
    ids = tokenizer.convert_tokens_to_ids
    eot, sot = ids("<|endoftext|>"), ids("<|startoftranscript|>")
    config = WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=80,
        d_model=32,
        encoder_layers=1,
        encoder_attention_heads=2,
        decoder_layers=1,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=64,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        decoder_start_token_id=sot,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    gen = GenerationConfig(
        bos_token_id=sot,
        decoder_start_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=max_length,
        is_multilingual=multilingual,
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        max_initial_timestamp_index=50,
        begin_suppress_tokens=[220, eot],
        suppress_tokens=[],
        return_timestamps=False,
    )
    if multilingual:
        languages = re.compile(r"^<\|[a-z]{2,3}\|>$")
        gen.lang_to_id = {
            tok: i for tok, i in tokenizer.get_added_vocab().items() if languages.match(tok)
        }
        gen.task_to_id = {task: ids(f"<|{task}|>") for task in ("transcribe", "translate")}
    if alignment_heads:
        gen.alignment_heads = [[0, 0], [0, 1]]
    model.generation_config = gen
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    WhisperProcessor(WhisperFeatureExtractor(), tokenizer).save_pretrained(folder)
    return folder
