"""cluster.yaml is a valid Ray autoscaler configuration, by the schema shipped inside the installed ray."""

from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CONFIG = Path(__file__).resolve().parents[1] / "cluster.yaml"


def test_cluster_yaml_validates_against_rays_schema():
    config = yaml.safe_load(CONFIG.read_text())
    validate_config(prepare_config(config))   # what `ray up` does before it launches anything
    assert config["head_node_type"] in config["available_node_types"]
    gpu = [t for t in config["available_node_types"].values() if t["resources"].get("GPU")]
    assert gpu and gpu[0]["min_workers"] == 0 and gpu[0]["max_workers"] >= 1   # autoscaling GPU workers
    assert any("pip install -e ~/raysweep" in c for c in config["setup_commands"])
    assert config["file_mounts"]["~/raysweep"] == "."


def test_the_validator_rejects_a_broken_config():
    config = yaml.safe_load(CONFIG.read_text())
    config["available_node_types"]["head"]["min_wrokers"] = 1
    with pytest.raises(Exception, match="min_wrokers"):
        validate_config(prepare_config(config))


def test_the_job_api_listens_on_the_head_only_locally():
    # `ray dashboard cluster.yaml` forwards the port over ssh; a public bind would expose job submission to anyone
    head = " ".join(yaml.safe_load(CONFIG.read_text())["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
