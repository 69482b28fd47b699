"""A study: what to prune, how, when, how often, and on what resources. Loadable from YAML, typed and strict.

The spec is a pydantic model: every field has a type, a default and a help text (`StudySpec.model_json_schema()` is the
JSON Schema editors read); unknown fields, values of the wrong type (a string for a number, 'no' for a boolean) and
unknown registry names are errors, all of them reported together, each naming its field. The checks that need files
(the data set is present, every quota is feasible on the model's layers) run in `preflight`, still before Ray starts,
without downloading anything or creating a directory.
"""

from __future__ import annotations

import math
import reprlib
import typing
import unicodedata
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .plugins import load_plugins

WHEN = ("init", "end")   # besides a step ('Nit', 'Nep' or an int)
EXTRA_METHODS = ("ltr", "dense")
LOGGERS = ("tensorboard", "csv", "json", "wandb", "mlflow")
INT64 = 2**63   # integers a result row holds (Parquet int64): seeds, counts, hyperparameters
NAME_BYTES = 200   # a directory name holds 255 bytes on common file systems; the rest is left for suffixes

_REPR = reprlib.Repr()   # at most 4 items of each container, 2 levels deep, 60 characters of any scalar
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 2, 4, 4, 4, 4
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60


def quoted(value, limit: int = 80) -> str:
    """repr(value) cut to `limit` characters, built without the full repr: a YAML alias bomb of a few hundred bytes
    stands for lists of gigabytes, and an error message quoting it must stay one short line."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _SpecLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, except that a key given twice in one mapping is an error: PyYAML would keep the
    last silently, and the spec would not be what its reader sees. Keys brought in by a merge ('<<: *base') may
    still be overridden, as YAML defines."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:   # an unhashable key: SafeLoader's own error names it
                    continue
                if first is not None:   # (YAML itself requires a mapping's keys to be unique)
                    lines = sorted({first.line + 1, key_node.start_mark.line + 1})
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {quoted(key)} is given twice (line{'s' * (len(lines) - 1)} "
                                    f"{' and '.join(map(str, lines))})", key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


class SpecError(ValueError):
    """Every problem found in a spec, one per line, each naming its field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid spec:\n" + "\n".join(f"  - {p}" for p in problems))


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:   # a key of the file (an unknown field) is quoted as any value is: cut short
        part = part if isinstance(part, int) or len(str(part)) <= 60 else quoted(str(part), 60)
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "spec"


def problems_of(error: ValidationError) -> list[str]:
    """One line per problem: 'field: what is wrong (got value)'."""
    lines = []
    for e in error.errors():
        inner = (e.get("ctx") or {}).get("error")
        if isinstance(inner, SpecError):   # a nested spec's own __init__ already listed its problems
            where = _where(e["loc"]) if e["loc"] else ""
            lines += [f"{where}.{p}" if where and not p.startswith("[") else f"{where}{p}" for p in inner.problems]
            continue
        msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif e["type"] != "value_error" and "input" in e and not isinstance(e["input"], (dict, BaseModel)):
            msg += f" (got {quoted(e['input'])})"
        lines.append(f"{_where(e['loc'])}: {msg}" if e["loc"] else msg)
    return lines


class SpecModel(BaseModel):
    """Loading, copying and dumping shared by every spec."""

    # NaN and infinity are no learning rate, no CPU count, no interval: every float field is finite
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True, allow_inf_nan=False)

    def __init__(self, **fields):
        # built in Python, a spec reports its problems as from YAML: every one, each naming its field
        try:
            super().__init__(**fields)
        except ValidationError as e:
            raise SpecError(problems_of(e)) from None

    @classmethod
    def from_dict(cls, raw):
        if raw is None:
            raise SpecError(["spec: the spec is empty (write its fields as 'name: value' lines)"])
        if not isinstance(raw, dict):
            raise SpecError([f"spec: must be a mapping of fields ('name: value' lines), got a "
                             f"{type(raw).__name__}"])
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            raise SpecError(problems_of(e)) from None

    @classmethod
    def from_yaml(cls, path):
        try:
            with open(path, "rb") as f:   # bytes: PyYAML decodes them, and a binary file is a YAMLError
                raw = yaml.load(f, Loader=_SpecLoader)
        except (yaml.YAMLError, ValueError, RecursionError) as e:
            # ValueError: an integer of more digits than Python converts; RecursionError: nesting too deep to parse
            raise SpecError([f"spec: {path} is not valid YAML ({str(e).splitlines()[0][:160]})"]) from None
        except OSError as e:
            raise SpecError([f"spec: cannot read {path} ({e.strerror})"]) from None
        return cls.from_dict(raw)

    def to_dict(self) -> dict:
        return self.model_dump()

    def replace(self, **changes):
        """A validated copy with some fields changed."""
        return type(self).from_dict({**self.model_dump(), **changes})


