"""hecvl: a reproducible workflow for HecVL, hierarchical surgical video-language pretraining."""

__version__ = "0.1.0"
