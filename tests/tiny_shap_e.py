"""Tiny random-weight Shap-E pipelines (diffusers ``ShapEPipeline`` and
``ShapEImg2ImgPipeline``), saved with ``save_pretrained`` so tests load them back through the
same ``DiffusionPipeline.from_pretrained`` path openai/shap-e takes.

The parts follow diffusers' own tiny Shap-E test configs: a one-layer ``PriorTransformer``
over 32 latent vectors of width 16, a ``ShapERenderer`` whose MLP is 8 wide, a 2-layer CLIP
text encoder (the character tokenizer of ``tests.tiny_clip``) or a 2-layer CLIP vision encoder
on 32x32 images, and Heun as Shap-E's config sets it.

Two things random weights do not give, and real checkpoints do:

- A marching-cubes table. ``MeshDecoder`` keeps it in two buffers (``cases``, ``masks``) that a
  real checkpoint fills; a fresh one holds zeros, so every cube yields no triangle and the
  mesh is empty. ``marching_cubes_table`` builds a simple usable one.
- A surface inside the box. The signed distance field must be positive (inside) somewhere on
  the grid; ``_surface_bias`` makes sure it is (see there).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.tiny_clip import _tokenizer

LATENT_WIDTH = 16
"""Width of each latent vector (the prior's embedding_dim, the renderer's d_latent)."""
RENDERER_WIDTH = 8
"""Width of the renderer's MLP; its first four weight matrices come from the latent."""
HIDDEN = 32
"""Width of the CLIP encoders (the prior's conditioning)."""
IMAGE_SIZE = 32
INSIDE_SHARE = 0.3
"""The share of the grid the random field puts inside the object, on average."""

# Cube corners c = dx + 2*dy + 4*dz (the bit order of MeshDecoder's bitmasks); the twelve
# edges in MeshDecoder's local numbering (see _create_flat_edge_indices): x-edges, y-edges,
# z-edges, each as the two corners it joins.
EDGES = (
    (0, 1), (2, 3), (4, 5), (6, 7),
    (0, 2), (1, 3), (4, 6), (5, 7),
    (0, 4), (1, 5), (2, 6), (3, 7),
)  # fmt: skip


def _corner(c: int) -> tuple[int, int, int]:
    return c & 1, (c >> 1) & 1, (c >> 2) & 1


def marching_cubes_table() -> tuple[Any, Any]:
    """``(cases, masks)`` for ``MeshDecoder``: (256, 5, 3) edge indices and (256, 5) flags.

    For each case (bit c set: corner c is inside, field > 0) the edges whose two corners
    differ are the crossing edges; their midpoints, ordered by angle around their centroid
    in the plane across the inside-to-outside direction, are fanned into at most five
    triangles wound so that their normals point outwards. Not the classic table (cases with
    two separate patches become one odd polygon), but every crossing yields faces, which is
    all a random-weight test needs.
    """
    import numpy as np
    import torch

    cases = torch.zeros(256, 5, 3, dtype=torch.long)
    masks = torch.zeros(256, 5, dtype=torch.bool)
    for case in range(1, 255):
        inside = [(case >> c) & 1 == 1 for c in range(8)]
        crossing = [e for e, (a, b) in enumerate(EDGES) if inside[a] != inside[b]]
        mids = np.array([np.add(*map(_corner, EDGES[e])) / 2 for e in crossing])
        ins = np.mean([_corner(c) for c in range(8) if inside[c]], axis=0)
        outs = np.mean([_corner(c) for c in range(8) if not inside[c]], axis=0)
        normal = outs - ins
        if np.linalg.norm(normal) < 1e-9:  # symmetric cases: any direction will do
            normal = np.array([0.0, 0.0, 1.0])
        normal /= np.linalg.norm(normal)
        centre = mids.mean(axis=0)
        u = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
        u /= np.linalg.norm(u)
        v = np.cross(normal, u)
        rel = mids - centre
        order = np.argsort(np.arctan2(rel @ v, rel @ u))
        ring = [crossing[i] for i in order]
        points = {e: mids[i] for i, e in enumerate(crossing)}
        for t in range(min(5, len(ring) - 2)):
            a, b, c = ring[0], ring[t + 1], ring[t + 2]
            if np.cross(points[b] - points[a], points[c] - points[a]) @ normal < 0:
                b, c = c, b
            cases[case, t] = torch.tensor([a, b, c])
            masks[case, t] = True
    return cases, masks


def _renderer(seed: int) -> Any:
    import torch
    from diffusers.pipelines.shap_e import ShapERenderer

    torch.manual_seed(seed)
    w = RENDERER_WIDTH
    renderer = ShapERenderer(
        param_shapes=((w, 93), (w, w), (w, w), (w, w)),
        d_latent=LATENT_WIDTH,
        d_hidden=w,
        n_output=12,
        background=(255.0, 255.0, 255.0),
    )
    cases, masks = marching_cubes_table()
    with torch.no_grad():
        renderer.mesh_decoder.cases.copy_(cases)
        renderer.mesh_decoder.masks.copy_(masks)
        _surface_bias(renderer)
    return renderer


