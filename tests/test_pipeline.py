"""The whole TFX pipeline under LocalDagRunner on small generated data; caching.

The data is a generated Criteo file read through a generic schema that keeps 5 of its fields:
TF Transform costs about 1 s per field, whatever the row count.
"""

import collections
import fcntl
import glob
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from ihas_keras import defaults
from ihas_keras.data import synthesize
from pipeline import config as pipeline_config
from pipeline import local_runner
from pipeline.pipeline import create_components
from serving.client import GrpcPredictor
from serving.models import model_config
from serving.server import ModelServer
from tests.planted import criteo5_schema
from tests.test_data_parse import CRITEO_ROW

ROWS = 10_000
BAD_ROWS = ["1\t2\tshort row", "7" + CRITEO_ROW[1:], ""]  # column count, bad label, empty line


def settings(home) -> dict:
    """The test's settings: the default training rule, margin and schedule, a small width."""
    schema = home / "criteo5.yaml"
    if not schema.exists():
        criteo5_schema(schema)
    return dict(home=str(home), format="generic", schema=str(schema), embedding_dim=4,
                max_bad_fraction=0.01)


def make_config(home, **overrides):
    return pipeline_config.from_env(**{**settings(home), **overrides})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    home = tmp_path_factory.mktemp("pipeline")
    (home / "data").mkdir()
    synthesize(str(home / "criteo.txt"), rows=ROWS, format="criteo", segments=2, seed=1)
    with open(home / "criteo.txt", "a") as f:
        f.write("\n".join(BAD_ROWS) + "\n")
    shutil.move(home / "criteo.txt", home / "data" / "criteo.txt")  # side files stay out
    # As a user runs it, in a fresh process: the run's random state does not depend on the tests
    # that ran before it in this one (op seeds follow the ops a process has created).
    env = {**os.environ, **{f"IHAS_{k.upper()}": str(v) for k, v in settings(home).items()}}
    command = [sys.executable, "-m", "pipeline.local_runner"]
    cwd = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kill_once_running(command, env, cwd, make_config(home).metadata_path)
    (home / "tmp").mkdir()  # the full run's temporary folder: what it leaves there is its own
    subprocess.run(command, env={**env, "TMPDIR": str(home / "tmp")}, check=True, cwd=cwd)
    return make_config(home)


def store(metadata_path: str) -> metadata_store.MetadataStore:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    return metadata_store.MetadataStore(connection)


