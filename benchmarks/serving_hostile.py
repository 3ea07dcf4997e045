"""A bounded hostile run against `ihas serve` (issue 18): seeded hostile requests over gRPC and
REST from 8 client threads, against the server in its own process.

    ./ihas-env python benchmarks/serving_hostile.py --out benchmarks/results/issue18/hostile.json

The server serves a real routed export (`--export_dir DIR` with `--data` raw Criteo rows, or, by
default, one built here from 5,000 generated Criteo rows: ingest, TF Transform, search, K = 2,
retrain, export) with its default limits (`--max_batch_size` 16384, `--max_inflight_examples`
65536, `--max_request_bytes` 64 MiB) and `--rest_api_timeout_in_ms 2000`. The cases: malformed
tf.Examples that are not UTF-8, garbage strings up to 10 MB, huge versions, deeply nested JSON,
a Content-Length far above the body, half-sent bodies, oversized batches, negative and huge
dimensions, wrong dtypes, unknown models, signatures and inputs, random mutations of valid
requests, random bytes; among them valid requests of 1 to 16384 rows, which are what the
server's memory goes to. It reports the answers by status, the server errors given for client
mistakes (INTERNAL or UNKNOWN, HTTP 500: must be 0), the requests refused as busy (UNAVAILABLE /
503: valid requests beyond the in-flight cap), crashes (the server must answer a valid request
at the end and exit 0 on SIGTERM), the longest error message, and the server's RSS before, at
its peak and after, with the peak of one 16384-row request alone for scale.
"""

import argparse
import base64
import collections
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
import psutil
import tensorflow as tf
from report import write_report
from tensorflow_serving.apis import predict_pb2

from ihas_keras.data import CRITEO, read_table
from ihas_keras.data.ingest import serialized_examples

PREDICT = "/tensorflow.serving.PredictionService/Predict"
MAX_BATCH = 16384  # the server's default --max_batch_size (serving/limits.py)
LIMIT_BYTES = 64 << 20  # its default --max_request_bytes
TIMEOUT_MS = 2000
SERVER_ERRORS = {"INTERNAL", "UNKNOWN", "HTTP 500"}  # and "no answer: ..." (counted apart)


def build_export(work: str, rows: int) -> tuple[str, str]:
    """A small real routed export of generated Criteo rows; (export dir, raw file)."""
    import keras

    import ihas_keras
    from ihas_keras.data import synthesize
    from ihas_keras.data.ingest import ingest
    from ihas_keras.data.transform import transform, transformed_dataset, vocabulary_sizes
    from ihas_keras.export.saved_model import export_serving_model

    raw = os.path.join(work, "criteo.txt")
    synthesize(raw, rows=rows, format="criteo", segments=2, seed=1)
    examples, transformed = os.path.join(work, "examples"), os.path.join(work, "transformed")
    ingest([raw], CRITEO, examples, seed=1)
    transform(examples, CRITEO, transformed)
    keras.utils.set_random_seed(0)
    train = transformed_dataset(transformed, "train", CRITEO, batch_size=256)
    val = transformed_dataset(transformed, "eval", CRITEO, batch_size=256)
    search = ihas_keras.build_model(vocabulary_sizes(transformed, CRITEO), embedding_dim=4,
                                    seed=0)
    ihas_keras.search(search, train, val, pretrain_epochs=1, epochs=1, gate_every=5, verbose=0)
    plan = ihas_keras.fit_clusters(search, train, num_clusters=2, progress=False)
    routed = ihas_keras.retrain(search, plan, train, val, epochs=1, batch_size=256, verbose=0)
    return export_serving_model(routed, transformed, CRITEO, os.path.join(work, "export")), raw


def valid_examples(raw: str, n: int) -> list[bytes]:
    batch = next(iter(read_table([raw], CRITEO, batch_size=n)))
    batch = tf.nest.map_structure(lambda t: t.numpy(), batch)
    return serialized_examples(batch, batch["reason"] == 0, CRITEO.unlabeled())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The cases: (transport, kind, payload); gRPC payloads are bytes (a serialized request, or not).


