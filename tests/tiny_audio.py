"""Tiny random-weight audio generators, saved with ``save_pretrained`` so tests load them back
through the same ``from_pretrained`` path real weights (facebook/musicgen-small, cvssp/audioldm2,
stabilityai/stable-audio-open-1.0) take.

Every part is a few thousand parameters and every tokenizer is built here, offline, from a small
word list (a T5 Unigram, a RoBERTa byte-level BPE). The audio they make is noise, at the model's
sample rate and the asked length.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_WORDS = [
    "a",
    "an",
    "the",
    "of",
    "and",
    "with",
    "in",
    "for",
    "calm",
    "slow",
    "fast",
    "happy",
    "sad",
    "dark",
    "piano",
    "guitar",
    "bass",
    "drums",
    "song",
    "music",
    "beat",
    "rain",
    "wind",
    "ocean",
    "waves",
    "fire",
    "engine",
    "beep",
    "alarm",
    "sound",
    "ambience",
    "hammer",
    "wood",
    "dog",
    "bark",
    "birds",
]
_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"

MUSICGEN_RATE = 16_000
"""Sample rate of the tiny EnCodec (real MusicGen: 32 kHz)."""
MUSICGEN_FRAME_RATE = 25
"""Codec frames per second: 16 kHz / (8 * 5 * 4 * 4) (real MusicGen: 50)."""
AUDIOLDM2_RATE = 16_000
STABLE_AUDIO_RATE = 16_000
VOCODER_GAIN = 2e4


def t5_tokenizer(max_length: int = 32) -> Any:
    """A T5 tokenizer (a SentencePiece-style Unigram) over a few words and single letters."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -3.0)]
    vocab += [("\u2581" + w, -1.0 - i / 100) for i, w in enumerate(_WORDS)]
    vocab += [(c, -5.0) for c in _LETTERS]
    tok = T5Tokenizer(vocab=vocab, extra_ids=0)
    tok.model_max_length = max_length
    return tok


def tiny_t5_config(tok: Any, d_model: int = 16, d_kv: int = 4, d_ff: int = 32, **extra: Any) -> Any:
    """A one-layer T5 text-encoder config over ``tok`` (MusicGen, Stable Audio and AudioLDM2
    all condition on one)."""
    from transformers import T5Config

    return T5Config(
        vocab_size=len(tok),
        d_model=d_model,
        d_kv=d_kv,
        d_ff=d_ff,
        num_layers=1,
        num_heads=2,
        relative_attention_num_buckets=8,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        **extra,
    )


def roberta_tokenizer(folder: Path, max_length: int = 32) -> Any:
    """A RoBERTa byte-level BPE tokenizer over letters (CLAP's text side uses one)."""
    from transformers import RobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    letters = list(_LETTERS) + ["\u0120" + c for c in _LETTERS] + ["\u0120"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(specials + letters))}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = RobertaTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    tok.model_max_length = max_length
    return tok


def build_tiny_musicgen(folder: Path, seed: int = 0) -> Path:
    """A MusicGen (T5 text encoder, EnCodec codec, 2-codebook decoder) with its processor."""
    import torch
    from transformers import (
        EncodecConfig,
        EncodecFeatureExtractor,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
    )

    tok = t5_tokenizer()
    text = tiny_t5_config(tok, decoder_start_token_id=tok.pad_token_id)
    codec = EncodecConfig(
        sampling_rate=MUSICGEN_RATE,
        hidden_size=16,
        num_filters=4,
        upsampling_ratios=[8, 5, 4, 4],
        codebook_size=64,
        codebook_dim=16,
        num_lstm_layers=1,
        target_bandwidths=[0.4],
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=64,
        max_position_embeddings=256,
        num_hidden_layers=1,
        ffn_dim=32,
        num_attention_heads=2,
        hidden_size=16,
        num_codebooks=2,
        pad_token_id=64,  # one past the codebook, as in the real model (2048)
        bos_token_id=64,
    )
    torch.manual_seed(seed)
    model = MusicgenForConditionalGeneration(
        MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=decoder)
    )
    with torch.no_grad():  # the codec's codebooks are buffers, zero until trained: the decoded
        for layer in model.audio_encoder.quantizer.layers:  # audio would ignore the codes
            layer.codebook.embed.normal_()
    gen = model.generation_config  # as facebook/musicgen-small ships it
    gen.do_sample, gen.guidance_scale, gen.max_length = True, 3.0, 256
    gen.decoder_start_token_id = gen.pad_token_id = 64
    model.save_pretrained(folder)
    extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=MUSICGEN_RATE)
    MusicgenProcessor(feature_extractor=extractor, tokenizer=tok).save_pretrained(folder)
    return folder