def kill_once_running(command, env, cwd, metadata_path, timeout=300):
    """Starts a run and SIGKILLs it as soon as its first execution is RUNNING; checks that the
    killed run left that execution RUNNING in ML Metadata (what TFX does)."""
    process = subprocess.Popen(command, env=env, cwd=cwd, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if os.path.exists(metadata_path):
                rows = sqlite3.connect(metadata_path).execute(
                    "SELECT last_known_state FROM Execution").fetchall()
                if rows:
                    break
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    states = [e.last_known_state for e in store(metadata_path).get_executions()]
    assert states == [metadata_store_pb2.Execution.RUNNING], states


def artifact_dirs(config, component, output):
    return sorted(glob.glob(os.path.join(config.pipeline_root, component, output, "*")))


def raw_test_examples(run, n: int) -> list[bytes]:
    """N serialized raw tf.Examples of the test split, without their label."""
    test_split = os.path.join(artifact_dirs(run, "RawExampleGen", "examples")[0], "Split-test")
    records = tf.data.TFRecordDataset(glob.glob(test_split + "/*"), compression_type="GZIP")
    examples = []
    for serialized in records.take(n):
        example = tf.train.Example.FromString(serialized.numpy())
        del example.features.feature["label"]  # serving gets raw features only
        examples.append(example.SerializeToString())
    return examples


def test_pushed_model_predicts_from_raw_examples(run):
    versions = glob.glob(os.path.join(run.serving_model_dir, "*", "saved_model.pb"))
    assert len(versions) == 1, versions
    served = tf.saved_model.load(os.path.dirname(versions[0])).signatures["serving_default"]
    out = served(examples=tf.constant(raw_test_examples(run, 64)))
    probability, cluster = out["probability"].numpy(), out["cluster"].numpy()
    assert probability.shape == cluster.shape == (64,)
    assert ((probability > 0) & (probability < 1)).all() and set(cluster) <= {0, 1}


def test_pushed_model_serves_over_grpc(run):
    """The Pusher's folder is a TF Serving model base path: `ihas serve` answers from it."""
    (version,) = glob.glob(os.path.join(run.serving_model_dir, "*"))
    examples = raw_test_examples(run, 64)
    expected = tf.saved_model.load(version).signatures["serving_default"](
        examples=tf.constant(examples))
    server = ModelServer([model_config("ihas", run.serving_model_dir)], grpc_port=0,
                         rest_port=None, host="127.0.0.1", poll_wait_seconds=0).start()
    try:
        predictor = GrpcPredictor(f"127.0.0.1:{server.grpc_port}", "ihas", None, timeout=30)
        probability, cluster = predictor(examples)
        predictor.close()
    finally:
        server.stop()
    np.testing.assert_allclose(probability, expected["probability"].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(cluster, expected["cluster"].numpy())


def test_bad_rows_end_in_the_quarantine_artifact(run):
    quarantine = artifact_dirs(run, "RawExampleGen", "quarantine")[0]
    counts = json.load(open(os.path.join(quarantine, "counts.json")))
    assert counts["rows_read"] == counts["rows_accepted"] + counts["rows_quarantined"] == ROWS + 3
    with open(os.path.join(quarantine, "quarantine.jsonl")) as f:
        records = sorted((r["line"], r["reason"]) for r in map(json.loads, f))
    assert records == [(ROWS + 1, "column_count"), (ROWS + 2, "bad_label"),
                       (ROWS + 3, "empty_line")]


def test_planted_data_is_blessed_and_pushed_at_the_default_margin(run):
    blessing = artifact_dirs(run, "Evaluate", "blessing")[0]
    metrics = json.load(open(os.path.join(blessing, "metrics.json")))
    for name in ("model", "baseline"):
        assert 0.5 < metrics[name]["auc"] <= 1 and np.isfinite(metrics[name]["logloss"])
    assert metrics["margin"] == defaults.BLESSING_MARGIN
    assert metrics["model"]["auc"] >= metrics["baseline"]["auc"] - defaults.BLESSING_MARGIN
    assert os.path.exists(os.path.join(blessing, "BLESSED")) and metrics["blessed"]
    assert len(glob.glob(os.path.join(run.serving_model_dir, "*", "saved_model.pb"))) == 1


def test_the_run_leaves_no_beam_temporary_folders(run):
    """Beam's DirectRunner would try its Prism runner first, leaving /tmp/beam-temp* behind."""
    leftovers = os.listdir(os.path.join(run.home, "tmp"))
    assert not [name for name in leftovers if name.startswith("beam")], leftovers


def test_the_killed_runs_execution_is_canceled_by_the_next_run(run):
    (killed,) = [e for e in store(run.metadata_path).get_executions()
                 if e.last_known_state == metadata_store_pb2.Execution.CANCELED]
    assert local_runner.CANCELED_NOTE in killed.custom_properties
    assert killed.type.endswith("RawExampleGen")
    states = [e.last_known_state for e in store(run.metadata_path).get_executions()]
    assert metadata_store_pb2.Execution.RUNNING not in states


def test_a_second_local_run_on_the_same_store_is_refused(run):
    with open(run.metadata_path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a run in progress holds it
        with pytest.raises(local_runner.StoreInUseError, match="metadata.sqlite"):
            local_runner.run(run)


def test_second_run_reuses_cached_components(run):
    local_runner.run(run)
    runs = collections.defaultdict(dict)
    found = store(run.metadata_path)
    for execution in found.get_executions():
        (context,) = [c for c in found.get_contexts_by_execution(execution.id)
                      if c.type == "pipeline_run"]
        runs[context.name][execution.type.rsplit(".", 1)[-1]] = execution.last_known_state
    killed, first, second = (runs[name] for name in sorted(runs))
    assert killed == {"RawExampleGen": metadata_store_pb2.Execution.CANCELED}
    components = {type(c).__name__ for c in create_components(run)}
    assert set(first) == components and set(first.values()) == {
        metadata_store_pb2.Execution.COMPLETE}
    # Second run: every component is taken from cache but the resolver (it queries the store
    # on every run), Evaluate, which now compares the model with the last blessed one (itself:
    # not blessed again), and Pusher (nothing to push).
    rerun = {"Resolver", "Evaluate", "Pusher"}
    assert {n for n, state in second.items() if state == metadata_store_pb2.Execution.CACHED} \
        == components - rerun
    assert len(glob.glob(os.path.join(run.serving_model_dir, "*", "saved_model.pb"))) == 1


def test_clusters_auto_reaches_the_cluster_component(tmp_path, monkeypatch):
    """IHAS_CLUSTERS=auto: K chosen by validation AUC among `defaults.CLUSTER_CANDIDATES`."""
    monkeypatch.setenv("IHAS_CLUSTERS", "auto")
    config = make_config(tmp_path)
    assert config.clusters == 0
    (cluster,) = [c for c in create_components(config) if c.id == "Cluster"]
    assert cluster.exec_properties["num_clusters"] == 0
    assert cluster.exec_properties["candidates"] == list(defaults.CLUSTER_CANDIDATES)
    monkeypatch.setenv("IHAS_CLUSTERS", "-1")
    with pytest.raises(ValueError, match="Cluster: num_clusters"):
        create_components(make_config(tmp_path))
