"""A bounded, seeded fuzz of `ihas serve` (issue 18): a few hundred hostile requests over gRPC and
REST against the server on 127.0.0.1, serving the small test export (tests/ctr_model.py).

Every answer must be a client code with a bounded message (never INTERNAL, UNKNOWN or HTTP 500),
an answer OK only to a mutated request that is still valid, and then equal to the model run in
this process; the server logs no server error and nothing unbounded; it still answers a valid
request correctly at the end.
"""

import base64
import http.client
import json
import logging
import random
import socket

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.models import model_config
from serving.server import ModelServer
from tests.ctr_model import EXAMPLES, example, save_ctr

SEED = 18
LIMIT_BYTES, LIMIT_ROWS = 16 << 20, 100  # the fuzzed server's limits
MAX_MESSAGE = 1024  # the longest error message (and log line) allowed
TIMEOUT_MS = 500  # --rest_api_timeout_in_ms of the fuzzed server: half-sent bodies get 408
CLIENT_GRPC = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
               grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED}
CLIENT_HTTP = {400, 404, 408, 413, 414}  # 414: a request line beyond http.server's 64 KiB
PREDICT = "/tensorflow.serving.PredictionService/Predict"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    save_ctr(str(root / "ctr" / "1"), 0.5)
    return root


@pytest.fixture(scope="module")
def server(model_dir):
    srv = ModelServer([model_config("ctr", str(model_dir / "ctr"))], grpc_port=0, rest_port=0,
                      host="127.0.0.1", poll_wait_seconds=0, max_request_bytes=LIMIT_BYTES,
                      max_batch_size=LIMIT_ROWS, max_inflight_examples=8 * LIMIT_ROWS,
                      rest_api_timeout_in_ms=TIMEOUT_MS).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def loaded(model_dir):
    return tf.saved_model.load(str(model_dir / "ctr" / "1"))


def expected_outputs(loaded, request: predict_pb2.PredictRequest) -> dict:
    """What the model run in this process answers to a (valid) PredictRequest."""
    fn = loaded.signatures[request.model_spec.signature_name or "serving_default"]
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    return {k: v.numpy() for k, v in fn(**inputs).items()}


