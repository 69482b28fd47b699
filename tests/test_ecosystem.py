"""raysweep as a Ray Tune and pandas user expects it: trials Tune can read, callbacks that get them, quiet progress,
typed Parquet columns, and failed trials that say what went wrong."""


import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import ray
from ray import tune

from raysweep import cli, results, sweep

pytestmark = pytest.mark.ray

SHORT = {"training_steps": "2ep", "lr_drops": ["1ep"]}

PLUGIN = '''
from raysweep import pruning


def _deep(weights):
    raise ValueError("scores of a method that is broken on purpose")


@pruning.register_method("broken_on_purpose")
def broken(model, weights, data):
    return _deep(weights)
'''


class Recorder(tune.Callback):
    """Keeps what Tune hands its callbacks: each trial's config, directory name and results."""

    def __init__(self):
        self.configs, self.names, self.results = {}, set(), []

    def on_trial_start(self, iteration, trials, trial, **info):
        self.configs[trial.config["name"]] = dict(trial.config)
        self.names.add(trial.local_path.rsplit("/", 1)[-1])

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results.append(dict(result))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("eco")
    plugin = tmp_path / "broken.py"
    plugin.write_text(PLUGIN)
    spec = sweep.StudySpec(name="eco", storage=str(tmp_path), seeds=[1], sparsities=[0.738], hparams=SHORT,
                           dense=False, plugins=[str(plugin)], max_failures=0,
                           grids=[{"methods": ["snip", "broken_on_purpose"]}])
    recorder = Recorder()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    run = sweep.run_study(spec, verbose=0, callbacks=[recorder])
    yield spec, run, recorder, tmp_path
    ray.shutdown()


def test_tune_sees_each_trials_settings_and_a_readable_name(study):
    spec, run, recorder, _ = study
    snip = next(t for t in sweep.expand(spec) if t.method == "snip")
    name = f"snip-s0.738-seed1-{snip.trial_id[:8]}"
    assert name in recorder.names
    config = recorder.configs[name]
    assert {k: config[k] for k in ("method", "sparsity", "seed", "ablation", "quota", "prune_at", "target")} == \
        {"method": "snip", "sparsity": 0.738, "seed": 1, "ablation": "none", "quota": "global", "prune_at": "init",
         "target": "direct"}
    assert config["trial_id"] == snip.trial_id
    # what Tune's own tools read: the experiment's frame has the settings as columns
    experiment = next(p for p in (study[3] / "eco" / "tune").iterdir() if p.name.startswith("trials-"))
    frame = tune.ExperimentAnalysis(str(experiment)).dataframe()
    assert {"config/method", "config/sparsity", "config/seed"} <= set(frame.columns)
    assert set(frame["config/method"]) == {"snip", "broken_on_purpose"}
    assert any("accuracy" in r for r in recorder.results)   # per-epoch results reach callbacks


def test_a_failed_trial_records_its_root_exception_and_status_lists_it(study, capsys):
    _, run, _, tmp_path = study
    failed = run.frame[run.frame["status"] == "failed"].iloc[0]
    error = failed["error"]
    assert error.startswith("ValueError: scores of a method that is broken on purpose")
    assert "\x1b[" not in error and "RayTaskError" not in error
    assert "in _deep" in error   # the last frames, where it was raised
    assert cli.main(["status", str(tmp_path / "eco")]) == 0
    out = capsys.readouterr().out
    assert (f"failed {failed['trial_id']} method=broken_on_purpose sparsity=0.738 seed=1 ablation=none "
            f"quota=global prune_at=init target=direct: ValueError: scores of a method that is broken on purpose"
            in out)


def test_rows_have_native_arrow_types_and_a_schema_version(study):
    _, run, _, tmp_path = study
    rows = tmp_path / "eco" / "trials"
    snip = run.frame[run.frame["method"] == "snip"].iloc[0]
    schema = pq.read_schema(rows / f"{snip['trial_id']}.parquet")
    assert schema.field("layer_sparsities").type == pa.map_(pa.string(), pa.float64())
    assert pa.types.is_list(schema.field("history").type)
    assert pa.types.is_struct(schema.field("history").type.value_type)
    assert schema.field("finished_at").type == pa.timestamp("us", tz="UTC")
    assert schema.metadata[b"raysweep.schema"] == b"2"
    # the study's results.parquet holds every row under one schema: pyarrow.dataset (or DuckDB) queries its
    # structured columns directly
    table = pads.dataset(tmp_path / "eco" / "results.parquet", format="parquet").to_table(
        columns=["trial_id", "status", "history", "layer_sparsities"])
    assert table.num_rows == 2 and table.schema.field("layer_sparsities").type == schema.field("layer_sparsities").type
    histories = {r["trial_id"]: r["history"] for r in table.to_pylist()}
    assert histories[snip["trial_id"]][-1]["step"] == snip["steps"]
    loaded = results.load(str(tmp_path / "eco"))
    assert isinstance(loaded.loc[loaded["method"] == "snip", "layer_sparsities"].iloc[0], dict)
    assert isinstance(loaded["finished_at"].dtype, pd.DatetimeTZDtype)


def test_a_logger_whose_package_is_missing_is_a_spec_error():
    import importlib.util
    missing = [name for name in ("wandb", "mlflow") if importlib.util.find_spec(name) is None]
    if not missing:
        pytest.skip("wandb and mlflow are both installed here")
    with pytest.raises(sweep.SpecError, match=rf"loggers: \['{missing[0]}'\] need their package"):
        sweep.StudySpec(loggers=[missing[0]])
    sweep.StudySpec(loggers=["tensorboard", "csv", "json"])   # Tune's own loggers need nothing more
