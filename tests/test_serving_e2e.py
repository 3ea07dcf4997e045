"""The real exported model behind `ihas serve` (in-process `ModelServer`) and `ihas predict`:
answers over gRPC and REST equal in-process calls on the same rows."""

import subprocess
import sys

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (
    classification_pb2,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from ihas_keras.export.saved_model import raw_input_columns
from serving.client import GrpcPredictor, RestPredictor
from serving.models import model_config
from serving.server import ModelServer
from tests.test_serving_deploy import DEPLOY

N = 200


@pytest.fixture(scope="module")
def server(served_model):
    srv = ModelServer([model_config("ihas", served_model.base_path)], grpc_port=0, rest_port=0,
                      host="127.0.0.1", poll_wait_seconds=0).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def in_process(served_model):
    serve = tf.saved_model.load(served_model.export_dir).signatures["serving_default"]
    out = serve(examples=tf.constant(served_model.raw_examples(N)))
    return out["probability"].numpy(), out["cluster"].numpy()


@pytest.mark.parametrize("predictor_class", [GrpcPredictor, RestPredictor])
def test_client_predictions_equal_in_process(server, served_model, in_process, predictor_class):
    port = server.grpc_port if predictor_class is GrpcPredictor else server.rest_port
    predictor = predictor_class(f"127.0.0.1:{port}", "ihas", None, timeout=30)
    probability, cluster = predictor(served_model.raw_examples(N))
    predictor.close()
    np.testing.assert_allclose(probability, in_process[0], rtol=1e-6)
    np.testing.assert_array_equal(cluster, in_process[1])


def test_grpc_predict_raw_and_classify(server, served_model, in_process):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    columns = served_model.fmt.columns
    cells = [line.split("\t") for line in served_model.raw_lines(N)]
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name="ihas", signature_name="predict_raw"))
    for name in raw_input_columns(served_model.fmt):
        request.inputs[name].CopyFrom(tf.make_tensor_proto([r[columns.index(name)]
                                                            for r in cells]))
    raw = stub.Predict(request, timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(raw.outputs["probability"]), in_process[0],
                               rtol=1e-6)
    assert raw.model_spec.version.value == 1

    classify = classification_pb2.ClassificationRequest(
        model_spec=model_pb2.ModelSpec(name="ihas", signature_name="classify"))
    for serialized in served_model.raw_examples(N):
        classify.input.example_list.examples.add().ParseFromString(serialized)
    result = stub.Classify(classify, timeout=30).result.classifications
    scores = np.array([[c.score for c in row.classes] for row in result])
    assert [c.label for c in result[0].classes] == ["0", "1"]
    np.testing.assert_allclose(scores[:, 1], in_process[0], rtol=1e-6)


BAD_ROW = "1\tnot-a-number\t3\t" + "\t".join(["x"] * 37)  # 40 columns, I1 not an integer


@pytest.mark.parametrize("rest", [False, True])
def test_ihas_predict_scores_raw_rows(server, served_model, in_process, tmp_path, rest):
    data = tmp_path / "rows.txt"
    data.write_text("\n".join([*served_model.raw_lines(N), BAD_ROW]) + "\n")
    out = tmp_path / "scores.tsv"
    port = server.rest_port if rest else server.grpc_port
    argv = [sys.executable, "-m", "ihas_cli", "predict", str(data), "--format", "generic",
            "--schema", served_model.schema, "--server", f"127.0.0.1:{port}",
            "--model_name", "ihas", "--batch_size", "64", "--output", str(out), "--quiet",
            *(["--rest"] if rest else [])]
    done = subprocess.run(argv + ["--max-bad-fraction", "0.01"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"rows.txt:{N + 1}: bad_numeric" in done.stderr
    assert f"rows read {N + 1}, scored {N}, rejected 1" in done.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "file\tline\tprobability\tcluster" and len(lines) == N + 1
    rows = [line.split("\t") for line in lines[1:]]
    assert [int(r[1]) for r in rows] == list(range(1, N + 1))
    np.testing.assert_allclose([float(r[2]) for r in rows], in_process[0], atol=1e-6)
    np.testing.assert_array_equal([int(r[3]) for r in rows], in_process[1])

    strict = subprocess.run(argv + ["--max-bad-fraction", "0"], capture_output=True, text=True)
    assert strict.returncode == 1 and "--max-bad-fraction" in strict.stderr


def test_ihas_predict_unknown_model_is_a_clear_error(server, served_model, tmp_path):
    data = tmp_path / "rows.txt"
    data.write_text("\n".join(served_model.raw_lines(5)) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "ihas_cli", "predict", str(data), "--format", "generic",
         "--schema", served_model.schema, "--server", f"127.0.0.1:{server.grpc_port}",
         "--model_name", "nope"], capture_output=True, text=True)
    assert done.returncode == 1
    assert "NOT_FOUND" in done.stderr and "Traceback" not in done.stderr


def test_the_deployment_models_config_serves_the_model(served_model, tmp_path):
    """serving/deploy/models.config, as TF Serving reads it, with the base path pointed here."""
    with open(f"{DEPLOY}/models.config") as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    config.model_config_list.config[0].base_path = served_model.base_path
    srv = ModelServer(list(config.model_config_list.config), grpc_port=0, rest_port=None,
                      host="127.0.0.1", poll_wait_seconds=0).start()
    try:
        predictor = GrpcPredictor(f"127.0.0.1:{srv.grpc_port}", "ihas", 1, timeout=30)
        probability, _ = predictor(served_model.raw_examples(3))
        predictor.close()
        assert probability.shape == (3,)
    finally:
        srv.stop()
