"""The Search, Cluster, Retrain and Evaluate executors, run with `Do()` on artifacts in tmp_path.

Upstream artifacts are made without orchestration: generated Criteo rows, `ingest` (ExampleGen's
layout) and `transform` (Transform's layout; its folder is both the graph and the examples). The
format is a generic schema keeping 5 Criteo fields: TF Transform costs about 1 s per field.
"""

import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from sklearn.metrics import roc_auc_score
from tensorflow.core.framework import types_pb2
from tfx.components.pusher import executor as pusher_executor
from tfx.types import channel, standard_artifacts
from tfx.utils import path_utils

import ihas_keras
from components.cluster import Cluster
from components.cluster.executor import Executor as ClusterExecutor
from components.evaluate import Evaluate
from components.evaluate.executor import Executor as EvaluateExecutor
from components.retrain import Retrain
from components.retrain.executor import Executor as RetrainExecutor
from components.search import Search
from components.search.executor import Executor as SearchExecutor
from components.types import ClusterPlan, Quarantine
from ihas_keras import defaults
from ihas_keras.data import splits, synthesize
from ihas_keras.data.ingest import ingest
from ihas_keras.data.preprocess import SPLITS, raw_feature_spec
from ihas_keras.data.transform import transform
from ihas_keras.errors import BadInputError
from ihas_keras.export.signatures import read_saved_model
from ihas_keras.retraining import validation_auc
from tests.planted import KEPT, criteo5_schema

K = 2


def artifact(kind, uri):
    """A standard (or custom) artifact at URI, its folder made, as an orchestrator would."""
    os.makedirs(uri, exist_ok=True)
    result = kind()
    result.uri = str(uri)
    return result


