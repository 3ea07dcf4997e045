"""`ihas predict`: raw Criteo/Avazu/generic rows -> a TF Serving model (or `ihas serve`) -> one
line per row: file, line, click probability, cluster.

Rows are read and checked by the shared parser; accepted rows are sent as serialized tf.Examples
to the `serving_default` signature, over gRPC with the official `tensorflow_serving.apis` stubs, or
over REST (`--rest`, TF Serving's `:predict` with base64 "b64" instances). Rejected rows are
counted, named on stderr and left out of the output.
"""

import base64
import dataclasses
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TextIO

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from ihas_keras.data import REASONS, read_table
from ihas_keras.data.formats import TableFormat
from ihas_keras.data.ingest import serialized_examples
from serving.tls import channel_credentials

SIGNATURE = "serving_default"

REQUEST_BATCH_SIZE = 256  # rows per Predict request of `ihas predict`


class ServerError(Exception):
    """The server refused a request or could not be reached."""


@dataclasses.dataclass
class PredictReport:
    """The row counts of a `predict_files` run.

    Attributes:
        rows_read: the rows read from the files.
        rows_scored: the accepted rows, scored and written out.
        rows_rejected: the rows the parser rejected (named on stderr, left out of the output).
    """

    rows_read: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0

    def summary(self) -> str:
        """The counts on one line.

        Returns:
            `rows read N, scored N, rejected N`.
        """
        return (f"rows read {self.rows_read}, scored {self.rows_scored}, "
                f"rejected {self.rows_rejected}")


class GrpcPredictor:
    """Predict over gRPC: serialized tf.Examples -> (probability, cluster) arrays.

    Sends TF Serving Predict requests to the `serving_default` signature with the official
    `tensorflow_serving.apis` stubs.

    Args:
        server: the server's gRPC address, `host:port`.
        model_name: the served model's name.
        version: the model version to ask for; None for the server's latest.
        timeout: seconds each request may take.
        ca_file: TLS: PEM file of the CA (or self-signed certificate) the server's certificate
            must be signed by; None: a plain channel.
        cert_file: TLS: PEM file of a client certificate (for a server with client_verify).
        key_file: TLS: PEM file of its private key.

    Raises:
        ValueError: a PEM file cannot be read, or a client certificate or key is given
            without the other or without CA_FILE.
    """

    def __init__(self, server: str, model_name: str, version: int | None, timeout: float,
                 ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None) -> None:
        if ca_file is None and (cert_file or key_file):
            raise ValueError("a client certificate needs --ssl_ca_file (TLS)")
        if ca_file is None:
            self._channel = grpc.insecure_channel(server)
        else:
            self._channel = grpc.secure_channel(
                server, channel_credentials(ca_file, cert_file, key_file))
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._spec = model_pb2.ModelSpec(name=model_name, signature_name=SIGNATURE)
        if version is not None:
            self._spec.version.value = version
        self._timeout = timeout

    def __call__(self, examples: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Scores serialized tf.Examples with one Predict request.

        Args:
            examples: serialized raw tf.Examples.

        Returns:
            (probability [n], cluster [n]).

        Raises:
            ServerError: the server refused the request or could not be reached.
        """
        request = predict_pb2.PredictRequest(model_spec=self._spec)
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples, tf.string))
        try:
            response = self._stub.Predict(request, timeout=self._timeout)
        except grpc.RpcError as e:
            raise ServerError(f"gRPC Predict: {e.code().name}: {e.details()}") from None
        return (tf.make_ndarray(response.outputs["probability"]),
                tf.make_ndarray(response.outputs["cluster"]))

    def close(self) -> None:
        """Closes the gRPC channel."""
        self._channel.close()


class RestPredictor:
    """Predict over REST (`POST /v1/models/NAME[/versions/N]:predict`).

    Sends TF Serving's `:predict` JSON, with base64 "b64" instances, to the `serving_default`
    signature.

    Args:
        server: the server's REST address, `host:port`.
        model_name: the served model's name.
        version: the model version to ask for; None for the server's latest.
        timeout: seconds each request may take.
    """

    def __init__(self, server: str, model_name: str, version: int | None, timeout: float) -> None:
        path = f"/v1/models/{model_name}" + (f"/versions/{version}" if version is not None else "")
        self._url = f"http://{server}{path}:predict"
        self._timeout = timeout

    def __call__(self, examples: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Scores serialized tf.Examples with one `:predict` request.

        Args:
            examples: serialized raw tf.Examples.

        Returns:
            (probability [n] float32, cluster [n] int32).

        Raises:
            ServerError: the server answered an HTTP error or could not be reached.
        """
        body = json.dumps({
            "signature_name": SIGNATURE,
            "instances": [{"b64": base64.b64encode(e).decode()} for e in examples],
        }).encode()
        request = urllib.request.Request(self._url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                predictions = json.load(answer)["predictions"]
        except urllib.error.HTTPError as e:
            raise ServerError(f"REST {self._url}: HTTP {e.code}: {e.read().decode()}") from None
        except (urllib.error.URLError, OSError) as e:
            raise ServerError(f"REST {self._url}: {e}") from None
        return (np.array([p["probability"] for p in predictions], np.float32),
                np.array([p["cluster"] for p in predictions], np.int32))

    def close(self) -> None:
        """Does nothing: each request opens its own connection."""
        pass


def predict_files(paths: list[str], fmt: TableFormat,
                  predictor: Callable[[list[bytes]], tuple[np.ndarray, np.ndarray]], out: TextIO,
                  batch_size: int = REQUEST_BATCH_SIZE, err: TextIO = sys.stderr,
                  progress: bool = False) -> PredictReport:
    """Scores every accepted row of PATHS with PREDICTOR, writing one line per row to OUT.

    The lines are `file line probability cluster`, tab-separated, after a header. Rejected rows
    are counted and named on ERR.

    Args:
        paths: the raw files.
        fmt: their format.
        predictor: a `GrpcPredictor` or `RestPredictor`: serialized tf.Examples ->
            (probability, cluster) arrays.
        out: the stream the lines are written to.
        batch_size: rows read per batch; each batch's accepted rows are one request.
        err: the stream rejected rows are named on (and the progress bar is drawn on).
        progress: show a progress bar.

    Returns:
        The counts of rows read, scored and rejected.

    Raises:
        ServerError: the server answered another number of probabilities or clusters than rows
            were sent.
    """
    from tqdm import tqdm

    report = PredictReport()
    out.write("file\tline\tprobability\tcluster\n")
    batches = read_table(paths, fmt, batch_size)
    for batch in tqdm(batches, desc="predict", unit=" batches", disable=not progress, file=err):
        batch = tf.nest.map_structure(lambda t: t.numpy(), batch)
        accepted = batch["reason"] == 0
        report.rows_read += len(accepted)
        for i in np.flatnonzero(~accepted):
            report.rows_rejected += 1
            err.write(f"ihas predict: skipped {batch['file'][i].decode()}:{batch['line'][i]}: "
                      f"{REASONS[batch['reason'][i]]}\n")
        if not accepted.any():
            continue
        probability, cluster = predictor(serialized_examples(batch, accepted, fmt.unlabeled()))
        if len(probability) != accepted.sum() or len(cluster) != accepted.sum():
            raise ServerError(f"sent {accepted.sum()} rows, got {len(probability)} "
                              f"probabilities and {len(cluster)} clusters back")
        for path, line, p, c in zip(batch["file"][accepted], batch["line"][accepted],
                                    probability, cluster, strict=True):
            out.write(f"{path.decode()}\t{line}\t{p:.6f}\t{c}\n")
        report.rows_scored += int(accepted.sum())
    return report
