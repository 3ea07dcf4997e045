"""The serving SavedModel: its signatures against the in-memory model, the raw-feature and
classify signatures, warmup records, and that plain TensorFlow (no project code) serves it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import prediction_log_pb2

import ihas_keras
from ihas_keras.data.preprocess import raw_feature_spec
from ihas_keras.data.transform import transformed_dataset
from ihas_keras.export.saved_model import WARMUP_FILE, export_serving_model, raw_input_columns
from ihas_keras.export.signatures import CLASSIFY_METHOD, read_saved_model

N = 200


@pytest.fixture(scope="module")
def served(served_model):
    return served_model


@pytest.fixture(scope="module")
def loaded(served):
    return tf.saved_model.load(served.export_dir)


def test_serving_default_equals_the_model_in_memory(served, loaded):
    examples = served.raw_examples(N)
    out = loaded.signatures["serving_default"](examples=tf.constant(examples))
    raw = tf.io.parse_example(examples, raw_feature_spec(served.fmt.unlabeled()))
    features = tft.TFTransformOutput(served.transform_dir).transform_raw_features(raw)
    expected = served.model({f: features[f] for f in served.model.fields})
    np.testing.assert_allclose(out["probability"].numpy(), expected["probability"].numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["cluster"].numpy(), expected["cluster"].numpy())
    assert out["probability"].dtype == tf.float32 and out["cluster"].dtype == tf.int32
    assert len(set(out["cluster"].numpy())) == 2  # both clusters are used on these rows


def test_one_cluster_exports_a_plain_recommender_without_gate_or_router(served, tmp_path):
    """K = 1: retrain gives one Recommender with the searched widths; its export holds no gate,
    no threshold and no centroids, and answers cluster 0."""
    train = transformed_dataset(served.transform_dir, "train", served.fmt, batch_size=256)
    plan = ihas_keras.fit_clusters(served.search, train, num_clusters=1, progress=False)
    single = ihas_keras.retrain(served.search, plan, train, None, epochs=1, verbose=0)
    assert isinstance(single, ihas_keras.Recommender)
    assert single.widths == plan.widths()[0].tolist() and sum(single.widths) > 0
    export_dir = export_serving_model(single, served.transform_dir, served.fmt,
                                      str(tmp_path / "1"))
    def saved_variables(folder):
        return list(tf.saved_model.load(folder).model_variables)

    names = saved_variables(export_dir)
    assert [n for n in names if "embedding" in n]
    assert not [n for n in names if any(w in n for w in ("gate", "centroid", "router"))]
    routed_names = saved_variables(served.export_dir)
    assert [n for n in routed_names if "router" in n]  # the routed export has its router
    out = tf.saved_model.load(export_dir).signatures["serving_default"](
        examples=tf.constant(served.raw_examples(N)))
    assert (out["cluster"].numpy() == 0).all()
    assert 0 < out["probability"].numpy().min() <= out["probability"].numpy().max() < 1


def test_the_export_holds_the_model_variables_and_no_optimizer_state(served, tmp_path):
    """A trained recommender (its lazy Adam holds moments and each table row's last step) and the
    routed model: each SavedModel holds its model's variables, each once, nothing more."""
    def saved_values(folder):
        saved = tf.train.list_variables(os.path.join(folder, "variables", "variables"))
        assert not [name for name, _ in saved if "optimizer" in name.lower()]
        return sum(int(np.prod(shape)) for name, shape in saved
                   if name != "_CHECKPOINTABLE_OBJECT_GRAPH")  # the graph's own record

    def values(model):
        return sum(int(np.prod(v.shape)) for v in model.variables)

    train = transformed_dataset(served.transform_dir, "train", served.fmt, batch_size=256)
    plan = ihas_keras.fit_clusters(served.search, train, num_clusters=1, progress=False)
    single = ihas_keras.retrain(served.search, plan, train, None, epochs=1, verbose=0)
    assert sum(int(np.prod(v.shape)) for v in single.optimizer.variables) > values(single)
    export_dir = export_serving_model(single, served.transform_dir, served.fmt,
                                      str(tmp_path / "1"))
    assert saved_values(export_dir) == values(single)
    assert saved_values(served.export_dir) == values(served.model)


def test_predict_raw_takes_the_raw_file_cells(served, loaded):
    lines = served.raw_lines(N)
    columns = served.fmt.columns
    cells = [line.split("\t") for line in lines]
    inputs = {c: tf.constant([row[columns.index(c)] for row in cells])
              for c in raw_input_columns(served.fmt)}
    assert sorted(inputs) == ["C1", "C2", "C3", "I1", "I2"]
    raw = loaded.signatures["predict_raw"](**inputs)
    by_example = loaded.signatures["serving_default"](examples=tf.constant(served.raw_examples(N)))
    np.testing.assert_allclose(raw["probability"].numpy(), by_example["probability"].numpy(),
                               rtol=1e-6)
    np.testing.assert_array_equal(raw["cluster"].numpy(), by_example["cluster"].numpy())
    assert (inputs["I1"].numpy() == b"").any()  # missing cells were among them


def test_predict_raw_names_a_bad_numeric_input(loaded):
    inputs = {c: tf.constant(["1", "x"]) for c in ("C1", "C2", "C3")}
    inputs.update(I1=tf.constant(["5", "abc"]), I2=tf.constant(["", "7"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="input I1 takes integers.*abc"):
        loaded.signatures["predict_raw"](**inputs)


def test_classify_signature(served, loaded):
    examples = tf.constant(served.raw_examples(N))
    out = loaded.signatures["classify"](inputs=examples)
    probability = loaded.signatures["serving_default"](examples=examples)["probability"].numpy()
    np.testing.assert_allclose(out["scores"].numpy()[:, 1], probability, rtol=1e-6)
    np.testing.assert_allclose(out["scores"].numpy().sum(axis=1), 1, rtol=1e-6)
    assert (out["classes"].numpy() == [b"0", b"1"]).all()
    method = read_saved_model(served.export_dir).meta_graphs[0].signature_def["classify"]
    assert method.method_name == CLASSIFY_METHOD


def test_warmup_requests_replay(served, loaded):
    records = tf.data.TFRecordDataset(os.path.join(served.export_dir, WARMUP_FILE))
    sizes = []
    for record in records:
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        examples = tf.make_ndarray(request.inputs["examples"])
        out = loaded.signatures[request.model_spec.signature_name](examples=examples)
        assert np.isfinite(out["probability"].numpy()).all()
        sizes.append(len(examples))
    assert sizes == [1, 64]


SEPARATE_PROCESS = """
import json, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
out = loaded.signatures["serving_default"](examples=tf.constant([tf.train.Example()
                                                                  .SerializeToString()] * 3))
print(json.dumps({"mods": sorted(m for m in sys.modules if m.split(".")[0] in
                                 ("ihas_keras", "serving", "tensorflow_transform")),
                  "probability": out["probability"].numpy().tolist()}))
"""


def test_plain_tensorflow_serves_it_and_saved_model_cli_shows_it(served):
    """Loaded in a fresh process with TensorFlow alone: no custom op library, no project code."""
    done = subprocess.run([sys.executable, "-c", SEPARATE_PROCESS, served.export_dir],
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["mods"] == []
    assert len(result["probability"]) == 3
    show = subprocess.run(["saved_model_cli", "show", "--dir", served.export_dir, "--all"],
                          capture_output=True, text=True, check=True).stdout
    for name in ("serving_default", "predict_raw", "classify", CLASSIFY_METHOD, "probability",
                 "cluster", "scores", "classes"):
        assert name in show, name
