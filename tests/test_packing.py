"""The engine's packs (issue 11): which trials train together, how many, and that a packed study records what an
unpacked one does, member by member, on a real local Ray cluster."""

from pathlib import Path

import pandas as pd
import pytest
import ray

from raysweep import models, results, sweep
from raysweep.sweep import packing
from raysweep.sweep.spec import SpecError
from raysweep.sweep.trial import Context

SHORT = {"training_steps": "2ep", "lr_drops": ["1ep"]}

PLUGIN = '''
from raysweep import pruning


@pruning.register_method("always_fails")
def always_fails(model, weights, data):
    raise RuntimeError("this member fails in every pack")
'''
FLOAT64_PLUGIN = str(Path(__file__).with_name("float64_plugin.py"))


def spec(tmp_path, **changes):
    base = dict(name="p", storage=str(tmp_path), seeds=[0, 1], sparsities=[0.5, 0.9], hparams=SHORT, dense=False,
                grids=[sweep.Grid(methods=["random", "magnitude", "snip"])])
    base.update(changes)
    return sweep.StudySpec(**base)


def test_packs_hold_one_schedule_each_and_split_evenly(tmp_path):
    a = sweep.expand(spec(tmp_path))                                      # 12 trials
    b = sweep.expand(spec(tmp_path, hparams={**SHORT, "batch_size": 32}))  # 12 trials of another schedule
    out = packing.packs(a + b, 5)
    assert sorted(len(p) for p in out) == [4, 4, 4, 4, 4, 4]             # 12 -> 3 packs of 4, not 5 + 5 + 2
    assert all(len({packing.key(t) for t in p}) == 1 for p in out)
    assert sorted(t.trial_id for p in out for t in p) == sorted(t.trial_id for t in a + b)
    assert [len(p) for p in packing.packs(a, 1)] == [1] * 12
    assert len(packing.packs(a, 100)) == 1


def test_member_bytes_by_hand():
    model = models.create("lenet_300_100", num_classes=10, input_shape=(1, 8, 8))
    params = 64 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    outputs = 64 + 300 + 300 + 100 + 100 + 10     # Flatten, Linear, ReLU, Linear, ReLU, Linear
    assert packing.member_bytes(model, (1, 8, 8), 128) == 4 * (6 * params + 3 * 128 * outputs)


def test_pack_size_setting_auto_and_bad_values(tmp_path):
    trials = sweep.expand(spec(tmp_path))
    ctx = Context(storage=str(tmp_path), study="p")
    one = packing.member_bytes(models.create("lenet_300_100", num_classes=10, input_shape=(1, 8, 8)), (1, 8, 8),
                               trials[0].train_hparams().batch_size)
    plenty = 10 ** 12
    assert packing.pack_size("auto", trials, ctx, slots=2, slot_bytes=plenty) == 6      # 12 trials over 2 slots
    assert packing.pack_size("auto", trials, ctx, slots=1, slot_bytes=plenty) == 12
    assert packing.pack_size("auto", trials, ctx, slots=1, slot_bytes=int(5 * one / packing.MEMORY_SHARE)) == 5
    assert packing.pack_size("auto", trials, ctx, slots=1, slot_bytes=one) == 1         # not even two fit
    many = sweep.expand(spec(tmp_path, seeds=list(range(40))))
    assert packing.pack_size("auto", many, ctx, slots=1, slot_bytes=plenty) == packing.MAX_PACK
    assert packing.pack_size(3, trials, ctx, slots=2, slot_bytes=1) == 3                # as given
    assert packing.pack_size("auto", trials, Context(storage=str(tmp_path), study="p", workers=2), 2, plenty) == 1
    # a batch whose arithmetic keeps a CPU core busy gains nothing from a pack there (packing.packable)
    big_batch = sweep.expand(spec(tmp_path, hparams={**SHORT, "batch_size": 512}))   # 512 x 50,200 multiply-adds
    assert packing.pack_size("auto", big_batch, ctx, slots=1, slot_bytes=plenty) == 1
    # convolutions: packs pay on GPUs, not on CPUs (bench_packing.py), so 'auto' trains them alone there
    conv = sweep.expand(spec(tmp_path, model="lenet_5"))
    assert packing.pack_size("auto", conv, ctx, slots=1, slot_bytes=plenty) == 1
    on_gpu = Context(storage=str(tmp_path), study="p", gpus_per_worker=1.0)
    assert packing.pack_size("auto", conv, on_gpu, slots=1, slot_bytes=plenty) == 12
    for bad in (0, -2, "big", 2.5):
        with pytest.raises(SpecError, match="pack_size"):
            spec(tmp_path, pack_size=bad)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def _by_id(frame):
    return {r["trial_id"]: r for r in frame.to_dict("records")}


