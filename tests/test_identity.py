"""Files that belong elsewhere: every checkpoint, state and dense index names its owner and is checked against it when
read, so an intact file of another run (copied, left over, misplaced) is set aside as a damaged one and never used
(issue 15, item 3); a checkpoint another reader set aside is damage too (item 14). Real files, real torch, the trial
code a Tune trial runs (sweep.trial), without Ray, except for the end-to-end study at the end."""

import json
import logging
import shutil

import pytest
import torch

from raysweep import data, models, pruning, sweep, training
from raysweep.integrity import Corrupt
from raysweep.storage import Storage
from raysweep.sweep import dense as dense_store
from raysweep.sweep import trial as trial_mod
from raysweep.sweep.runner import _context
from raysweep.training import Member, checkpoints, train_packed
from test_training import one_thread  # noqa: F401

SHORT = {"training_steps": "2ep", "lr_drops": ["1ep"]}
VOLATILE = {"wall_time", "finished_at", "host", "generation"}   # how long and where, not what was computed


def study_spec(root, **changes):
    base = dict(name="s", storage=str(root), seeds=[0, 1], sparsities=[0.9], hparams=SHORT, dense=True,
                grids=[sweep.Grid(methods=["magnitude"], prune_at=["end"]), sweep.Grid(methods=["ltr"])])
    base.update(changes)
    return sweep.StudySpec(**base)


def context(root):
    spec = study_spec(root)
    return _context(spec, Storage(str(root)), sweep.expand(spec))


def trials(seed):
    """The seed's trials: {method: Trial}."""
    return {t.method: t for t in sweep.expand(study_spec("unused")) if t.seed == seed}


