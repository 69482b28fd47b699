"""Grid expansion: a study spec -> trials, each with a stable id (the hash of its non-default settings)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
from dataclasses import dataclass, fields

from .. import training
from .spec import StudySpec, parse_when


def _hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


@functools.cache
def _default_hparams() -> dict:
    return {k: json.dumps(v, default=str) for k, v in dataclasses.asdict(training.TrainHparams()).items()}


def _changed_hparams(hparams: dict) -> dict:
    """The hyperparameters that differ from TrainHparams' defaults, so that a new field with a default changes no id
    (compared as JSON: a tuple and the list it becomes on a round trip are the same setting)."""
    base = _default_hparams()
    return {k: v for k, v in hparams.items() if base.get(k, "null") != json.dumps(v, default=str)}


def _resolved_hparams(spec: StudySpec) -> dict:
    return dataclasses.asdict(training.preset(spec.training).replace(**(spec.hparams or {})))


@dataclass(frozen=True)
class Trial:
    """Everything that decides one trial's outcome. Resources and measurement settings are not part of it."""

    model: str = "lenet_300_100"
    data: str = "digits"
    hparams: dict = dataclasses.field(default_factory=dict)   # the full, resolved TrainHparams
    init: str = "kaiming_normal"
    bn_init: str = "ones"
    seed: int = 0
    sparsity: float = 0.0
    method: str = "dense"
    ablation: str = "none"
    quota: str = "global"
    prune_at: str = "init"
    retrain: str = "full"
    target: str = "direct"
    rescale: bool = False
    per_class: int = 10
    iterations: int | None = None
    # A field added later defaults to what trials recorded before it existed did, so that their ids stay theirs;
    # a spec's own default may differ (ties are broken at random by default now), which gives new ids.
    tie_break: str = "index"
    rounding: str = "nearest"

    def __post_init__(self):
        if self.method == "dense":   # nothing is pruned: how ties would be broken is no part of what it computes
            object.__setattr__(self, "tie_break", "index")
            object.__setattr__(self, "rounding", "nearest")

    @functools.cached_property   # computed once: a dry run of 10^5 trials asks each for its id three times
    def trial_id(self) -> str:
        defaults = Trial()
        settings = {f.name: getattr(self, f.name) for f in fields(self)
                    if f.name != "hparams" and getattr(self, f.name) != getattr(defaults, f.name)}
        settings["hparams"] = _changed_hparams(self.hparams)
        return _hash(settings)

    @functools.cached_property
    def dense_id(self) -> str:
        """Key of the dense run this trial shares with every trial of the same model, data, hparams and seed."""
        return _hash({"model": self.model, "data": self.data, "hparams": _changed_hparams(self.hparams),
                      "init": self.init, "bn_init": self.bn_init, "seed": self.seed})

    @property
    def dense_needs(self) -> set[str]:
        """The checkpoints of the dense run this trial reads ('end' for its mask or its row, or prune_at)."""
        needs = {"end"} if self.method in ("dense", "ltr") else set()
        return needs | ({self.prune_at} - {"init"})

    @property
    def needs_dense(self) -> bool:
        return bool(self.dense_needs)

    def dense_trial(self) -> "Trial":
        """The trial whose row is this trial's dense run (its seed's unpruned network)."""
        return Trial(model=self.model, data=self.data, hparams=self.hparams, init=self.init, bn_init=self.bn_init,
                     seed=self.seed, retrain=self.retrain, rescale=self.rescale, per_class=self.per_class,
                     tie_break=self.tie_break, rounding=self.rounding)

    def train_hparams(self) -> training.TrainHparams:
        return training.TrainHparams(**self.hparams)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def columns(self) -> dict:
        """The trial's settings as flat result columns; hyperparameters become hp_<field>."""
        settings = {k: v for k, v in self.to_dict().items() if k != "hparams"}
        hparams = {f"hp_{k}": (list(v) if isinstance(v, tuple) else v) for k, v in self.hparams.items()}
        return {"trial_id": self.trial_id, "dense_id": self.dense_id, **settings, **hparams}

    @classmethod
    def from_dict(cls, d: dict) -> "Trial":
        return cls(**d)


def count(spec: StudySpec) -> int:
    """How many trials expand(spec) gives, from the lengths of the spec's lists, without expanding: a grid of millions
    is refused before it is built. Trials that two blocks share are counted twice (an upper bound, then)."""
    seeds = len(spec.seeds)
    total = seeds if spec.dense or any("dense" in g.methods for g in spec.grids) else 0   # one dense run per seed
    for g in spec.grids:
        sparsities = len(g.sparsities if g.sparsities is not None else spec.sparsities)
        total += (sum(m != "dense" for m in g.methods) * len(g.ablations) * len(g.quotas) * len(g.prune_at)
                  * len(g.targets) * sparsities * seeds)
    return total


def expand(spec: StudySpec) -> list[Trial]:
    """Every trial of the study, in a deterministic order, without duplicates."""
    common = dict(model=spec.model, data=spec.data, hparams=_resolved_hparams(spec), init=spec.init,
                  bn_init=spec.bn_init, retrain=spec.retrain, rescale=spec.rescale, per_class=spec.per_class,
                  tie_break=spec.tie_break, rounding=spec.rounding)
    trials: dict[str, Trial] = {}

    def add(**settings):
        t = Trial(**common, **settings)
        trials.setdefault(t.trial_id, t)

    if spec.dense:
        for seed in spec.seeds:
            add(seed=seed)
    for g in spec.grids:
        sparsities = g.sparsities if g.sparsities is not None else spec.sparsities
        for method, ablation, quota, when, target, s, seed in itertools.product(
                g.methods, g.ablations, g.quotas, g.prune_at, g.targets, sparsities, spec.seeds):
            if method == "dense":
                add(seed=seed)
            else:
                add(seed=seed, sparsity=float(s), method=method, ablation=ablation, quota=quota,
                    prune_at=parse_when(when), target=target, iterations=spec.iterations.get(method))
    return list(trials.values())
