"""A tiny random-weight LLaVA (a small CLIP tower and a small Llama) with its real processor and
a minimal chat template, saved with ``save_pretrained`` so tests load it back through
``from_pretrained``, the path real weights take."""

from __future__ import annotations

from pathlib import Path
from typing import Any

IMAGE_SIZE = 32
PATCH = 8
IMAGE_TOKENS = (IMAGE_SIZE // PATCH) ** 2  # CLIP's class token is dropped ("default")

TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n"
    "{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image>{% elif p['type'] == 'text' %}{{ p['text'] }}{% endif %}"
    "{% endfor %}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""A minimal chat template: image parts become the ``<image>`` token where they stand."""

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<image>"]

SAMPLE = (
    'Sure! Here is the plan:\n```json\n{"steps": [{"id": "s1", "tool": "resize_image", '
    '"args": {"image": "$a1", "width": 64}}]}\n```\nA photo of a dog on a beach. Two cats.'
)


def _tokenizer() -> Any:
    """A byte-level BPE tokenizer (any text encodes), trained on the prompt templates."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    prompts = Path(__file__).resolve().parents[1] / "prompts"
    tok.train_from_iterator(
        [p.read_text() for p in sorted(prompts.glob("*.j2"))] + [SAMPLE], trainer
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )


def build_tiny_llava(folder: Path) -> Path:
    """Save a random-weight LLaVA (tiny CLIP tower, tiny Llama) and its processor to ``folder``.

    The weights are seeded, and the output rows of the special tokens are zeroed (every other
    token's logit is random, so one of them always wins): greedy decoding is deterministic,
    never stops early, and always writes visible text.
    """
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = _tokenizer()
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": IMAGE_SIZE},
            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        ),
        tokenizer=tokenizer,
        patch_size=PATCH,
        num_additional_image_tokens=1,
        vision_feature_select_strategy="default",
        chat_template=TEMPLATE,
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    return _save(LlavaForConditionalGeneration(config), processor, folder)


def _save(model: Any, processor: Any, folder: Path, head: Any = None) -> Path:
    """Zero the special tokens' rows of the output ``head`` (unset, the model's output
    embeddings; see ``build_tiny_llava``), then save both."""
    import torch

    ids = [processor.tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    with torch.no_grad():
        (head or model.get_output_embeddings()).weight[ids] = 0.0
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_tiny_blip(folder: Path) -> Path:
    """A random-weight BLIP captioner (``BlipForConditionalGeneration``): no chat template."""
    import torch
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipProcessor,
        BlipTextConfig,
        BlipVisionConfig,
    )
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    tokenizer = _tokenizer()
    processor = BlipProcessor(
        image_processor=BlipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
    )
    text = BlipTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        encoder_hidden_size=32,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        sep_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = BlipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH,
    )
    config = BlipConfig(text_config=text.to_dict(), vision_config=vision.to_dict())
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config)
    return _save(model, processor, folder, model.text_decoder.get_output_embeddings())


def build_tiny_blip2(folder: Path) -> Path:
    """A random-weight BLIP-2 (tiny ViT, Q-Former and OPT): no chat template; its processor
    adds the image token to the tokenizer itself."""
    import torch
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        OPTConfig,
        PreTrainedTokenizerFast,
    )
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    plain = PreTrainedTokenizerFast(
        tokenizer_object=_tokenizer()._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    processor = Blip2Processor(
        image_processor=BlipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=plain,
        num_query_tokens=4,
    )
    tokenizer = processor.tokenizer
    vision = Blip2VisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH,
    )
    qformer = Blip2QFormerConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        encoder_hidden_size=32,
    )
    text = OPTConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        ffn_dim=64,
        num_attention_heads=2,
        word_embed_proj_dim=32,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = Blip2Config(
        vision_config=vision,
        qformer_config=qformer,
        text_config=text,
        num_query_tokens=4,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(0)
    return _save(Blip2ForConditionalGeneration(config), processor, folder)


FLORENCE_SIZE = 64
FLORENCE_IMAGE_TOKENS = (FLORENCE_SIZE // 32) ** 2 + 1  # the 2x2 feature map and a pooled one


def build_tiny_florence2(folder: Path) -> Path:
    """A random-weight Florence-2 (tiny DaViT and BART): no chat template, task prompts."""
    import torch
    from transformers import (
        BartConfig,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.florence2.configuration_florence2 import Florence2VisionConfig

    tokenizer = _tokenizer()
    side = {"height": FLORENCE_SIZE, "width": FLORENCE_SIZE}
    processor = Florence2Processor(
        image_processor=CLIPImageProcessorPil(
            size=side, crop_size=side, do_center_crop=False, image_seq_length=FLORENCE_IMAGE_TOKENS
        ),
        tokenizer=tokenizer,
    )
    vision = Florence2VisionConfig(
        depths=(1, 1, 1, 1),
        embed_dim=(8, 16, 32, 32),
        num_heads=(1, 1, 2, 2),
        num_groups=(1, 1, 2, 2),
        window_size=2,
        projection_dim=32,
        max_position_embeddings=8,
        max_temporal_embeddings=4,
    )
    text = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_bos_token_id=None,
        forced_eos_token_id=None,
    )
    config = Florence2Config(
        text_config=text,
        vision_config=vision,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(0)
    return _save(Florence2ForConditionalGeneration(config), processor, folder)


class ScriptedGenerate:
    """Stands in for ``model.generate``: records its inputs and writes the given answers as
    token ids after the prompt (streaming them when asked), as the real one does."""

    def __init__(self, tokenizer: Any, answers: list[str]):
        self.tokenizer = tokenizer
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, input_ids: Any, streamer: Any = None, **kwargs: Any) -> Any:
        import torch

        self.calls.append({"input_ids": input_ids, **kwargs})
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        ids = self.tokenizer.encode(answer, add_special_tokens=False)
        new = torch.tensor([[*ids, self.tokenizer.eos_token_id]])
        if streamer is not None:
            streamer.put(input_ids)  # the prompt, which the streamer skips
            for i in range(new.shape[1]):
                streamer.put(new[:, i])
            streamer.end()
        return torch.cat([input_ids, new], dim=1)

    def prompt(self, call: int) -> str:
        return str(self.tokenizer.decode(self.calls[call]["input_ids"][0]))
