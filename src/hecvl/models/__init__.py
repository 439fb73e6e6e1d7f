"""The HecVL video-language model: encoders, level-specific heads, losses, export.

    from hecvl.models import build_model, save_pretrained, load_pretrained
    model = build_model(params["model"], seed=params["seed"])
    losses = model("clip", frames, narrations)      # {"clip/video_text": ..., "clip/total": ...}
"""

from hecvl.config.model import LEVELS, ModelConfig
from hecvl.models.export import load_pretrained, save_pretrained
from hecvl.models.model import HecVLModel, build_model

__all__ = ["LEVELS", "HecVLModel", "ModelConfig", "build_model", "load_pretrained", "save_pretrained"]
