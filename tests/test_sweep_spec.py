"""Study specs, grid expansion and trial ids: no Ray needed."""

import pytest
import yaml

from raysweep import sweep
from raysweep.sweep.grid import count
from raysweep.sweep.spec import parse_when


def test_every_bad_field_is_reported_at_once():
    raw = dict(model="resnet_banana", data="nope", training="nope", sparsities=[0.5, 1.0, -0.1], seeds=[0, 0],
               grids=[dict(methods=["snip", "magic"], quotas=["igq", "wrong"], prune_at=["init", "soon"],
                           ablations=["twist"])],
               workers=0, gpus_per_worker=-1, backend="cuda", retrain="never", per_class=0, sparsity=[0.5])
    with pytest.raises(sweep.SpecError) as err:
        sweep.StudySpec.from_dict(raw)
    text = str(err.value)
    for field in ("model:", "data:", "training:", "sparsities: 1.0, -0.1", "seeds:", "'magic'", "'wrong'",
                  "'soon'", "'twist'", "workers:", "gpus_per_worker:", "backend:", "retrain:", "per_class:",
                  "sparsity: unknown field"):
        assert field in text, field
    assert len(err.value.problems) == 15   # one line per bad field, an unknown field hiding none of them


def test_unknown_yaml_fields_are_rejected_with_their_names(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "sparsity": [0.5], "grids": [{"method": ["snip"]}]}))
    with pytest.raises(sweep.SpecError, match="sparsity: unknown field"):
        sweep.StudySpec.from_yaml(path)
    path.write_text(yaml.safe_dump({"name": "x", "grids": [{"method": ["snip"]}]}))
    with pytest.raises(sweep.SpecError, match=r"grids\[0\].method: unknown field"):
        sweep.StudySpec.from_yaml(path)


def test_yaml_round_trip_gives_the_same_trials(tmp_path):
    spec = sweep.StudySpec(name="rt", seeds=[0, 1], sparsities=[0.2, 0.9],
                           grids=[sweep.Grid(), sweep.Grid(methods=["magnitude"], prune_at=["end"])])
    path = tmp_path / "rt.yaml"
    path.write_text(yaml.safe_dump(spec.to_dict()))
    again = sweep.StudySpec.from_yaml(path)
    assert [t.trial_id for t in sweep.expand(again)] == [t.trial_id for t in sweep.expand(spec)]


def test_grid_size_and_uniqueness():
    spec = sweep.StudySpec(seeds=[0, 1, 2], sparsities=[0.5, 0.9],
                           grids=[sweep.Grid(methods=["random", "snip"], ablations=["none", "shuffle"]),
                                  sweep.Grid(methods=["magnitude"], prune_at=["end"]),
                                  sweep.Grid(methods=["random"])])   # repeats trials of the first block
    trials = sweep.expand(spec)
    assert len(trials) == 3 + 3 * 2 * 2 * 2 + 3 * 2   # dense per seed, block 1, block 2; block 3 adds nothing
    assert len({t.trial_id for t in trials}) == len(trials)


def test_trial_ids_are_stable_and_depend_on_every_setting():
    spec = sweep.StudySpec(seeds=[0], sparsities=[0.5], grids=[sweep.Grid(methods=["snip"])])
    base = {t.method: t.trial_id for t in sweep.expand(spec)}
    assert base == {t.method: t.trial_id for t in sweep.expand(spec)}
    changed = [spec.replace(seeds=[1]), spec.replace(sparsities=[0.6]), spec.replace(hparams={"lr": 0.01}),
               spec.replace(init="kaiming_normal_fan_out"), spec.replace(per_class=5),
               spec.replace(grids=[sweep.Grid(methods=["snip"], quotas=["igq"])])]
    for other in changed:
        assert {t.trial_id for t in sweep.expand(other) if t.method == "snip"}.isdisjoint({base["snip"]})
    # resources and measurement settings do not change what a trial computes
    same = spec.replace(workers=2, cpus_per_worker=2, max_failures=3, metrics=["ece"], name="other")
    assert {t.method: t.trial_id for t in sweep.expand(same)} == base


