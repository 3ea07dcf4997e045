"""Latency at batch 1 and throughput at batch 256: gRPC to `ihas serve` vs in-process calls.

    ./ihas-env python benchmarks/serving_latency.py --export_dir DIR --data criteo.txt \
        --format criteo --out benchmarks/results/serving.json

DIR is a serving SavedModel (e.g. the pipeline's `Retrain/model/N/Format-Serving`, or a pushed
version folder). The server runs in its own process, as TF Serving would (`ihas serve`, its
defaults); the client and the in-process calls run here, on the same serialized raw tf.Examples,
through `serving_default`. The two paths alternate in rounds, so that both see the same machine.
`--tensorflow_intra_op_parallelism` and `--tensorflow_inter_op_parallelism` (0: TensorFlow
chooses) set TensorFlow's threads alike in the server (its flags of the same names) and here.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import numpy as np
import tensorflow as tf
from report import write_report
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from ihas_keras.data import get_format, read_table
from ihas_keras.data.ingest import serialized_examples


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(export_dir: str, work: str, port: int, flags: list[str]) -> subprocess.Popen:
    base = os.path.join(work, "ihas")
    os.makedirs(base)
    os.symlink(os.path.abspath(export_dir), os.path.join(base, "1"))
    server = subprocess.Popen(
        [sys.executable, "-m", "ihas_cli", "serve", f"--port={port}", "--rest_api_port=0",
         "--model_name=ihas", f"--model_base_path={base}", *flags],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "server.log"), "w"),
    )
    status = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(
        name="ihas"))
    for _ in range(600):
        try:
            status.GetModelStatus(request, timeout=1)
            return server
        except grpc.RpcError:
            if server.poll() is not None:
                sys.exit(f"ihas serve exited: see {work}/server.log")
            time.sleep(0.2)
    sys.exit(f"ihas serve did not answer in time: see {work}/server.log")


def timed(call, batches, repeat: int) -> list[float]:
    """Seconds of each call over BATCHES, REPEAT passes."""
    seconds = []
    for _ in range(repeat):
        for batch in batches:
            start = time.perf_counter()
            call(batch)
            seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--export_dir", required=True)
    parser.add_argument("--data", required=True, help="raw rows to draw the examples from")
    parser.add_argument("--format", default="criteo")
    parser.add_argument("--schema")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single", type=int, default=500, help="batch-1 requests per round")
    parser.add_argument("--large", type=int, default=20, help="batch-256 requests per round")
    parser.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0)
    parser.add_argument("--tensorflow_inter_op_parallelism", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()
    threads = {"intra_op": args.tensorflow_intra_op_parallelism,
               "inter_op": args.tensorflow_inter_op_parallelism}
    tf.config.threading.set_intra_op_parallelism_threads(threads["intra_op"])
    tf.config.threading.set_inter_op_parallelism_threads(threads["inter_op"])

    fmt = get_format(args.format, args.schema)
    batch = tf.nest.map_structure(lambda t: t.numpy(),
                                  next(iter(read_table([args.data], fmt, batch_size=4096))))
    examples = serialized_examples(batch, batch["reason"] == 0, fmt.unlabeled())
    singles = [[e] for e in examples[:args.single]]
    if len(examples) < 512:
        sys.exit(f"{args.data}: fewer than 512 good rows among its first 4096")
    larges = [examples[i * 256 % (len(examples) - 256):][:256] for i in range(args.large)]

    serve = tf.saved_model.load(args.export_dir).signatures["serving_default"]

    def in_process_call(b):
        return serve(examples=tf.constant(b))["probability"].numpy()

    work = tempfile.mkdtemp(prefix="ihas-serving-bench-")
    port = free_port()
    server = start_server(args.export_dir, work, port,
                          [f"--tensorflow_{k}_parallelism={v}" for k, v in threads.items()])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{port}"))

    def grpc_call(b):
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name="ihas", signature_name="serving_default"))
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto(b, tf.string))
        return tf.make_ndarray(stub.Predict(request, timeout=60).outputs["probability"])

    paths = {"in_process": in_process_call, "grpc": grpc_call}
    seconds = {name: {"single": [], "large": []} for name in paths}
    try:
        for call in paths.values():  # warm-up: traces, first requests
            timed(call, singles[:20] + larges[:2], 1)
        for _ in range(args.rounds):
            for name, call in paths.items():
                seconds[name]["single"] += timed(call, singles, 1)
                seconds[name]["large"] += timed(call, larges, 1)
    finally:
        server.terminate()
        server.wait()

    results = {}
    for name, s in seconds.items():
        single = np.array(s["single"]) * 1000
        results[name] = {
            "batch1_p50_ms": round(float(np.percentile(single, 50)), 3),
            "batch1_p99_ms": round(float(np.percentile(single, 99)), 3),
            "batch256_examples_per_s": round(256 * len(s["large"]) / sum(s["large"])),
        }
    results["grpc_vs_in_process_throughput"] = round(
        results["grpc"]["batch256_examples_per_s"]
        / results["in_process"]["batch256_examples_per_s"], 3)
    results["setup"] = {"export_dir": args.export_dir, "rounds": args.rounds,
                        "tensorflow_threads": threads, "load_average": os.getloadavg(),
                        "batch1_requests": args.rounds * len(singles),
                        "batch256_requests": args.rounds * len(larges)}
    print(results)
    write_report("serving_latency", results, args.out)


if __name__ == "__main__":
    main()
