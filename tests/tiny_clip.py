"""A tiny random-weight CLIP (transformers ``CLIPModel``) with its processor, built offline.

Two 2-layer towers of width 32 projecting to 16 dimensions, 32x32 images in 8x8 patches, the
PIL (slow) CLIP image processor and a CLIP tokenizer over single characters and a few merges
(as tests/tiny_diffusion.py builds it). Saved with ``save_pretrained`` so it loads through the
same ``AutoModel`` / ``AutoProcessor`` path as openai/clip-vit-base-patch32.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

IMAGE_SIZE = 32
PROJECTION = 16
"""Width of the joint space."""
MAX_TOKENS = 32

_SPECIAL = ["<|startoftext|>", "<|endoftext|>"]
_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"
_MERGES = ["t h", "th e</w>", "a n", "o n</w>", "e r</w>", "i n", "in g</w>"]


def _tokenizer(folder: Path) -> Any:
    from transformers import CLIPTokenizer

    tokens = list(_CHARS) + [c + "</w>" for c in _CHARS]
    tokens += [m.replace(" ", "") for m in _MERGES] + _SPECIAL
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n")
    tok = CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    tok.model_max_length = MAX_TOKENS
    return tok


def build_tiny_clip(folder: Path | str) -> Path:
    """Save a seeded random-weight CLIPModel and its CLIPProcessor to ``folder``."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    folder = Path(folder)
    tokenizer = _tokenizer(folder)
    torch.manual_seed(0)
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
        "max_position_embeddings": MAX_TOKENS,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
        "image_size": IMAGE_SIZE,
        "patch_size": 8,
    }
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=PROJECTION)
    CLIPModel(config).save_pretrained(folder)
    images = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder
