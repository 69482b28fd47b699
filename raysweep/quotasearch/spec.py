"""A quota search: which families and parameter ranges, at which sparsities, on what, with what budget.

Typed and strict like a study spec (raysweep.sweep.spec): every problem is reported at once, naming its field.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import field_validator, model_validator

from ..sweep.spec import DirectoryName, RunFields, Seed, SpecModel, _f, _known, _listed, quoted


class Family(SpecModel):
    """One quota family searched over a box of its parameters (the others fixed)."""

    name: str = _f("igq_power", "a registered quota taking parameters (pruning.quotas()), e.g. igq_power, erk_power")
    space: dict[str, Any] = _f(lambda: {"a": [0.25, 2.0]}, "searched parameters: {name: [low, high]} or {name: "
                                                            "{low: .., high: .., log: bool}}")
    fixed: dict[str, float] = _f(dict, "parameters held fixed, e.g. {first_density: 1}")

    def __init__(self, *args, **fields):
        # Family("igq_power", {"a": [0.5, 1.5]}, {"last_density": 1.0}) reads like the YAML it stands for
        super().__init__(**dict(zip(("name", "space", "fixed"), args)), **fields)

    @model_validator(mode="after")
    def _parameters(self):
        from .. import pruning
        if self.name not in pruning.quotas():
            raise ValueError(f"name: unknown quota family {self.name!r} (known: {pruning.quotas()})")
        accepted = family_parameters(self.name)
        problems = [f"space: must name at least one parameter to search ({self.name} takes "
                    f"{sorted(accepted) or 'none'})"] if not self.space else []
        problems += [f"{self.name} has no parameter {quoted(key)} (it takes {sorted(accepted)})"
                     for key in {**self.space, **self.fixed} if key not in accepted]
        for key, value in self.space.items():
            try:
                parse_range(value)
            except ValueError as e:
                problems.append(f"space.{key}: {e}")
        problems += [f"{key!r} is both searched and fixed" for key in set(self.space) & set(self.fixed)]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class SearchSpec(RunFields):
    """Searches of quota families (Optuna through Ray Tune), one per family and sparsity, and a final evaluation."""

    name: DirectoryName = _f("quota_search", "the study's directory name under storage: one directory name (no "
                                             "'/', no control characters, not '.' or '..', at most 200 bytes)")
    storage: str = _f("runs", "local directory or pyarrow URI for rows, best parameters, plots, final evaluation",
                      min_length=1)
    optuna_storage: str | None = _f(None, "SQLAlchemy URL of the Optuna RDB storage (default: SQLite file optuna.db "
                                          "in the study directory, which must then be local)")
    validation: Union[int, float] = _f(0.1, "fraction (float) or number (int) of training examples held out as the "
                                            "search's objective split; the test set is never seen by the search")
    split_seed: int = _f(0, "seed of the validation hold-out (the same for every proposal)")
    families: list[Family] = _f(lambda: [Family("igq_power", {"a": [0.25, 2.0]}),
                                         Family("erk_power", {"p": [0.0, 2.0]})],
                                "families to search (see Family); one search per family and sparsity", min_length=1)
    sparsities: list[float] = _f(lambda: [0.9, 0.98], "target sparsities in (0, 1)", min_length=1)
    prune_at: Literal["init", "end"] = _f("init", "'init': random pruning under the proposed quota before training; "
                                                  "'end': magnitude pruning of the trained dense network under it, "
                                                  "weights rewound to their initial values, then retraining "
                                                  "(Vysogorets & Kempe's second setting)")
    trials: int = _f(12, "proposals per search (family x sparsity), counting those of earlier interrupted runs", ge=1)
    seeds: list[Seed] = _f(lambda: [0, 1], "seeds each proposal is trained with; the objective is their mean "
                                          "validation accuracy", min_length=1)
    sampler: Literal["tpe", "random"] = _f("tpe", "Optuna sampler: 'tpe' (default) or 'random'")
    sampler_seed: int = _f(0, "seed of the sampler")
    scheduler: Literal["asha", "fifo"] = _f("asha", "'asha' (stop bad proposals early on their per-epoch validation "
                                                    "accuracy) or 'fifo'")
    grace_period: int = _f(1, "ASHA: epochs every proposal trains before it may be stopped", ge=1)
    reduction_factor: int = _f(2, "ASHA: keep 1/reduction_factor of the proposals at each rung", ge=2)
    max_concurrent: int = _f(2, "proposals training at once", ge=1)
    cpus_per_trial: float = _f(1.0, "CPUs reserved per proposal (its seeds train in turn, not in parallel)", gt=0)
    gpus_per_trial: float = _f(0.0, "GPUs per proposal (and per final-evaluation trial); a fraction shares a GPU",
                               ge=0)
    final: bool = _f(True, "evaluate the best proposals against the baselines on the test set afterwards")
    final_seeds: list[Seed] = _f(lambda: [100, 101, 102], "fresh seeds of the final evaluation", min_length=1)
    baselines: list[str] = _f(lambda: ["igq", "erk", "uniform", "ratio:snip"],
                              "quotas the best proposals are compared with in the final evaluation")

    @field_validator("validation")
    @classmethod
    def _validation(cls, v):
        if not ((isinstance(v, int) and v > 0) or (isinstance(v, float) and 0 < v < 1)):
            raise ValueError(f"{quoted(v)} must be a fraction in (0, 1) or a positive count")
        return v

    @field_validator("families")
    @classmethod
    def _once(cls, v):
        names = [f.name for f in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"{twice} listed twice")
        return v

    @field_validator("sparsities")
    @classmethod
    def _sparsities(cls, v):
        bad = [s for s in v if not 0 < s < 1]
        if bad:
            raise ValueError(f"{_listed(bad)} outside (0, 1)")
        return v

    @field_validator("seeds", "final_seeds")
    @classmethod
    def _distinct(cls, v):
        if len(set(v)) != len(v):
            raise ValueError(f"{quoted(v)} repeats a seed")
        return v

    @field_validator("baselines")
    @classmethod
    def _baselines(cls, v):
        from .. import pruning
        return _known(v, {*pruning.quotas(), *(f"ratio:{m}" for m in pruning.methods())},
                      "quota (quota names or 'ratio:<method>')")

    @model_validator(mode="after")
    def _together(self):
        problems = []
        if self.final and set(self.seeds) & set(self.final_seeds):
            problems.append(f"final_seeds: {quoted(self.final_seeds)} must be fresh (the search used seeds "
                            f"{quoted(self.seeds)})")
        ratios = [b for b in self.baselines if b.startswith("ratio:")]
        if self.prune_at == "end" and ratios:
            problems.append(f"baselines: {ratios} need scoring data, which magnitude pruning after training "
                            f"(prune_at: end) does not take; use quota names")
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool = False


def parse_range(value) -> Range:
    """[low, high] or {low, high, log} -> Range; ValueError naming what is wrong."""
    if isinstance(value, dict):
        extra = set(value) - {"low", "high", "log"}
        if extra or not {"low", "high"} <= set(value):
            raise ValueError(f"{quoted(value)} must have keys low, high (and optionally log)")
        low, high, log = value["low"], value["high"], bool(value.get("log", False))
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        (low, high), log = value, False
    else:
        raise ValueError(f"{quoted(value)} must be [low, high] or {{low: .., high: .., log: ..}}")
    if isinstance(low, bool) or isinstance(high, bool) or not all(isinstance(v, (int, float)) for v in (low, high)):
        raise ValueError(f"bounds {quoted(low)}, {quoted(high)} must be numbers")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"bounds {low!r}, {high!r} must be finite with low < high")
    if log and low <= 0:
        raise ValueError(f"a log range needs low > 0, got {low!r}")
    return Range(float(low), float(high), log)


def family_parameters(name: str) -> set[str]:
    """The parameters a registered quota accepts besides the shapes and the sparsity."""
    import importlib
    fn = importlib.import_module("raysweep.pruning.quotas")._QUOTAS[name]   # the registry pruning.quota() reads
    return set(list(inspect.signature(fn).parameters)[2:])


def quota_string(family: str, params: dict) -> str:
    """'family(k=v, ...)' with parameters in a fixed order, the form study trials and pruning.quota() read."""
    if not params:
        return family
    return f"{family}({', '.join(f'{k}={float(params[k])!r}' for k in sorted(params))})"


def validate(spec: SearchSpec) -> SearchSpec:
    """The spec checked again (a spec built field by field in Python was checked when built)."""
    return SearchSpec.from_dict(spec.model_dump())


def _tpe(seed):
    import optuna
    return optuna.samplers.TPESampler(seed=seed)


def _random(seed):
    import optuna
    return optuna.samplers.RandomSampler(seed=seed)


SAMPLERS = {"tpe": _tpe, "random": _random}
