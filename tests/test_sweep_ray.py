"""The engine on a real local Ray cluster: Tune trials, Ray Train workers, the dense cache, failures, resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import ray
import yaml

from raysweep import cli, models, pruning, results, sweep

pytestmark = pytest.mark.ray

SHORT = {"training_steps": "2ep", "lr_drops": ["1ep"]}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def spec(tmp_path, **changes):
    base = dict(name="s", storage=str(tmp_path), seeds=[0], sparsities=[0.5], hparams=SHORT, dense=False,
                grids=[sweep.Grid(methods=["random"])])
    base.update(changes)
    return sweep.StudySpec(**base)


def test_tiny_grid_end_to_end_with_one_dense_training(tmp_path, capsys):
    study = spec(tmp_path, sparsities=[0.5, 0.9], dense=True, metrics=["nll"],
                 grids=[sweep.Grid(methods=["random", "snip", "synflow"]),
                        sweep.Grid(methods=["magnitude"], prune_at=["end"]),
                        sweep.Grid(methods=["ltr"], prune_at=["5it"])])
    expected = {t.trial_id for t in sweep.expand(study)}
    run = sweep.run_study(study, verbose=0)
    df = run.frame
    assert run.ran == len(expected) == 11 and run.skipped == 0 and run.failed == 0
    assert set(df["trial_id"]) == expected and len(df) == len(expected)
    assert run.dense_trainings == 1   # six trials needed the seed's dense run; it was trained once
    assert (df["status"] == "completed").all()
    pruned = df[df["method"] != "dense"]
    assert (pruned["accuracy"] > 0.2).all() and (pruned["accuracy"] <= 1).all()
    # two epochs: random pruning starts slowly (its signal shrinks layer by layer); the others learn
    assert (pruned.loc[(pruned["sparsity"] == 0.5) & (pruned["method"] != "random"), "accuracy"] > 0.8).all()
    sizes = {n: p.numel() for n, p in pruning.prunable(models.create("lenet_300_100", input_shape=(1, 8, 8))).items()}
    for _, row in pruned.iterrows():
        assert abs(row["sparsity_direct"] - row["sparsity"]) < 1e-4
        assert row["sparsity_effective"] >= row["sparsity_direct"] - 1e-12
        assert set(row["layer_sparsities"]) == set(sizes)
        pruned_weights = sum(row["layer_sparsities"][n] * size for n, size in sizes.items())
        assert pruned_weights == pytest.approx(row["sparsity_direct"] * sum(sizes.values()))
    # the NLL metric, computed afresh from each trial's final (or the dense run's saved) weights, is the loss the
    # training loop measured on the same test set
    assert (df["nll"] - df["loss"]).abs().max() < 1e-4
    dense = df[df["method"] == "dense"].iloc[0]
    stored = json.loads((tmp_path / "dense" / dense["dense_id"] / "result.json").read_text())
    assert dense["accuracy"] == stored["accuracy"] > 0.8
    assert {"init", "5it", "end"} <= set(stored["checkpoints"])
    on_disk = pd.read_parquet(tmp_path / "s" / "results.parquet")
    assert len(on_disk) == len(expected) and set(on_disk["trial_id"]) == expected

    again = sweep.run_study(study, verbose=0)   # everything finished: nothing runs, nothing duplicates
    assert again.ran == 0 and again.skipped == len(expected) and again.dense_trainings == 0
    assert len(results.load(str(tmp_path / "s"))) == len(expected)

    assert cli.main(["status", str(tmp_path / "s")]) == 0
    assert "completed 11" in " ".join(capsys.readouterr().out.split())
    assert cli.main(["plot", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "accuracy.png").stat().st_size > 10_000


def test_two_ray_train_workers_match_one(tmp_path):
    from raysweep.sweep.trial import Context, run_masked
    # the same trial run in this process, with no Ray at all: how a trial runs never changes its id or its outcome
    # Two workers average the halves of each global batch's gradient: the same algebra, rounded in another order.
    # In float64, on whole batches (float64_plugin), both record the same accuracy, and the loss to 1e-10.
    float64 = dict(plugins=[str(Path(__file__).with_name("float64_plugin.py"))], model="lenet_300_100_float64",
                   data="digits_1280")
    alone = spec(tmp_path / "one", **float64)
    one = run_masked(sweep.expand(alone)[0], Context(storage=alone.storage, study=alone.name))
    two = sweep.run_study(spec(tmp_path / "two", workers=2, **float64), verbose=0).frame.iloc[0]
    assert one["trial_id"] == two["trial_id"] and (one["workers"], two["workers"]) == (1, 2)
    assert two["status"] == "completed"
    assert two["sparsity_direct"] == one["sparsity_direct"]   # same seed, same masks
    assert two["steps"] == one["steps"]                       # same global batch, same schedule
    assert two["accuracy"] == one["accuracy"]
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-10)


def test_gpu_request_on_a_gpu_less_cluster_fails_before_any_trial(tmp_path):
    started = time.time()
    with pytest.raises(sweep.SpecError, match="GPU"):
        sweep.run_study(spec(tmp_path, gpus_per_worker=0.5), verbose=0)
    assert time.time() - started < 30
    with pytest.raises(sweep.SpecError, match="torch-xla"):   # torch_xla is imported only when chosen
        sweep.run_study(spec(tmp_path, backend="xla"), verbose=0)
    assert not (tmp_path / "s" / "trials").exists()


def test_missing_data_and_infeasible_quota_fail_before_any_trial(tmp_path):
    with pytest.raises(sweep.SpecError, match=str(tmp_path / "nodata")):
        sweep.run_study(spec(tmp_path, data="cifar10", model="cifar_resnet_20", data_root=str(tmp_path / "nodata"),
                             training="frankle_cifar_resnet20"), verbose=0)
    with pytest.raises(sweep.SpecError, match=r"grids\[0\].quotas: 'uniform_plus'"):
        sweep.run_study(spec(tmp_path, sparsities=[0.95], grids=[sweep.Grid(methods=["random"],
                                                                            quotas=["uniform_plus"])]), verbose=0)
    assert not (tmp_path / "s" / "trials").exists()


PLUGIN = '''
from pathlib import Path

from raysweep import pruning

MARKS = Path({marks!r})


@pruning.register_method("flaky_test")
def flaky(model, weights, data):
    MARKS.mkdir(exist_ok=True)
    attempt = len(list(MARKS.glob("flaky-*")))
    (MARKS / f"flaky-{{attempt}}").touch()
    if attempt == 0:
        raise RuntimeError("the first attempt fails")
    return [w.abs() for w in weights]


@pruning.register_method("broken_test")
def broken(model, weights, data):
    raise RuntimeError("this method always fails")
'''


def test_failing_trials_are_retried_then_recorded_as_failed(tmp_path):
    plugin = tmp_path / "failing_methods.py"
    plugin.write_text(PLUGIN.format(marks=str(tmp_path / "marks")))
    # the plugin's methods exist once the spec has imported it: its grid is given as a mapping the spec validates
    study = spec(tmp_path, plugins=[str(plugin)], max_failures=1,
                 grids=[{"methods": ["random", "flaky_test", "broken_test"]}])
    run = sweep.run_study(study, verbose=0)
    status = dict(zip(run.frame["method"], run.frame["status"]))
    assert status == {"random": "completed", "flaky_test": "completed", "broken_test": "failed"}
    assert run.failed == 1
    assert len(list((tmp_path / "marks").glob("flaky-*"))) == 2
    error = run.frame.loc[run.frame["method"] == "broken_test", "error"].iloc[0]
    assert "always fails" in error
    # a re-run retries only the failed trial, and its row is replaced, not duplicated
    again = sweep.run_study(study, verbose=0)
    assert (again.ran, again.skipped, again.failed, len(again.frame)) == (0, 2, 1, 3)


def test_killed_driver_resumes_with_exactly_one_row_per_trial(tmp_path):
    # each trial alone, so rows appear one by one (a pack writes its members' rows together; tests/test_packing.py
    # resumes partly finished packs)
    study = spec(tmp_path, name="resume", seeds=[0, 1], sparsities=[0.3, 0.9], pack_size=1,
                 hparams={"training_steps": "6ep", "lr_drops": ["4ep"]}, grids=[sweep.Grid(methods=["random",
                                                                                                  "magnitude"])])
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(study.to_dict()))
    rows = tmp_path / "resume" / "trials"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    command = [sys.executable, "-m", "raysweep.cli", "run", str(path)]
    driver = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(rows.glob("*.parquet"))) < 2 and driver.poll() is None:
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)   # the driver and the local cluster it started
    driver.wait()
    before = len(list(rows.glob("*.parquet")))
    assert 2 <= before < 8, "the driver should die mid-sweep"
    finish = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert finish.returncode == 0, finish.stderr[-2000:]
    assert f"{8 - before} trials finished in this run, {before} already done" in finish.stdout
    df = results.load(str(tmp_path / "resume"))
    assert len(df) == 8 and df["trial_id"].is_unique and (df["status"] == "completed").all()
    assert not list(rows.glob(".*.tmp"))
