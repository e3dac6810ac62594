"""The training engine shared by every method."""

from deepclust.training._engine import (
    Callback,
    Checkpoint,
    Stage,
    Trainer,
    TrainingDivergedError,
    load_state,
    save_state,
)
from deepclust.training._inference import run_inference

__all__ = [
    "Callback",
    "Checkpoint",
    "Stage",
    "Trainer",
    "TrainingDivergedError",
    "load_state",
    "run_inference",
    "save_state",
]
