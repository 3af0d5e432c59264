"""Training-batch augmentations chosen by name (see pipeline.py for the registry)."""

from src.datamodules.augment.pipeline import (
    AUGMENTATIONS,
    AugmentationPipeline,
    build_augmentation,
    build_augmentations,
    parameter_defaults,
)

__all__ = ["AUGMENTATIONS", "AugmentationPipeline", "build_augmentation", "build_augmentations",
           "parameter_defaults"]
