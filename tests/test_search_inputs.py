"""`raysweep search` answers a bad spec, storage or Optuna database as `raysweep run` does: one line per problem
naming its field, exit 2, before Ray starts, nothing written."""

import os

import pytest
import ray
import yaml

from raysweep import cli

SEARCH = {"name": "q", "trials": 1, "seeds": [0], "sparsities": [0.9], "final": False,
          "families": [{"name": "igq_power", "space": {"a": [0.5, 1.5]}}], "hparams": {"training_steps": "1it"}}


def _text(**changes):
    return yaml.safe_dump({**SEARCH, **changes})


# (spec file text, or None for no file; a line the CLI must print)
CASES = [
    (_text(trials=0), "error: trials: Input should be greater than or equal to 1 (got 0)"),
    (_text(seeds="a"), "error: seeds: Input should be a valid list (got 'a')"),
    (_text(nope=1), "error: nope: unknown field"),
    ("- 1\n", "error: spec: must be a mapping of fields"),
    ("", "error: spec: the spec is empty"),
    (None, "error: spec: cannot read"),
    (_text(families=[{"name": "nope"}]), "error: families[0].name: unknown quota family 'nope'"),
    (_text(sampler="nope"), "error: sampler: Input should be 'tpe' or 'random' (got 'nope')"),
    (_text(storage="afile"), "error: storage: {tmp}/afile is a file, not a directory"),
    (_text(storage="http://example.invalid/x"), "error: storage: cannot use 'http://example.invalid/x'"),
    (_text(sparsities=[0.999], families=[{"name": "erk_power", "space": {"p": [0.0, 2.0]},
                                          "fixed": {"last_density": 1.0}}]),
     "error: families: family erk_power with space {'p': [0.0, 2.0]} gives invalid quotas at sparsity 0.999"),
]


@pytest.mark.parametrize("text,expected", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_a_bad_search_spec_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)   # the spec's relative storage would be created here
    (tmp_path / "afile").write_text("x")
    if text is not None:
        (tmp_path / "search.yaml").write_text(text)
    before = sorted(os.listdir(tmp_path))
    assert cli.main(["search", str(tmp_path / "search.yaml")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(expected.replace("{tmp}", str(tmp_path))), err
    assert not ray.is_initialized() and sorted(os.listdir(tmp_path)) == before


def test_options_are_checked_too(tmp_path, capsys):
    (tmp_path / "search.yaml").write_text(_text(storage=str(tmp_path / "runs")))
    assert cli.main(["search", str(tmp_path / "search.yaml"), "--trials", "0"]) == 2
    assert cli.main(["search", str(tmp_path / "search.yaml"), "--storage", "s3://"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: trials: Input should be greater than or equal to 1 (got 0)",
        "error: storage: s3:// names no bucket (s3://BUCKET/path)"]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("damage", [b"SQLite format 3\x00" + b"\x00" * 40, b"garbage" * 100],
                         ids=["header", "garbage"])
def test_a_damaged_optuna_database_is_named_and_left_as_it_is(tmp_path, capsys, damage):
    study = tmp_path / "runs" / "q"
    study.mkdir(parents=True)
    (study / "optuna.db").write_bytes(damage)
    (tmp_path / "search.yaml").write_text(_text(storage=str(tmp_path / "runs")))
    assert cli.main(["search", str(tmp_path / "search.yaml")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: optuna_storage: {study}/optuna.db is damaged (DatabaseError: ") and \
        line.endswith(f"restore it from a backup, or move the directory {study} aside to start the search afresh")
    # not replaced: it is the searches' only record of what ran
    assert os.listdir(study) == ["optuna.db"] and (study / "optuna.db").read_bytes() == damage
    assert not ray.is_initialized()
