"""Tools and what they share: artifacts, the tool interface, the registry, the model manager.

Nothing heavy is imported here; backends import their libraries when they first run.
"""

from tools.artifact import Artifact, ArtifactStore, Modality
from tools.base import (
    AnyInput,
    AudioInput,
    Cancelled,
    ImageInput,
    MeshInput,
    TextInput,
    TextLike,
    Tool,
    ToolContext,
    ToolResult,
    VideoInput,
    artifact_input,
    text_input,
)
from tools.errors import MissingExtra, ToolError, require
from tools.models import ModelManager
from tools.registry import Registry, as_langchain_tool, function_tool
from tools.settings import ToolSettings

__all__ = [
    "AnyInput",
    "Artifact",
    "ArtifactStore",
    "AudioInput",
    "Cancelled",
    "ImageInput",
    "MeshInput",
    "MissingExtra",
    "Modality",
    "ModelManager",
    "Registry",
    "TextInput",
    "TextLike",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "ToolSettings",
    "VideoInput",
    "artifact_input",
    "text_input",
    "as_langchain_tool",
    "function_tool",
    "require",
]
