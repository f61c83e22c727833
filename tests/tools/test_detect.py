"""detect_objects (tools.detect), segment_image and mask_from_words (tools.segment) on tiny
random OWLv2, Grounding DINO and SAM models, built once per session and loaded back through
``from_pretrained``."""

from __future__ import annotations

import json
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tools import ArtifactStore, ToolContext, ToolError, ToolSettings
from tools.settings import ImageSettings

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)


def _tiny_owlv2(folder: Path) -> Path:
    chars = string.ascii_lowercase + string.digits + ".,'-"
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    # OWL masks out queries whose first token id is 0, so the special tokens come last.
    bos, eos = len(vocab), len(vocab) + 1
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = bos, eos
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    config = transformers.Owlv2Config(
        text_config={
            "vocab_size": len(vocab), "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 16,
            "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": eos,
        },
        vision_config={
            "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
        },
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.Owlv2ForObjectDetection(config).save_pretrained(folder)
    image_processor = transformers.Owlv2ImageProcessorPil(size={"height": 32, "width": 32})
    transformers.Owlv2Processor(image_processor, tokenizer).save_pretrained(folder)
    return folder


def _tiny_dino(folder: Path) -> Path:
    folder.mkdir(parents=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "a", "the", "dog", "cat", "red"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = transformers.BertTokenizer(str(folder / "vocab.txt"))
    config = transformers.GroundingDinoConfig(
        backbone_config=transformers.SwinConfig(
            image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 1],
            window_size=2, out_features=["stage1", "stage2"],
        ),
        text_config=transformers.BertConfig(
            vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=64,
        ),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=10,
        num_feature_levels=2, encoder_n_points=1, decoder_n_points=1, max_text_len=32,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.GroundingDinoForObjectDetection(config).save_pretrained(folder)
    image_processor = transformers.GroundingDinoImageProcessorPil(
        size={"shortest_edge": 32, "longest_edge": 48}
    )
    transformers.GroundingDinoProcessor(image_processor, tokenizer).save_pretrained(folder)
    return folder


def _tiny_sam(folder: Path) -> Path:
    config = transformers.SamConfig(
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 8,
            "output_channels": 16,
            "window_size": 4,
            "global_attn_indexes": [0],
            "num_pos_feats": 8,
            "mlp_dim": 32,
        },
        prompt_encoder_config={
            "hidden_size": 16,
            "image_size": 64,
            "patch_size": 8,
            "mask_input_channels": 4,
        },
        mask_decoder_config={
            "hidden_size": 16,
            "mlp_dim": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 16,
        },
    )
    torch.manual_seed(0)
    transformers.SamModel(config).save_pretrained(folder)
    image_processor = transformers.SamImageProcessorPil(
        size={"longest_edge": 64},
        pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 16},
        mask_pad_size={"height": 16, "width": 16},
    )
    transformers.SamProcessor(image_processor).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-detect")
    return {
        "owl": _tiny_owlv2(root / "owl"),
        "dino": _tiny_dino(root / "dino"),
        "sam": _tiny_sam(root / "sam"),
    }


def _settings(tiny: dict[str, Path], detector: str | None = None) -> ToolSettings:
    return ToolSettings(
        image=ImageSettings(detector=detector or str(tiny["owl"]), segmenter=str(tiny["sam"]))
    )


def _open(art: Any) -> Image.Image:
    with Image.open(art.path) as img:
        img.load()
        return img


def _check_box(box: list[int], size: tuple[int, int]) -> None:
    assert len(box) == 4 and all(isinstance(v, int) for v in box)
    x0, y0, x1, y1 = box
    assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]


# --- detect_objects ---------------------------------------------------------------------------


