"""Step counts written as 'Nep'/'Nit' and the learning-rate schedule over steps."""

from __future__ import annotations

import re

import torch

_STEPS = re.compile(r"^\s*(\d+)\s*(ep|it)\s*$")


def parse_steps(value, steps_per_epoch: int) -> int:
    """'160ep' -> 160 * steps_per_epoch; '30000it' or 30000 -> 30000."""
    if isinstance(value, bool):
        raise ValueError(f"step count must be an int or 'Nep'/'Nit', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"step count must be >= 0, got {value}")
        return value
    m = _STEPS.match(str(value))
    if not m:
        raise ValueError(f"step count must be an int or a string like '160ep' or '30000it', got {value!r}")
    n = int(m.group(1))
    return n * steps_per_epoch if m.group(2) == "ep" else n


def learning_rate(step: int, base_lr: float, drops: list[int], gamma: float, warmup: int) -> float:
    """Learning rate for the update that takes the weights from `step` to `step + 1`."""
    lr = base_lr * gamma ** sum(step >= d for d in drops)
    if warmup and step < warmup:
        lr *= (step + 1) / warmup
    return lr


class Schedule:
    """One run's schedule in steps: steps per epoch, total, learning rate per step and the steps to save at.

    Both trainers build it the same way, so a run's learning rates, evaluations and save points do not depend on
    how it is executed.
    """

    def __init__(self, hparams, steps_per_epoch: int, save_steps=()):
        spe = self.steps_per_epoch = int(steps_per_epoch)
        self.total = parse_steps(hparams.training_steps, spe)
        self.drops = [parse_steps(d, spe) for d in hparams.lr_drops]
        self.warmup = parse_steps(hparams.warmup_steps, spe)
        self.base_lr, self.gamma = hparams.lr, hparams.gamma
        self.saves = frozenset(parse_steps(s, spe) for s in save_steps)

    def check_run(self, start_step: int, checkpoint_dir, who: str = "") -> None:
        """Reject a start_step or save steps this schedule cannot honour, before any work starts."""
        if not 0 <= start_step <= self.total:
            raise ValueError(f"{who}start_step {start_step} is outside the schedule's {self.total} steps")
        bad = sorted(s for s in self.saves if not start_step <= s <= self.total)
        if bad:
            raise ValueError(f"{who}save_steps {bad} fall outside this run's steps [{start_step}, {self.total}]")
        if self.saves and checkpoint_dir is None:
            raise ValueError(f"{who}save_steps given without a checkpoint_dir to write them to")

    def lr(self, step: int) -> float:
        return learning_rate(step, self.base_lr, self.drops, self.gamma, self.warmup)

    def lr_table(self, device, dtype=torch.float32):
        """lr(step) for every step 0..total (the last entry is never trained with), as one tensor on `device`: the
        training step indexes it on the device instead of copying a new learning rate there every step. `dtype` is
        the parameters': a float64 run must not see its learning rates rounded to float32."""
        return torch.tensor([self.lr(s) for s in range(self.total + 1)], dtype=dtype, device=device)

    def is_epoch_end(self, step: int) -> bool:
        return step % self.steps_per_epoch == 0 or step >= self.total