def test_comparable_trials_share_the_dense_run_of_their_seed():
    spec = sweep.StudySpec(seeds=[0, 1], sparsities=[0.5, 0.9],
                           grids=[sweep.Grid(), sweep.Grid(methods=["magnitude", "ltr"], prune_at=["end", "5it"])])
    trials = sweep.expand(spec)
    by_seed = {}
    for t in trials:
        by_seed.setdefault(t.seed, set()).add(t.dense_id)
    assert all(len(ids) == 1 for ids in by_seed.values())
    assert by_seed[0] != by_seed[1]
    assert {t.needs_dense for t in trials if t.prune_at == "init" and t.method not in ("ltr", "dense")} == {False}


@pytest.mark.parametrize("value,expected", [("init", "init"), (0, "init"), ("0it", "init"), (1000, "1000it"),
                                            ("1000it", "1000it"), ("2ep", "2ep"), ("end", "end")])
def test_parse_when(value, expected):
    assert parse_when(value) == expected


@pytest.mark.parametrize("value", ["later", -5, "3 epochs", True, "1.5ep"])
def test_parse_when_rejects(value):
    with pytest.raises(ValueError):
        parse_when(value)


def test_parameterised_quota_names_are_validated():
    ok = sweep.StudySpec(grids=[sweep.Grid(methods=["random"], quotas=["uniform_plus(last_max=0.5)"])])
    sweep.validate(ok)
    with pytest.raises(sweep.SpecError) as err:
        sweep.StudySpec.from_dict({"grids": [{"methods": ["random"], "quotas": ["nope(a=1)", "igq(a=x)"]}]})
    assert "'nope'" in str(err.value) and "igq(a=x)" in str(err.value)


def test_tie_breaking_is_part_of_a_trials_identity_and_old_rows_keep_theirs():
    spec = sweep.StudySpec(seeds=[0], sparsities=[0.5], grids=[sweep.Grid(methods=["snip"])])
    by_rule = {rule: {t.method: t for t in sweep.expand(spec.replace(tie_break=rule))} for rule in ("random", "index")}
    assert by_rule["random"]["snip"].trial_id != by_rule["index"]["snip"].trial_id
    assert by_rule["random"]["dense"].trial_id == by_rule["index"]["dense"].trial_id   # nothing pruned, same run
    # a trial recorded before the option existed pruned ties by index: its id is unchanged
    old = by_rule["index"]["snip"].to_dict()
    assert sweep.Trial(**{k: v for k, v in old.items() if k not in ("tie_break", "rounding")}).trial_id == \
        by_rule["index"]["snip"].trial_id
    with pytest.raises(sweep.SpecError, match="rounding: 'synflow' is a rule of global pruning"):
        spec.replace(rounding="synflow", grids=[sweep.Grid(methods=["synflow"], quotas=["igq"])])


def test_the_trial_count_is_the_grids_size_without_expanding_it():
    spec = sweep.StudySpec(seeds=[0, 1, 2], sparsities=[0.5, 0.9],
                           grids=[sweep.Grid(methods=["random", "snip", "dense"], ablations=["none", "shuffle"]),
                                  sweep.Grid(methods=["magnitude"], prune_at=["end", "2it"], sparsities=[0.1]),
                                  sweep.Grid(methods=["ltr"], targets=["direct"], quotas=["global", "erk"])])
    for s in (spec, spec.replace(dense=False), spec.replace(grids=[sweep.Grid(methods=["snip"])], dense=False)):
        assert count(s) == len(sweep.expand(s))
    # a grid of 10^10 trials is counted at once; expanding it would take days
    huge = sweep.StudySpec(seeds=list(range(10_000)), sparsities=[i / 10**5 for i in range(10**5)],
                           grids=[sweep.Grid(methods=["snip", "random"],
                                             prune_at=["init", "1it", "2it", "3it", "4it"])])
    assert count(huge) == 10_000 * 10**5 * 2 * 5 + 10_000


def test_plugin_files_of_one_name_in_two_directories_are_both_imported(tmp_path):
    # each registers its own method; a plugin named by its file name alone would import only the first
    from raysweep import pruning
    from raysweep.sweep.plugins import load_plugins
    paths = []
    for i in (1, 2):
        (tmp_path / f"d{i}").mkdir()
        path = tmp_path / f"d{i}" / "plugin.py"
        path.write_text(f"from raysweep import pruning\n\n@pruning.register_method('same_name_plugin_{i}')\n"
                        f"def score(model, weights, data):\n    return weights\n")
        paths.append(str(path))
    load_plugins(paths)
    assert {"same_name_plugin_1", "same_name_plugin_2"} <= set(pruning.methods())