def _surface_bias(renderer: Any) -> None:
    """Make the random signed distance field smooth, with both signs over the grid.

    The first four MLP layers' weights come from the latent (``params_proj``); the first
    reads a NeRF position encoding up to frequency 2**14, so with random projections the
    field is noise at the grid's scale. Zeroing the projection's gains and biases for all but
    the raw position and the two lowest frequencies leaves a smooth field. Random weights also
    leave its sign to chance: nearly all inside (positive) for most latents, so the only
    surface is the box's walls. The SDF output's bias is therefore set so that about 30% of
    the grid is inside, on average over random latents: some surface for every seed.
    """
    import torch
    from diffusers.pipelines.shap_e.renderer import volume_query_points

    proj = renderer.params_proj.projections["nerstf__mlp__0__weight"]
    keep = torch.zeros(93, dtype=torch.bool)
    keep[:3] = True  # the raw position
    for offset in (3, 48):  # sin, then cos: frequency-major, three axes each
        keep[offset : offset + 2 * 3] = True  # frequencies 1 and 2
    proj.norm.weight[~keep] = 0.0
    proj.norm.bias[~keep] = 0.0
    proj.proj.bias.view(proj.vectors, proj.channels)[:, ~keep] = 0.0
    gen = torch.Generator().manual_seed(0)
    points = volume_query_points(renderer.volume, 12)[None]
    fields = []
    for _ in range(8):  # the denoised latents are clipped to -1..1, as these are
        latent = torch.rand(1, 4 * RENDERER_WIDTH, LATENT_WIDTH, generator=gen) * 2 - 1
        for name, param in renderer.params_proj(latent).items():
            renderer.mlp.state_dict()[name.removeprefix("nerstf.")].copy_(param[0])
        out = renderer.mlp(position=points, direction=None, ts=None, rendering_mode="stf")
        fields.append(out.signed_distance.flatten())  # tanh of the SDF output
    level = torch.quantile(torch.cat(fields), 1 - INSIDE_SHARE).clamp(-0.999, 0.999)
    renderer.mlp.mlp[-1].bias[0] -= torch.atanh(level)


def _prior(seed: int, embedding_proj_norm: bool) -> Any:
    import torch
    from diffusers import PriorTransformer

    torch.manual_seed(seed)
    return PriorTransformer(
        num_attention_heads=2,
        attention_head_dim=8,
        embedding_dim=LATENT_WIDTH,
        num_embeddings=4 * RENDERER_WIDTH,  # one latent vector per projected weight row
        embedding_proj_dim=HIDDEN,
        time_embed_dim=4 * LATENT_WIDTH,
        num_layers=1,
        clip_embed_dim=2 * LATENT_WIDTH,
        additional_embeddings=0,
        time_embed_act_fn="gelu",
        norm_in_type="layer",
        embedding_proj_norm_type="layer" if embedding_proj_norm else None,
        encoder_hid_proj_type=None,
        added_emb_type=None,
    )


def _scheduler() -> Any:
    from diffusers import HeunDiscreteScheduler

    # openai/shap-e's scheduler config
    return HeunDiscreteScheduler(
        beta_schedule="exp",
        num_train_timesteps=1024,
        prediction_type="sample",
        use_karras_sigmas=True,
        clip_sample=True,
        clip_sample_range=1.0,
    )


def _list_old_renderer(folder: Path) -> None:
    """List a ``renderer`` part in model_index.json with no folder, as the Hub repos do (an
    unused older renderer the catalog does not download): loading must ignore it."""
    index = folder / "model_index.json"
    data = json.loads(index.read_text())
    data["renderer"] = ["shap_e", "ShapERenderer"]
    index.write_text(json.dumps(data, indent=2))


def build_tiny_shap_e(folder: Path | str, seed: int = 0) -> Path:
    """Save a tiny random text-to-3D ``ShapEPipeline`` in ``folder``; return it."""
    import torch
    from diffusers import ShapEPipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    folder = Path(folder)
    tokenizer = _tokenizer(folder / "_tokenizer_src")
    torch.manual_seed(seed)
    text_encoder = CLIPTextModelWithProjection(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=HIDDEN,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=tokenizer.model_max_length,
            projection_dim=HIDDEN,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    pipe = ShapEPipeline(
        prior=_prior(seed, embedding_proj_norm=False),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=_scheduler(),
        shap_e_renderer=_renderer(seed),
    )
    pipe.save_pretrained(folder)
    shutil.rmtree(folder / "_tokenizer_src", ignore_errors=True)
    _list_old_renderer(folder)
    return folder


def build_tiny_shap_e_img2img(folder: Path | str, seed: int = 1) -> Path:
    """Save a tiny random image-to-3D ``ShapEImg2ImgPipeline`` in ``folder``; return it."""
    import torch
    from diffusers import ShapEImg2ImgPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    folder = Path(folder)
    torch.manual_seed(seed)
    encoder = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=HIDDEN,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=IMAGE_SIZE,
            patch_size=8,
            projection_dim=HIDDEN,
        )
    )
    processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        resample=3,
    )
    pipe = ShapEImg2ImgPipeline(
        prior=_prior(seed, embedding_proj_norm=True),
        image_encoder=encoder,
        image_processor=processor,
        scheduler=_scheduler(),
        shap_e_renderer=_renderer(seed),
    )
    pipe.save_pretrained(folder)
    _list_old_renderer(folder)
    return folder