def tensor_request(examples, version: int | None = None, signature: str = "",
                   model: str = "ihas", name: str = "examples") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = model, signature
    if version is not None:
        request.model_spec.version.value = version
    request.inputs[name].CopyFrom(tf.make_tensor_proto(examples))
    return request


def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        where = rng.randrange(len(data) + 1)
        kind = rng.choice(["flip", "insert", "delete"])
        if kind == "flip" and where < len(data):
            data[where] ^= 1 << rng.randrange(8)
        elif kind == "insert":
            data[where:where] = rng.randbytes(rng.randint(1, 8))
        elif where < len(data):
            del data[where:where + rng.randint(1, 8)]
    return bytes(data)


def not_utf8(rng: random.Random) -> bytes:
    data = bytearray(rng.randbytes(rng.randint(1, 300)))
    data[rng.randrange(len(data))] = 0xFF
    return bytes(data)


def grpc_cases(rng: random.Random, valid: list[bytes]) -> list:
    def rows(n):
        return [valid[i % len(valid)] for i in range(n)]

    cases = []
    add = lambda kind, request: cases.append(  # noqa: E731
        ("grpc", kind, request if isinstance(request, bytes) else request.SerializeToString()))
    for _ in range(60):
        add("non-UTF-8 tf.Example", tensor_request([not_utf8(rng) for _ in range(3)]))
    for size in [1 << 20, 4 << 20, 10 << 20] * 3:
        add("garbage string", tensor_request([rng.randbytes(1000) * (size // 1000)]))
    for _ in range(40):
        add("huge version", tensor_request(rows(1), version=rng.randint(2, 2**63 - 1)))
    for _ in range(12):
        add("oversized batch", tensor_request(rows(rng.randint(MAX_BATCH + 1, MAX_BATCH + 5000))))
    for _ in range(40):
        request = tensor_request(rows(2))
        request.inputs["examples"].tensor_shape.dim[0].size = rng.choice([-1, -(2**63)])
        add("negative dims", request)
        request = tensor_request(rows(1))
        request.inputs["examples"].tensor_shape.dim[0].size = rng.randint(MAX_BATCH + 1, 2**62)
        add("huge dims, one value", request)
    for _ in range(40):
        add("wrong dtype", tensor_request(rng.choice([[1.5], [1, 2], [True]])))
        add("unknown model", tensor_request(rows(1), model=f"m{rng.random()}"))
        add("unknown signature", tensor_request(rows(1), signature=f"s{rng.random()}"))
        add("unknown input", tensor_request(rows(1), name="nope"))
    for _ in range(150):
        add("mutated request", mutate(rng, tensor_request(rows(rng.randint(1, 8)))
                                      .SerializeToString()))
    for _ in range(30):
        add("random bytes", rng.randbytes(rng.randint(1, 500)))
    for _ in range(30):
        add("valid", tensor_request(rows(rng.randint(1, 256))))
    for _ in range(12):
        add("valid, max batch", tensor_request(rows(MAX_BATCH)))
    return cases


def http_bytes(path: str, body: bytes, length: int | None = None) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: "
            f"{len(body) if length is None else length}\r\n\r\n").encode() + body


def rest_cases(rng: random.Random, valid: list[bytes]) -> list:
    predict = "/v1/models/ihas:predict"
    cases = []
    add = lambda kind, data, eof=False: cases.append(("rest", kind, (data, eof)))  # noqa: E731

    def b64(data: bytes) -> dict:
        return {"b64": base64.b64encode(data).decode()}

    def body(obj) -> bytes:
        return json.dumps(obj).encode()

    raw_row = {f"I{i}": str(i) for i in range(1, 14)} | {f"C{i}": "68fd1e64" for i in range(1, 27)}
    valid_raw = body({"signature_name": "predict_raw", "instances": [raw_row] * 4})
    for _ in range(60):
        add("non-UTF-8 tf.Example", http_bytes(predict, body({"instances": [b64(not_utf8(rng))]})))
        add("non-UTF-8 body", http_bytes(predict, not_utf8(rng)))
    for size in [1 << 20, 4 << 20, 10 << 20]:
        add("garbage string", http_bytes(predict, body({"instances": [b64(rng.randbytes(size))]})))
    for _ in range(30):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(20, 60)))
        add("huge version", http_bytes(f"/v1/models/ihas/versions/{digits}:predict", valid_raw))
    for _ in range(30):
        depth = rng.randint(1000, 500_000)
        add("deeply nested JSON", http_bytes(predict, b"[" * depth + b"]" * depth))
    for _ in range(30):
        add("Content-Length far above the limit",
            http_bytes(predict, b"{}", rng.randint(LIMIT_BYTES + 1, 10**15)))
        add("Content-Length above the body, then EOF",
            http_bytes(predict, b'{"inst', rng.randint(100, 10**6)), True)
    for _ in range(8):
        add("half-sent body", http_bytes(predict, b'{"inst', rng.randint(100, 10**6)))
    for _ in range(4):
        add("oversized batch", http_bytes(predict, body({
            "signature_name": "predict_raw", "instances": [raw_row] * (MAX_BATCH + 1)})))
    for _ in range(30):
        bad = dict(raw_row, I1=rng.choice([1, 1.5, True, None, [1], {"b64": "!"}]))
        add("wrong dtype", http_bytes(predict, body({"signature_name": "predict_raw",
                                                     "instances": [bad]})))
        add("unknown model", http_bytes(f"/v1/models/m{rng.randint(0, 9)}:predict", valid_raw))
        add("unknown signature", http_bytes(predict, body({"signature_name": "nope",
                                                           "instances": [raw_row]})))
        add("unknown input", http_bytes(predict, body({"signature_name": "predict_raw",
                                                       "instances": [dict(raw_row, zz="1")]})))
    for _ in range(100):
        add("mutated request", http_bytes(predict, mutate(rng, valid_raw)))
    for _ in range(20):
        add("valid", http_bytes(predict, body({"instances": [
            b64(valid[i % len(valid)]) for i in range(rng.randint(1, 256))]})))
    return cases


def send(case, grpc_port: int, rest_port: int, channel) -> tuple[str, int]:
    """Sends one case; its answer's status ("OK", a gRPC code's name, "HTTP n", or "no answer:
    ERROR" when the connection broke or the answer was not HTTP with a JSON error) and the
    length of its error message."""
    try:
        return _send(case, rest_port, channel)
    except (OSError, http.client.HTTPException, ValueError) as e:
        return f"no answer: {type(e).__name__}", 0


def _send(case, rest_port: int, channel) -> tuple[str, int]:
    transport, _, payload = case
    if transport == "grpc":
        try:
            channel.unary_unary(PREDICT)(payload, timeout=120)
            return "OK", 0
        except grpc.RpcError as e:
            return e.code().name, len(e.details() or "")
    data, eof = payload
    with socket.create_connection(("127.0.0.1", rest_port), timeout=120) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):  # answered before all was sent (413)
            pass
        if eof:
            sock.shutdown(socket.SHUT_WR)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        text = answer.read()
    message = json.loads(text).get("error", "") if answer.status != 200 else ""
    return f"HTTP {answer.status}", len(message)


