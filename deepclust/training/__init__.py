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
from deepclust.training._precision import (
    PRECISIONS,
    autocast_dtype,
    cpu_has_native_bfloat16,
    current_precision,
    use_precision,
)
from deepclust.training._tensorboard import TensorBoardLogger

__all__ = [
    "PRECISIONS",
    "Callback",
    "Checkpoint",
    "EpochLogger",
    "ProgressBar",
    "Stage",
    "TensorBoardLogger",
    "Trainer",
    "TrainingDivergedError",
    "autocast_dtype",
    "cpu_has_native_bfloat16",
    "current_precision",
    "load_state",
    "run_inference",
    "save_state",
    "use_precision",
]
