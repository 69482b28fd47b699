"""Bad input stops before anything starts: each bad spec file gets one line per problem, exit code 2, no Ray, no
download, no directory. And what needs no Ray does not start it: dry runs, re-runs with nothing to do, readers."""

import json
import logging
import subprocess
import sys
import time

import pytest
import ray
import yaml

from raysweep import cli, results, sweep

SMALL = "name: s\nstorage: {storage}\nseeds: [0]\nsparsities: [0.5]\nhparams: {{training_steps: 2ep, lr_drops: [1ep]}}\n"
# 500 bytes of YAML that stand for 9^9 strings: anything that quotes or walks them whole never answers
BOMB = ("a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n"
        + "".join(f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
                  for p, c in zip("abcdefgh", "bcdefghi")))

# (spec file text, the lines the CLI must print) -- every case is a mistake a user makes in seconds
CASES = [
    ("- name: x\n", ["spec: must be a mapping of fields"]),
    ("", ["spec: the spec is empty"]),
    ("gpus_per_worker: one\n", ["gpus_per_worker: Input should be a valid number (got 'one')"]),
    ("cpus_per_worker: '2'\n", ["cpus_per_worker: Input should be a valid number (got '2')"]),
    ("hparams: {lr: fast}\n", ["hparams.lr: Input should be a valid number (got 'fast')"]),
    ("sparsities: ['0.5']\n", ["sparsities[0]: Input should be a valid number (got '0.5')"]),
    ("seeds: [true]\n", ["seeds[0]: Input should be a valid integer (got True)"]),
    ("dense: 'no'\n", ["dense: Input should be a valid boolean (got 'no')"]),
    ("rescale: \"yes\"\n", ["rescale: Input should be a valid boolean (got 'yes')"]),
    ("hparams: {training_steps: 0ep}\n", ["hparams: training_steps='0ep' trains for no step"]),
    ("storage: null\n", ["storage: Input should be a valid string (got None)"]),
    ("name: 5\n", ["name: Input should be a valid string (got 5)"]),
    ("grids: [snip, random]\n", ["grids[0]: Input should be a valid dictionary or instance of Grid (got 'snip')",
                                 "grids[1]: Input should be a valid dictionary or instance of Grid (got 'random')"]),
    ("sparsity: [0.5]\nseeds: [0, 0]\ngrids: [{methods: [snip, magic]}]\n",
     ["sparsity: unknown field", "seeds: [0, 0] repeats a seed", "grids[0].methods: unknown method 'magic'"]),
    ("sparsities: [0.95]\ngrids: [{methods: [random], quotas: [uniform_plus]}]\n",
     ["grids[0].quotas: 'uniform_plus' at sparsity 0.95 on lenet_300_100: uniform_plus cannot reach sparsity 0.95"]),
    ("gpus_per_worker: 1\n", ["gpus_per_worker: the study asks for 1 GPU(s) per trial (1 worker(s) x 1) and this "
                              "machine has 0"]),
    ("model: cifar_resnet_20\ndata: cifar10\ntraining: frankle_cifar_resnet20\ndata_root: {missing}\n",
     ["data: data set 'cifar10' not found at {missing}/cifar-10-batches-py"]),
    # a name is one directory under storage: '..' would put the study's files (and its spec.yaml) beside it
    ("name: '..'\n", ["name: '..' is not a study's name"]),
    ("name: '.'\n", ["name: '.' is not a study's name"]),
    ("name: a/b\n", ["name: 'a/b' holds '/'"]),
    ('name: "a\\0b"\n', ["name: 'a\\x00b' holds '\\x00'"]),
    ('name: "a\\nb"\n', ["name: 'a\\nb' holds '\\n'"]),
    (f"name: {'n' * 300}\n", ["is 300 bytes long; a study's name holds at most 200"]),
    # validation that would expand a bomb, a grid or a network before answering
    (BOMB + "name: *i\n", ["name: Input should be a valid string (got [[[...], [...]", "a: unknown field"]),
    (BOMB + "seeds: *i\n", ["seeds[0]: Input should be a valid integer (got [[[...]"]),
    (BOMB + "hparams: {lr_drops: *i}\n", ["hparams.lr_drops: Input should be a valid string (got [[[...]"]),
    (f"seeds: {list(range(10_000))}\nsparsities: {[i / 1000 for i in range(1000)]}\n",
     ["grids: 50,010,000 trials exceed --max-trials 100000"]),
    ("model: cifar_resnet_200000\n", ["model: cifar_resnet_200000 has 3,240,481,754 parameters in 200,002 layers, "
                                      "more than a trial may build"]),
    ("model: wide_resnet_32_20000\n", ["model: wide_resnet_32_20000 has 185,344,070,720,010 parameters"]),
    # accepted before, and wrong
    ("hparams: {lr: .nan, weight_decay: .inf, gamma: -.inf}\n",
     ["hparams.lr: Input should be a finite number (got nan)",
      "hparams.weight_decay: Input should be a finite number (got inf)",
      "hparams.gamma: Input should be a finite number (got -inf)"]),
    ("cpus_per_worker: .inf\n", ["cpus_per_worker: Input should be a finite number (got inf)"]),
    ("hparams: {training_steps: 2ep, lr_drops: [1ep]}\ngrids: [{methods: [magnitude, ltr], prune_at: [1ep, 50ep]}]\n",
     ["grids[0].prune_at: 50ep after the end of training (training_steps '2ep' is "]),
    ("seeds: [0]\nsparsities: [0.5]\nseeds: [1]\n", ["is not valid YAML (key 'seeds' is given twice (lines 1 and 3))"]),
    ("hparams: {lr: 0.1, lr: 0.2}\n", ["is not valid YAML (key 'lr' is given twice (line 1))"]),
    (bytes(range(256)) * 4, ["is not valid YAML (unacceptable character"]),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ["is not valid YAML (unacceptable character"]),
    ("seeds: [18446744073709551617, -1]\n", ["seeds[0]: Input should be less than 9223372036854775808",
                                            "seeds[1]: Input should be greater than or equal to 0 (got -1)"]),
    (f"per_class: {2**63}\niterations: {{synflow: {2**64}}}\nhparams: {{batch_size: {2**70}}}\n",
     ["per_class: Input should be less than 9223372036854775808", "iterations.synflow: Input should be less than",
      "hparams.batch_size: 1180591620717411303424 does not fit in a 64-bit integer"]),
    ("pack_size: big\n", ["pack_size: must be 'auto' or a whole number >= 1 (got 'big')"]),
    ("pack_size: 0\n", ["pack_size: must be 'auto' or a whole number >= 1 (got 0)"]),
    ("pack_size: -1\n", ["pack_size: must be 'auto' or a whole number >= 1 (got -1)"]),
]