def test_detect_returns_boxes_inside_the_image_and_a_drawn_copy(run, images, tiny):
    result = run(
        "detect_objects",
        [images[0]],
        _settings(tiny),
        image="$a1",
        labels=["dog", "cat"],
        threshold=0,
    )
    found = result.data["detections"]
    assert found, "with threshold 0 every proposal passes"
    for det in found:
        _check_box(det["box"], (640, 480))
        assert det["label"] in ("dog", "cat") and 0 <= det["score"] <= 1
    assert [d["score"] for d in found] == sorted((d["score"] for d in found), reverse=True)
    text, drawn = result.artifacts
    assert json.loads(text.read_text())["detections"] == found
    assert _open(drawn).size == (640, 480)
    assert result.summary.startswith("found ") and result.summary.endswith("in a.png")
    again = run(
        "detect_objects",
        [images[0]],
        _settings(tiny),
        image="$a1",
        labels=["dog", "cat"],
        threshold=0,
    )
    assert again.data["detections"] == found  # deterministic


def test_detect_nothing_above_the_threshold_is_a_result_not_an_error(run, images, tiny):
    result = run(
        "detect_objects", [images[1]], _settings(tiny), image="$a1", labels=["dog"], threshold=1
    )
    assert result.data["detections"] == []
    assert result.summary == "found nothing matching 'dog' in b.jpg"
    assert _open(result.artifacts[1]).size == (300, 200)


def test_grounding_dino_detects_with_its_own_prompt_form(run, images, tiny):
    result = run(
        "detect_objects",
        [images[1]],
        _settings(tiny, str(tiny["dino"])),
        image="$a1",
        labels=["dog", "red cat"],
        threshold=0,
    )
    found = result.data["detections"]
    assert found and {d["label"] for d in found} <= {"dog", "red cat"}
    for det in found:
        _check_box(det["box"], (300, 200))


def test_detect_through_the_model_manager_loads_once(tmp_path, images, tiny):
    from tools.detect import detect_objects
    from tools.models import ModelManager

    ctx = ToolContext(
        store=ArtifactStore(tmp_path / "store"),
        workspace=tmp_path / "w",
        settings=_settings(tiny),
        models=ModelManager(tmp_path / "cache", device="cpu"),
    )
    ctx.refs["a1"] = [ctx.store.add_file(images[0])]
    first = detect_objects(ctx, image="$a1", labels=["dog"], threshold=0).data
    second = detect_objects(ctx, image="$a1", labels=["dog"], threshold=0).data
    assert first == second
    key = f"transformers:{tiny['owl'].resolve()}"
    assert ctx.models.loaded() == [key]
    assert ctx.models.used_bytes == (tiny["owl"] / "model.safetensors").stat().st_size


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"labels": []}, "labels: say what to look for in words"),
        ({"labels": ["dog", "  "]}, "no empty labels"),
        ({"labels": ["dog"], "threshold": 2}, "threshold: Input should be less than or equal"),
    ],
)
def test_detect_refuses_bad_arguments(run, images, tiny, args, message):
    with pytest.raises(ToolError, match=message):
        run("detect_objects", [images[0]], _settings(tiny), image="$a1", **args)


def test_detect_refuses_a_non_image_and_unusable_models(run, images, tiny, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("not a picture")
    with pytest.raises(ToolError, match="note.txt is text; this needs image"):
        run("detect_objects", [note], _settings(tiny), image="$a1", labels=["dog"])
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ToolError, match="no-such-model does not exist.*tools.image.detector"):
        run("detect_objects", [images[0]], _settings(tiny, missing), image="$a1", labels=["dog"])
    offline = "someone/owlv2-never-downloaded"
    with pytest.raises(ToolError, match="HF_HUB_OFFLINE.*hf download someone/owlv2"):
        run("detect_objects", [images[0]], _settings(tiny, offline), image="$a1", labels=["dog"])
    with pytest.raises(ToolError, match="not a zero-shot object detector"):
        run(
            "detect_objects",
            [images[0]],
            _settings(tiny, str(tiny["sam"])),
            image="$a1",
            labels=["dog"],
        )


# --- segment_image and mask_from_words --------------------------------------------------------


def _check_mask(art: Any, size: tuple[int, int]) -> np.ndarray:
    img = _open(art)
    assert img.mode == "L" and img.size == size and art.mime == "image/png"
    pixels = np.asarray(img)
    assert set(np.unique(pixels)) <= {0, 255}
    return pixels


