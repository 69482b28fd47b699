"""Which cluster a run uses, and what it says when that cluster cannot serve it (issue 15, items 7-9): a run without an
address starts its own Ray even beside a running cluster; an address where nothing answers is refused in seconds with
nothing written; a worker that no node can hold is refused at once instead of pending forever. And the numbers a run
prints add up: each trial is counted once, in one of finished, done before, failed or missing."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import ray
import yaml

from raysweep import cli, sweep
from raysweep.sweep.runner import check_resources
from test_sweep_ray import spec

BROKEN = '''
from raysweep import pruning


@pruning.register_method("broken_attach_test")
def broken(model, weights, data):
    raise RuntimeError("this method always fails")
'''


def _write(study, path):
    path.write_text(yaml.safe_dump(study.to_dict()))
    return str(path)


def _closed_port() -> int:
    with socket.socket() as s:   # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address, why", [("127.0.0.1:{port}", "refused"), ("not-an-address", "Invalid address")])
def test_an_address_where_no_cluster_answers_is_refused_at_once_with_nothing_written(tmp_path, capsys, address, why):
    address = address.format(port=_closed_port())
    study = spec(tmp_path / "runs")
    path = _write(study, tmp_path / "study.yaml")
    started = time.monotonic()
    assert cli.main(["run", path, "--address", address]) == 2
    assert time.monotonic() - started < 10   # was: a hang (ray.init retries for minutes), holding the lease
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --address {address}: no Ray cluster answers there (")
    assert why in err[0]
    assert not (tmp_path / "runs").exists()   # no lease, spec.yaml or manifest.json
    assert not ray.is_initialized()


def test_ray_address_in_the_environment_is_checked_the_same_way(tmp_path, monkeypatch):
    address = f"127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    with pytest.raises(sweep.ResourceError, match=re.escape(f"$RAY_ADDRESS={address}: no Ray cluster answers")):
        sweep.run_study(spec(tmp_path / "runs"), verbose=0)
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def two_small_nodes():
    """A cluster of two 1-CPU nodes that this module starts, in a Ray temp directory of its own (so that it is the
    'cluster already running on this machine' for the runs below, and for no one else's), with this process attached;
    its own processes are stopped at the end."""
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="rs-", dir="/tmp")   # short: Ray's socket paths live below it
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_TMPDIR", temp)
        mp.delenv("RAY_ADDRESS", raising=False)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        try:
            cluster.add_node(num_cpus=1)
            ray.init(address=cluster.address, log_to_driver=False)
            cluster.wait_for_nodes()
            yield cluster
        finally:
            ray.shutdown()
            cluster.shutdown()
            shutil.rmtree(temp, ignore_errors=True)


def _cli(*args, timeout=300):
    """raysweep in its own process (and process group, which a timeout kills whole): its exit code, stdout, stderr
    and pid."""
    driver = subprocess.Popen([sys.executable, "-m", "raysweep.cli", *args], start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = driver.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.communicate()
        raise
    return driver.returncode, out, err, driver.pid


@pytest.fixture(scope="module")
def run_beside(two_small_nodes, tmp_path_factory):
    """A run without --address while the cluster runs: a random trial, and one whose method fails (Tune retries it
    once). Returns the cluster's node ids before the run, and what the run printed."""
    root = tmp_path_factory.mktemp("beside")
    plugin = root / "broken.py"
    plugin.write_text(BROKEN)
    study = spec(root, plugins=[str(plugin)], max_failures=1, pack_size=1,
                 grids=[{"methods": ["random", "broken_attach_test"]}])
    nodes = sorted(n["NodeID"] for n in ray.nodes())
    return nodes, _cli("run", _write(study, root / "study.yaml"))


@pytest.mark.ray
def test_a_run_without_address_starts_its_own_ray_beside_a_running_cluster(run_beside):
    nodes, (code, out, err, pid) = run_beside
    assert code == 1 and "trials finished in this run" in out, err   # it ran to its summary; one trial failed
    assert "Connecting to existing Ray cluster" not in err and "Started a local Ray instance" in err
    # the running cluster saw no driver of that run, and kept its nodes
    assert pid not in {job["DriverPid"] for job in ray._private.state.jobs()}
    assert sorted(n["NodeID"] for n in ray.nodes()) == nodes


@pytest.mark.ray
def test_a_retried_trial_is_counted_once_and_the_summary_partitions_the_trials(run_beside):
    _, (code, out, err, _) = run_beside
    progress = [tuple(map(int, m)) for m in re.findall(r"^\[(\d+)/(\d+) trials\]", out, re.M)]
    # the failing trial is reported by its first attempt and by Tune's retry: three lines, two trials
    assert len(progress) == 3 and all(done <= total == 2 for done, total in progress), out
    assert "1 trials finished in this run, 0 already done, 1 failed, 0 missing" in out


@pytest.mark.ray
def test_a_worker_no_node_can_hold_is_refused_at_once(two_small_nodes, tmp_path):
    # two nodes of 1 CPU hold 2 CPUs, but never a worker of 2: Ray would leave it pending forever
    study = spec(tmp_path, cpus_per_worker=2)
    started = time.monotonic()
    code, out, err, _ = _cli("run", _write(study, tmp_path / "study.yaml"), "--address", two_small_nodes.address,
                             timeout=120)
    assert code == 2 and time.monotonic() - started < 120
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and errors == [
        "error: cpus_per_worker: a worker needs 2 CPU on one node, and no node of the cluster has that much (the most "
        "any has: 1 CPU); ask for less, or set wait_for_resources: true on an autoscaling cluster whose nodes are not "
        "up yet"]


@pytest.mark.ray
def test_the_workers_of_a_trial_and_the_autoscalers_node_types_are_counted(two_small_nodes, tmp_path):
    from ray.core.generated import autoscaler_pb2

    study = spec(tmp_path)
    check_resources(study.replace(workers=2))   # one worker on each node
    with pytest.raises(sweep.ResourceError, match="each of the 3 workers of a trial needs 1 CPU on one node, and the "
                                                  "cluster can hold only 2 at once"):
        check_resources(study.replace(workers=3))
    with pytest.raises(sweep.ResourceError, match="^gpus_per_worker: a worker needs 1 CPU and 1 GPU"):
        check_resources(study.replace(gpus_per_worker=1))
    # an autoscaler reports the node types it can start: a worker fits if one of them holds it
    config = autoscaler_pb2.ClusterConfig(node_group_configs=[
        autoscaler_pb2.NodeGroupConfig(name="big", resources={"CPU": 4}, min_count=0, max_count=2)])
    gcs = ray._private.worker.global_worker.gcs_client
    gcs.report_cluster_config(config.SerializeToString())
    try:
        check_resources(study.replace(cpus_per_worker=4))
        check_resources(study.replace(workers=10))   # 2 live nodes + 2 nodes of 4 CPUs
        with pytest.raises(sweep.ResourceError, match="no node or node type of the cluster has that much"):
            check_resources(study.replace(cpus_per_worker=8))
        with pytest.raises(sweep.ResourceError, match="can hold only 10 at once"):
            check_resources(study.replace(workers=11))
    finally:
        gcs.report_cluster_config(autoscaler_pb2.ClusterConfig().SerializeToString())