class Rss(threading.Thread):
    """Samples a process's RSS; `peak` is the largest seen since `reset()`."""

    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.process, self.every = psutil.Process(pid), every
        self.peak, self.done = 0, threading.Event()

    def now(self) -> int:
        return self.process.memory_info().rss

    def reset(self) -> None:
        self.peak = self.now()

    def run(self) -> None:
        while not self.done.wait(self.every):
            try:
                self.peak = max(self.peak, self.now())
            except psutil.Error:
                return


def mb(n: int) -> float:
    return round(n / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--export_dir", help="a serving SavedModel (default: one built here)")
    parser.add_argument("--data", help="raw Criteo rows for valid requests (with --export_dir)")
    parser.add_argument("--rows", type=int, default=5000, help="generated rows for the export")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--out", help="the report's JSON file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (the export, the server's log)")
    args = parser.parse_args()
    if bool(args.export_dir) != bool(args.data):
        parser.error("--export_dir and --data go together")

    work = tempfile.mkdtemp(prefix="serving-hostile-")
    if args.export_dir:
        export, raw = os.path.abspath(args.export_dir), args.data
    else:
        export, raw = build_export(work, args.rows)
    valid = valid_examples(raw, 512)
    base = os.path.join(work, "models", "ihas")
    os.makedirs(base)
    os.symlink(export, os.path.join(base, "1"))

    rng = random.Random(args.seed)
    cases = grpc_cases(rng, valid) + rest_cases(rng, valid)
    rng.shuffle(cases)
    grpc_port, rest_port = free_port(), free_port()
    log_path = os.path.join(work, "server.log")
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "ihas_cli", "serve", f"--port={grpc_port}",
             f"--rest_api_port={rest_port}", "--model_name=ihas", f"--model_base_path={base}",
             f"--rest_api_timeout_in_ms={TIMEOUT_MS}"], stdout=subprocess.DEVNULL, stderr=log)
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}",
                                    options=[("grpc.max_send_message_length", -1)])
    one = tensor_request(valid[:1]).SerializeToString()
    deadline = time.monotonic() + 600
    while True:
        try:
            channel.unary_unary(PREDICT)(one, timeout=5)
            break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE:  # it answers
                break
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"ihas serve did not start: see {log_path}")
            time.sleep(0.5)

    rss = Rss(server.pid)
    rss.start()
    rss_before = rss.now()
    rss.reset()
    big = tensor_request([valid[i % len(valid)] for i in range(MAX_BATCH)]).SerializeToString()
    send(("grpc", "valid, max batch", big), grpc_port, rest_port, channel)
    one_batch_peak = rss.peak
    rss.reset()

    start = time.monotonic()
    with futures.ThreadPoolExecutor(args.threads) as pool:
        answers = list(pool.map(lambda c: send(c, grpc_port, rest_port, channel), cases))
    seconds = time.monotonic() - start
    hostile_peak = rss.peak
    time.sleep(1.0)
    rss_after = rss.now()

    by_status = collections.Counter(status for status, _ in answers)
    by_kind = collections.defaultdict(collections.Counter)
    for (transport, kind, _), (status, _) in zip(cases, answers, strict=True):
        by_kind[f"{transport}: {kind}"][status] += 1
    server_errors = {k: dict(c) for k, c in by_kind.items() if set(c) & SERVER_ERRORS}
    still_serving = send(("grpc", "valid", one), grpc_port, rest_port, channel)[0] in (
        "OK", "INVALID_ARGUMENT")  # INVALID_ARGUMENT: a model other than the data's
    crashed = server.poll() is not None
    server.send_signal(signal.SIGTERM)
    exit_status = server.wait(timeout=60)
    rss.done.set()
    results = {
        "requests": len(cases),
        "grpc_requests": sum(c[0] == "grpc" for c in cases),
        "rest_requests": sum(c[0] == "rest" for c in cases),
        "threads": args.threads,
        "seed": args.seed,
        "seconds": round(seconds, 1),
        "by_status": dict(by_status.most_common()),
        "by_kind": {k: dict(c) for k, c in sorted(by_kind.items())},
        "server_errors_for_client_mistakes": sum(
            n for c in server_errors.values() for s, n in c.items() if s in SERVER_ERRORS),
        "server_errors_by_kind": server_errors,
        "busy_refusals": by_status.get("UNAVAILABLE", 0) + by_status.get("HTTP 503", 0),
        "no_answer": sum(n for s, n in by_status.items() if s.startswith("no answer")),
        "longest_error_message": max(n for _, n in answers),
        "crashes": int(crashed or not still_serving),
        "exit_status_on_sigterm": exit_status,
        "rss_mb": {"before": mb(rss_before), "peak_one_max_batch": mb(one_batch_peak),
                   "peak_hostile": mb(hostile_peak), "after": mb(rss_after)},
        "limits": {"max_batch_size": MAX_BATCH, "max_inflight_examples": 4 * MAX_BATCH,
                   "max_request_bytes": LIMIT_BYTES, "rest_api_timeout_in_ms": TIMEOUT_MS},
    }
    report = write_report("serving_hostile", results, args.out)
    print(json.dumps(report, indent=2))
    if args.keep:
        print(f"work folder: {work}", file=sys.stderr)
    else:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