def test_segment_boxes_give_one_full_size_mask_each(run, images, tiny):
    boxes = [[160, 120, 320, 240], [0, 0, 100, 80]]
    result = run(
        "segment_image",
        [images[0]],
        _settings(tiny),
        image="$a1",
        prompt="the square",
        boxes=boxes,
    )
    union, overlay, *masks = result.artifacts
    assert _open(overlay).size == (640, 480) and _open(overlay).mode == "RGB"
    segments = result.data["segments"]
    assert len(segments) == len(masks) == 2
    total = np.zeros((480, 640), bool)
    for seg, art, box in zip(segments, masks, boxes, strict=True):
        pixels = _check_mask(art, (640, 480))
        assert seg["mask"] == art.id and seg["box"] == box and seg["label"] == "square"
        assert seg["area"] == int((pixels == 255).sum())
        total |= pixels == 255
    assert np.array_equal(_check_mask(union, (640, 480)) == 255, total)
    assert result.data["mask"] == union.id
    assert result.summary.startswith("segmented 2 squares in a.png")


def test_segment_points_mark_one_object(run, images, tiny):
    result = run(
        "segment_image",
        [images[1]],
        _settings(tiny),
        image="$a1",
        prompt="the sky",
        points=[[150, 50]],
    )
    (seg,) = result.data["segments"]
    assert len(result.artifacts) == 3
    _check_mask(result.artifacts[2], (300, 200))
    assert seg["label"] == "sky" and 0 <= seg["score"] <= 1


def test_segment_words_runs_the_detector_then_sam(run, images, tiny):
    result = run(
        "segment_image",
        [images[1]],
        _settings(tiny),
        image="$a1",
        prompt="the dog",
        threshold=0,
    )
    segments = result.data["segments"]
    assert 1 <= len(segments) <= 16 and len(result.artifacts) == 2 + len(segments)
    for seg, art in zip(segments, result.artifacts[2:], strict=True):
        _check_box(seg["box"], (300, 200))
        _check_mask(art, (300, 200))
    with pytest.raises(ToolError, match="found no the dog in b.jpg"):
        run(
            "segment_image",
            [images[1]],
            _settings(tiny),
            image="$a1",
            prompt="the dog",
            threshold=1,
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"points": [[700, 10]]}, r"point \[700, 10\] is outside a.png, which is 640x480"),
        ({"points": [[1, 2, 3]]}, "each point is"),
        ({"boxes": [[10, 10, 5, 50]]}, "each box is"),
        ({"boxes": [[650, 10, 700, 50]]}, "a box lies outside a.png"),
        ({"prompt": ""}, "prompt"),
    ],
)
def test_segment_refuses_bad_prompts(run, images, tiny, args, message):
    args = {"prompt": "the thing", **args}
    with pytest.raises(ToolError, match=message):
        run("segment_image", [images[0]], _settings(tiny), image="$a1", **args)


def test_mask_from_words_is_an_l_image_of_the_image_size(tmp_path, images, tiny, monkeypatch):
    from tools import detect, segment

    ctx = ToolContext(
        store=ArtifactStore(tmp_path / "store"), workspace=tmp_path / "w", settings=_settings(tiny)
    )
    art = ctx.store.add_file(images[1])
    monkeypatch.setitem(detect.DEFAULT_THRESHOLD, "owlv2", 0.0)
    mask = segment.mask_from_words(ctx, art, "dog")
    assert mask.mode == "L" and mask.size == (300, 200)
    assert set(np.unique(np.asarray(mask))) <= {0, 255}
    monkeypatch.setitem(detect.DEFAULT_THRESHOLD, "owlv2", 1.0)
    with pytest.raises(ToolError, match="found no dog in b.jpg"):
        segment.mask_from_words(ctx, art, "dog")


def test_importing_the_tools_loads_no_heavy_library():
    code = (
        "import sys, tools.detect, tools.segment, tools.ocr; "
        "print(sorted(m for m in ('torch', 'transformers', 'rapidocr', 'cv2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_transformers_names_the_extra(run, images, tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ToolError, match=r"pip install 'anymodal\[image\]'"):
        run("detect_objects", [images[0]], _settings(tiny), image="$a1", labels=["dog"])