def predict_request(examples=None, model="ctr", signature="", **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if examples is not None:
        inputs["examples"] = examples
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def random_bytes(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


def not_utf8(rng: random.Random) -> bytes:
    data = bytearray(random_bytes(rng, rng.randint(1, 200)))
    data[rng.randrange(len(data))] = rng.choice([0x80, 0xC3, 0xFE, 0xFF])  # a bad UTF-8 byte
    return bytes(data)


def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        where = rng.randrange(len(data) + 1)
        kind = rng.choice(["flip", "insert", "delete"])
        if kind == "flip" and where < len(data):
            data[where] ^= 1 << rng.randrange(8)
        elif kind == "insert":
            data[where:where] = random_bytes(rng, rng.randint(1, 8))
        elif where < len(data):
            del data[where:where + rng.randint(1, 8)]
    return bytes(data)


# gRPC cases: (kind, what is sent, the expected code or None for "any client code or OK")


def grpc_cases(rng: random.Random) -> list:
    valid = predict_request(EXAMPLES)
    cases = []
    for _ in range(30):
        cases.append(("non-UTF-8 tf.Example", predict_request(
            [not_utf8(rng) for _ in range(rng.randint(1, 5))]), grpc.StatusCode.INVALID_ARGUMENT))
    for size in [1 << 20, 4 << 20, 10 << 20]:
        garbage = bytes(rng.choice(b"\x00\x07\xff abc") for _ in range(1000)) * (size // 1000)
        cases.append(("garbage string", predict_request([garbage]),
                      grpc.StatusCode.INVALID_ARGUMENT))
    cases.append(("above the message limit", predict_request([b"x" * (LIMIT_BYTES + 1)]),
                  grpc.StatusCode.RESOURCE_EXHAUSTED))
    for _ in range(15):
        request = predict_request(EXAMPLES[:1])
        request.model_spec.version.value = rng.randint(2, 2**63 - 1)
        cases.append(("huge version", request, grpc.StatusCode.NOT_FOUND))
    for _ in range(10):
        cases.append(("oversized batch", predict_request(
            EXAMPLES[:1] * rng.randint(LIMIT_ROWS + 1, 3 * LIMIT_ROWS)),
            grpc.StatusCode.INVALID_ARGUMENT))
    for _ in range(15):
        request = predict_request(EXAMPLES[:2])
        request.inputs["examples"].tensor_shape.dim[0].size = rng.choice(
            [-1, -2, -(2**63), rng.randint(-(2**40), -1)])
        cases.append(("negative dims", request, grpc.StatusCode.INVALID_ARGUMENT))
    for _ in range(15):  # a few bytes asking for a huge tensor: its last value repeats
        request = predict_request(EXAMPLES[:1])
        request.inputs["examples"].tensor_shape.dim[0].size = rng.randint(LIMIT_ROWS + 1, 2**62)
        cases.append(("huge dims, one value", request, grpc.StatusCode.INVALID_ARGUMENT))
    for _ in range(20):
        value = rng.choice([[1.5, 2.0], [1, 2], [True], np.int8([3])])
        cases.append(("wrong dtype", predict_request(value), grpc.StatusCode.INVALID_ARGUMENT))
        request = predict_request(EXAMPLES[:1])
        request.inputs["examples"].dtype = rng.choice([0, 20, 21, 99, 1000, rng.randint(1, 30)])
        cases.append(("random dtype enum", request, None))
    for _ in range(10):
        cases.append(("unknown model", predict_request(EXAMPLES[:1], model=f"m{rng.random()}"),
                      grpc.StatusCode.NOT_FOUND))
        cases.append(("unknown signature", predict_request(
            EXAMPLES[:1], signature=f"s{rng.random()}"), grpc.StatusCode.FAILED_PRECONDITION))
        cases.append(("unknown input", predict_request(EXAMPLES[:1], extra=[1]),
                      grpc.StatusCode.INVALID_ARGUMENT))
        cases.append(("missing input", predict_request(signature="predict_raw",
                                                       x=np.int64([1])),
                      grpc.StatusCode.INVALID_ARGUMENT))
    for _ in range(120):
        cases.append(("mutated request", mutate(rng, valid.SerializeToString()), None))
    for _ in range(20):
        cases.append(("random bytes", random_bytes(rng, rng.randint(1, 300)), None))
    return cases


def call_grpc(channel, sent) -> tuple[grpc.StatusCode, str, bytes | None]:
    raw = channel.unary_unary(PREDICT)  # bytes in, bytes out
    data = sent if isinstance(sent, bytes) else sent.SerializeToString()
    try:
        return grpc.StatusCode.OK, "", raw(data, timeout=60)
    except grpc.RpcError as e:
        return e.code(), e.details() or "", None


def test_grpc_fuzz(server, loaded, caplog):
    rng = random.Random(SEED)
    cases = grpc_cases(rng)
    rng.shuffle(cases)
    counts = {}
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=[
            ("grpc.max_send_message_length", -1)]) as channel, caplog.at_level(logging.DEBUG):
        for kind, sent, expected in cases:
            code, details, answer = call_grpc(channel, sent)
            counts[code.name] = counts.get(code.name, 0) + 1
            what = f"{kind}: {code.name} {details[:200]!r}"
            assert len(details) <= MAX_MESSAGE, what
            if expected is not None:
                assert code == expected, what
            elif code == grpc.StatusCode.OK:  # still valid: the model's own answer
                request = predict_pb2.PredictRequest.FromString(
                    sent if isinstance(sent, bytes) else sent.SerializeToString())
                response = predict_pb2.PredictResponse.FromString(answer)
                for name, value in expected_outputs(loaded, request).items():
                    np.testing.assert_array_equal(tf.make_ndarray(response.outputs[name]),
                                                  value, err_msg=kind)
            else:
                assert code in CLIENT_GRPC, what
        assert_bounded_log(caplog)
        assert_still_serving(server, loaded, channel)
    assert len(cases) >= 300 and counts.get("OK", 0) < len(cases) // 2, counts


# REST cases: (kind, raw HTTP request bytes, the expected status or None, half-sent)


def http_request(path: str, body: bytes, method: str = "POST",
                 content_length: int | None = None) -> bytes:
    length = len(body) if content_length is None else content_length
    return (f"{method} {path} HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode() + body


def json_request(path: str, obj) -> bytes:
    return http_request(path, json.dumps(obj).encode())


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


VALID_RAW = {"signature_name": "predict_raw",
             "instances": [{"x": 3, "c": "q"}, {"x": -2, "c": "rst"}]}


def rest_cases(rng: random.Random) -> list:
    predict = "/v1/models/ctr:predict"
    cases = []
    for _ in range(20):
        cases.append(("non-UTF-8 tf.Example", json_request(predict, {"instances": [
            b64(not_utf8(rng)) for _ in range(rng.randint(1, 5))]}), 400, False))
        cases.append(("non-UTF-8 body", http_request(predict, not_utf8(rng)), 400, False))
    for size in [1 << 20, 4 << 20]:
        garbage = bytes(rng.choice(b"\x00\x07\xff abc") for _ in range(1000)) * (size // 1000)
        cases.append(("garbage string", json_request(predict, {"instances": [b64(garbage)]}),
                      400, False))
    cases.append(("garbage text", http_request(predict, b"\x07{" * (5 << 19)), 400, False))
    for _ in range(15):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(20, 80)))
        cases.append(("huge version", json_request(f"/v1/models/ctr/versions/{digits}:predict",
                                                   VALID_RAW), 404, False))
        cases.append(("huge version (status)", http_request(
            f"/v1/models/ctr/versions/{digits}", b"", "GET"), 404, False))
    for _ in range(10):
        depth = rng.randint(1000, 200_000)
        cases.append(("deeply nested JSON", http_request(predict, b"[" * depth + b"]" * depth),
                      400, False))
        cases.append(("deeply nested instances", http_request(
            predict, b'{"instances": ' + b"[" * depth + b"1" + b"]" * depth + b"}"), 400, False))
    for _ in range(10):
        cases.append(("Content-Length far above the limit", http_request(
            predict, b"{}", content_length=rng.randint(LIMIT_BYTES + 1, 10**15)), 413, False))
        cases.append(("Content-Length above the body, then EOF", http_request(
            predict, b'{"instances"', content_length=rng.randint(100, LIMIT_BYTES)), 400, True))
    for _ in range(4):
        cases.append(("half-sent body", http_request(
            predict, b'{"inst', content_length=rng.randint(100, 10_000)), 408, False))
    for _ in range(10):
        rows = rng.randint(LIMIT_ROWS + 1, 3 * LIMIT_ROWS)
        cases.append(("oversized batch", json_request(predict, {
            "signature_name": "predict_raw", "instances": [{"x": 1, "c": "a"}] * rows}), 400,
            False))
    for _ in range(15):
        x, c = rng.choice([("a", "b"), (1.5, "b"), (1, 2), (True, "b"), (2**70, "b"),
                           ([1, [2]], "b"), ({"b64": "!!"}, "b"), (1, {"b64": "@@"})])
        cases.append(("wrong dtype", json_request(predict, {
            "signature_name": "predict_raw", "instances": [{"x": x, "c": c}]}), 400, False))
    for _ in range(8):
        cases.append(("unknown model", json_request(f"/v1/models/m{rng.randint(0, 99)}:predict",
                                                    VALID_RAW), 404, False))
        cases.append(("unknown signature", json_request(predict, {
            "signature_name": f"s{rng.random()}", "instances": [1]}), 400, False))
        cases.append(("unknown input", json_request(predict, {
            "signature_name": "predict_raw", "instances": [{"x": 1, "c": "a", "y": 2}]}), 400,
            False))
    for _ in range(6):
        line = "".join(rng.choice("\x00\x1b\x7f\xff/ab%") for _ in range(rng.randint(1, 100)))
        cases.append(("garbage request line", line.encode("latin-1") + b"\r\n\r\n", 400, False))
    cases.append(("request line beyond 64 KiB", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
                  414, False))
    text = json.dumps(VALID_RAW).encode()
    for _ in range(130):
        cases.append(("mutated body", http_request(predict, mutate(rng, text)), None, False))
    return cases


def send_raw(port: int, data: bytes, close_write: bool) -> tuple[int, bytes]:
    """Sends DATA on a new connection; the answer's status and body (the server closes, or
    keeps the connection open after a full answer: read by Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):  # answered (413) before all was sent
            pass
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, answer.read()


def expected_rest(loaded, body: bytes):
    """The model's own predictions for a mutated body that is still a valid predict_raw
    request, or None when it is not one (then it must not be answered 200)."""
    try:
        request = json.loads(body)
        rows = request["instances"]
        assert request.get("signature_name") == "predict_raw" and set(request) <= {
            "signature_name", "instances"}
        assert rows and all(set(r) == {"x", "c"} and type(r["x"]) is int
                            and isinstance(r["c"], str) for r in rows)
        x = tf.constant([r["x"] for r in rows], tf.int64)
    except Exception:
        return None
    outputs = loaded.signatures["predict_raw"](x=x, c=tf.constant([r["c"] for r in rows]))
    return [{"probability": float(p), "cluster": int(c)}
            for p, c in zip(outputs["probability"].numpy(), outputs["cluster"].numpy(),
                            strict=True)]


def test_rest_fuzz(server, loaded, caplog):
    rng = random.Random(SEED + 1)
    cases = rest_cases(rng)
    rng.shuffle(cases)
    counts = {}
    with caplog.at_level(logging.DEBUG):
        for kind, data, expected, close_write in cases:
            status, body = send_raw(server.rest_port, data, close_write)
            counts[status] = counts.get(status, 0) + 1
            what = f"{kind}: HTTP {status} {body[:200]!r}"
            assert len(body) <= MAX_MESSAGE + 100, what
            if expected is not None:
                assert status == expected, what
            if status == 200:
                sent = data.split(b"\r\n\r\n", 1)[1]
                predictions = expected_rest(loaded, sent)
                assert predictions is not None, what
                answer = json.loads(body)["predictions"]
                assert [p["cluster"] for p in answer] == [p["cluster"] for p in predictions]
                np.testing.assert_allclose([p["probability"] for p in answer],
                                           [p["probability"] for p in predictions], rtol=1e-6)
            else:
                assert status in CLIENT_HTTP, what
                assert 0 < len(json.loads(body)["error"]) <= MAX_MESSAGE, what
        assert_bounded_log(caplog)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        assert_still_serving(server, loaded, channel)
    assert len(cases) >= 300 and counts.get(200, 0) < len(cases) // 2, counts


def assert_bounded_log(caplog) -> None:
    """No server error was logged, and every line logged of a request is short and escaped."""
    for record in caplog.records:
        if not record.name.startswith("serving"):
            continue
        message = record.getMessage()
        assert record.levelno < logging.ERROR, message[:500]
        assert len(message) <= MAX_MESSAGE + 200, message[:500]
        assert message.isprintable(), message[:500]


def assert_still_serving(server, loaded, channel) -> None:
    """A valid request over gRPC and over REST gets the model's own answer."""
    request = predict_request([example(5, "ab"), example(-3, "")])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(request, timeout=30)
    expected = expected_outputs(loaded, request)
    for name, value in expected.items():
        np.testing.assert_array_equal(tf.make_ndarray(response.outputs[name]), value)
    status, body = send_raw(server.rest_port, json_request("/v1/models/ctr:predict", VALID_RAW),
                            False)
    assert status == 200
    assert json.loads(body)["predictions"] == expected_rest(loaded, json.dumps(VALID_RAW))
    assert server.admission.inflight == 0  # every request gave its rows back
