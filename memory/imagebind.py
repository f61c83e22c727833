"""The imagebind space: ImageBind (huge) joining images, audio, video and text in one space,
through the ``imagebind`` package's own API. Opt-in only (``memory.imagebind`` names a folder
holding ``imagebind_huge.pth``): its weights are CC BY-NC, for non-commercial use.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from memory.base import Item
from memory.embed import (
    EmbeddingSpace,
    artifact_of,
    as_numpy,
    group_mean,
    mono_audio,
    video_frames,
)
from memory.settings import MemorySettings
from tools.artifact import Modality
from tools.errors import ToolError, require
from tools.hf import first_line
from tools.models import ModelManager
from tools.settings import ToolSettings

IMAGEBIND_DIM = 1024
"""Width of ImageBind (huge)'s joint space."""
IMAGEBIND_RATE = 16_000
"""Sample rate ImageBind's audio transform reads."""
IMAGEBIND_INSTALL = "pip install git+https://github.com/facebookresearch/ImageBind"


class ImageBindSpace(EmbeddingSpace):
    """ImageBind (huge): images, audio, video and text in one space.

    Opt-in: its weights are CC BY-NC (non-commercial), so it is never a default. ``spec`` is
    a folder holding ``imagebind_huge.pth`` (or that file). The ``imagebind`` package
    (facebookresearch/ImageBind) builds the model and reads the inputs: images and frames
    through ``load_and_transform_vision_data``, text through ``load_and_transform_text``, audio
    (decoded here, written as 16 kHz WAV) through ``load_and_transform_audio_data``.
    """

    name = "imagebind"
    modalities = frozenset({Modality.IMAGE, Modality.AUDIO, Modality.VIDEO, Modality.TEXT})
    setting = "memory.imagebind"

    def _read_dim(self) -> int:
        return IMAGEBIND_DIM

    def checkpoint(self) -> Path:
        """The weights file: ``spec`` itself, or ``imagebind_huge.pth`` (else the only .pth)
        in the folder ``spec``."""
        path = Path(self.spec).expanduser()
        if path.is_file():
            return path
        if not path.is_dir():
            raise ToolError(
                f"the ImageBind weights folder {self.spec} does not exist; set {self.setting} "
                "to a folder holding imagebind_huge.pth"
            )
        named = path / "imagebind_huge.pth"
        found = [named] if named.is_file() else sorted(path.glob("*.pth"))
        if len(found) != 1:
            several = "several .pth files but" if found else "no"
            raise ToolError(
                f"{path} holds {several} imagebind_huge.pth; download it there from "
                "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
            )
        return found[0]

    @staticmethod
    def package() -> tuple[Any, Any]:
        """``(imagebind.data, imagebind.models.imagebind_model)``, or a ToolError saying how
        to install them."""
        try:
            from imagebind import data
            from imagebind.models import imagebind_model
        except ImportError as exc:
            raise ToolError(
                f"the imagebind space needs the imagebind package ({first_line(exc)}); install "
                f"it with `{IMAGEBIND_INSTALL}` (it brings torchvision, torchaudio and "
                "pytorchvideo), or remove 'imagebind' from memory.spaces"
            ) from None
        return data, imagebind_model

    def _load(self) -> tuple[Any, Any]:
        data, imagebind_model = self.package()
        checkpoint = self.checkpoint()
        models = self.models

        def loader() -> Any:
            torch = require("torch", "vlm")
            net = imagebind_model.imagebind_huge(pretrained=False)
            try:
                state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
                net.load_state_dict(state)
            except (OSError, RuntimeError, KeyError, ValueError) as exc:
                raise ToolError(
                    f"cannot load ImageBind's weights from {checkpoint}: {first_line(exc)}; it "
                    "must be imagebind_huge.pth as released"
                ) from exc
            return net.to(models.device).eval()

        key = f"imagebind:{checkpoint}"
        net = models.load(key, loader, size_bytes=lambda: checkpoint.stat().st_size)
        return net, data

    def _run(self, net: Any, modality: str, value: Any) -> Any:
        return net({modality: value})[modality]

    def _embed_texts(self, model: Any, texts: list[str]) -> Any:
        net, data = model
        tokens = data.load_and_transform_text(texts, self.models.device)
        return self._run(net, "text", tokens)

    def _embed_media(self, model: Any, items: list[Item]) -> Any:
        import soundfile as sf
        from PIL import Image

        from tools.image_io import open_image

        net, data = model
        device = self.models.device
        rows = np.zeros((len(items), IMAGEBIND_DIM), dtype=np.float32)
        with tempfile.TemporaryDirectory(prefix="anymodal-imagebind-") as tmp:
            pictures: list[str] = []
            picture_owners: list[int] = []
            sounds: list[str] = []
            sound_owners: list[int] = []
            for n, item in enumerate(items):
                art = artifact_of(item)
                if item.modality == Modality.IMAGE:
                    open_image(art, self.tools).close()  # refuse broken or huge files first
                    pictures.append(art.path)
                    picture_owners.append(n)
                elif item.modality == Modality.VIDEO:
                    for k, frame in enumerate(video_frames(art, self.tools)):
                        path = Path(tmp) / f"{n}-{k}.png"
                        Image.fromarray(frame).save(path)
                        pictures.append(str(path))
                        picture_owners.append(n)
                else:
                    path = Path(tmp) / f"{n}.wav"
                    sf.write(path, mono_audio(art, self.tools, IMAGEBIND_RATE), IMAGEBIND_RATE)
                    sounds.append(str(path))
                    sound_owners.append(n)
            if pictures:
                vision = data.load_and_transform_vision_data(pictures, device)
                found = as_numpy(self._run(net, "vision", vision))
                means = group_mean(found, picture_owners, len(items))
                rows[sorted(set(picture_owners))] = means[sorted(set(picture_owners))]
            if sounds:
                audio = data.load_and_transform_audio_data(sounds, device)
                rows[sound_owners] = as_numpy(self._run(net, "audio", audio))
        return rows


def imagebind_space(
    settings: MemorySettings, models: ModelManager, tools: ToolSettings | None = None
) -> ImageBindSpace:
    """The imagebind space when it is set up: weights named, package importable."""
    if not settings.imagebind:
        raise ToolError(
            "off: set memory.imagebind to a folder holding imagebind_huge.pth to use it (its "
            "weights are CC BY-NC: non-commercial use only)"
        )
    space = ImageBindSpace(settings.imagebind, models, settings.batch_size, tools)
    space.checkpoint()
    if importlib.util.find_spec("imagebind") is None:
        space.package()  # raises, saying how to install it
    return space
