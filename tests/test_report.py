"""raysweep.report on what the scripts really write: experiments/fig4.py's smoke preset through a real local Ray
cluster (runs/fig4 with its results.parquet and fig4.png, and the study runs/fig4-smoke), plus a script directory
written with raysweep.results whose rows carry metric columns; read as local paths and as file:// URIs."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest
import ray

from raysweep import report, results
from raysweep.storage import Storage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import common  # noqa: E402
import fig4  # noqa: E402

pytestmark = pytest.mark.ray

SPARSITY = common.FRANKLE_SPARSITIES[3]   # the smoke preset's one sparsity
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        frame = fig4.main(["--preset", "smoke", "--storage", str(root)])
    finally:
        ray.shutdown()
    # a script whose rows carry metric columns: multiply-adds, and the FLOPs column of rows written before it
    rows = frame[frame["method"].isin(["random", "snip"])].reset_index(drop=True)
    rows = rows.assign(macs_sparse=rows["method"].map({"random": 1000.0, "snip": 3000.0}),
                       flops_sparse=rows["method"].map({"random": 50.0, "snip": 70.0}))
    results.save(rows, Storage(str(root)), "metrics_script", results.CONSOLIDATED)
    return root, frame


def links(page: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)


def assert_links_resolve(page_path: Path, root: Path) -> None:
    """Every image link of the page opens, from the page's own directory, a copy of the figure under root."""
    page = page_path.read_text()
    assert links(page)
    for link in links(page):
        shown = page_path.parent / link
        assert shown.read_bytes()[:8] == PNG, link
        originals = [p for p in root.rglob(shown.name) if p.read_bytes() == shown.read_bytes()]
        assert originals, f"{link} is no figure under {root}"


def published_dir(tmp_path, rows, doubt=None) -> str:
    columns = ["figure", "network", "dataset", "method", "ablation", "prune_at", "line", "sparsity", "mean", "std"]
    frame = pd.DataFrame(rows, columns=columns)
    if doubt is not None:
        frame["doubt"] = doubt
    frame.to_csv(tmp_path / "paper.csv", index=False)
    return str(tmp_path)


def cell(values: pd.Series, scale: float = 100) -> str:
    values = scale * values
    std = values.std() if len(values) > 1 else 0.0
    return f"{values.mean():.4g} ± {std:.2g} ({len(values)})"


def test_storage_directory_page_has_figures_tables_published_numbers_and_cost(storage, tmp_path):
    root, frame = storage
    published = published_dir(tmp_path, [
        ["Figure 4", "lenet_300_100", "digits", "random", "none", "init", "random", SPARSITY, 87.5, 0.4],
        ["Figure 4", "lenet_300_100", "digits", "random", "none", "init", "random", 0.9, 11.1, 0.1],
        ["Figure 4", "lenet_5", "digits", "random", "none", "init", "random", SPARSITY, 22.2, 0.2]])
    target = report.main([str(root), "--published", published])
    page = (root / "report.md").read_text()
    assert target == str(root / "report.md")
    assert links(page) == ["fig4/fig4.png"]
    assert_links_resolve(root / "report.md", root)
    done = frame[frame["status"] == "completed"]
    random = done.loc[done["method"] == "random", "accuracy"]
    after = done.loc[(done["method"] == "magnitude") & (done["prune_at"] == "end"), "accuracy"]
    dense = done.loc[done["method"] == "dense", "accuracy"]
    # fig4's table: columns 0% (the dense network) and the smoke sparsity
    assert f"| dense | {cell(dense)} |  |" in page and f"| random |  | {cell(random)} |" in page
    assert f"| magnitude after training |  | {cell(after)} |" in page
    # only the published number of this network, data set, line and sparsity, beside the reproduced one
    assert f"| Figure 4 (paper) | lenet_300_100 | digits | random | {100 * SPARSITY:.4g}% | 87.5 ± 0.4 | " \
           f"{cell(random)} |" in page
    assert "11.1 ± 0.1" not in page and "22.2 ± 0.2" not in page
    # metric columns: multiply-adds, and the FLOPs of older rows under a heading that says their unit
    assert "multiply-adds (MACs) per example (sparse), mean ± std (seeds):" in page
    assert "| random | 1000 ± 0 (1) |" in page and "| snip | 3000 ± 0 (1) |" in page
    assert "FLOPs per example (sparse; 2 per multiply-add), mean ± std (seeds):" in page
    assert "| random | 50 ± 0 (1) |" in page and "| snip | 70 ± 0 (1) |" in page
    # the study's cost: every trial of the smoke grid (5 methods at init, magnitude after training, dense)
    cpu_hours = frame["wall_time"].sum() / 3600
    assert f"| fig4-smoke | 7 | 7 | 0 | 0 | {cpu_hours:.3f} | 0.000 |" in page