def same(row, ref):
    keys = set(ref) - VOLATILE
    assert {k: row[k] for k in keys} == {k: ref[k] for k in keys}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Both seeds' dense runs and seed 0's rows, undisturbed."""
    root = tmp_path_factory.mktemp("reference")
    ctx = context(root)
    for seed in (0, 1):
        trial_mod.run_dense(trials(seed)["dense"], ctx, device="cpu")
    rows = {m: trial_mod.run_masked(t, ctx, device="cpu") for m, t in trials(0).items()}
    return root, rows


def copy_dense(reference, tmp_path):
    shutil.copytree(reference[0] / "dense", tmp_path / "dense")
    return {seed: tmp_path / "dense" / trials(seed)["dense"].dense_id for seed in (0, 1)}


def test_a_file_names_its_owner_in_its_checksum(tmp_path):
    path = tmp_path / "f.pt"
    checkpoints.atomic_save({"w": torch.ones(3)}, path, {"trial_id": "a", "seed": 0})
    assert checkpoints.load(path, {"trial_id": "a", "seed": 0})["w"].sum() == 3
    with pytest.raises(Corrupt, match=r"belongs to \{'trial_id': 'a'\}, not \{'trial_id': 'b'\}"):
        checkpoints.load(path, {"trial_id": "b", "seed": 0})
    sealed = torch.load(path, weights_only=True)
    sealed["owner"] = {"trial_id": "b", "seed": 0}   # a file re-labelled by hand is damaged
    torch.save(sealed, path)
    with pytest.raises(Corrupt, match="does not match the checksum"):
        checkpoints.load(path, {"trial_id": "b", "seed": 0})


def test_dense_files_of_another_seed_are_set_aside_and_the_run_trained_again(reference, tmp_path, caplog):
    ctx = context(tmp_path)
    dirs = copy_dense(reference, tmp_path)
    seed0 = trials(0)
    end = json.loads((dirs[0] / "result.json").read_text())["checkpoints"]["end"]

    # the end weights of seed 1 where seed 0's belong: the first trial to read them sets them aside
    shutil.copy(dirs[1] / end, dirs[0] / end)
    with pytest.raises(dense_store.DenseCorrupt, match=f"{end}.* belongs to .*'seed': 1.*, not .*'seed': 0"):
        trial_mod.run_masked(seed0["ltr"], ctx, device="cpu")
    assert list(dirs[0].glob(f"{end}.corrupt-*")) and list(dirs[0].glob("result.json.corrupt-*"))
    with pytest.raises(dense_store.DenseCorrupt, match="is missing"):   # result.json went aside with it
        trial_mod.run_masked(seed0["magnitude"], ctx, device="cpu")
    # what the driver does then: train the dense run again, and rerun the trials
    trial_mod.run_dense(seed0["dense"], ctx, device="cpu")
    for method, t in seed0.items():
        same(trial_mod.run_masked(t, ctx, device="cpu"), reference[1][method])

    # seed 1's result.json in seed 0's directory: set aside, the run counts as missing
    shutil.copy(dirs[1] / "result.json", dirs[0] / "result.json")
    with caplog.at_level(logging.WARNING, logger="raysweep"):
        assert dense_store.read_result(Storage(str(tmp_path)), seed0["dense"].dense_id) is None
    assert f"belongs to the dense run {trials(1)['dense'].dense_id}, not {seed0['dense'].dense_id}" in caplog.text
    with pytest.raises(dense_store.DenseCorrupt, match="is missing"):
        trial_mod.run_masked(seed0["ltr"], ctx, device="cpu")
    trial_mod.run_dense(seed0["dense"], ctx, device="cpu")   # resumes its own finished state: nothing to train
    for method, t in seed0.items():
        same(trial_mod.run_masked(t, ctx, device="cpu"), reference[1][method])


def test_a_dense_state_of_another_seed_is_set_aside_and_the_run_trained_from_its_start(reference, tmp_path, caplog):
    ctx = context(tmp_path)
    dirs = copy_dense(reference, tmp_path)
    (dirs[0] / "result.json").unlink()   # seed 0's run is to be trained: its state is what it resumes from
    shutil.copy(dirs[1] / "state.pt", dirs[0] / "state.pt")
    with caplog.at_level(logging.WARNING, logger="raysweep"):
        summary = trial_mod.run_dense(trials(0)["dense"], ctx, device="cpu")
    assert "state.pt is corrupt: belongs to" in caplog.text and list(dirs[0].glob("state.pt.corrupt-*"))
    assert summary["history"] == reference[1]["dense"]["history"]
    assert summary["accuracy"] == reference[1]["dense"]["accuracy"]


def test_a_state_of_another_trial_is_set_aside_and_the_trial_trained_from_its_start(reference, tmp_path, caplog):
    # A and B share seed and hyperparameters: before states named their trial and masks, B resumed A's state
    ctx = context(tmp_path)
    copy_dense(reference, tmp_path)
    seed0 = trials(0)
    a, b = seed0["ltr"], seed0["magnitude"]
    p = trial_mod.prepare(a, ctx)
    trial_mod.train_alone(p, "cpu")                               # A trained, its row not yet written
    scratch = tmp_path / "s" / "scratch"
    (scratch / b.trial_id).mkdir(parents=True)
    shutil.copy(scratch / a.trial_id / "state.pt", scratch / b.trial_id / "state.pt")
    with caplog.at_level(logging.WARNING, logger="raysweep"):
        row = trial_mod.run_masked(b, ctx, device="cpu")
    assert f"belongs to {{'trial_id': '{a.trial_id}'" in caplog.text
    same(row, reference[1]["magnitude"])


def test_a_checkpoint_another_reader_set_aside_is_dense_corrupt_not_a_failure(reference, tmp_path):
    # several trials read one damaged checkpoint at once; the first moves it aside before the others open it
    ctx = context(tmp_path)
    dirs = copy_dense(reference, tmp_path)
    ltr = trials(0)["ltr"]
    dense = dense_store.read_result(Storage(str(tmp_path)), ltr.dense_id)
    end = dirs[0] / dense["checkpoints"]["end"]
    checkpoints.set_aside(end)
    ds, _ = trial_mod._build(ltr, ctx)
    with pytest.raises(dense_store.DenseCorrupt, match=f"{end.name}, which result.json lists, is missing"):
        trial_mod._dense_weights(ltr, ctx, dense, "end", ds)
    assert not (dirs[0] / "result.json").exists()   # so the driver trains the run again


def test_pack_members_resume_only_their_own_state(tmp_path):
    # each member of a pack checks its own state.pt: swapped states are both set aside, and both members train anew
    ds = data.get("digits")
    hp = training.preset("digits").replace(training_steps="2ep")
    net = lambda: models.create("lenet_300_100", num_classes=10, input_shape=(1, 8, 8), seed=0)  # noqa: E731
    masks = [pruning.prune(net(), 0.5, "random", seed=s) for s in (0, 1)]

    def members(root):
        return [Member(net(), m, seed=0, checkpoint_dir=root / f"m{k}", owner={"trial_id": f"t{k}"})
                for k, m in enumerate(masks)]

    reference = train_packed(members(tmp_path / "ref"), ds, hp, device="cpu")
    for k in (0, 1):
        shutil.copy(tmp_path / "ref" / f"m{k}" / "state.pt", tmp_path / f"m{1 - k}.pt")
    for k in (0, 1):
        (tmp_path / "swapped" / f"m{k}").mkdir(parents=True)
        shutil.copy(tmp_path / f"m{k}.pt", tmp_path / "swapped" / f"m{k}" / "state.pt")
    again = train_packed(members(tmp_path / "swapped"), ds, hp, device="cpu")
    assert [r.history for r in again] == [r.history for r in reference]
    for k in (0, 1):
        assert list((tmp_path / "swapped" / f"m{k}").glob("state.pt.corrupt-*"))


@pytest.mark.ray
def test_a_study_uses_none_of_the_files_copied_where_others_belong(tmp_path):
    """The issue's two cases through `run_study`: seed 1's result.json and end weights in seed 0's dense directory,
    and trial A's state in trial B's scratch directory. The rows that were rerun are those of the undisturbed run."""
    import ray
    spec = study_spec(tmp_path, pack_size=1)   # each trial alone, so that a rerun is bit-identical to its first run
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        first = sweep.run_study(spec, verbose=0).frame.set_index("trial_id")
        seed0 = trials(0)
        ctx = context(tmp_path)
        a, b = seed0["ltr"], seed0["magnitude"]
        trial_mod.train_alone(trial_mod.prepare(a, ctx), "cpu")      # A's state, as a killed attempt leaves it
        scratch = tmp_path / "s" / "scratch"
        (scratch / b.trial_id).mkdir(parents=True)
        shutil.copy(scratch / a.trial_id / "state.pt", scratch / b.trial_id / "state.pt")
        dirs = {s: tmp_path / "dense" / trials(s)["dense"].dense_id for s in (0, 1)}
        end = json.loads((dirs[0] / "result.json").read_text())["checkpoints"]["end"]
        for name in ("result.json", end):
            shutil.copy(dirs[1] / name, dirs[0] / name)
        for t in seed0.values():
            (tmp_path / "s" / "trials" / f"{t.trial_id}.parquet").unlink()
        again = sweep.run_study(spec, verbose=0)
    finally:
        ray.shutdown()
    assert again.failed == 0 and again.ran == 3
    rows = again.frame.set_index("trial_id")
    for t in seed0.values():
        for column in ("status", "accuracy", "loss", "steps", "sparsity_direct"):
            assert rows.loc[t.trial_id, column] == first.loc[t.trial_id, column], (t.method, column)
        assert list(rows.loc[t.trial_id, "history"]) == list(first.loc[t.trial_id, "history"])
