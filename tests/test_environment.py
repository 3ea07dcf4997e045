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


def _validate(tmp_path, *flags, data=b"1" + b"\t" * 39 + b"\n"):
    path = tmp_path / "rows.txt"
    path.write_bytes(data)
    return subprocess.run(
        [sys.executable, "-m", "ihas_cli", *flags, "data", "validate", "--format", "criteo",
         "--quarantine", str(tmp_path / "q.jsonl"), str(path)],
        capture_output=True, text=True, timeout=300,
    )


def test_the_command_line_is_quiet_unless_verbose(tmp_path):
    """TensorFlow's and absl's INFO lines (oneDNN, CUDA drivers) and absl's notice are dropped
    from a command's stderr; what the command says, its progress bar included, stays."""
    quiet = _validate(tmp_path)
    assert quiet.returncode == 0 and "rows read 1, accepted 1" in quiet.stdout
    noise = [line for line in quiet.stderr.splitlines()
             if line.startswith("I0000") or "absl::InitializeLog" in line]
    assert noise == [] and "reading" in quiet.stderr  # the progress bar
    verbose = _validate(tmp_path, "--verbose")
    assert verbose.returncode == 0 and "absl::InitializeLog" in verbose.stderr
    failed = _validate(tmp_path, data=b"")
    assert failed.returncode == 1
    said = [line for line in failed.stderr.strip().splitlines() if not line.startswith("reading")]
    assert said == [
        "ihas data validate: the input has no data rows (an empty file, or a header alone)"]