def _f(default, help, **kw):
    if callable(default):
        return Field(default_factory=default, description=help, **kw)
    return Field(default=default, description=help, **kw)


def _listed(values: list) -> str:
    """The first few values, each quoted short: a message names what is wrong, not all of it."""
    return ", ".join(map(quoted, values[:5])) + (f" and {len(values) - 5} more" if len(values) > 5 else "")


def _known(values, allowed, what: str):
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {_listed(unknown)} (known: {', '.join(sorted(allowed))})")
    return values


def _sparsities(values: list[float]) -> list[float]:
    bad = [s for s in values if not 0 <= s < 1]
    if bad:
        raise ValueError(f"{_listed(bad)} outside [0, 1)")
    return values


def _directory_name(v: str) -> str:
    """A study's directory under storage: one path component, which stays there and prints on one line."""
    if v in (".", ".."):
        raise ValueError(f"{v!r} is not a study's name: it names a directory that is already there")
    # Cc: control characters (NUL, newline, ...); Zl, Zp: line separators; Cs: lone surrogates, which no file
    # system name encodes
    bad = {c for c in v if c in "/\\" or unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs")}
    if bad:
        raise ValueError(f"{quoted(v)} holds {_listed(sorted(bad))}: a study's name is one directory "
                         f"name, without path separators or control characters")
    if len(v.encode()) > NAME_BYTES:
        raise ValueError(f"{quoted(v)} is {len(v.encode())} bytes long; a study's name holds at most {NAME_BYTES}")
    return v


DirectoryName = Annotated[str, Field(min_length=1), AfterValidator(_directory_name)]
Seed = Annotated[int, Field(ge=0, lt=INT64)]


def parse_when(value) -> str:
    """Canonical form of a prune_at value: 'init', 'end' or '<N>it'/'<N>ep'."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not 'init', 'end' or a step")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"step {value} is negative")
        return "init" if value == 0 else f"{value}it"
    text = str(value).strip()
    if text in WHEN:
        return text
    for unit in ("it", "ep"):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return "init" if int(text[: -len(unit)]) == 0 else f"{int(text[: -len(unit)])}{unit}"
    raise ValueError(f"{quoted(value)} is not 'init', 'end', 'Nit' or 'Nep'")


class Grid(SpecModel):
    """One block of the study's grid; its trials are methods x ablations x quotas x prune_at x sparsities x seeds."""

    methods: list[str] = _f(lambda: ["random", "magnitude", "snip", "grasp", "synflow"],
                            "pruning methods (pruning.methods()), 'ltr' (mask from magnitude pruning after training, "
                            "weights rewound to prune_at) or 'dense' (the unpruned network)", min_length=1)
    ablations: list[str] = _f(lambda: ["none"], "'none' or pruning.ablations() names (Frankle section 5)",
                              min_length=1)
    quotas: list[str] = _f(lambda: ["global"], "'global' (one ranking over all layers), a quota name "
                                               "(pruning.quotas(), with parameters as 'name(key=value)') or "
                                               "'ratio:<method>'", min_length=1)
    prune_at: list[Union[str, int]] = _f(lambda: ["init"], "when to prune: 'init', a training step ('1000it', "
                                                            "'2ep') or 'end' (after training)", min_length=1)
    sparsities: list[float] | None = _f(None, "sparsities of this block in [0, 1); None takes the study's",
                                        min_length=1)
    targets: list[Literal["direct", "effective"]] = _f(
        lambda: ["direct"], "'direct' (the sparsity counts removed weights) or 'effective' (it counts weights off "
                            "every input-output path: Vysogorets section 5 / Algorithm 1)", min_length=1)

    @field_validator("methods")
    @classmethod
    def _methods(cls, v):
        from .. import pruning
        return _known(v, {*pruning.methods(), *EXTRA_METHODS}, "method")

    @field_validator("ablations")
    @classmethod
    def _ablations(cls, v):
        from .. import pruning
        return _known(v, {"none", *pruning.ablations()}, "ablation")

    @field_validator("quotas")
    @classmethod
    def _quotas(cls, v):
        from .. import pruning
        ratios = [q[len("ratio:"):] for q in v if q.startswith("ratio:")]
        names, problems = [], []
        for q in v:
            if q != "global" and not q.startswith("ratio:"):
                try:
                    names.append(pruning.parse_quota(q)[0])
                except ValueError as e:
                    problems.append(str(e))
        for values, allowed, what in ((names, pruning.quotas(), "quota"),
                                      (ratios, pruning.methods(), "method in 'ratio:<method>'")):
            try:
                _known(values, set(allowed), what)
            except ValueError as e:
                problems.append(str(e))
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @field_validator("prune_at")
    @classmethod
    def _prune_at(cls, v):
        return [parse_when(w) for w in v]

    @field_validator("sparsities")
    @classmethod
    def _sparsities(cls, v):
        return v if v is None else _sparsities(v)

    @model_validator(mode="after")
    def _effective(self):
        if "effective" in self.targets and set(self.methods) & set(EXTRA_METHODS):
            raise ValueError("targets: 'effective' applies to pruning methods, not ltr or dense")
        return self


_HPARAMS = ConfigDict(strict=True, allow_inf_nan=False)


def _hparam_types() -> dict:
    from ..training import TrainHparams
    return typing.get_type_hints(TrainHparams)


class RunFields(SpecModel):
    """What every kind of study trains: model, data, training preset and initialisation."""

    model: str = _f("lenet_300_100", "model name (raysweep.models.names(), or any name matching "
                                     "raysweep.models.patterns())")
    data: str = _f("digits", "data set name (raysweep.data.names())")
    data_root: str | None = _f(None, "where data sets live: a directory, or several joined by ':' (default: "
                                     "$RAYSWEEP_DATA, ~/.raysweep/data, then the system's data directories)")
    training: str = _f("digits", "training preset (raysweep.training.presets())")
    hparams: dict[str, Any] = _f(dict, "overrides of the preset's TrainHparams fields")
    init: str = _f("kaiming_normal", "weight initialisation scheme (raysweep.models.WEIGHT_INITS)")
    bn_init: Literal["ones", "uniform"] = _f("ones", "BatchNorm gamma initialisation: 'ones' or 'uniform'")

    @field_validator("model")
    @classmethod
    def _model(cls, v):
        from .. import models
        if v not in models.names():
            try:   # from the numbers in its name, without building it: a typo may ask for a network of terabytes
                models.size(v, num_classes=10, input_shape=(3, 32, 32))
            except models.UnknownModel:
                raise ValueError(f"unknown model {quoted(v)} (known: {', '.join(models.names())}; other depths and "
                                 f"widths: raysweep.models.patterns())") from None
            except ValueError as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("data")
    @classmethod
    def _data(cls, v):
        from .. import data
        return _known([v], set(data.names()), "data set")[0]

    @field_validator("training")
    @classmethod
    def _training(cls, v):
        from .. import training
        return _known([v], set(training.presets()), "training preset")[0]

    @field_validator("init")
    @classmethod
    def _init(cls, v):
        from .. import models
        return _known([v], set(models.WEIGHT_INITS), "init scheme")[0]

    @field_validator("hparams")
    @classmethod
    def _hparams(cls, v):
        from pydantic import TypeAdapter
        types = _hparam_types()
        _known(list(v), set(types), "TrainHparams field")
        problems = []
        for key, value in v.items():
            # YAML has no tuples: a tuple field (lr_drops) takes a list of steps
            kind = Union[list[Union[str, int]], tuple[Union[str, int], ...]] \
                if typing.get_origin(types[key]) is tuple or types[key] is tuple else types[key]
            try:
                TypeAdapter(kind, config=_HPARAMS).validate_python(value)
            except ValidationError as e:
                problems.append(f"{key}: {e.errors()[0]['msg']} (got {quoted(value)})")
                continue
            if any(isinstance(x, int) and not -INT64 <= x < INT64 for x in (value if isinstance(value, (list, tuple))
                                                                              else [value])):
                problems.append(f"{key}: {quoted(value)} does not fit in a 64-bit integer")
        if problems:   # one line each, 'hparams.<key>: ...' (problems_of prefixes a nested SpecError's lines)
            raise SpecError(problems)
        return v

    @model_validator(mode="after")
    def _preset_accepts(self):
        from .. import training
        try:
            training.preset(self.training).replace(**self.hparams)
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"hparams: {e}") from None
        return self


