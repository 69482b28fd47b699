"""What one training run records and resumes from, kept the same way by train() and train_packed(): the files in
its checkpoint_dir (state.pt to resume from, step_<t>.pt weights), its evaluations, its divergence and its result.

Each file names what it belongs to: the caller's `owner` (what the run is: a dense run's or a trial's id and what it
depends on) and, for state.pt, how it trains (run_id()). A file of another run is treated as a damaged one: set aside,
never resumed from.

A run diverges at the first step whose loss is not finite: that step makes no update, the weights stay those of the
last finite step, and `steps` is the step it reached. Whether the loss was finite is decided on the device
(Progress) and read on the host only at evaluations, save steps and timed state writes (Every), so no training step
waits for the host.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import torch

from ..integrity import digest
from .checkpoints import STATE_FILE, atomic_save, load_state, weights_path


@dataclass
class TrainResult:
    status: str                 # "completed" or "diverged"
    accuracy: float             # final evaluation accuracy on eval_split, in [0, 1]
    loss: float                 # final evaluation mean cross-entropy
    steps: int                  # schedule step reached (counting from 0, including start_step)
    wall_time: float            # seconds spent in training calls, summed over resumed attempts
    history: list = field(default_factory=list)      # one dict per evaluation
    checkpoints: dict = field(default_factory=dict)  # step -> path of step_<t>.pt


def mask_digest(masks) -> str | None:
    """Digest of which weights a run keeps (None: a dense run), whatever the masks' dtype or device."""
    if masks is None:
        return None
    return digest({name: torch.as_tensor(m).detach().cpu() != 0 for name, m in sorted(masks.items())})


def run_id(hparams, seed: int, start_step: int, world_size: int, masks=None) -> dict:
    """How a run trains, which a state.pt must match to be resumed: how it is executed (alone or in a pack) is not part
    of it."""
    return {"hparams": dataclasses.asdict(hparams), "seed": seed, "start_step": start_step, "world_size": world_size,
            "masks": mask_digest(masks)}


def state_owner(owner: dict | None, run: dict) -> dict:
    """What a run's state.pt belongs to: what the run is (`owner`) and how it trains (run_id())."""
    return {**(owner or {}), "run": run}


def weights_owner(owner: dict | None, step: int) -> dict:
    """What the weights a run saved at `step` belong to; a reader knows the run's owner and the step it wants."""
    return {**(owner or {}), "step": step}


class Every:
    """A timer on the host's clock for writes between evaluations: due() once `seconds` have passed since it last was
    (None: never). Reading the clock costs no device sync, so it is asked every step."""

    def __init__(self, seconds: float | None):
        self.seconds, self.last = seconds, time.monotonic()

    def due(self) -> bool:
        if self.seconds is None or time.monotonic() - self.last < self.seconds:
            return False
        self.last = time.monotonic()
        return True


