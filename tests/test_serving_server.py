"""`ihas serve`: TF Serving's gRPC and REST protocols over loopback, on SavedModels written here."""

import base64
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

from ihas_cli import main as cli
from ihas_keras.export.signatures import CLASSIFY_METHOD, read_signature_defs
from serving.inference import WARMUP_FILE, replay_warmup
from serving.models import ModelManager, model_config, read_model_config_file
from serving.server import ModelServer
from tests.ctr_model import EXAMPLES, save_ctr

LIMIT_BYTES, LIMIT_ROWS = 16 << 20, 100  # the test server's limits
NOT_UTF8 = b"\xff\xfe\x80 not a tf.Example, not UTF-8"


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two model versions (different weights), to copy under base paths."""
    root = tmp_path_factory.mktemp("sources")
    for name, scale in [("a", 0.5), ("b", -1.0)]:
        save_ctr(str(root / name), scale)
    return {name: str(root / name) for name in "ab"}


@pytest.fixture(scope="module")
def server(sources, tmp_path_factory):
    """Two models from a model config file, version 1 each, no polling."""
    root = tmp_path_factory.mktemp("models")
    shutil.copytree(sources["a"], root / "ctr" / "1")
    shutil.copytree(sources["b"], root / "other" / "5")
    config = root / "models.config"
    config.write_text("model_config_list {\n"
                      f'  config {{ name: "ctr" base_path: "{root / "ctr"}" '
                      'model_platform: "tensorflow" }\n'
                      f'  config {{ name: "other" base_path: "{root / "other"}" }}\n}}\n')
    srv = ModelServer(read_model_config_file(str(config)), grpc_port=0, rest_port=0,
                      host="127.0.0.1", poll_wait_seconds=0, max_request_bytes=LIMIT_BYTES,
                      max_batch_size=LIMIT_ROWS, rest_api_timeout_in_ms=2000).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def loaded(sources):
    return tf.saved_model.load(sources["a"])


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def rest(srv, path: str, body=None) -> tuple[int, dict]:
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{srv.rest_port}{path}", data=data,
                                     method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def predict_request(model="ctr", signature="", **inputs) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def in_process(loaded, signature, **inputs) -> dict:
    return {k: v.numpy() for k, v in loaded.signatures[signature](**inputs).items()}


def assert_serving(stub):
    """The server still answers a valid request."""
    response = stub.Predict(predict_request(examples=EXAMPLES[:1]), timeout=30)
    assert tf.make_ndarray(response.outputs["probability"]).shape == (1,)


def test_grpc_predict_equals_in_process(stub, loaded):
    response = stub.Predict(predict_request(examples=EXAMPLES), timeout=30)
    expected = in_process(loaded, "serving_default", examples=tf.constant(EXAMPLES))
    assert set(response.outputs) == {"probability", "cluster"}
    for name, value in expected.items():
        np.testing.assert_array_equal(tf.make_ndarray(response.outputs[name]), value)
    assert (response.model_spec.name, response.model_spec.version.value) == ("ctr", 1)
    assert response.model_spec.signature_name == "serving_default"

    x, c = np.array([3, -2], np.int64), np.array([b"q", b"rst"], object)
    response = stub.Predict(predict_request(signature="predict_raw", x=x, c=c), timeout=30)
    expected = in_process(loaded, "predict_raw", x=tf.constant(x), c=tf.constant(c))
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["cluster"]),
                                  expected["cluster"])
    request = predict_request(signature="predict_raw", x=x, c=c)
    request.output_filter.append("cluster")
    assert set(stub.Predict(request, timeout=30).outputs) == {"cluster"}


def test_rest_predict_equals_in_process(server, loaded):
    expected = in_process(loaded, "serving_default", examples=tf.constant(EXAMPLES))
    b64 = [{"b64": base64.b64encode(e).decode()} for e in EXAMPLES]
    status, body = rest(server, "/v1/models/ctr:predict", {"instances": b64})
    assert status == 200
    assert [row["cluster"] for row in body["predictions"]] == expected["cluster"].tolist()
    np.testing.assert_array_equal(
        np.float32([row["probability"] for row in body["predictions"]]), expected["probability"])

    status, body = rest(server, "/v1/models/ctr/versions/1:predict",
                        {"signature_name": "serving_default", "inputs": {"examples": b64}})
    assert status == 200
    np.testing.assert_array_equal(np.float32(body["outputs"]["probability"]),
                                  expected["probability"])

    rows = [{"x": 3, "c": "q"}, {"x": -2, "c": "rst"}]
    status, body = rest(server, "/v1/models/ctr:predict",
                        {"signature_name": "predict_raw", "instances": rows})
    expected = in_process(loaded, "predict_raw", x=tf.constant([3, -2], tf.int64),
                          c=tf.constant(["q", "rst"]))
    assert status == 200
    assert [r["cluster"] for r in body["predictions"]] == expected["cluster"].tolist()

    # One input, one output: bare values in and out.
    status, body = rest(server, "/v1/models/ctr:predict",
                        {"signature_name": "probability_only", "instances": [1, 2, 3]})
    expected = in_process(loaded, "probability_only", x=tf.constant([1, 2, 3], tf.int64))
    assert status == 200
    np.testing.assert_array_equal(np.float32(body["predictions"]), expected["probability"])
    status, body = rest(server, "/v1/models/ctr:predict",
                        {"signature_name": "probability_only", "inputs": [1, 2, 3]})
    np.testing.assert_array_equal(np.float32(body["outputs"]), expected["probability"])


def test_classify_grpc_and_rest(server, stub, loaded):
    expected = in_process(loaded, "classify", inputs=tf.constant(EXAMPLES[:2]))["scores"]
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "ctr"
    request.model_spec.signature_name = "classify"
    for e in EXAMPLES[:2]:
        request.input.example_list.examples.add().ParseFromString(e)
    result = stub.Classify(request, timeout=30).result
    assert [[c.label for c in r.classes] for r in result.classifications] == [["0", "1"]] * 2
    np.testing.assert_allclose([[c.score for c in r.classes] for r in result.classifications],
                               expected)

    status, body = rest(server, "/v1/models/ctr:classify", {
        "signature_name": "classify", "examples": [{"x": 1, "c": "a"}, {"x": 7, "c": ["bcd"]}]})
    assert status == 200
    assert [[label for label, _ in r] for r in body["results"]] == [["0", "1"]] * 2
    np.testing.assert_allclose([[s for _, s in r] for r in body["results"]], expected, rtol=1e-6)
    # The context's features are merged into every example.
    status, body = rest(server, "/v1/models/ctr:classify", {
        "signature_name": "classify", "context": {"c": "a"}, "examples": [{"x": 1}]})
    assert status == 200
    np.testing.assert_allclose([s for _, s in body["results"][0]], expected[0], rtol=1e-6)

    request.model_spec.signature_name = "serving_default"  # a predict signature
    with pytest.raises(grpc.RpcError) as e:
        stub.Classify(request, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tensorflow/serving/classify" in e.value.details()
    status, body = rest(server, "/v1/models/ctr:classify", {"examples": [{"x": 1, "c": "a"}]})
    assert status == 400 and "tensorflow/serving/classify" in body["error"]


def test_status_and_metadata(server, channel, stub, sources):
    ok = {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                    "status": {"error_code": "OK", "error_message": ""}}]}
    assert rest(server, "/v1/models/ctr") == (200, ok)
    assert rest(server, "/v1/models/ctr/versions/1") == (200, ok)
    assert rest(server, "/v1/models/other")[1]["model_version_status"][0]["version"] == "5"
    assert rest(server, "/v1/models/ctr/versions/2")[0] == 404
    assert rest(server, "/v1/models/nope")[0] == 404

    models = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "other"
    (status,) = models.GetModelStatus(request, timeout=30).model_version_status
    assert (status.version, status.state, status.status.error_code) == (
        5, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)

    code, body = rest(server, "/v1/models/ctr/metadata")
    assert code == 200
    assert body["model_spec"] == {"name": "ctr", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert signatures["classify"]["method_name"] == CLASSIFY_METHOD
    assert signatures["serving_default"]["inputs"]["examples"]["dtype"] == "DT_STRING"
    assert set(signatures["predict_raw"]["outputs"]) == {"probability", "cluster"}

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "ctr"
    response = stub.GetModelMetadata(request, timeout=30)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    assert dict(signature_map.signature_def) == read_signature_defs(sources["a"])


GRPC_ERRORS = [
    (predict_request(), grpc.StatusCode.INVALID_ARGUMENT, "required input(s): examples"),
    (predict_request(examples=EXAMPLES, extra=[1]), grpc.StatusCode.INVALID_ARGUMENT, "extra"),
    (predict_request(examples=[1.0, 2.0]), grpc.StatusCode.INVALID_ARGUMENT, "'examples'"),
    (predict_request(examples=[EXAMPLES[:2]]), grpc.StatusCode.INVALID_ARGUMENT, "'examples'"),
    (predict_request(signature="predict_raw", x=np.int64([1]), c=[1]),
     grpc.StatusCode.INVALID_ARGUMENT,
     "'c'"),
    (predict_request(examples=[b"not a tf.Example"]), grpc.StatusCode.INVALID_ARGUMENT, ""),
    (predict_request(examples=[NOT_UTF8]), grpc.StatusCode.INVALID_ARGUMENT, "malformed"),
    (predict_request(examples=EXAMPLES[:1] * (LIMIT_ROWS + 1)), grpc.StatusCode.INVALID_ARGUMENT,
     f"larger than the maximum batch size {LIMIT_ROWS}"),
    (predict_request(model="nope", examples=EXAMPLES), grpc.StatusCode.NOT_FOUND, "nope"),
    (predict_request(signature="nope", examples=EXAMPLES), grpc.StatusCode.FAILED_PRECONDITION,
     "nope"),
]


@pytest.mark.parametrize("request_, code, named", GRPC_ERRORS)
def test_grpc_bad_requests(stub, request_, code, named):
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(request_, timeout=30)
    assert e.value.code() == code and named in e.value.details()
    assert_serving(stub)


def test_grpc_unknown_version_and_garbage(stub, channel):
    request = predict_request(examples=EXAMPLES)
    request.model_spec.version.value = 9
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(request, timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    raw = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
    with pytest.raises(grpc.RpcError) as e:
        raw(b"\xff\xfe garbage \x00\x01", timeout=30)
    assert e.value.code() != grpc.StatusCode.OK
    assert_serving(stub)


REST_ERRORS = [
    ("/v1/models/ctr:predict", b"{not json", 400, "JSON"),
    ("/v1/models/ctr:predict", [1, 2], 400, "object"),
    ("/v1/models/nope:predict", {"instances": [1]}, 404, "nope"),
    ("/v1/models/ctr/versions/9:predict", {"instances": [1]}, 404, "9"),
    ("/v1/models/ctr:predict", {"signature_name": "predict_raw", "instances": [{"x": 1}]}, 400,
     "required input(s): c"),
    ("/v1/models/ctr:predict",
     {"signature_name": "predict_raw", "inputs": {"x": [1.5], "c": ["a"]}}, 400, "'x'"),
    ("/v1/models/ctr:predict", {"signature_name": "probability_only", "inputs": [[1], [2]]}, 400,
     "'x'"),
    ("/v1/models/ctr:predict", {"signature_name": "probability_only", "inputs": [[1], 2]}, 400,
     "ragged"),
    ("/v1/models/ctr:predict", {"instances": ["not a tf.Example"]}, 400, ""),
    ("/v1/models/ctr:predict", {}, 400, "instances"),
    ("/v1/models/ctr:explode", {}, 400, "Malformed"),
    ("/v1/models/ctr:predict", {"instances": [{"b64": base64.b64encode(NOT_UTF8).decode()}]},
     400, "malformed"),
    ("/v1/models/ctr/versions/99999999999999999999:predict", {"instances": [1]}, 404,
     "no such version"),
    ("/v1/models/ctr:predict", b"[" * 100_000, 400, "nested too deeply"),
    ("/v1/models/ctr:predict", {"instances": [{"b64": base64.b64encode(EXAMPLES[0]).decode()}]
                                * (LIMIT_ROWS + 1)}, 400, "maximum batch size"),
]


@pytest.mark.parametrize("path, body, status, named", REST_ERRORS)
def test_rest_bad_requests(server, stub, path, body, status, named):
    code, answer = rest(server, path, body)
    assert code == status and named in answer["error"]
    assert rest(server, "/v1/models/ctr:predict",
                {"signature_name": "probability_only", "instances": [1]})[0] == 200


def test_negative_tensor_dimensions_are_refused(stub):
    request = predict_request(examples=EXAMPLES[:1])
    request.inputs["examples"].tensor_shape.dim[0].size = -1
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(request, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "negative" in e.value.details()


def test_errors_quote_a_short_excerpt_of_a_huge_input(server, stub):
    """A 10 MB garbage input: the answer names the problem in a few hundred characters."""
    garbage = b"\x07garbage " * 1_000_000
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(predict_request(examples=[garbage]), timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 0 < len(e.value.details()) <= 600 and "\x07" not in e.value.details()
    status, answer = rest(server, "/v1/models/ctr:predict",
                          {"instances": [{"b64": base64.b64encode(garbage[:5_000_000]).decode()}]})
    assert status == 400 and 0 < len(answer["error"]) <= 600
    assert_serving(stub)


def test_requests_above_the_byte_limit_are_refused_unread(server, stub):
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(predict_request(examples=[b"x" * (LIMIT_BYTES + 1)]), timeout=60)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
        sock.sendall(b"POST /v1/models/ctr:predict HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 1000000000000\r\n\r\n{}")
        answer = sock.makefile("rb").read()  # the server answers and closes
    assert answer.startswith(b"HTTP/1.1 413") and b"--max_request_bytes" in answer
    assert b"Python" not in answer.split(b"\r\n\r\n")[0]  # no Python version in Server
    assert_serving(stub)


def test_a_half_sent_rest_request_is_answered_and_closed_after_the_timeout(server):
    """Content-Length 100, 10 bytes sent, then nothing: after --rest_api_timeout_in_ms (2 s
    here) the server answers 408 and closes, instead of holding its thread."""
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
        sock.sendall(b"POST /v1/models/ctr:predict HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 100\r\n\r\n{\"instance")
        answer = sock.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 408") and b"rest_api_timeout_in_ms" in answer


def test_a_version_folder_of_non_ascii_digits_is_not_a_version(sources, tmp_path):
    shutil.copytree(sources["a"], tmp_path / "1")
    (tmp_path / "\u00b2").mkdir()  # '²'.isdigit() is true; int('²') raises
    (tmp_path / "99999999999999999999").mkdir()  # beyond int64
    manager = ModelManager([model_config("m", str(tmp_path))], poll_wait_seconds=0)
    manager.start()
    try:
        assert manager.loaded_versions("m") == [1]
    finally:
        manager.stop()


def test_grpc_load(stub):
    requests = [predict_request(examples=EXAMPLES[i % 4:i % 4 + 1]) for i in range(2000)]

    def call(request):
        return tf.make_ndarray(stub.Predict(request, timeout=30).outputs["cluster"])[0]

    with futures.ThreadPoolExecutor(8) as pool:
        clusters = list(pool.map(call, requests))
    assert clusters == [[1, 1, 2, 0][i % 4] for i in range(2000)]


def _wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_polling_new_and_corrupt_versions(sources, tmp_path):
    base = tmp_path / "ctr"
    shutil.copytree(sources["a"], base / "1")
    srv = ModelServer([read_model_config_file_for(tmp_path, base)], grpc_port=0, rest_port=0,
                      host="127.0.0.1", poll_wait_seconds=0.2).start()
    try:
        def answer():
            status, body = rest(srv, "/v1/models/ctr:predict",
                                {"signature_name": "probability_only", "instances": [5]})
            assert status == 200
            return body["predictions"][0]

        v1 = answer()
        shutil.copytree(sources["b"], tmp_path / "staging")
        os.rename(tmp_path / "staging", base / "2")  # appears whole, as exporters should write
        _wait_for(lambda: srv.manager.loaded_versions("ctr") == [2])
        v2 = answer()
        assert v2 != v1
        assert [s["state"] for s in rest(srv, "/v1/models/ctr")[1]["model_version_status"]] == [
            "AVAILABLE", "END"]

        (base / "3").mkdir()
        (base / "3" / "saved_model.pb").write_bytes(b"garbage, not a SavedModel")

        def failed():
            statuses = rest(srv, "/v1/models/ctr")[1]["model_version_status"]
            return statuses[0]["version"] == "3" and statuses[0]["state"] == "END"

        _wait_for(failed)
        (status3,) = rest(srv, "/v1/models/ctr/versions/3")[1]["model_version_status"]
        assert status3["status"]["error_code"] != "OK"
        assert "saved_model.pb" in status3["status"]["error_message"]
        assert answer() == v2 and srv.manager.loaded_versions("ctr") == [2]

        shutil.rmtree(base / "3")  # fixed: the same version folder is tried again
        shutil.copytree(sources["a"], base / "3")
        _wait_for(lambda: srv.manager.loaded_versions("ctr") == [3])
        assert answer() == v1
    finally:
        srv.stop()


def test_failing_warmup_fails_the_load(sources, tmp_path):
    shutil.copytree(sources["a"], tmp_path / "1")
    shutil.copytree(sources["b"], tmp_path / "2")
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.inputs["wrong"].CopyFrom(tf.make_tensor_proto([1]))
    with tf.io.TFRecordWriter(str(tmp_path / "2" / WARMUP_FILE)) as w:
        w.write(log.SerializeToString())
    manager = ModelManager([model_config("m", str(tmp_path))], poll_wait_seconds=0,
                           warmup=replay_warmup).start()
    assert manager.loaded_versions("m") == [1]
    v2, v1 = manager.model_status("m")
    assert v1.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert v2.state == get_model_status_pb2.ModelVersionStatus.END
    assert "wrong" in v2.status.error_message


def test_a_version_copied_in_place_loads_once_complete_and_stable(sources, tmp_path):
    """A folder written file by file is not tried while it changes; tried half-written (it
    stood still over a poll), it fails and is tried again once its files change and settle."""
    base = tmp_path / "m"
    shutil.copytree(sources["a"], base / "1")
    manager = ModelManager([model_config("m", str(base))], poll_wait_seconds=0).start()
    try:
        assert manager.loaded_versions("m") == [1]
        (base / "2").mkdir()
        shutil.copy(os.path.join(sources["b"], "saved_model.pb"), base / "2")
        manager.poll()  # new: not stable yet, not tried
        assert [s.state for s in manager.model_status("m")] == [
            get_model_status_pb2.ModelVersionStatus.AVAILABLE]
        manager.poll()  # unchanged over a poll: tried, and fails without its variables
        assert manager.loaded_versions("m") == [1]
        assert manager.model_status("m")[0].state == get_model_status_pb2.ModelVersionStatus.END
        for name in ("variables", "assets.extra"):
            shutil.copytree(os.path.join(sources["b"], name), base / "2" / name)
        manager.poll()  # changed since the failure: waits for it to settle
        assert manager.loaded_versions("m") == [1]
        manager.poll()
        assert manager.loaded_versions("m") == [2]
    finally:
        manager.stop()


def read_model_config_file_for(tmp_path, base):
    config = tmp_path / "one.config"
    config.write_text(f'model_config_list {{ config {{ name: "ctr" base_path: "{base}" }} }}')
    return read_model_config_file(str(config))[0]


@pytest.mark.parametrize("argv, message", [
    (["serve"], "--model_base_path"),
    (["serve", "--model_base_path", "/no/such/folder"], "/no/such/folder"),
    (["serve", "--model_config_file", "/no/such.config"], "/no/such.config"),
])
def test_serve_flag_errors(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", ["--tensorflow_intra_op_parallelism",
                                  "--tensorflow_inter_op_parallelism"])
def test_serve_rejects_negative_thread_counts(flag, tmp_path, capsys):
    assert cli.main(["serve", "--model_base_path", str(tmp_path), flag, "-1"]) == 2
    err = capsys.readouterr().err
    assert flag in err and ">= 0" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", ["--max_request_bytes", "--max_batch_size",
                                  "--rest_api_timeout_in_ms"])
def test_serve_rejects_limits_below_one(flag, tmp_path, capsys):
    assert cli.main(["serve", "--model_base_path", str(tmp_path), flag, "0"]) == 2
    err = capsys.readouterr().err
    assert flag in err and "at least 1" in err and len(err.strip().splitlines()) == 1


def test_serve_bad_config_file(tmp_path, capsys):
    config = tmp_path / "bad.config"
    config.write_text("model_config_list { config { name: ")
    assert cli.main(["serve", "--model_config_file", str(config)]) == 2
    assert "ModelServerConfig" in capsys.readouterr().err


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ihas_serve_process(sources, tmp_path, stop):
    """The real command: logs its ports and versions, answers, stops on Ctrl-C and on SIGTERM,
    also when started with SIGINT ignored (as a shell's background job is)."""
    shutil.copytree(sources["a"], tmp_path / "m" / "1")
    with socket.socket() as s:  # a free port: --rest_api_port 0 means no REST
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "ihas_cli", "serve", "--port", "0",
         "--rest_api_port", str(port),
         "--model_name", "m", "--model_base_path", str(tmp_path / "m")],
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr],
                     daemon=True).start()
    try:
        log = ""
        while "REST API listening" not in log:
            log += lines.get(timeout=60)
        assert "model m: loaded version 1" in log
        assert re.search(r"gRPC .* listening on 127.0.0.1:\d+", log)  # this machine only
        assert f"REST API listening on http://127.0.0.1:{port}" in log
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/m", timeout=30) as r:
            assert json.loads(r.read())["model_version_status"][0]["state"] == "AVAILABLE"
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