class StudySpec(RunFields):
    """A grid study: its trials, where results go, and the resources each trial takes."""

    name: DirectoryName = _f("study", "the study's directory name under storage: one directory name (no '/', "
                                      "no control characters, not '.' or '..', at most 200 bytes)")
    storage: str = _f("runs", "local directory or pyarrow URI (s3://bucket/path) for results and dense checkpoints")
    seeds: list[Seed] = _f(
        lambda: [0], "replicate seeds (0 <= seed < 2**63); a seed fixes the initial weights shared by all methods",
        min_length=1)
    sparsities: list[float] = _f(lambda: [0.5, 0.9], "target sparsities in [0, 1)", min_length=1)
    grids: list[Grid] = _f(lambda: [Grid()], "blocks of the grid (see Grid); default: the five methods at init",
                           min_length=1)
    dense: bool = _f(True, "record each seed's dense network (its accuracy is the figures' reference line)")
    retrain: Literal["full", "remaining"] = _f("full", "after pruning at step t: 'full' repeats the whole schedule "
                                                       "(Frankle section 3), 'remaining' continues from step t")
    rescale: bool = _f(False, "after pruning, rescale kept weights back onto the Edge of Chaos (Hayou et al.)")
    ood: list[str] = _f(list, "out-of-distribution data sets for the ood_auroc metric (raysweep.data.names())")
    per_class: int = _f(10, "examples per class in the scoring batch of SNIP/GraSP (Frankle App. D)", ge=1,
                        lt=INT64)
    tie_break: Literal["random", "index"] = _f("random", "weights tied at the cut: pruned at random, seeded by the "
                                                         "trial ('random'), or lowest parameter index first ('index')")
    rounding: Literal["nearest", "synflow"] = _f("nearest", "iterative global pruning: prune exactly round(s_t N) "
                                                            "per round ('nearest') or everything at or below the "
                                                            "int(s_t N)-th score (Synaptic-Flow's rule, 'synflow')")
    iterations: dict[str, Annotated[int, Field(ge=1, lt=INT64)]] = _f(
        dict, "rounds of iterative pruning per method, e.g. {synflow: 100}")
    metrics: list[str] = _f(list, "extra metrics per trial (raysweep.metrics.names())")
    plugins: list[str] = _f(list, "modules or .py files imported in every trial process before it runs (to "
                                  "register models, methods, quotas or data sets); they run as code")
    workers: int = _f(1, "data-parallel workers per trial (Ray Train DDP when > 1)", ge=1)
    cpus_per_worker: float = _f(1.0, "CPUs reserved per worker", gt=0)
    gpus_per_worker: float = _f(0.0, "GPUs per worker; a fraction lets several trials share a GPU", ge=0)
    ray_train: bool = _f(False, "launch Ray Train (TorchTrainer) for one-worker trials too; by default they run "
                                "directly in their Tune trial, which starts 10-20 s sooner")
    backend: Literal["torch", "xla"] = _f("torch", "'torch' (DDP; gloo on CPU, nccl on GPU) or 'xla' (torch-xla "
                                                   "on TPUs)")
    wait_for_resources: bool = _f(False, "start even if the cluster lacks the GPUs now (autoscaling clusters)")
    pack_size: int | Literal["auto"] = _f(
        "auto", "trials of one model, data set and schedule trained together on one device as one batched "
                "computation (training.train_packed); 'auto' sizes packs from the model, the batch and the memory a "
                "trial's slot has; 1 trains each trial alone. Data-parallel trials (workers > 1) are never packed")
    max_failures: int = _f(1, "retries of a trial that raises before it is recorded as failed", ge=0)
    max_concurrent: int = _f(0, "trials running at once (0: as many as the cluster's resources allow, growing with "
                                "an autoscaling cluster)", ge=0)
    upload_every: float = _f(60.0, "seconds between writes of a running trial's resumable state (on remote storage, "
                                   "s3://..., and its uploads), at the first training step after that long, so a "
                                   "preempted node loses at most that much training and one step", ge=0)
    loggers: list[Literal[LOGGERS]] = _f(list, "Ray Tune logger callbacks: tensorboard, csv, json, wandb, mlflow "
                                               "(the last two need their package installed)")

    @field_validator("loggers")
    @classmethod
    def _loggers(cls, v):
        import importlib.util
        missing = [name for name in v if name in ("wandb", "mlflow") and importlib.util.find_spec(name) is None]
        if missing:
            raise ValueError(f"{missing} need their package: pip install {' '.join(missing)}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _load_plugins(cls, raw):
        # plugins register names the other fields may use, so they are imported before any field is checked
        plugins = raw.get("plugins") if isinstance(raw, dict) else None
        if isinstance(plugins, list) and all(isinstance(p, str) for p in plugins):
            try:
                load_plugins(plugins)
            except Exception as e:  # a plugin's own error, whatever it is, makes the spec unusable
                raise ValueError(f"plugins: {type(e).__name__}: {e}") from None
        return raw

    @field_validator("storage")
    @classmethod
    def _storage(cls, v):
        if not v.strip() or any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in v):
            raise ValueError(f"must name a directory or a URI, without control characters (got {quoted(v)})")
        return v

    @field_validator("pack_size", mode="before")
    @classmethod
    def _pack_size(cls, v):
        # checked before pydantic tries the union's members, whose names ('int', 'literal[...]') would mean nothing
        if v != "auto" and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ValueError(f"must be 'auto' or a whole number >= 1 (got {quoted(v)})")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v):
        if len(set(v)) != len(v):
            raise ValueError(f"{quoted(v)} repeats a seed")
        return v

    @field_validator("sparsities")
    @classmethod
    def _sparsities(cls, v):
        return _sparsities(v)

    @field_validator("gpus_per_worker")
    @classmethod
    def _gpus(cls, v):
        if not math.isfinite(v) or (v > 1 and v != int(v)):
            raise ValueError(f"{v!r} must be a fraction of one GPU or a whole number of GPUs")
        return v

    @field_validator("iterations")
    @classmethod
    def _iterations(cls, v):
        from .. import pruning
        _known(list(v), set(pruning.methods()), "method")
        return v

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v):
        from .. import metrics
        return _known(v, set(metrics.names()), "metric")

    @field_validator("ood")
    @classmethod
    def _ood(cls, v):
        from .. import data
        return _known(v, set(data.names()), "data set")

    @model_validator(mode="after")
    def _together(self):
        problems = ["ood: given without 'ood_auroc' in metrics"] if self.ood and "ood_auroc" not in self.metrics else []
        if self.rounding != "nearest":
            problems += [f"rounding: {self.rounding!r} is a rule of global pruning, and grids[{i}] has quotas "
                         f"{_listed([q for q in g.quotas if q != 'global'])}" for i, g in enumerate(self.grids)
                         if any(q != "global" for q in g.quotas)]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def validate(spec: StudySpec) -> StudySpec:
    """The spec checked again (a spec built field by field in Python was checked when built)."""
    return StudySpec.from_dict(spec.model_dump())