@pytest.mark.parametrize("text,expected", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_a_bad_spec_file_gets_one_line_per_problem_and_exit_2(tmp_path, capsys, text, expected):
    missing = tmp_path / "no" / "data"
    path = tmp_path / "study.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.replace("{missing}", str(missing)).encode())
    started = time.monotonic()
    assert cli.main(["run", str(path), "--storage", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [line for line in err if line.startswith("error: ")], "every problem is one line"
    assert all(len(line) < 1000 for line in err), "what a line quotes is cut short"
    for line in expected:
        assert any(line.replace("{missing}", str(missing)) in e for e in err), (line, err)
    assert not ray.is_initialized(), "a bad spec is answered before Ray starts"
    assert [p.name for p in tmp_path.iterdir()] == ["study.yaml"], "nothing downloaded or created"
    assert time.monotonic() - started < 120


def test_unreadable_yaml_and_a_missing_file_are_one_line_too(tmp_path, capsys):
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    assert cli.main(["run", str(tmp_path / "broken.yaml")]) == 2
    assert cli.main(["run", str(tmp_path / "absent.yaml")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "is not valid YAML" in err[0] and "cannot read" in err[1]


def test_max_trials_refuses_a_larger_grid_before_expanding_it_and_raises_the_limit(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(SMALL.format(storage=tmp_path / "runs"))   # 6 trials
    for argv, rc, said in ((["--max-trials", "5"], 2, "error: grids: 6 trials exceed --max-trials 5"),
                           (["--max-trials", "5", "--dry-run"], 2, "error: grids: 6 trials exceed --max-trials 5"),
                           (["--max-trials", "0", "--dry-run"], 2, "error: --max-trials: must be a whole number >= 1"),
                           (["--max-trials", "6", "--dry-run"], 0, "6 trials, 0 done, 6 would run")):
        assert cli.main(["run", str(tmp_path / "s.yaml"), *argv]) == rc, argv
        out = capsys.readouterr()
        assert said in (out.err if rc else out.out), (argv, out)
    assert not ray.is_initialized() and not (tmp_path / "runs").exists()


def test_an_empty_storage_option_is_an_error_not_ignored(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(SMALL.format(storage=tmp_path / "runs"))
    for storage in ("", "  ", "runs\n"):
        assert cli.main(["run", str(tmp_path / "s.yaml"), "--storage", storage]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith("error: storage: must name a directory or a URI"), err
    assert not ray.is_initialized() and [p.name for p in tmp_path.iterdir()] == ["s.yaml"]


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a\\b", "a\x00b", "a\nb", "a\u2028b", "é" * 101])
def test_a_search_spec_name_is_one_directory_name_too(name):
    from raysweep.quotasearch import SearchSpec
    with pytest.raises(sweep.SpecError) as info:
        SearchSpec.from_dict({"name": name})
    assert [p.split(":")[0] for p in info.value.problems] == ["name"]


def test_the_cli_answers_help_and_malformed_files_without_torch_or_ray(tmp_path):
    (tmp_path / "list.yaml").write_text("- a\n")
    code = ("import sys; from raysweep import cli; rc = cli.main(sys.argv[1:]); "
            "print(rc, 'torch' in sys.modules, 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, "run", str(tmp_path / "list.yaml")], capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.split() == ["2", "False", "False"], out.stderr
    version = subprocess.run([sys.executable, "-m", "raysweep.cli", "--version"], capture_output=True, text=True,
                             timeout=120)
    assert version.returncode == 0 and version.stdout.startswith("raysweep ")


def _finish_without_training(spec):
    """Rows for every trial of `spec`, as an earlier run would have left them (so a run finds nothing to do)."""
    from raysweep.storage import Storage
    storage = Storage(spec.storage)
    for t in sweep.expand(spec):
        results.write_row(storage, spec.name, {"study": spec.name, **t.columns(), "status": "completed",
                                               "accuracy": 0.5 + 0.01 * t.seed, "finished_at": time.time()})


def test_dry_run_counts_and_a_finished_study_reruns_without_ray(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(SMALL.format(storage=tmp_path))
    assert cli.main(["run", str(tmp_path / "s.yaml"), "--dry-run"]) == 0
    assert "6 trials, 0 done, 6 would run (needing 1 dense run(s)), 0 stale" in capsys.readouterr().out
    assert not (tmp_path / "s").exists() and not ray.is_initialized()
    spec = sweep.StudySpec.from_yaml(tmp_path / "s.yaml")
    _finish_without_training(spec)
    run = sweep.run_study(spec, verbose=0)
    assert (run.ran, run.skipped, run.missing, len(run.frame)) == (0, 6, 0, 6)
    assert not ray.is_initialized(), "nothing to do: Ray is never started"
    assert cli.main(["run", str(tmp_path / "s.yaml"), "--dry-run"]) == 0
    assert "6 trials, 6 done, 0 would run" in capsys.readouterr().out


def test_an_edited_spec_shows_only_its_own_rows_and_says_what_changed(tmp_path, capsys, caplog):
    before = sweep.StudySpec.from_dict(yaml.safe_load(SMALL.format(storage=tmp_path)))
    _finish_without_training(before)
    sweep.run_study(before, verbose=0)
    after = before.replace(hparams={"training_steps": "1ep", "lr_drops": []})
    _finish_without_training(after)   # the rows the edited spec's own run leaves
    with caplog.at_level(logging.WARNING, logger="raysweep"):
        run = sweep.run_study(after, verbose=0)
    said = caplog.text
    assert "study 's' changed since its last run" in said and "hparams.training_steps: '2ep' -> '1ep'" in said
    assert "6 row(s) of trials the spec no longer has are stale" in said
    current = {t.trial_id for t in sweep.expand(after)}
    assert set(run.frame["trial_id"]) == current and run.stale == 6
    # every reader follows the same rule: the current spec's rows, older ones on request
    path = str(tmp_path / "s")
    assert set(results.load(path)["trial_id"]) == current
    assert len(results.load(path, include_stale=True)) == 12
    assert len(results.load(f"file://{path}")) == 6
    dense = run.frame[run.frame["method"] == "dense"]
    assert len(dense) == 1   # one seed: no averaging of two versions' dense runs
    assert cli.main(["status", path]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "6 trials completed 6" in out and "stale 6 row(s)" in out
    assert cli.main(["plot", path]) == 0
    table = capsys.readouterr().out
    assert "(1)" in table and "(2)" not in table   # one seed, one version: n = 1 in every cell
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["trial_ids"] == sorted(current)


def test_readers_never_import_a_studys_plugins(tmp_path):
    marker = tmp_path / "imported"
    plugin = tmp_path / "plugin.py"
    plugin.write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n")
    spec = sweep.StudySpec.from_dict({**yaml.safe_load(SMALL.format(storage=tmp_path)), "plugins": [str(plugin)]})
    _finish_without_training(spec)
    sweep.run_study(spec, verbose=0)            # running a study imports its plugins: they are code
    assert marker.exists()
    marker.unlink()
    path = str(tmp_path / "s")
    for code in ([sys.executable, "-m", "raysweep.cli", "status", path],
                 [sys.executable, "-m", "raysweep.cli", "plot", path],
                 [sys.executable, "-m", "raysweep.cli", "report", str(tmp_path)],
                 [sys.executable, "-c", f"from raysweep import results; print(len(results.load({path!r})))"]):
        out = subprocess.run(code, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert not marker.exists(), f"{code[2:]} imported the plugin"
