"""The server's limits and their defaults (no TensorFlow import: the command line reads them)."""

MAX_REQUEST_BYTES = 64 << 20  # the largest REST body or gRPC message of a request
MAX_BATCH_SIZE = 16384  # the most rows of a request's input (as TF Serving batching's limit)
MAX_INFLIGHT_EXAMPLES = 4 * MAX_BATCH_SIZE  # the most rows being run at once, all requests
REST_API_TIMEOUT_MS = 30000  # TF Serving's --rest_api_timeout_in_ms default
MAX_VERSION = 2 ** 63 - 1  # versions are int64
HOST = "127.0.0.1"  # this machine only; `--host 0.0.0.0` listens on every interface
