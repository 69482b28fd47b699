"""What `upload_every` promises (issue 15, item 15): a run's state is written, and on remote storage uploaded, every
`upload_every` seconds at the first step after that long, between evaluations too, so a preempted node loses at most
that much training and one step; a state written between evaluations resumes exactly as an uninterrupted run."""

import pytest
import torch

from raysweep import data, models, sweep, training
from raysweep.storage import Storage
from raysweep.sweep import trial as trial_mod
from raysweep.training import Member, checkpoints, train_packed
from s3_server import moto_endpoint, uri
from test_training import SmallConvNet, one_thread, random_masks  # noqa: F401

CUT = 40   # a step between the evaluations of epochs 1 and 2 (23 steps an epoch) and not a save step


class Cut(Exception):
    """The process dies here (raised from the hook that runs after the state is written)."""


def cut_at(member=None):
    def on_save(*args):
        if args[-1] == CUT and (member is None or args[0] == member):
            raise Cut
    return on_save


def test_a_state_written_between_evaluations_resumes_exactly(tmp_path):
    ds = data.get("digits")
    hp = training.preset("digits").replace(training_steps="3ep", weight_decay=1e-3, nesterov=True)
    masks = random_masks(SmallConvNet(), 0.5, seed=3)
    reference = SmallConvNet()
    ref = training.train(reference, ds, hp, masks=masks, seed=4, device="cpu")
    with pytest.raises(Cut):   # save_every=0: a state at every step, as a slow step would get
        training.train(SmallConvNet(), ds, hp, masks=masks, seed=4, checkpoint_dir=tmp_path, device="cpu",
                       save_every=0.0, on_save=cut_at())
    state = checkpoints.load(tmp_path / "state.pt")
    assert state["step"] == CUT and [h["step"] for h in state["history"]] == [23]
    fresh = SmallConvNet()
    res = training.train(fresh, ds, hp, masks=masks, seed=4, checkpoint_dir=tmp_path, device="cpu")
    assert res.history == ref.history
    for (k, a), b in zip(reference.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k
    # an hour between writes: none between evaluations, and the run is unchanged
    again = training.train(SmallConvNet(), ds, hp, masks=masks, seed=4, checkpoint_dir=tmp_path / "hour",
                           device="cpu", save_every=3600.0, on_save=cut_at())
    assert again.history == ref.history


def test_a_pack_writes_each_members_state_between_evaluations_and_resumes_exactly(tmp_path):
    ds = data.get("digits")
    hp = training.preset("digits").replace(training_steps="3ep", lr=0.01, nesterov=True, precision="fp32")
    seeds = (0, 1, 2)
    masks = [None, random_masks(SmallConvNet(), 0.5, 1), random_masks(SmallConvNet(), 0.3, 2)]

    def members(root):
        return [Member(models.initialize(SmallConvNet(), s), m, seed=s, checkpoint_dir=root / f"m{s}",
                       owner={"trial_id": f"t{s}"}) for s, m in zip(seeds, masks)]

    whole = members(tmp_path / "whole")
    reference = train_packed(whole, ds, hp, device="cpu")
    saved = []
    with pytest.raises(Cut):   # after the last member's write at CUT
        train_packed(members(tmp_path / "cut"), ds, hp, device="cpu", save_every=0.0,
                     on_save=lambda k, step: (saved.append((k, step)), cut_at(member=2)(k, step)))
    assert saved[-3:] == [(0, CUT), (1, CUT), (2, CUT)]
    for s in seeds:
        assert checkpoints.load(tmp_path / "cut" / f"m{s}" / "state.pt")["step"] == CUT
    again = members(tmp_path / "cut")
    resumed = train_packed(again, ds, hp, device="cpu")
    for ref, res, a, b in zip(reference, resumed, whole, again):
        assert res.history == ref.history
        assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


@pytest.fixture(scope="module")
def s3():
    with moto_endpoint("interval") as endpoint:
        yield uri(endpoint, "interval/runs")


def test_a_trial_on_remote_storage_uploads_its_state_between_evaluations(s3, tmp_path):
    spec = sweep.StudySpec(name="s", storage=s3, seeds=[0], sparsities=[0.5], upload_every=0.0, dense=False,
                           hparams={"training_steps": "3ep", "lr_drops": []}, grids=[sweep.Grid(methods=["random"])])
    trial = sweep.expand(spec)[0]
    ctx = trial_mod.Context(storage=s3, study="s", upload_every=0.0)
    reference = trial_mod.run_masked(trial, trial_mod.Context(storage=str(tmp_path), study="s"), device="cpu")

    p = trial_mod.prepare(trial, ctx)
    forwards = []

    def preempted(module, args):   # the node goes away during the forward pass of step CUT
        if module.training:
            forwards.append(1)
            if len(forwards) == CUT + 1:
                raise Cut
    p.model.register_forward_pre_hook(preempted)
    with pytest.raises(Cut):
        trial_mod.train_alone(p, "cpu")
    p.workdir.close()
    storage = Storage(s3)
    storage.download(tmp_path / "uploaded.pt", "s", "scratch", trial.trial_id, "state.pt")
    assert checkpoints.load(tmp_path / "uploaded.pt")["step"] == CUT   # not 23, the last evaluation's
    # another node: a fresh work directory, filled from the storage; it trains only the steps after CUT
    p = trial_mod.prepare(trial, ctx)
    forwards.clear()
    p.model.register_forward_pre_hook(lambda module, args: forwards.append(1) if module.training else None)
    trial_mod.train_alone(p, "cpu")
    assert len(forwards) == 3 * 23 - CUT
    row = trial_mod.record(p, ctx, "cpu")
    for key in ("accuracy", "loss", "steps", "history"):
        assert row[key] == reference[key], key
