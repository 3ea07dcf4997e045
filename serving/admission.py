"""The caps on a request's size: its bytes once expanded, its rows (`max_batch_size`), and the
rows of all requests in flight (`max_inflight_examples`).

A request's rows are the first dimension of its inputs. A request above `max_batch_size` is a
client mistake (INVALID_ARGUMENT, as TF Serving's batching answers a task larger than its
largest batch). A request that would take the rows being run at once above
`max_inflight_examples` is refused at once with UNAVAILABLE (HTTP 503), as TF Serving answers
when its batching queue is full: the server is busy, the request itself is fine and may be sent
again. Nothing waits in a queue, so memory stays bounded by the in-flight cap.
"""

import contextlib
import threading
from collections.abc import Iterator

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework.tensor_pb2 import TensorProto

from serving.limits import MAX_BATCH_SIZE, MAX_INFLIGHT_EXAMPLES, MAX_REQUEST_BYTES
from serving.tensors import ServingError, check_tensor, invalid


class Admission:
    """Admits requests within the per-request and the per-server caps; thread-safe.

    Args:
        max_batch_size: the most rows of one request's input; None: no limit.
        max_inflight_examples: the most rows of all requests being run at once; None: no
            limit.
        max_request_bytes: the most bytes one input of a gRPC request may take once its
            TensorProto is expanded to its shape; None: no limit.

    Raises:
        ValueError: MAX_INFLIGHT_EXAMPLES is below MAX_BATCH_SIZE (no request of the largest
            size could ever run).
    """

    def __init__(self, max_batch_size: int | None = MAX_BATCH_SIZE,
                 max_inflight_examples: int | None = MAX_INFLIGHT_EXAMPLES,
                 max_request_bytes: int | None = MAX_REQUEST_BYTES) -> None:
        if None not in (max_batch_size, max_inflight_examples) and (
                max_inflight_examples < max_batch_size):
            raise ValueError(f"--max_inflight_examples ({max_inflight_examples}) must be at "
                             f"least --max_batch_size ({max_batch_size})")
        self.max_batch_size = max_batch_size
        self.max_inflight_examples = max_inflight_examples
        self.max_request_bytes = max_request_bytes
        self._lock = threading.Lock()
        self._inflight = 0

    @property
    def inflight(self) -> int:
        """The rows of the requests being run now."""
        with self._lock:
            return self._inflight

    def check_rows(self, name: str, rows: int) -> None:
        """An input of more than `max_batch_size` rows -> INVALID_ARGUMENT.

        Args:
            name: the input's name.
            rows: its first dimension.

        Raises:
            ServingError: INVALID_ARGUMENT naming the input and the limit.
        """
        if self.max_batch_size is not None and rows > self.max_batch_size:
            raise invalid(f"input '{name}': task size {rows} is larger than the maximum batch "
                          f"size {self.max_batch_size} (ihas serve --max_batch_size)")

    def check_tensor(self, name: str, spec: tf.TensorSpec, proto: TensorProto) -> None:
        """A TensorProto against its spec and the caps, before it is expanded.

        Args:
            name: the input's name.
            spec: the input's spec in the signature.
            proto: its TensorProto.

        Raises:
            ServingError: INVALID_ARGUMENT: the errors of `tensors.check_tensor` (with
                `max_request_bytes`) and of `check_rows`.
        """
        dims = check_tensor(name, spec, proto, self.max_request_bytes)
        if dims:
            self.check_rows(name, dims[0])

    @contextlib.contextmanager
    def admit(self, arrays: dict[str, np.ndarray]) -> Iterator[None]:
        """Holds the request's rows in the in-flight count while the block runs.

        Args:
            arrays: the request's inputs, by name.

        Raises:
            ServingError: INVALID_ARGUMENT when an input has more than `max_batch_size` rows;
                UNAVAILABLE when the rows in flight would exceed `max_inflight_examples`.
        """
        rows = 0
        for name, array in arrays.items():
            n = array.shape[0] if array.ndim else 1
            self.check_rows(name, n)
            rows = max(rows, n)
        with self._lock:
            cap = self.max_inflight_examples
            if cap is not None and self._inflight + rows > cap:
                raise ServingError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the server is busy: {self._inflight} examples are being run and this "
                    f"request's {rows} would exceed the limit of {cap} (ihas serve "
                    "--max_inflight_examples); send it again later")
            self._inflight += rows
        try:
            yield
        finally:
            with self._lock:
                self._inflight -= rows
