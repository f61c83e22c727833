"""A tiny random-weight CLAP (transformers ``ClapModel``) with its processor, built offline.

The tokenizer is a byte-level BPE trained here on a few phrases and wrapped as RoBERTa's, as
CLAP's is; the feature extractor is CLAP's own (48 kHz, 64 mel bins, 10 s windows), set to
truncate rather than fuse, as for the unfused checkpoints. Saved with ``save_pretrained`` so
it loads through the same code path as laion/clap-htsat-unfused.
"""

from __future__ import annotations

from pathlib import Path


def build_tiny_clap(folder: Path, phrases: tuple[str, ...] = ()) -> Path:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        RobertaTokenizerFast,
    )

    from tools.audio_scene import SOUND_SCENES

    torch.manual_seed(0)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    corpus = [*SOUND_SCENES, *phrases] * 2
    bpe.train_from_iterator(corpus, vocab_size=400, min_frequency=1, special_tokens=specials)
    bpe._tokenizer.post_processor = RobertaProcessing(
        ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>"))
    )
    tokenizer = RobertaTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=64,
    )
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
        "max_position_embeddings": 70,
        "pad_token_id": tokenizer.pad_token_id,
    }
    audio = {
        "hidden_size": 32,
        "patch_embeds_hidden_size": 16,
        "depths": [1, 1],
        "num_attention_heads": [2, 2],
        "window_size": 4,
        "spec_size": 256,  # the extractor's 1001 frames must fit: spec_size * 256 // 64 >= 1001
        "num_mel_bins": 64,
        "enable_fusion": False,
    }
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16))
    extractor = ClapFeatureExtractor(feature_size=64, truncation="rand_trunc")
    model.save_pretrained(folder)
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
