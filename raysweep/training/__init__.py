"""Masked SGD training with the papers' schedules: training.train(model, ds, hparams, masks) -> TrainResult, and
training.train_packed(members, ds, hparams) -> [TrainResult] for K trials of one architecture trained together."""

from .checkpoints import load_weights
from .hparams import TrainHparams, preset, presets
from .evaluation import evaluate
from .loop import train
from .packed import Member, train_packed
from .run_state import TrainResult

__all__ = ["TrainHparams", "TrainResult", "evaluate", "load_weights", "Member", "preset", "presets", "train",
           "train_packed"]