def build_tiny_stable_audio(folder: Path, seed: int = 0) -> Path:
    """A Stable Audio pipeline: stereo 16 kHz, at most 4.096 s (256 latents x 256 samples)."""
    import torch
    from diffusers import (
        AutoencoderOobleck,
        EDMDPMSolverMultistepScheduler,
        StableAudioDiTModel,
        StableAudioPipeline,
        StableAudioProjectionModel,
    )
    from transformers import T5EncoderModel

    torch.manual_seed(seed)
    tok = t5_tokenizer()
    text_encoder = T5EncoderModel(tiny_t5_config(tok))
    transformer = StableAudioDiTModel(
        sample_size=256,
        in_channels=3,
        num_layers=1,
        attention_head_dim=4,
        num_attention_heads=2,
        num_key_value_attention_heads=1,
        out_channels=3,
        cross_attention_dim=8,
        time_proj_dim=8,
        global_states_input_dim=16,  # 2 x the projection's conditioning_dim
        cross_attention_input_dim=8,
    )
    vae = AutoencoderOobleck(
        encoder_hidden_size=4,
        downsampling_ratios=[4, 8, 8],
        channel_multiples=[1, 2, 2],
        decoder_channels=4,
        decoder_input_channels=3,
        audio_channels=2,
        sampling_rate=STABLE_AUDIO_RATE,
    )
    projection = StableAudioProjectionModel(
        text_encoder_dim=16, conditioning_dim=8, min_value=0, max_value=512
    )
    # The real model ships CosineDPMSolverMultistepScheduler, which needs torchsde; the EDM
    # solver the pipeline also accepts does not.
    scheduler = EDMDPMSolverMultistepScheduler(
        solver_order=2, prediction_type="v_prediction", sigma_data=1.0, sigma_schedule="exponential"
    )
    pipe = StableAudioPipeline(
        vae=vae,
        text_encoder=text_encoder,
        projection_model=projection,
        tokenizer=tok,
        transformer=transformer,
        scheduler=scheduler,
    )
    pipe.save_pretrained(folder)
    return folder


def build_tiny_audioldm2(folder: Path, seed: int = 0) -> Path:
    """An AudioLDM2 pipeline (CLAP + T5 + GPT-2 conditioning, a mel VAE, a HiFi-GAN vocoder):
    mono 16 kHz, any length (64 samples per mel frame)."""
    import torch
    from diffusers import (
        AudioLDM2Pipeline,
        AudioLDM2ProjectionModel,
        AudioLDM2UNet2DConditionModel,
        AutoencoderKL,
        DDIMScheduler,
    )
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapTextConfig,
        GPT2Config,
        GPT2LMHeadModel,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
        T5EncoderModel,
    )

    torch.manual_seed(seed)
    tokenizer = roberta_tokenizer(folder / "_tokenizer_src")
    tokenizer_2 = t5_tokenizer()
    clap_text = ClapTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_hidden_layers=1,
        max_position_embeddings=40,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=16,
    )
    clap_audio = ClapAudioConfig(
        spec_size=64,
        window_size=4,
        num_mel_bins=64,
        intermediate_size=32,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        num_hidden_layers=2,
        hidden_size=32,
        projection_dim=16,
        patch_size=2,
        patch_stride=2,
        patch_embed_input_channels=4,
    )
    text_encoder = ClapModel(
        ClapConfig(
            text_config=clap_text.to_dict(), audio_config=clap_audio.to_dict(), projection_dim=16
        )
    )
    feature_extractor = ClapFeatureExtractor(feature_size=64, sampling_rate=48_000, hop_length=7900)
    text_encoder_2 = T5EncoderModel(tiny_t5_config(tokenizer_2, d_model=32, d_kv=8, d_ff=37))
    language_model = GPT2LMHeadModel(
        GPT2Config(
            n_embd=16,
            n_head=2,
            n_layer=1,
            vocab_size=64,
            n_positions=64,
            bos_token_id=0,
            eos_token_id=1,
        )
    )
    language_model.config.max_new_tokens = 4
    projection = AudioLDM2ProjectionModel(
        text_encoder_dim=16, text_encoder_1_dim=32, langauge_model_dim=16
    )
    unet = AudioLDM2UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=([None, 16, 32], [None, 16, 32]),
        attention_head_dim=4,
    )
    vae = AutoencoderKL(
        block_out_channels=[8, 8],
        in_channels=1,
        out_channels=1,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )
    vocoder = SpeechT5HifiGan(
        SpeechT5HifiGanConfig(
            model_in_dim=8,
            sampling_rate=AUDIOLDM2_RATE,
            upsample_initial_channel=16,
            upsample_rates=[8, 8],
            upsample_kernel_sizes=[16, 16],
            resblock_kernel_sizes=[3],
            resblock_dilation_sizes=[[1, 3]],
            normalize_before=False,
        )
    )
    with torch.no_grad():  # random weights whisper (1e-5); loud enough to survive 16-bit WAVs
        vocoder.conv_post.weight.mul_(VOCODER_GAIN)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    pipe = AudioLDM2Pipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        projection_model=projection,
        language_model=language_model,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        feature_extractor=feature_extractor,
        unet=unet,
        scheduler=scheduler,
        vocoder=vocoder,
    )
    pipe.save_pretrained(folder)
    return folder


BUILDERS = {"stable-audio": build_tiny_stable_audio, "audioldm2": build_tiny_audioldm2}


def build_tiny_audio_pipeline(folder: Path, kind: str = "stable-audio", seed: int = 0) -> Path:
    """A tiny diffusers text-to-audio pipeline of ``kind`` ('stable-audio' or 'audioldm2')."""
    return BUILDERS[kind](folder, seed)