def count_rows(folder) -> int:
    files = tf.io.gfile.glob(os.path.join(folder, "*"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """What ExampleGen and Transform would give: raw examples, transform graph, transformed
    examples; and the exec properties naming the format."""
    root = tmp_path_factory.mktemp("upstream")
    schema = criteo5_schema(root / "criteo5.yaml")
    props = {"format": "generic", "schema": str(schema)}
    fmt = ihas_keras.data.get_format("generic", str(schema))
    synthesize(str(root / "criteo.txt"), rows=4000, format="criteo", segments=2, seed=1)
    raw, graph = root / "raw", root / "graph"
    ingest([str(root / "criteo.txt")], fmt, str(raw), seed=1)
    transform(str(raw), fmt, str(graph))
    return {
        "fmt": fmt, "props": props, "raw": artifact(standard_artifacts.Examples, raw),
        "graph": artifact(standard_artifacts.TransformGraph, graph),
        "transformed": artifact(standard_artifacts.Examples, graph),
    }


# Small caps, one epoch a phase: the tests are about the plumbing. Batch size and gate cadence
# by the rule (0): 256 for the ~3,200 training rows, a gate step after every batch.
SEARCH_PROPS = {"embedding_dim": 4, "backbone": "dnn", "pretrain_epochs": 1, "epochs": 1,
                "gate_every": 0, "gate_learning_rate": defaults.GATE_LEARNING_RATE,
                "patience": 1, "batch_size": 0, "regularization_weight": 1e-4, "seed": 0}
CLUSTER_PROPS = {"num_clusters": K, "representation": "probability", "batch_size": 0, "seed": 0}
RETRAIN_PROPS = {"backbone": "", "epochs": 1, "patience": 1, "batch_size": 0, "warm_start": 1,
                 "seed": 0}


@pytest.fixture(scope="module")
def searched(upstream, tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    outputs = {"model": [artifact(standard_artifacts.Model, root / "model")],
               "model_run": [artifact(standard_artifacts.ModelRun, root / "model_run")]}
    inputs = {"examples": [upstream["transformed"]], "transform_graph": [upstream["graph"]]}
    SearchExecutor().Do(inputs, outputs, {**upstream["props"], **SEARCH_PROPS})
    return outputs


@pytest.fixture(scope="module")
def clustered(upstream, searched, tmp_path_factory):
    plan = artifact(ClusterPlan, tmp_path_factory.mktemp("cluster") / "plan")
    inputs = {"examples": [upstream["transformed"]], "model": searched["model"]}
    ClusterExecutor().Do(inputs, {"cluster_plan": [plan]}, {**upstream["props"], **CLUSTER_PROPS})
    return plan


@pytest.fixture(scope="module")
def retrained(upstream, searched, clustered, tmp_path_factory):
    root = tmp_path_factory.mktemp("retrain")
    outputs = {"model": [artifact(standard_artifacts.Model, root / "model")],
               "baseline": [artifact(standard_artifacts.Model, root / "baseline")]}
    inputs = {"examples": [upstream["transformed"]], "transform_graph": [upstream["graph"]],
              "search_model": searched["model"], "cluster_plan": [clustered]}
    RetrainExecutor().Do(inputs, outputs, {**upstream["props"], **RETRAIN_PROPS})
    return outputs


# No lowest AUC: the plumbing's one-epoch models may score near chance on 400 test rows.
EVALUATE_PROPS = {"margin": defaults.BLESSING_MARGIN, "min_auc": 0.0,
                  "last_blessed_margin": defaults.LAST_BLESSED_MARGIN}


def evaluate(upstream, retrained, root, margin, last_blessed=(), **thresholds):
    blessing = artifact(standard_artifacts.ModelBlessing,
                        root / f"blessing{margin}-{len(last_blessed)}")
    inputs = {"examples": [upstream["raw"]], "model": retrained["model"],
              "baseline": retrained["baseline"], "last_blessed": list(last_blessed)}
    EvaluateExecutor().Do(inputs, {"blessing": [blessing]},
                          {**upstream["props"], **EVALUATE_PROPS, "margin": margin, **thresholds})
    return blessing


def raw_test_rows(upstream, n=300):
    """N serialized raw test tf.Examples with the label removed, and their parsed features."""
    files = tf.io.gfile.glob(os.path.join(upstream["raw"].uri, "Split-test", "*"))
    serialized = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").take(n):
        example = tf.train.Example.FromString(record.numpy())
        del example.features.feature["label"]
        serialized.append(example.SerializeToString())
    spec = raw_feature_spec(upstream["fmt"].unlabeled())
    return tf.constant(serialized), tf.io.parse_example(serialized, spec)


def test_search_writes_a_loadable_model_histogram_and_logs(upstream, searched):
    model_dir = searched["model"][0].uri
    model = keras.saving.load_model(os.path.join(model_dir, "search.keras"))
    assert isinstance(model, ihas_keras.SearchModel) and model.embedding_dim == 4
    assert model.fields == list(KEPT)
    transformed = tft.TFTransformOutput(upstream["graph"].uri).transform_raw_features(
        raw_test_rows(upstream, 50)[1])
    prob = model.predict({f: transformed[f] for f in KEPT}, verbose=0)
    assert prob.shape == (50,) and np.all((prob > 0) & (prob < 1))
    assert os.path.getsize(os.path.join(model_dir, "gate_histogram.png")) > 1000
    (logs,) = tf.io.gfile.glob(os.path.join(searched["model_run"][0].uri, "train", "events.*"))
    steps = collections.defaultdict(list)
    for event in tf.compat.v1.train.summary_iterator(logs):
        for value in event.summary.value:
            steps[value.tag].append(event.step)
    assert steps["epoch_loss"] == steps["epoch_arch_steps"] == [0, 1]  # pretraining, search


def tensorboard_json(port: int, route: str, process: subprocess.Popen, timeout: float = 120):
    """GET http://127.0.0.1:PORT/ROUTE from a starting TensorBoard until it answers non-empty."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, process.communicate()[1][-2000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{route}", timeout=10) as reply:
                found = json.load(reply)
            if found:
                return found
        except (urllib.error.URLError, ConnectionError):
            pass  # not listening yet
        assert time.monotonic() < deadline, f"TensorBoard gave nothing at {route}"
        time.sleep(0.5)


def test_tensorboard_serves_the_search_scalars(searched):
    """`tensorboard --logdir` on Search's ModelRun, on 127.0.0.1: its HTTP API gives back the
    scalars the executor wrote, epoch by epoch."""
    logdir = searched["model_run"][0].uri
    (events,) = tf.io.gfile.glob(os.path.join(logdir, "train", "events.*"))
    written = collections.defaultdict(list)
    for event in tf.compat.v1.train.summary_iterator(events):
        for value in event.summary.value:
            written[value.tag].append([event.step, float(tf.make_ndarray(value.tensor))])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [shutil.which("tensorboard"), "--logdir", logdir, "--host", "127.0.0.1",
         "--port", str(port), "--load_fast", "false", "--reload_interval", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        tags = tensorboard_json(port, "data/plugin/scalars/tags", process)
        assert set(tags) == {"train"} and set(tags["train"]) == set(written)
        for tag, points in written.items():
            query = urllib.parse.urlencode({"run": "train", "tag": tag})
            served = tensorboard_json(port, f"data/plugin/scalars/scalars?{query}", process)
            assert [step for _, step, _ in served] == [step for step, _ in points], tag
            assert [value for *_, value in served] == pytest.approx([v for _, v in points]), tag
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "epoch_auc" in written and len(written["epoch_auc"]) == 2  # pretraining, search


def test_cluster_plan_covers_every_train_row(upstream, clustered):
    plan = ihas_keras.ClusterPlan.load(os.path.join(clustered.uri, "plan.json"))
    assert plan.num_clusters == K and plan.fields == list(KEPT)
    train_rows = count_rows(os.path.join(upstream["transformed"].uri, "Split-train"))
    assert int(plan.sizes.sum()) == train_rows > 2000
    assert splits.count_records(upstream["transformed"].uri, "train") == train_rows
    assert plan.representation == "probability"
    assert plan.widths().shape == (K, len(KEPT))
    assert os.path.getsize(os.path.join(clustered.uri, "widths.png")) > 1000


def test_serving_export_takes_raw_examples_and_matches_the_routed_model(upstream, retrained):
    uri = retrained["model"][0].uri
    routed = keras.saving.load_model(os.path.join(uri, "routed.keras"))
    serve = tf.saved_model.load(path_utils.serving_model_path(uri)).signatures["serving_default"]
    assert list(serve.structured_input_signature[1]) == ["examples"]
    serialized, raw = raw_test_rows(upstream)
    served = serve(examples=serialized)
    prob, cluster = served["probability"].numpy(), served["cluster"].numpy()
    assert prob.shape == cluster.shape == (len(serialized),)
    assert np.all((prob > 0) & (prob < 1)) and np.all((cluster >= 0) & (cluster < K))
    transformed = tft.TFTransformOutput(upstream["graph"].uri).transform_raw_features(raw)
    expected = routed({f: transformed[f] for f in KEPT})
    np.testing.assert_allclose(prob, expected["probability"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(cluster, expected["cluster"].numpy())

    baseline_uri = retrained["baseline"][0].uri
    baseline = keras.saving.load_model(os.path.join(baseline_uri, "baseline.keras"))
    assert baseline.widths == [4] * len(KEPT)
    base = tf.saved_model.load(path_utils.serving_model_path(baseline_uri))
    base_prob = base.signatures["serving_default"](examples=serialized)["probability"].numpy()
    np.testing.assert_allclose(base_prob, baseline({f: transformed[f] for f in KEPT}).numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("margin", [1.0, -1.0])
def test_evaluate_blesses_by_margin(upstream, retrained, tmp_path, margin):
    blessing = evaluate(upstream, retrained, tmp_path, margin)
    with open(os.path.join(blessing.uri, "metrics.json")) as f:
        metrics = json.load(f)
    test_rows = count_rows(os.path.join(upstream["raw"].uri, "Split-test"))
    for name in ("model", "baseline"):
        assert metrics[name]["examples"] == test_rows
        assert 0 <= metrics[name]["auc"] <= 1 and metrics[name]["logloss"] > 0
    blessed = metrics["model"]["auc"] >= metrics["baseline"]["auc"] - margin
    assert blessed == (margin > 0) == metrics["blessed"]  # AUCs differ by less than 1
    # AUC ignores row order: Beam's transformed test split through the Keras model must agree.
    routed = keras.saving.load_model(os.path.join(retrained["model"][0].uri, "routed.keras"))
    spec = tft.TFTransformOutput(upstream["graph"].uri).transformed_feature_spec()
    test = splits.dataset(upstream["transformed"].uri, "test", spec, "label", 4096)
    y, p = zip(*((label, routed(x)["probability"]) for x, label in test), strict=True)
    assert metrics["model"]["auc"] == pytest.approx(roc_auc_score(np.concatenate(y),
                                                                  np.concatenate(p)), abs=1e-6)
    assert blessing.get_int_custom_property("blessed") == int(blessed)
    assert sorted(os.listdir(blessing.uri)) == sorted(
        ["metrics.json", "BLESSED" if blessed else "NOT_BLESSED"])


def test_evaluate_checks_the_last_blessed_model_and_the_lowest_auc(upstream, retrained,
                                                                    tmp_path):
    """The base model stands in for the last blessed one: the same export scored twice gives the
    same AUC, and each threshold alone can refuse the blessing."""
    model = artifact(standard_artifacts.Model, retrained["model"][0].uri)
    model.id = 7  # as ML Metadata numbers it
    models = {**retrained, "model": [model]}

    def metrics(**kwargs):
        blessing = evaluate(upstream, models, tmp_path / str(len(os.listdir(tmp_path))),
                            **kwargs)
        with open(os.path.join(blessing.uri, "metrics.json")) as f:
            return blessing, json.load(f)

    last = retrained["baseline"]
    blessing, found = metrics(margin=1.0, last_blessed=last, last_blessed_margin=1.0)
    assert found["last_blessed"]["auc"] == found["baseline"]["auc"]
    assert found["last_blessed"]["uri"] == last[0].uri and not found["last_blessed"]["same_model"]
    assert found["checks"] == {"min_auc": True, "baseline": True, "last_blessed": True}
    assert found["blessed"] and blessing.get_int_custom_property("blessed") == 1
    # TFX's LatestBlessedModelStrategy finds the blessed model by this property.
    assert blessing.get_int_custom_property("current_model_id") == 7
    blessing, found = metrics(margin=1.0, last_blessed=last, last_blessed_margin=-1.0)
    assert found["checks"] == {"min_auc": True, "baseline": True, "last_blessed": False}
    assert not found["blessed"] and blessing.get_int_custom_property("blessed") == 0
    assert os.path.isfile(os.path.join(blessing.uri, "NOT_BLESSED"))
    blessing, found = metrics(margin=1.0, min_auc=1.01)  # no last blessed model: first run
    assert found["checks"] == {"min_auc": False, "baseline": True}
    assert "last_blessed" not in found and not found["blessed"]
    # The model itself as the last blessed one (a rerun over cached Retrain): not blessed again.
    blessing, found = metrics(margin=1.0, last_blessed=[model], last_blessed_margin=1.0)
    assert found["last_blessed"] == {"uri": model.uri, "same_model": True}
    assert found["checks"]["last_blessed"] is False and not found["blessed"]


SERVE_ALONE = """
import sys
import tensorflow as tf
serve = tf.saved_model.load("{model}").signatures["serving_default"]
batch = next(iter(tf.data.TFRecordDataset({files}, compression_type="GZIP").batch(8)))
out = serve(examples=batch)
print(",".join(sorted(out)), len(out["probability"]),
      any(m in sys.modules for m in ("ihas_keras", "tensorflow_transform")))
"""


def test_pusher_pushes_the_retrained_serving_model(upstream, retrained, tmp_path):
    blessing = evaluate(upstream, retrained, tmp_path, 1.0)
    pushed = artifact(standard_artifacts.PushedModel, tmp_path / "pushed")
    destination = tmp_path / "serving"
    pusher_executor.Executor().Do(
        {"model": retrained["model"], "model_blessing": [blessing]}, {"pushed_model": [pushed]},
        {"push_destination": json.dumps({"filesystem": {"base_directory": str(destination)}})},
    )
    assert pushed.get_int_custom_property("pushed") == 1
    (version,) = os.listdir(destination)
    # A fresh interpreter with TensorFlow alone (no ihas_keras, no TF Transform) serves it.
    files = tf.io.gfile.glob(os.path.join(upstream["raw"].uri, "Split-test", "*"))
    script = SERVE_ALONE.format(model=destination / version, files=files)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-3:] == ["cluster,probability", "8", "False"]


def test_missing_split_and_unknown_format_are_named(upstream, searched, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(os.path.join(upstream["transformed"].uri, "Split-train"),
                    partial / "Split-train")
    inputs = {"examples": [artifact(standard_artifacts.Examples, partial)],
              "transform_graph": [upstream["graph"]]}
    outputs = {"model": [artifact(standard_artifacts.Model, tmp_path / "m")],
               "model_run": [artifact(standard_artifacts.ModelRun, tmp_path / "r")]}
    with pytest.raises(BadInputError, match="Split-eval: no such split folder"):
        SearchExecutor().Do(inputs, outputs, {**upstream["props"], **SEARCH_PROPS})
    with pytest.raises(ValueError, match="unknown format 'criteo5'"):
        SearchExecutor().Do(inputs, outputs, {"format": "criteo5", **SEARCH_PROPS})
    empty = artifact(standard_artifacts.Examples, tmp_path / "empty")
    with pytest.raises(BadInputError, match="Split-train: no such split folder"):
        ClusterExecutor().Do(
            {"examples": [empty], "model": searched["model"]},
            {"cluster_plan": [artifact(ClusterPlan, tmp_path / "plan")]},
            {**upstream["props"], **CLUSTER_PROPS},
        )


def test_cluster_names_the_allowed_representations(upstream, searched, tmp_path):
    allowed = "unknown representation 'centroid'; allowed: probability, mask, masked_embedding"
    with pytest.raises(ValueError, match=allowed):
        ClusterExecutor().Do(
            {"examples": [upstream["transformed"]], "model": searched["model"]},
            {"cluster_plan": [artifact(ClusterPlan, tmp_path / "plan")]},
            {**upstream["props"], **CLUSTER_PROPS, "representation": "centroid"},
        )
    with pytest.raises(ValueError, match=allowed):  # and when the pipeline is defined
        Cluster(channel.Channel(type=standard_artifacts.Examples),
                channel.Channel(type=standard_artifacts.Model),
                format="criteo", representation="centroid")


def test_components_declare_their_channels():
    def ch(kind):
        return channel.Channel(type=kind)

    search = Search(ch(standard_artifacts.Examples), ch(standard_artifacts.TransformGraph),
                    format="criteo")
    cluster = Cluster(ch(standard_artifacts.Examples), search.outputs["model"], format="criteo")
    retrain = Retrain(ch(standard_artifacts.Examples), ch(standard_artifacts.TransformGraph),
                      search.outputs["model"], cluster.outputs["cluster_plan"], format="criteo")
    evaluate_ = Evaluate(ch(standard_artifacts.Examples), retrain.outputs["model"],
                         retrain.outputs["baseline"], format="criteo", margin=0)
    assert set(search.outputs) == {"model", "model_run"}
    assert cluster.outputs["cluster_plan"].type is ClusterPlan
    assert set(retrain.outputs) == {"model", "baseline"}
    assert retrain.inputs["search_model"] is search.outputs["model"]
    assert evaluate_.outputs["blessing"].type is standard_artifacts.ModelBlessing
    assert retrain.exec_properties["backbone"] == ""
    # By the rule (0) unless given; the rest from ihas_keras.defaults.
    assert search.exec_properties["gate_every"] == search.exec_properties["batch_size"] == 0
    assert cluster.exec_properties["batch_size"] == retrain.exec_properties["batch_size"] == 0
    assert search.exec_properties["gate_learning_rate"] == defaults.GATE_LEARNING_RATE
    assert search.exec_properties["patience"] == retrain.exec_properties["patience"] \
        == defaults.PATIENCE
    assert cluster.exec_properties["representation"] == defaults.REPRESENTATION
    assert retrain.exec_properties["warm_start"] == int(defaults.WARM_START)
    assert retrain.exec_properties["shared_embedding"] == int(defaults.SHARED_EMBEDDING)
    assert retrain.exec_properties["seed"] == defaults.SPLIT_SEED
    assert search.exec_properties["strategy"] == retrain.exec_properties["strategy"] \
        == defaults.STRATEGY


def run_fresh(executor: str, inputs: dict, outputs: dict, props: dict,
              logical_cpus: int = 0) -> dict:
    """Runs EXECUTOR's `Do` in a new interpreter that imports only its module (as Kubeflow
    does), its CPU split into LOGICAL_CPUS devices if given; returns the output artifacts'
    custom properties."""
    def paths(artifacts):
        return {key: [[f"{type(a).__module__}:{type(a).__name__}", a.uri] for a in items]
                for key, items in artifacts.items()}

    spec = {"executor": executor, "inputs": paths(inputs), "outputs": paths(outputs),
            "exec_properties": props, "beam_pipeline_args": ["--direct_num_workers=1"],
            "logical_cpus": logical_cpus}
    result = subprocess.run([sys.executable, "-m", "tests.run_executor", json.dumps(spec)],
                            capture_output=True, text=True, timeout=900,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_executor_runs_alone_in_a_fresh_process(upstream, searched, clustered, retrained,
                                                      tmp_path):
    """Each executor, on artifacts of an earlier run, in its own interpreter: nothing another
    executor imported (such as the Keras classes' registration) is there to help."""
    data = tmp_path / "input"
    data.mkdir()
    shutil.copy(os.path.join(os.path.dirname(upstream["raw"].uri), "criteo.txt"), data)
    gen = {"examples": [artifact(standard_artifacts.Examples, tmp_path / "examples")],
           "quarantine": [artifact(Quarantine, tmp_path / "quarantine")]}
    run_fresh("components.example_gen.executor", {}, gen,
              {**upstream["props"], "input_base": str(data), "seed": 1,
               "max_bad_fraction": 0.001})
    for split in SPLITS:  # the same rows, split alike, as the library's ingest of that file
        assert count_rows(os.path.join(gen["examples"][0].uri, f"Split-{split}")) == \
            count_rows(os.path.join(upstream["raw"].uri, f"Split-{split}"))

    search = {"model": [artifact(standard_artifacts.Model, tmp_path / "model")],
              "model_run": [artifact(standard_artifacts.ModelRun, tmp_path / "model_run")]}
    run_fresh("components.search.executor",
              {"examples": [upstream["transformed"]], "transform_graph": [upstream["graph"]]},
              search, {**upstream["props"], **SEARCH_PROPS})
    assert os.path.isfile(os.path.join(search["model"][0].uri, "search.keras"))

    plan = {"cluster_plan": [artifact(ClusterPlan, tmp_path / "plan")]}
    run_fresh("components.cluster.executor",
              {"examples": [upstream["transformed"]], "model": searched["model"]}, plan,
              {**upstream["props"], **CLUSTER_PROPS})
    assert ihas_keras.ClusterPlan.load(os.path.join(plan["cluster_plan"][0].uri,
                                                    "plan.json")).num_clusters == K

    models = {"model": [artifact(standard_artifacts.Model, tmp_path / "routed")],
              "baseline": [artifact(standard_artifacts.Model, tmp_path / "baseline")]}
    run_fresh("components.retrain.executor",
              {"examples": [upstream["transformed"]], "transform_graph": [upstream["graph"]],
               "search_model": searched["model"], "cluster_plan": [clustered]},
              models, {**upstream["props"], **RETRAIN_PROPS})
    for key in models:
        assert os.path.isfile(os.path.join(
            path_utils.serving_model_path(models[key][0].uri), "saved_model.pb"))

    blessing = {"blessing": [artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing")]}
    properties = run_fresh("components.evaluate.executor",
                           {"examples": [upstream["raw"]], "model": retrained["model"],
                            "baseline": retrained["baseline"]},
                           blessing, {**upstream["props"], **EVALUATE_PROPS, "margin": 1.0})
    assert properties["blessing"][0]["blessed"] == 1
    assert os.path.isfile(os.path.join(blessing["blessing"][0].uri, "BLESSED"))


LOAD_ALONE = """
import ihas_keras, keras
model = keras.saving.load_model({path!r})
print(type(model).__name__, len(model.widths))
"""


def test_a_saved_routed_model_loads_in_a_fresh_process(retrained):
    path = os.path.join(retrained["model"][0].uri, "routed.keras")
    result = subprocess.run([sys.executable, "-c", LOAD_ALONE.format(path=path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["RoutedModel", str(K)]


def test_retrain_with_one_cluster_serves_one_recommender(upstream, searched, tmp_path):
    """K = 1: `retrain` gives a plain recommender of the searched widths, saved and exported in
    the same layout; its serving export answers cluster 0."""
    plan = artifact(ClusterPlan, tmp_path / "plan")
    ClusterExecutor().Do({"examples": [upstream["transformed"]], "model": searched["model"]},
                         {"cluster_plan": [plan]},
                         {**upstream["props"], **CLUSTER_PROPS, "num_clusters": 1})
    widths = ihas_keras.ClusterPlan.load(os.path.join(plan.uri, "plan.json")).widths()[0]
    outputs = {"model": [artifact(standard_artifacts.Model, tmp_path / "model")],
               "baseline": [artifact(standard_artifacts.Model, tmp_path / "baseline")]}
    RetrainExecutor().Do(
        {"examples": [upstream["transformed"]], "transform_graph": [upstream["graph"]],
         "search_model": searched["model"], "cluster_plan": [plan]},
        outputs, {**upstream["props"], **RETRAIN_PROPS, "warm_start": 0})
    uri = outputs["model"][0].uri
    model = keras.saving.load_model(os.path.join(uri, "routed.keras"))
    assert type(model) is ihas_keras.Recommender and model.widths == widths.tolist()
    serve = tf.saved_model.load(path_utils.serving_model_path(uri)).signatures["serving_default"]
    serialized, raw = raw_test_rows(upstream, 50)
    served = serve(examples=serialized)
    np.testing.assert_array_equal(served["cluster"].numpy(), np.zeros(50, "int32"))
    transformed = tft.TFTransformOutput(upstream["graph"].uri).transform_raw_features(raw)
    np.testing.assert_allclose(served["probability"].numpy(),
                               model({f: transformed[f] for f in KEPT}).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_clusters_auto_retrains_each_candidate_and_keeps_the_best(upstream, searched, tmp_path):
    """num_clusters 0 (auto): Cluster writes a plan per candidate K, Retrain retrains each and
    keeps the one of the best validation AUC, recording the choice and every K's AUC."""
    plan = artifact(ClusterPlan, tmp_path / "plan")
    ClusterExecutor().Do({"examples": [upstream["transformed"]], "model": searched["model"]},
                         {"cluster_plan": [plan]},
                         {**upstream["props"], **CLUSTER_PROPS, "num_clusters": 0,
                          "candidates": json.dumps([1, 2])})  # as TFX passes a list
    for k in (1, 2):
        assert ihas_keras.ClusterPlan.load(
            os.path.join(plan.uri, f"k{k}", "plan.json")).num_clusters == k
    assert not os.path.exists(os.path.join(plan.uri, "plan.json"))
    outputs = {"model": [artifact(standard_artifacts.Model, tmp_path / "model")],
               "baseline": [artifact(standard_artifacts.Model, tmp_path / "baseline")]}
    RetrainExecutor().Do(
        {"examples": [upstream["transformed"]], "transform_graph": [upstream["graph"]],
         "search_model": searched["model"], "cluster_plan": [plan]},
        outputs, {**upstream["props"], **RETRAIN_PROPS})
    uri = outputs["model"][0].uri
    with open(os.path.join(uri, "clusters.json")) as f:
        choice = json.load(f)
    scores = {int(k): auc for k, auc in choice["validation_auc"].items()}
    assert sorted(scores) == [1, 2] and all(0.5 < auc <= 1 for auc in scores.values())
    assert choice["num_clusters"] == max(scores, key=scores.get)
    kept = ihas_keras.ClusterPlan.load(os.path.join(uri, "plan.json"))
    assert kept.num_clusters == choice["num_clusters"]
    model = keras.saving.load_model(os.path.join(uri, "routed.keras"))
    if kept.num_clusters == 1:
        assert type(model) is ihas_keras.Recommender
    else:
        assert type(model) is ihas_keras.RoutedModel and len(model.widths) == kept.num_clusters
    validation = splits.dataset(upstream["transformed"].uri, "eval",
                                tft.TFTransformOutput(upstream["graph"].uri)
                                .transformed_feature_spec(), "label", 256)
    assert validation_auc(model, validation) == pytest.approx(
        scores[kept.num_clusters], abs=1e-4)


@pytest.mark.parametrize("num_clusters, candidates", [(-1, [1, 2]), (0, []), (0, [0, 2])])
def test_cluster_rejects_a_bad_k_naming_the_component(num_clusters, candidates):
    with pytest.raises(ValueError, match="Cluster: "):
        Cluster(channel.Channel(type=standard_artifacts.Examples),
                channel.Channel(type=standard_artifacts.Model), format="criteo",
                num_clusters=num_clusters, candidates=candidates)


def bfloat16_ops(export_dir: str) -> list[str]:
    """The ops of a SavedModel's functions that take or give bfloat16 values."""
    graph = read_saved_model(export_dir).meta_graphs[0].graph_def
    return [node.op for function in graph.library.function for node in function.node_def
            if any(value.type == types_pb2.DT_BFLOAT16 for value in node.attr.values())]


def test_search_and_retrain_take_the_gpu_settings(upstream, searched, clustered, tmp_path):
    """jit_compile and a mixed dtype policy as execution properties (on CPU here): the models
    are built under the policy, train with XLA-compiled steps and export float32 scores; the
    process's policy is float32 again after each stage."""
    gpu = {"jit_compile": 1, "dtype_policy": "mixed_bfloat16"}
    search = {"model": [artifact(standard_artifacts.Model, tmp_path / "search")],
              "model_run": [artifact(standard_artifacts.ModelRun, tmp_path / "run")]}
    SearchExecutor().Do({"examples": [upstream["transformed"]],
                         "transform_graph": [upstream["graph"]]},
                        search, {**upstream["props"], **SEARCH_PROPS, **gpu})
    assert keras.config.dtype_policy().name == "float32"
    assert os.path.isfile(os.path.join(search["model"][0].uri, "search.keras"))
    outputs = {"model": [artifact(standard_artifacts.Model, tmp_path / "model")],
               "baseline": [artifact(standard_artifacts.Model, tmp_path / "baseline")]}
    RetrainExecutor().Do(
        {"examples": [upstream["transformed"]], "transform_graph": [upstream["graph"]],
         "search_model": searched["model"], "cluster_plan": [clustered]},
        outputs, {**upstream["props"], **RETRAIN_PROPS, **gpu})
    assert keras.config.dtype_policy().name == "float32"
    for key in ("model", "baseline"):
        export = path_utils.serving_model_path(outputs[key][0].uri)
        assert bfloat16_ops(export)  # the model computes in bfloat16 behind the TFT graph
        serve = tf.saved_model.load(export)
        probability = serve.signatures["serving_default"](
            examples=raw_test_rows(upstream, 20)[0])["probability"]
        assert probability.dtype == tf.float32
        assert np.all((probability.numpy() > 0) & (probability.numpy() < 1))


def test_search_and_retrain_train_under_mirrored_strategy(upstream, searched, clustered,
                                                          retrained, tmp_path):
    """Execution property strategy "mirrored", each executor in a fresh process whose CPU is
    split into 2 logical devices (as a 2-GPU machine would be): the models train with 2
    replicas (recorded on the artifacts), are saved and exported, and Retrain's serving exports
    score the test rows as the one-device run of the same inputs does."""
    mirrored = {"strategy": "mirrored"}
    search = {"model": [artifact(standard_artifacts.Model, tmp_path / "search")],
              "model_run": [artifact(standard_artifacts.ModelRun, tmp_path / "run")]}
    recorded = run_fresh("components.search.executor",
                         {"examples": [upstream["transformed"]],
                          "transform_graph": [upstream["graph"]]},
                         search, {**upstream["props"], **SEARCH_PROPS, **mirrored},
                         logical_cpus=2)
    assert recorded["model"] == [{"strategy": "mirrored", "replicas": 2}]
    assert isinstance(ihas_keras.load_model(os.path.join(search["model"][0].uri,
                                                         "search.keras")), ihas_keras.SearchModel)
    assert os.path.isfile(os.path.join(search["model"][0].uri, "gate_histogram.png"))
    models = {"model": [artifact(standard_artifacts.Model, tmp_path / "routed")],
              "baseline": [artifact(standard_artifacts.Model, tmp_path / "baseline")]}
    recorded = run_fresh("components.retrain.executor",
                         {"examples": [upstream["transformed"]],
                          "transform_graph": [upstream["graph"]],
                          "search_model": searched["model"], "cluster_plan": [clustered]},
                         models, {**upstream["props"], **RETRAIN_PROPS, **mirrored},
                         logical_cpus=2)
    serialized, _ = raw_test_rows(upstream)
    for key in models:
        assert recorded[key] == [{"strategy": "mirrored", "replicas": 2}]
        probability, one_device = (
            tf.saved_model.load(path_utils.serving_model_path(outputs[key][0].uri))
            .signatures["serving_default"](examples=serialized)["probability"].numpy()
            for outputs in (models, retrained))
        # The same inputs and seed as the `retrained` fixture's one-device run: the same
        # model but for the order of float sums (measured: at most 0.005 apart).
        np.testing.assert_allclose(probability, one_device, atol=0.02, err_msg=key)
        assert probability.std() > 0, key


def test_a_bad_strategy_is_an_error_naming_the_setting(upstream, tmp_path):
    outputs = {"model": [artifact(standard_artifacts.Model, tmp_path / "m")],
               "model_run": [artifact(standard_artifacts.ModelRun, tmp_path / "r")]}
    with pytest.raises(ValueError, match="^Search's execution property 'strategy': unknown "
                       "tf.distribute strategy 'mirorred'; allowed: default, one_device, "
                       "mirrored, multi_worker$"):
        SearchExecutor().Do({"examples": [upstream["transformed"]],
                             "transform_graph": [upstream["graph"]]},
                            outputs, {**upstream["props"], **SEARCH_PROPS,
                                      "strategy": "mirorred"})
    examples = channel.Channel(type=standard_artifacts.Examples)
    with pytest.raises(ValueError, match="^Search: strategy: unknown tf.distribute strategy"):
        Search(examples, channel.Channel(type=standard_artifacts.TransformGraph),
               format="criteo", strategy="tpu")
    with pytest.raises(ValueError, match="^Retrain: strategy: 'parameter_server' is not "
                       "supported: ParameterServerStrategy is not supported by Keras 3's fit "
                       r"\(keras-team/keras#18624\)"):
        Retrain(examples, channel.Channel(type=standard_artifacts.TransformGraph),
                channel.Channel(type=standard_artifacts.Model),
                channel.Channel(type=ClusterPlan), format="criteo",
                strategy="parameter_server")


def test_retrain_with_the_other_cluster_models_serves_them(upstream, searched, clustered,
                                                           tmp_path):
    """shared_embedding set against the default (towers over one embedding, or one recommender
    per cluster): saved and exported in the same layout, served as the Keras model scores."""
    shared = not defaults.SHARED_EMBEDDING
    outputs = {"model": [artifact(standard_artifacts.Model, tmp_path / "model")],
               "baseline": [artifact(standard_artifacts.Model, tmp_path / "baseline")]}
    RetrainExecutor().Do(
        {"examples": [upstream["transformed"]], "transform_graph": [upstream["graph"]],
         "search_model": searched["model"], "cluster_plan": [clustered]},
        outputs, {**upstream["props"], **RETRAIN_PROPS, "shared_embedding": int(shared)})
    uri = outputs["model"][0].uri
    model = keras.saving.load_model(os.path.join(uri, "routed.keras"))
    assert type(model) is ihas_keras.RoutedModel and len(model.widths) == K
    if shared:
        assert model.recommenders == [] and model.towers.widths().tolist() == model.widths
    else:
        assert model.towers is None and [r.widths for r in model.recommenders] == model.widths
    serve = tf.saved_model.load(path_utils.serving_model_path(uri)).signatures["serving_default"]
    serialized, raw = raw_test_rows(upstream, 50)
    served = serve(examples=serialized)
    transformed = tft.TFTransformOutput(upstream["graph"].uri).transform_raw_features(raw)
    expected = model({f: transformed[f] for f in KEPT})
    np.testing.assert_array_equal(served["cluster"].numpy(), expected["cluster"].numpy())
    np.testing.assert_allclose(served["probability"].numpy(), expected["probability"].numpy(),
                               rtol=1e-5, atol=1e-6)
