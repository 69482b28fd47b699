"""A study on storage that really is remote: an S3-compatible server (moto) on 127.0.0.1, reached through pyarrow's S3
file system with an s3:// URI. A trial's worker is killed mid-training and its run resumes from what reached the
storage, as a preempted node's run would on another node."""

import os
import signal
import threading
import time

import pytest
import ray

from raysweep import cli, results, sweep
from raysweep.storage import Storage
from raysweep.training import checkpoints
from s3_server import moto_endpoint, uri
from test_trust import _trial_pids

pytestmark = pytest.mark.ray

BUCKET = "raysweep-test"


@pytest.fixture(scope="module")
def s3():
    with moto_endpoint(BUCKET) as endpoint:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield uri(endpoint, f"{BUCKET}/runs")
        ray.shutdown()


def test_a_killed_worker_resumes_from_the_remote_storage(s3, tmp_path):
    storage = Storage(s3)
    assert not storage.local
    study = sweep.StudySpec(name="remote", storage=s3, seeds=[0], sparsities=[0.9], upload_every=0.5,
                            hparams={"training_steps": "60ep", "lr_drops": []},
                            grids=[sweep.Grid(methods=["magnitude"], prune_at=["end"])])
    dense_id = sweep.expand(study)[0].dense_id
    box = {}
    thread = threading.Thread(target=lambda: box.update(run=sweep.run_study(study, verbose=0)))
    thread.start()
    deadline = time.time() + 300
    while time.time() < deadline and not storage.exists("dense", dense_id, "state.pt"):
        time.sleep(0.2)
    assert storage.exists("dense", dense_id, "state.pt"), "the state never reached the storage"
    state = tmp_path / "state.pt"
    storage.download(state, "dense", dense_id, "state.pt")
    reached = checkpoints.load(state)["step"]
    for pid in _trial_pids():
        os.kill(pid, signal.SIGKILL)
    killed = time.time()
    thread.join(timeout=900)
    run = box["run"]
    assert run.dense_trainings == 1 and run.failed == 0 and set(run.frame["status"]) == {"completed"}
    assert run.path == storage.uri_of("remote")   # the summary names the study by its URI, scheme included
    dense = run.frame[run.frame["method"] == "dense"].iloc[0]
    assert reached > 0 and dense["steps"] == 60 * 23 and len(dense["history"]) == 60
    # resumed, not restarted: the retry (a new process with an empty local directory) took the state from the
    # storage, so the step-0 weights the first attempt uploaded were never written again
    init = storage.fs.get_file_info(storage.path("dense", dense_id, "step_0.pt"))
    assert init.mtime.timestamp() < killed
    # readers take the URI as they take a path
    assert len(results.load(storage.uri_of("remote"))) == 2
    assert cli.main(["status", storage.uri_of("remote")]) == 0
    assert cli.main(["plot", storage.uri_of("remote")]) == 0
    assert storage.exists("remote", "accuracy.png") and storage.exists("remote", "results.parquet")
