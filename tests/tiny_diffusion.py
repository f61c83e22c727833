"""Tiny random-weight Stable Diffusion pipelines, saved to a folder with ``save_pretrained`` so
tests load them back through the same ``from_pretrained`` path real weights take.

Everything is a few thousand parameters: a UNet with 8/16 channels, a 4-level VAE (so the
pixel-to-latent factor is 8, as in real SD), a 2-layer CLIP text encoder and a CLIP tokenizer
built from a vocabulary of single characters. Images come out as noise, at the asked size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_SPECIAL = ["<|startoftext|>", "<|endoftext|>"]
_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"
_MERGES = ["t h", "th e</w>", "a n", "o n</w>", "e r</w>", "i n", "in g</w>"]
CROSS_DIM = 32
"""Width of the text embeddings the UNet attends to."""


def _tokenizer(folder: Path) -> Any:
    from transformers import CLIPTokenizer

    tokens = list(_CHARS) + [c + "</w>" for c in _CHARS]
    tokens += [m.replace(" ", "") for m in _MERGES] + _SPECIAL
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n")
    tok = CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    tok.model_max_length = 16
    return tok


def _parts(folder: Path, unet_in_channels: int = 4, seed: int = 0) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=unet_in_channels,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=CROSS_DIM,
        attention_head_dim=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8, 8),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=64,
    )
    tokenizer = _tokenizer(folder / "_tokenizer_src")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=CROSS_DIM,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
            projection_dim=CROSS_DIM,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",
        steps_offset=1,
    )
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }


def _flag_everything_checker() -> tuple[Any, Any]:
    """A tiny NSFW safety checker whose thresholds flag every image, and its image processor."""
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import (
        StableDiffusionSafetyChecker,
    )
    from transformers import CLIPConfig, CLIPImageProcessor

    vision = {"hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1}
    vision |= {"num_attention_heads": 2, "image_size": 32, "patch_size": 8}
    text = {"hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1}
    text |= {"num_attention_heads": 2, "vocab_size": 64}
    checker = StableDiffusionSafetyChecker(
        CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    )
    with torch.no_grad():  # a cosine similarity is >= -1: a threshold of -2 flags all
        checker.concept_embeds_weights.fill_(-2.0)
    return checker, CLIPImageProcessor(size=32, crop_size=32)


def build_tiny_sd(folder: Path | str, flag_everything: bool = False) -> Path:
    """Save a tiny random text-to-image ``StableDiffusionPipeline`` in ``folder``; return it.

    Its native size is 64x64 (UNet sample size 8, VAE factor 8). With ``flag_everything`` it
    carries a safety checker that flags (and blacks out) every image.
    """
    import shutil

    from diffusers import StableDiffusionPipeline

    folder = Path(folder)
    parts = _parts(folder)
    if flag_everything:
        parts["safety_checker"], parts["feature_extractor"] = _flag_everything_checker()
        parts["requires_safety_checker"] = True
    StableDiffusionPipeline(**parts).save_pretrained(folder)
    shutil.rmtree(folder / "_tokenizer_src", ignore_errors=True)
    return folder


def build_tiny_instruct_pix2pix(folder: Path | str) -> Path:
    """Save a tiny random ``StableDiffusionInstructPix2PixPipeline`` (8-channel UNet input:
    the noisy latents plus the source image's latents) in ``folder``; return it."""
    import shutil

    from diffusers import StableDiffusionInstructPix2PixPipeline

    folder = Path(folder)
    parts = _parts(folder, unet_in_channels=8, seed=1)
    StableDiffusionInstructPix2PixPipeline(**parts).save_pretrained(folder)
    shutil.rmtree(folder / "_tokenizer_src", ignore_errors=True)
    return folder


def build_tiny_ip_adapter(folder: Path | str, unet_folder: Path | str) -> Path:
    """Save a tiny IP-Adapter for the pipeline in ``unet_folder`` under ``folder``:
    ``models/ip-adapter_sd15.safetensors`` (``image_proj.*`` and ``ip_adapter.*`` tensors)
    and ``models/image_encoder`` (a tiny ``CLIPVisionModelWithProjection``); return ``folder``.
    """
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder = Path(folder)
    models = folder / "models"
    torch.manual_seed(2)
    embed_dim = 16
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=24,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            projection_dim=embed_dim,
        )
    )
    encoder.save_pretrained(models / "image_encoder")
    unet = UNet2DConditionModel.from_pretrained(Path(unet_folder) / "unet")
    tensors = {
        "image_proj.proj.weight": torch.randn(CROSS_DIM * 4, embed_dim) * 0.1,
        "image_proj.proj.bias": torch.zeros(CROSS_DIM * 4),
        "image_proj.norm.weight": torch.ones(CROSS_DIM),
        "image_proj.norm.bias": torch.zeros(CROSS_DIM),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = unet.config.block_out_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(unet.config.block_out_channels))[int(name[len("up_blocks.")])]
        else:
            hidden = unet.config.block_out_channels[int(name[len("down_blocks.")])]
        for proj in ("to_k_ip", "to_v_ip"):
            tensors[f"ip_adapter.{key_id}.{proj}.weight"] = torch.randn(hidden, CROSS_DIM) * 0.1
        key_id += 2
    save_file(tensors, str(models / "ip-adapter_sd15.safetensors"))
    return folder
