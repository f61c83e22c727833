"""Tiny random-weight video diffusion pipelines, saved with ``save_pretrained`` so tests load
them back through the same ``from_pretrained`` path real weights take.

- ``build_tiny_text_to_video``: a ``TextToVideoSDPipeline`` (the ModelScope layout: a 3D UNet,
  an SD VAE, a CLIP text encoder), native size 64x64.
- ``build_tiny_animatediff``: a tiny SD 1.x pipeline and a tiny AnimateDiff ``MotionAdapter``
  that fits its UNet, saved as two folders (``sd`` and ``adapter``) as real ones are.
- ``build_tiny_ltx`` and ``build_tiny_wan``: transformer pipelines with a T5 text encoder and a
  VAE that compresses time 4x, so they make 4k+1 frames (LTX-Video, Wan 2.1 layouts).
- ``build_tiny_image_to_video``: a ``StableVideoDiffusionPipeline`` (spatio-temporal UNet,
  temporal-decoder VAE, CLIP image encoder), after diffusers' own tiny SVD test config.

The SD parts (VAE with factor 8, CLIP text encoder, character tokenizer) come from
``tests.tiny_diffusion``. Videos come out as noise, at the asked size and frame count.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.tiny_diffusion import _CHARS, CROSS_DIM, _parts


def build_tiny_text_to_video(folder: Path | str) -> Path:
    """Save a tiny random ``TextToVideoSDPipeline`` in ``folder``; return it.

    Its native size is 64x64 (UNet sample size 8, VAE factor 8); any frame count works.
    """
    import torch
    from diffusers import TextToVideoSDPipeline, UNet3DConditionModel

    folder = Path(folder)
    parts = _parts(folder, seed=3)
    torch.manual_seed(3)
    unet = UNet3DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=CROSS_DIM,
        attention_head_dim=4,
    )
    pipe = TextToVideoSDPipeline(
        vae=parts["vae"],
        text_encoder=parts["text_encoder"],
        tokenizer=parts["tokenizer"],
        unet=unet,
        scheduler=parts["scheduler"],
    )
    pipe.save_pretrained(folder)
    shutil.rmtree(folder / "_tokenizer_src", ignore_errors=True)
    return folder


def build_tiny_animatediff(folder: Path | str) -> dict[str, Path]:
    """Save a tiny SD 1.x pipeline (``folder/sd``, with the PNDM scheduler SD 1.5 ships) and
    a tiny AnimateDiff ``MotionAdapter`` for its UNet (``folder/adapter``); return both."""
    import torch
    from diffusers import MotionAdapter, PNDMScheduler, StableDiffusionPipeline

    folder = Path(folder)
    parts = _parts(folder / "sd", seed=4)
    parts["scheduler"] = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        steps_offset=1,
    )
    StableDiffusionPipeline(**parts).save_pretrained(folder / "sd")
    shutil.rmtree(folder / "sd" / "_tokenizer_src", ignore_errors=True)
    torch.manual_seed(4)
    adapter = MotionAdapter(
        block_out_channels=(8, 16),
        motion_layers_per_block=1,
        motion_norm_num_groups=4,
        motion_num_attention_heads=2,
        motion_max_seq_length=32,
    )
    adapter.save_pretrained(folder / "adapter")
    return {"sd": folder / "sd", "adapter": folder / "adapter"}


def _t5(seed: int, umt5: bool = False) -> tuple[Any, Any]:
    """A Unigram T5 tokenizer over single characters and a tiny T5 (or UMT5) encoder."""
    import torch
    import transformers
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(c, -2.0) for c in _CHARS] + [("\u2581" + c, -1.5) for c in _CHARS]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0)
    torch.manual_seed(seed)
    prefix = "UMT5" if umt5 else "T5"
    config = getattr(transformers, f"{prefix}Config")
    encoder = getattr(transformers, f"{prefix}EncoderModel")(
        config(
            vocab_size=len(tokenizer),
            d_model=CROSS_DIM,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )
    return tokenizer, encoder


def build_tiny_ltx(folder: Path | str) -> Path:
    """Save a tiny random ``LTXPipeline`` in ``folder``; return it. Its VAE compresses 4x in
    space and time (real LTX-Video: 32x and 8x); the pipeline wants sides in multiples of 32."""
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )

    folder = Path(folder)
    tokenizer, text_encoder = _t5(6)
    torch.manual_seed(6)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=CROSS_DIM,
    )
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    pipe = LTXPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )
    pipe.save_pretrained(folder)
    return folder


def build_tiny_wan(folder: Path | str) -> Path:
    """Save a tiny random ``WanPipeline`` (Wan 2.1 layout: 8x spatial, 4x temporal VAE,
    2x2 patches) in ``folder``; return it. Loading it needs ``accelerate`` (the Wan
    transformer keeps some layers in float32, which diffusers does only through it)."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )

    folder = Path(folder)
    tokenizer, text_encoder = _t5(7, umt5=True)
    torch.manual_seed(7)
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=CROSS_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
    )
    pipe.save_pretrained(folder)
    return folder


def _svd_parts() -> dict[str, Any]:
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(5)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=8,
        in_channels=8,
        out_channels=4,
        block_out_channels=(32, 64),  # its norms have 32 groups
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=16,
        num_attention_heads=2,
        projection_class_embeddings_input_dim=3 * 8,
        addition_time_embed_dim=8,
        num_frames=8,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 32, 32, 32),  # 4 levels: 8 pixels a latent cell, as in SVD
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
    )
    # The pipeline resizes the image to 224x224 for CLIP: 7x7 patches of 32 pixels.
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=24,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=224,
            patch_size=32,
            projection_dim=16,
        )
    )
    return {
        "unet": unet,
        "vae": vae,
        "image_encoder": encoder,
        "feature_extractor": CLIPImageProcessor(size=224, crop_size=224),
        "scheduler": scheduler,
    }


def build_tiny_image_to_video(folder: Path | str) -> Path:
    """Save a tiny random ``StableVideoDiffusionPipeline`` in ``folder``; return it."""
    from diffusers import StableVideoDiffusionPipeline

    folder = Path(folder)
    StableVideoDiffusionPipeline(**_svd_parts()).save_pretrained(folder)
    return folder
