"""Quota search on a real local Ray cluster with Optuna on CPU: end to end, resume after the driver is killed,
and the errors raised before a search starts."""
import json
import os
import sqlite3
import signal
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest
import ray
import yaml
from optuna.trial import TrialState

from raysweep import pruning, results
from raysweep.quotasearch.cli import main
from raysweep.quotasearch import (Family, SearchError, SearchSpec, StorageError, check_ranges, layer_shapes,
                                  probe_points, run_search)
from raysweep.sweep import SpecError

TINY = {"hparams": {"training_steps": "2ep", "lr_drops": []}, "seeds": [0, 1], "sparsities": [0.9],
        "max_concurrent": 2}


@pytest.fixture(scope="module")
def cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _finished(url, name):
    path = url[len("sqlite:///"):]
    if not os.path.exists(path):
        return []
    try:   # the driver may still be creating the schema: read only once it has, and never create it from here
        with sqlite3.connect(path) as db:
            if not db.execute("select count(*) from alembic_version").fetchone()[0]:
                return []
        storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
        study = optuna.load_study(study_name=name, storage=storage)
    except (KeyError, sqlite3.OperationalError):
        return []
    return [t for t in study.trials if t.state == TrialState.COMPLETE]


def test_search_end_to_end_resumes_after_the_driver_is_killed(cluster, tmp_path):
    budget = 8   # enough that the driver cannot finish them all between two looks at the study
    spec = {**TINY, "name": "tiny", "storage": str(tmp_path), "trials": budget, "final_seeds": [7], "baselines": ["igq"],
            "families": [{"name": "igq_power", "space": {"a": [0.5, 1.5]}}]}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    args = [str(tmp_path / "spec.yaml"), "--address", cluster, "--quiet"]
    url, name = f"sqlite:///{tmp_path}/tiny/optuna.db", "tiny:igq_power:s=0.9"
    # the driver in its own process, killed once two proposals have finished in the SQLite study
    driver = subprocess.Popen([sys.executable, "-c", "import sys; from raysweep.quotasearch.cli import main; "
                               "sys.exit(main(sys.argv[1:]))", *args],
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(_finished(url, name)) < 2:
        assert driver.poll() is None, driver.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "the search finished no trial in time"
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    before = {t.number: (t.params, t.value) for t in _finished(url, name)}
    assert 2 <= len(before) < budget
    assert not (tmp_path / "tiny" / "best.json").exists()

    # the same command again (here in this process, on the same cluster) resumes the study
    assert main(args) == 0
    study = optuna.load_study(study_name=name, storage=url)
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert all({t.number: (t.params, t.value) for t in finished}[k] == v for k, v in before.items())
    assert len(finished) == budget                               # the budget counts the earlier trials
    # the trials the killed driver left running are failed, listed, and not counted in the budget
    interrupted = [t for t in study.trials if t.number in study.user_attrs["interrupted_trials"]]
    assert all(t.state == TrialState.FAIL for t in interrupted)
    assert not (set(before) & {t.number for t in interrupted})
    assert len(study.trials) == budget + len(interrupted)

    # every finished proposal has its row; its objective is the seeds' mean validation accuracy Optuna saw
    rows = results.load(tmp_path / "tiny").set_index("optuna_trial")
    assert sorted(rows.index) == sorted(t.number for t in finished)
    for t in finished:
        row = rows.loc[t.number]
        assert row["val_accuracy"] == pytest.approx(t.value)
        assert row["val_accuracy"] == pytest.approx(sum(row["seed_accuracies"]) / 2)
        assert row["param_a"] == t.params["a"] and row["quota"] == f"igq_power(a={t.params['a']!r})"
        assert len(row["history"]) == row["epochs"] == t.user_attrs["epochs"]
        assert row["status"] == ("completed" if row["epochs"] == 2 else "stopped")
        assert row["layer_sparsities"]["1.weight"] == pytest.approx(
            pruning.quota(row["quota"], [(300, 64), (100, 300), (10, 100)], 0.9)[0], abs=1e-3)
    # the best is the best fully trained proposal, written as JSON and Parquet
    best = max((t for t in finished if t.user_attrs["epochs"] == 2), key=lambda t: t.value)
    written = json.loads((tmp_path / "tiny" / "best.json").read_text())
    assert written["best"]["0.9"]["params"] == best.params and written["best"]["0.9"]["val_accuracy"] == best.value
    assert written["best"]["0.9"]["optuna_trial"] == best.number
    table = pd.read_parquet(tmp_path / "tiny" / "best.parquet")
    assert table["quota"].tolist() == [written["best"]["0.9"]["quota"]] and table["best_at_sparsity"].all()
    for plot in ("objective.png", "densities_s0.9.png", "final.png"):
        assert (tmp_path / "tiny" / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    # the final evaluation: the best quota and the baseline, random pruning, test set, the fresh seed
    final = results.load(tmp_path / "tiny" / "final")
    assert sorted(final["quota"]) == sorted([written["best"]["0.9"]["quota"], "igq"])
    assert (final["method"] == "random").all() and (final["seed"] == 7).all()
    assert (final["status"] == "completed").all()
    summary = pd.read_csv(tmp_path / "tiny" / "final_summary.csv")
    assert set(summary["quota"]) == set(final["quota"]) and summary["count"].tolist() == [1, 1]


def test_trials_a_killed_driver_left_running_are_failed_or_settled_from_their_rows(tmp_path):
    from raysweep.quotasearch.search import _settle_interrupted

    url = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    done, failed, pruned, left, written = (study.ask() for _ in range(5))
    study.tell(done, 0.5)
    study.tell(failed, state=TrialState.FAIL)        # a proposal that raised: it counts
    study.tell(pruned, state=TrialState.PRUNED)
    # the driver was killed after writing the row of `written`, before telling Optuna
    rows = pd.DataFrame([{"optuna_trial": written.number, "status": "completed", "val_accuracy": 0.75,
                          "epochs": 2}])
    # what a new driver sees: the same study loaded from the database, two trials still RUNNING
    resumed = optuna.load_study(study_name="s", storage=url)
    assert _settle_interrupted(resumed, rows) == 4
    assert resumed.user_attrs["interrupted_trials"] == [left.number]
    assert resumed.trials[left.number].state == TrialState.FAIL
    assert resumed.trials[written.number].state == TrialState.COMPLETE
    assert resumed.trials[written.number].value == 0.75
    resumed.ask()                                     # the next driver's proposal, killed too
    again = optuna.load_study(study_name="s", storage=url)
    assert _settle_interrupted(again, rows) == 4
    assert again.user_attrs["interrupted_trials"] == [left.number, written.number + 1]


def _spec(tmp_path, **changes):
    base = SearchSpec(name="bad", storage=str(tmp_path), families=[Family("igq_power", {"a": [0.5, 1.5]})], **TINY)
    return base.replace(**changes)


def test_unknown_family_and_bad_spaces_fail_before_anything_runs(tmp_path):
    with pytest.raises(SpecError, match="unknown quota family 'igq_cubed'"):
        run_search(_spec(tmp_path, families=[Family("igq_cubed", {"a": [0, 1]})]))
    with pytest.raises(SpecError, match="igq_power has no parameter 'p'"):
        run_search(_spec(tmp_path, families=[Family("igq_power", {"p": [0, 1]})]))
    with pytest.raises(SpecError, match=r"space.a: bounds 2.0, 1.0 must be finite with low < high"):
        run_search(_spec(tmp_path, families=[Family("igq_power", {"a": [2.0, 1.0]})]))
    with pytest.raises(SpecError, match="final_seeds.*fresh"):
        run_search(_spec(tmp_path, final_seeds=[0, 5]))
    assert not (tmp_path / "bad").exists()


def test_range_producing_invalid_quotas_is_rejected_with_the_bad_point(tmp_path):
    spec = _spec(tmp_path, sparsities=[0.9, 0.999],
                 families=[Family("erk_power", {"p": [0.0, 2.0]}, {"last_density": 1.0})])
    shapes = layer_shapes(spec)
    assert shapes == [(300, 64), (100, 300), (10, 100)]
    # 0.1% of 50,200 weights is 50, fewer than the 1000 of a dense last layer: every point fails at 0.999
    with pytest.raises(SearchError, match=r"erk_power .* at sparsity 0.999 on lenet_300_100 \(5 of 5 probe points\)"):
        check_ranges(spec, shapes)
    with pytest.raises(SearchError, match="invalid quotas"):
        run_search(spec)
    assert not (tmp_path / "bad").exists()
    # with the last layer dense, 60% sparsity needs the first layer below density 0.00625: only a dense first
    # layer (the top of the range) fails, and the message names it
    spec = _spec(tmp_path, families=[Family("igq_power", {"first_density": [0.0, 1.0]}, {"last_density": 1.0})],
                 sparsities=[0.6])
    assert [p["first_density"] for p in probe_points(spec.families[0].space)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(SearchError, match=r"\(1 of 5 probe points\), e.g. igq_power\(first_density=1.0, "):
        check_ranges(spec, shapes)


def test_storage_url_that_cannot_be_opened(tmp_path):
    with pytest.raises(StorageError, match="cannot open the Optuna storage 'sqlite:////nonexistent-dir/x/optuna.db'"):
        run_search(_spec(tmp_path, optuna_storage="sqlite:////nonexistent-dir/x/optuna.db"))
    with pytest.raises(StorageError, match="cannot open the Optuna storage 'nosuchdb://host/db'"):
        run_search(_spec(tmp_path, optuna_storage="nosuchdb://host/db"))


def test_proposal_reports_the_seeds_mean_each_epoch_same_as_training_each_seed_alone():
    import dataclasses

    from raysweep import data, models, training
    from raysweep.quotasearch.trainable import evaluate_proposal

    hp = training.preset("digits").replace(training_steps="2ep", lr_drops=())
    job = {"family": "erk_power", "fixed": {"last_density": 1.0}, "sparsity": 0.9, "model": "lenet_300_100",
           "data": "digits", "data_root": None, "split_seed": 3, "validation": 0.1,
           "hparams": dataclasses.asdict(hp), "seeds": [0, 1], "init": "kaiming_normal", "bn_init": "ones"}
    reports = []
    evaluate_proposal({"p": 0.5, "optuna_trial": 0}, job, reports.append)
    ds = data.get("digits", seed=3, validation=0.1)
    alone = []
    for seed in job["seeds"]:
        model = models.create("lenet_300_100", input_shape=ds.input_shape, seed=seed)
        masks = pruning.prune(model, 0.9, "random", quota="erk_power(last_density=1.0, p=0.5)", seed=seed)
        masks.apply(model)
        alone.append(training.train(model, ds, hp, masks, seed=seed, eval_split="val").history)
    assert [r["epoch"] for r in reports] == [1.0, 2.0]
    for epoch, report in enumerate(reports):
        accs = [h[epoch]["accuracy"] for h in alone]
        assert report["seed_accuracies"] == accs
        assert report["val_accuracy"] == pytest.approx(sum(accs) / 2)
        assert report["quota"] == "erk_power(last_density=1.0, p=0.5)"
        assert report["layer_sparsities"]["5.weight"] == 0.0          # the last layer's floor keeps it dense


def test_a_failing_seed_stops_the_proposal_with_its_error():
    from raysweep.quotasearch.trainable import Lockstep

    def job(k, epoch_done):
        for epoch in range(3):
            if k == 1 and epoch == 1:
                raise RuntimeError("seed 1 broke")
            epoch_done({"accuracy": k})
        return k

    rounds = []
    with pytest.raises(RuntimeError, match="seed 1 broke"):
        Lockstep(3, rounds.append).run(job)
    assert rounds == [{0: {"accuracy": 0}, 1: {"accuracy": 1}, 2: {"accuracy": 2}}]
    rounds.clear()
    assert Lockstep(2, rounds.append).run(lambda k, done: [done({"accuracy": e}) for e in range(2)] and k) == [0, 1]
    assert rounds == [{0: {"accuracy": 0}, 1: {"accuracy": 0}}, {0: {"accuracy": 1}, 1: {"accuracy": 1}}]


def test_magnitude_after_training_prunes_the_trained_dense_network_under_the_quota(tmp_path):
    import dataclasses

    import torch

    from raysweep import data, models, training
    from raysweep.quotasearch.trainable import dense_weights, evaluate_proposal

    hp = training.preset("digits").replace(training_steps="1ep", lr_drops=())
    job = {"family": "igq_power", "fixed": {}, "sparsity": 0.95, "model": "lenet_300_100", "data": "digits",
           "data_root": None, "split_seed": 0, "validation": 0.1, "hparams": dataclasses.asdict(hp), "seeds": [4],
           "init": "kaiming_normal", "bn_init": "ones", "prune_at": "end", "dense_dir": str(tmp_path / "dense")}
    reports = []
    evaluate_proposal({"a": 1.5, "optuna_trial": 0}, job, reports.append)
    (cached,) = (tmp_path / "dense").iterdir()
    stamp = cached.stat().st_mtime_ns
    ds = data.get("digits", seed=0, validation=0.1)
    weights = dense_weights(job, ds, hp, 4)
    assert cached.stat().st_mtime_ns == stamp                      # the second proposal reuses the dense run
    # the dense network is the one train() gives for seed 4 on the training split
    model = models.create("lenet_300_100", input_shape=ds.input_shape, seed=4)
    training.train(model, ds, hp, None, seed=4, eval_split="val")
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    # the proposal's masks follow the quota layer by layer
    quota = pruning.quota("igq_power(a=1.5)", [(300, 64), (100, 300), (10, 100)], 0.95)
    for (name, w), s in zip(pruning.prunable(model).items(), quota):
        assert reports[0]["layer_sparsities"][name] == pytest.approx(s, abs=1 / w.numel())
