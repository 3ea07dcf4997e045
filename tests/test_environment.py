"""The environment works: Keras trains, a TFX pipeline runs and records MLMD, serving stubs load."""

import os
import subprocess
import sys

import ihas_keras
from pipeline import selfcheck


def test_keras_fit_lowers_the_loss():
    losses = selfcheck.fit_keras(seed=0, epochs=5)
    assert len(losses) == 5
    assert losses[-1] < 0.6 * losses[0], losses


def test_tfx_pipeline_runs_and_records_artifacts_in_mlmd(tmp_path):
    artifacts = selfcheck.run_stats_pipeline(str(tmp_path), rows=500)
    assert set(artifacts) >= {"Examples", "ExampleStatistics"}, artifacts
    (examples_uri,) = artifacts["Examples"]
    (stats_uri,) = artifacts["ExampleStatistics"]
    # CsvExampleGen splits 2:1 into train and eval by default; both hold gzipped TFRecords.
    for split in ("Split-train", "Split-eval"):
        files = os.listdir(os.path.join(examples_uri, split))
        assert any(f.endswith(".gz") for f in files), files
    stats_files = os.listdir(os.path.join(stats_uri, "Split-train"))
    assert "FeatureStats.pb" in stats_files, stats_files


def test_tfx_statistics_count_every_row(tmp_path):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    artifacts = selfcheck.run_stats_pipeline(str(tmp_path), rows=600)
    (stats_uri,) = artifacts["ExampleStatistics"]
    total = 0
    for split in ("Split-train", "Split-eval"):
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        with open(os.path.join(stats_uri, split, "FeatureStats.pb"), "rb") as f:
            stats.ParseFromString(f.read())
        total += stats.datasets[0].num_examples
    assert total == 600


def test_serving_api_stubs_import():
    assert selfcheck.serving_services() == ["ModelService", "PredictionService"]


def test_cli_prints_the_version():
    out = subprocess.run(
        [sys.executable, "-m", "ihas_cli", "--version"],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == f"ihas {ihas_keras.__version__}"
    assert ihas_keras.__version__ == "0.1.0"