def test_a_packed_study_records_what_an_unpacked_one_does(local_ray, tmp_path):
    plugin = tmp_path / "failing.py"
    plugin.write_text(PLUGIN)
    grids = [{"methods": ["random", "snip", "always_fails"]}]
    # A pack computes its members' algebra, rounded in another order (test_packed.py); in float64 (float64_plugin)
    # packed and alone record the same accuracies, and losses to 1e-10, on any machine.
    packed = spec(tmp_path / "packed", dense=True, plugins=[str(plugin), FLOAT64_PLUGIN], grids=grids,
                  sparsities=[0.9], pack_size=4, max_failures=0, model="lenet_300_100_float64")
    alone = packed.replace(storage=str(tmp_path / "alone"), pack_size=1)
    a = sweep.run_study(packed, verbose=0)
    b = sweep.run_study(alone, verbose=0)
    rows_a, rows_b = _by_id(a.frame), _by_id(b.frame)
    trials = sweep.expand(packed)
    assert set(rows_a) == set(rows_b) == {t.trial_id for t in trials}   # packing is not in the id
    for trial_id, x in rows_a.items():
        y = rows_b[trial_id]
        assert x["status"] == y["status"]
        if x["method"] == "always_fails":   # one member's failure: its own failed row, the pack's others completed
            assert x["status"] == "failed" and "fails in every pack" in x["error"]
            continue
        assert x["status"] == "completed"
        assert x["accuracy"] == y["accuracy"]
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-10)
        assert [h["step"] for h in x["history"]] == [h["step"] for h in y["history"]]
        assert x["sparsity_direct"] == y["sparsity_direct"]
        assert pd.isna(y["pack"]) and x["wall_time"] > 0
    # the packs the driver formed (8 trials, packs of 4): members that trained together name their pack; a member
    # that trained without pack-mates (the others failed or were dense rows) names none
    for pack in packing.packs(trials, 4):
        trained = [rows_a[t.trial_id] for t in pack if t.method not in ("dense", "always_fails")]
        names = {r["pack"] if isinstance(r["pack"], str) else None for r in trained}
        assert len(names) <= 1 and (names == {None}) == (len(trained) == 1)
        assert all(name.startswith("pack4-") for name in names - {None})
    assert a.failed == b.failed == 2

    # a pack whose members are partly finished trains only the missing ones; the others' rows stay as they were
    done = sorted(t for t, r in rows_a.items() if r["method"] in ("random", "snip"))
    gone = done[:2]
    for trial_id in gone:
        (tmp_path / "packed" / "p" / results.ROWS / f"{trial_id}.parquet").unlink()
    again = sweep.run_study(packed, verbose=0)
    assert again.ran == 2 and again.failed == 2
    rows_c = _by_id(again.frame)
    assert all(rows_c[i]["finished_at"] == rows_a[i]["finished_at"] for i in done if i not in gone)
    assert all(rows_c[i]["accuracy"] == rows_a[i]["accuracy"] for i in gone)
    assert all(rows_c[i]["loss"] == pytest.approx(rows_a[i]["loss"], rel=1e-10) for i in gone)