def rng_state(device) -> dict:
    device = torch.device(device)
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device) -> None:
    device = torch.device(device)
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def seeded_rng_state(seed: int, device) -> dict:
    """The global RNG state torch.manual_seed(seed) leaves, without changing the caller's."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return rng_state(device)


class RunLog:
    """A run's host-side record: step reached, status, evaluations, saved weights, and its state.pt."""

    def __init__(self, owner: dict | None, run: dict, checkpoint_dir, start_step: int, writer: bool = True,
                 guard=None):
        # guard(): called before every file the run writes; it raises to stop a run that may write no more (a
        # trial of a driver that lost its study's lease)
        self.owner, self.run, self.checkpoint_dir, self.writer, self.guard = owner, run, checkpoint_dir, writer, guard
        self.step, self.status, self.history, self.checkpoints = start_step, "completed", [], {}
        self.wall_before, self.epoch_loss, self.started = 0.0, [0.0, 0], time.time()

    def load(self) -> dict | None:
        """This run's state.pt, or None (one of another run is set aside: the run starts over)."""
        if self.checkpoint_dir is None:
            return None
        return load_state(self.checkpoint_dir, state_owner(self.owner, self.run))

    def resume(self, state: dict) -> None:
        """Take over the record of this run's state.pt (from load())."""
        self.step, self.status, self.history = state["step"], state["status"], state["history"]
        self.checkpoints, self.wall_before, self.epoch_loss = state["checkpoints"], state["wall_time"], \
            list(state["epoch_loss"])

    def finished(self, total: int) -> bool:
        return self.status != "completed" or self.step >= total

    def wall_time(self) -> float:
        return self.wall_before + time.time() - self.started

    def save_weights(self, step: int, weights) -> None:
        """weights: a CPU state_dict, or a function returning one (called only by the writing rank)."""
        path = weights_path(self.checkpoint_dir, step)
        if self.writer:
            self._guard()
            atomic_save(weights() if callable(weights) else weights, path, weights_owner(self.owner, step))
        self.checkpoints[step] = str(path)

    @property
    def writes_state(self) -> bool:
        return self.checkpoint_dir is not None and self.writer

    def _guard(self) -> None:
        if self.guard is not None:
            self.guard()

    def save_state(self, model: dict, optimizer: dict, rng: dict, scaler: dict | None) -> None:
        if not self.writes_state:
            return
        self._guard()
        atomic_save({"model": model, "optimizer": optimizer, "rng": rng, "step": self.step,
                     "status": self.status, "history": self.history, "checkpoints": self.checkpoints,
                     "wall_time": self.wall_time(), "epoch_loss": list(self.epoch_loss), "scaler": scaler},
                    f"{self.checkpoint_dir}/{STATE_FILE}", state_owner(self.owner, self.run))

    def record(self, lr: float, steps_per_epoch: int, metrics: dict, loss_sums) -> dict:
        """Append the evaluation at the current step; loss_sums = (summed training loss, steps) since the previous
        one (summed over ranks)."""
        total, count = loss_sums
        record = {"step": self.step, "epoch": self.step / steps_per_epoch, "lr": lr,
                  "train_loss": total / count if count > 0 else float("nan"), **metrics}
        self.history.append(record)
        self.epoch_loss = [0.0, 0]
        return record

    def needs_final_record(self) -> bool:
        return not self.history or self.history[-1]["step"] != self.step

    def result(self) -> TrainResult:
        final = self.history[-1]
        return TrainResult(status=self.status, accuracy=final["accuracy"], loss=final["loss"], steps=self.step,
                           wall_time=self.wall_time(), history=self.history, checkpoints=dict(self.checkpoints))


class Progress:
    """Device-side record of the steps since the host last looked, for one run (shape ()) or K stacked runs (K,):
    whether each is still finite, the step it diverged at, and its summed training loss. Updated in place, so a
    compiled step can own it."""

    def __init__(self, shape, device, epoch_losses):
        self.alive = torch.ones(shape, dtype=torch.bool, device=device)
        self.diverged_at = torch.full(shape, -1, dtype=torch.long, device=device)
        sums = torch.tensor(epoch_losses, dtype=torch.float64).reshape(*shape, 2)
        self.loss_sum = sums[..., 0].to(device)
        self.count = sums[..., 1].long().to(device)

    def update(self, losses: torch.Tensor, finite: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """Account for one step whose losses were `losses`; True where the step is to update the weights."""
        ok = self.alive & finite
        self.loss_sum.add_(torch.where(ok, losses.detach().double(), 0.0))
        self.count.add_(ok.long())
        self.diverged_at.copy_(torch.where(self.alive & ~finite, step, self.diverged_at))
        self.alive.copy_(ok)
        return ok

    def epoch_loss(self, member: int | None = None) -> list:
        pick = (lambda t: t) if member is None else (lambda t: t[member])
        return [pick(self.loss_sum).item(), int(pick(self.count).item())]

    def reset_epoch_loss(self, member: int | None = None) -> None:
        if member is None:
            self.loss_sum.zero_()
            self.count.zero_()
        else:
            self.loss_sum[member] = 0.0
            self.count[member] = 0
