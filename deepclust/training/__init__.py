"""The training engine shared by every method."""

from deepclust.training._callbacks import (
    Callback,
    Checkpoint,
    EpochLogger,
    ProgressBar,
    load_state,
    save_state,
)
from deepclust.training._engine import Stage, Trainer, TrainingDivergedError
from deepclust.training._inference import run_inference

__all__ = [
    "Callback",
    "Checkpoint",
    "EpochLogger",
    "ProgressBar",
    "Stage",
    "Trainer",
    "TrainingDivergedError",
    "load_state",
    "run_inference",
    "save_state",
]