def test_doubtful_published_numbers_and_missing_stds_are_marked(storage, tmp_path):
    root, frame = storage
    published = published_dir(tmp_path, [
        ["Figure 5", "lenet_300_100", "digits", "random", "none", "init", "random", SPARSITY, 80.0, 0.3],
        ["Table 8", "lenet_300_100", "digits", "random", "none", "init", "random", SPARSITY, 70.5, None]],
        doubt=["a copy of another row", None])
    page, _ = report.build(root, published)
    done = frame[frame["status"] == "completed"]
    random = cell(done.loc[done["method"] == "random", "accuracy"])
    where = f"lenet_300_100 | digits | random | {100 * SPARSITY:.4g}%"
    assert f"| Figure 5 (paper) | {where} | 80 ± 0.3 (doubtful) | {random} | a copy of another row |" in page
    assert f"| Table 8 (paper) | {where} | 70.5 | {random} |  |" in page


def test_one_script_directory_and_one_study_directory(storage):
    root, frame = storage
    assert report.main([str(root / "fig4")]) == str(root / "fig4" / "report.md")
    page = (root / "fig4" / "report.md").read_text()
    assert page.startswith("# raysweep report: fig4") and links(page) == ["fig4.png"]
    assert_links_resolve(root / "fig4" / "report.md", root)
    random = frame.loc[(frame["method"] == "random") & (frame["status"] == "completed"), "accuracy"]
    assert f"| random |  | {cell(random)} |" in page and "Cost of the grid" not in page

    report.main([str(root / "fig4-smoke")])
    page = (root / "fig4-smoke" / "report.md").read_text()
    assert f"| random |  | {cell(random)} |" in page     # the study's own rows, read from its trials/
    cpu_hours = frame["wall_time"].sum() / 3600
    assert f"| fig4-smoke | 7 | 7 | 0 | 0 | {cpu_hours:.3f} | 0.000 |" in page and not links(page)


def test_uris_read_and_write_as_paths_do(storage, tmp_path):
    root, _ = storage
    local, _ = report.build(root)
    assert report.build(root.as_uri()) == (local, ["fig4/fig4.png"])
    target = report.main([(root / "fig4").as_uri(), "--output", (tmp_path / "uri" / "page.md").as_uri()])
    assert target == (tmp_path / "uri" / "page.md").as_uri()
    assert links((tmp_path / "uri" / "page.md").read_text()) == ["page_figures/fig4.png"]
    assert_links_resolve(tmp_path / "uri" / "page.md", root)


def test_output_elsewhere_takes_its_figures_along(storage, tmp_path):
    root, _ = storage
    # into a directory that does not exist yet
    missing = tmp_path / "new" / "sub" / "summary.md"
    assert report.main([str(root), "--output", str(missing)]) == str(missing)
    assert links(missing.read_text()) == ["summary_figures/fig4/fig4.png"]
    assert_links_resolve(missing, root)
    # into another directory that exists, holding a script output of its own that must stay untouched
    other = tmp_path / "other"
    (other / "fig4").mkdir(parents=True)
    (other / "fig4" / "fig4.png").write_bytes(PNG + b"other")
    report.main([str(root), "--output", str(other)])     # a directory: the page is report.md inside it
    assert_links_resolve(other / "report.md", root)
    assert (other / "fig4" / "fig4.png").read_bytes() == PNG + b"other"
    # the page in the storage directory itself, under another name: the figures stay where they are
    report.main([str(root), "--output", str(root / "summary.md")])
    assert links((root / "summary.md").read_text()) == ["fig4/fig4.png"]
    assert not (root / "summary_figures").exists()


def test_bad_inputs_say_what_is_wrong(storage, tmp_path):
    root, _ = storage
    with pytest.raises(FileNotFoundError, match="missing is not a directory"):
        report.build(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="neither script outputs"):
        report.build(tmp_path)
    (tmp_path / "bad").mkdir()
    pd.DataFrame({"network": ["x"], "mean": [1.0]}).to_csv(tmp_path / "bad" / "x.csv", index=False)
    with pytest.raises(KeyError, match="dataset"):
        report.build(root, tmp_path / "bad")
