"""A local server speaking TF Serving's gRPC and REST protocols (`ihas serve`).

gRPC: `tensorflow.serving.PredictionService` (Predict, Classify, GetModelMetadata; Regress and
MultiInference answer UNIMPLEMENTED) and `tensorflow.serving.ModelService` (GetModelStatus).
REST (TF Serving's paths): GET /v1/models/NAME[/versions/N|/labels/L][/metadata] and
POST /v1/models/NAME[/versions/N|/labels/L]:(predict|classify). Errors answer as TF Serving's:
a gRPC status code, or {"error": message} with the HTTP status TF Serving maps that code to.
Every client mistake gets a client code (never INTERNAL or HTTP 500), in a message of at most
`tensors.MAX_MESSAGE_CHARS` characters. Limits: `max_request_bytes` (REST bodies: HTTP 413;
gRPC messages: RESOURCE_EXHAUSTED), `max_batch_size` (rows of an input: INVALID_ARGUMENT) and
`rest_api_timeout_in_ms` (a REST connection that sends nothing for that long is closed),
`max_inflight_examples` (rows being run at once, all requests: UNAVAILABLE / HTTP 503 above it,
as TF Serving's full batching queue). Messages to clients show paths relative to the model base
path; what a client sent reaches the log only as a bounded, escaped excerpt. gRPC may use TLS
(`ssl_config`, TF Serving's SSLConfig).
"""

import functools
import json
import logging
import re
import socketserver
import threading
import traceback
from collections.abc import Iterable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import grpc
import tensorflow as tf
from google.protobuf import message_factory
from google.protobuf.json_format import MessageToDict
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    model_service_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from serving import inference
from serving.admission import Admission
from serving.limits import (
    HOST,
    MAX_BATCH_SIZE,
    MAX_INFLIGHT_EXAMPLES,
    MAX_REQUEST_BYTES,
    MAX_VERSION,
    REST_API_TIMEOUT_MS,
)
from serving.models import ModelManager
from serving.tensors import (
    ServingError,
    arrays_to_json,
    excerpt,
    input_specs,
    invalid,
    json_to_arrays,
    json_to_example,
)
from serving.tls import server_credentials

log = logging.getLogger(__name__)

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.CANCELLED: 400,
    grpc.StatusCode.UNKNOWN: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}


def _unimplemented(what: str) -> ServingError:
    return ServingError(grpc.StatusCode.UNIMPLEMENTED, f"{what} is not implemented by ihas serve")


def _log_failure(what: str, e: Exception) -> None:
    """Logs a server error: its traceback's frames and a bounded excerpt of its message (which
    may quote the request), never the whole message."""
    frames = "".join(traceback.format_tb(e.__traceback__))
    log.error("%s failed: %s: %s\nTraceback (most recent call last):\n%s", what,
              type(e).__name__, excerpt(str(e)), frames.rstrip())


class _Undecodable:
    """What a request that does not parse as its message decodes to (grpc would answer its
    deserializer's exception INTERNAL; this becomes INVALID_ARGUMENT in `_rpc`)."""

    def __init__(self, message_name: str, error: Exception):
        self.message = (f"the request is not a serialized {message_name}: "
                        f"{type(error).__name__}: {error}")


def _lenient(message_class):
    def deserialize(data: bytes):
        try:
            return message_class.FromString(data)
        except Exception as e:  # DecodeError, RecursionError, ...
            return _Undecodable(message_class.DESCRIPTOR.full_name, e)
    return deserialize


def _add_service(server: grpc.Server, module, servicer) -> None:
    """Registers SERVICER's methods for the service of MODULE (a `*_pb2` module holding one
    service), as the generated `add_*Servicer_to_server` does, with `_lenient` deserializers."""
    (service,) = module.DESCRIPTOR.services_by_name.values()
    handlers = {
        m.name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, m.name),
            request_deserializer=_lenient(message_factory.GetMessageClass(m.input_type)),
            response_serializer=message_factory.GetMessageClass(
                m.output_type).SerializeToString)
        for m in service.methods}
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),))


def _rpc(method):
    """Runs a handler; its ServingError (or INTERNAL for anything else) becomes the status."""

    @functools.wraps(method)
    def handler(self, request, context):
        try:
            if isinstance(request, _Undecodable):
                raise invalid(request.message)
            return method(self, request)
        except ServingError as e:
            error = e
        except RecursionError:
            error = invalid("the request is nested too deeply")
        except Exception as e:
            _log_failure(method.__name__, e)
            error = ServingError(grpc.StatusCode.INTERNAL, f"internal error: {type(e).__name__}")
        context.abort(error.code, self._manager.client_text(error.message))

    return handler


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager, admission: Admission):
        self._manager = manager
        self._admission = admission

    @_rpc
    def Predict(self, request):
        """PredictionService.Predict."""
        return inference.predict(self._manager.get(request.model_spec), request,
                                 self._admission)

    @_rpc
    def Classify(self, request):
        """PredictionService.Classify."""
        return inference.classify(self._manager.get(request.model_spec), request,
                                  self._admission)

    @_rpc
    def GetModelMetadata(self, request):
        """PredictionService.GetModelMetadata (the "signature_def" field)."""
        return inference.model_metadata(self._manager, request)

    @_rpc
    def Regress(self, request):
        """PredictionService.Regress: UNIMPLEMENTED."""
        raise _unimplemented("Regress")

    @_rpc
    def MultiInference(self, request):
        """PredictionService.MultiInference: UNIMPLEMENTED."""
        raise _unimplemented("MultiInference")


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager):
        self._manager = manager

    @_rpc
    def GetModelStatus(self, request):
        """ModelService.GetModelStatus."""
        return inference.model_status(self._manager, request)

    @_rpc
    def HandleReloadConfigRequest(self, request):
        """ModelService.HandleReloadConfigRequest: UNIMPLEMENTED."""
        raise _unimplemented("HandleReloadConfigRequest")


_PATH = re.compile(r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]+)|"
                   r"/labels/(?P<label>[^/:]+))?(?P<verb>/metadata|:predict|:classify|:regress)?",
                   re.IGNORECASE)


def _to_json(message) -> dict:
    return MessageToDict(message, preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)


class _RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer has a Content-Length
    server_version = "ihas-serve"
    sys_version = ""  # the Server header names no Python version

    def setup(self):
        self.timeout = self.server.timeout_seconds  # socket reads and writes
        super().setup()

    def do_GET(self):
        """GET: model status or metadata."""
        self._handle("GET")

    def do_POST(self):
        """POST: :predict or :classify."""
        self._handle("POST")

    def log_message(self, format, *args):
        # The arguments hold the client's request line: logged as a bounded, escaped excerpt.
        log.debug("REST %s: %s", self.address_string(), excerpt(format % args))

    def send_error(self, code, message=None, explain=None):
        """A request http.server refused (a bad request line or headers): a JSON error with a
        bounded excerpt of the reason, never http.server's HTML page quoting what was sent."""
        self.log_error("code %d, message %s", code, message)
        self.request_version = self.protocol_version  # a status line even for a garbled one
        data = json.dumps({"error": excerpt(message or self.responses.get(code, ("",))[0])}
                          ).encode()
        self.close_connection = True
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(data)

    def _handle(self, method: str) -> None:
        try:
            body = self._read_body()
            status, payload = 200, json.dumps(self._route(method, body))
        except ServingError as e:
            status = e.http_status or _HTTP_STATUS.get(e.code, 500)
            payload = json.dumps({"error": self.server.manager.client_text(e.message)})
        except RecursionError:
            status, payload = 400, json.dumps({"error": "the request is nested too deeply"})
        except Exception as e:
            _log_failure(f"REST {method} {excerpt(self.path, 200)}", e)
            status, payload = 500, json.dumps({"error": f"internal error: {type(e).__name__}"})
        data = payload.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise invalid("chunked request bodies are not supported: send a Content-Length")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise invalid("bad Content-Length") from None
        limit = self.server.max_request_bytes
        if length > limit:
            self.close_connection = True  # the body is not read
            raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"request body of {length} bytes is larger than the limit of "
                               f"{limit} (ihas serve --max_request_bytes)", http_status=413)
        try:
            body = self.rfile.read(length) if length > 0 else b""
        except TimeoutError:
            self.close_connection = True
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                               f"request body not received within {self.timeout:g} s "
                               "(ihas serve --rest_api_timeout_in_ms)", http_status=408) from None
        if len(body) < length:  # the client closed the connection, or timed out
            self.close_connection = True
            raise invalid(f"request body ended after {len(body)} of {length} bytes")
        return body

    def _route(self, method: str, body: bytes) -> dict:
        match = _PATH.fullmatch(urlsplit(self.path).path)
        verb = match and (match["verb"] or "").lower()
        if not match or (method == "GET") != (verb in ("", "/metadata")):
            raise invalid(f"Malformed request: {method} {self.path}")
        spec = model_pb2.ModelSpec(name=match["name"])
        if match["version"]:
            if int(match["version"]) > MAX_VERSION:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Servable not found for request: Specific({match['name']}, "
                                   f"{match['version'][:20]}): no such version")
            spec.version.value = int(match["version"])
        elif match["label"]:
            spec.version_label = match["label"]
        manager = self.server.manager
        if verb == "/metadata":
            request = get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec=spec, metadata_field=["signature_def"])
            return _to_json(inference.model_metadata(manager, request))
        if verb == "":
            request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
            return _to_json(inference.model_status(manager, request))
        if verb == ":regress":
            raise _unimplemented("Regress")
        try:
            request = json.loads(body)
        except (UnicodeDecodeError, ValueError) as e:
            raise invalid(f"JSON Parse error: {e}") from None
        if not isinstance(request, dict):
            raise invalid("the request body must be a JSON object")
        signature_name = request.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise invalid("'signature_name' must be a string")
        spec.signature_name = signature_name
        if verb == ":predict":
            return _predict(manager, spec, request, self.server.admission)
        return _classify(manager, spec, request, self.server.admission)


def _predict(manager: ModelManager, spec: model_pb2.ModelSpec, request: dict,
             admission: Admission) -> dict:
    served = manager.get(spec)
    fn = inference.predict_signature(served, spec.signature_name)
    arrays, row = json_to_arrays(request, input_specs(fn))
    return arrays_to_json(inference.run_predict(served, spec.signature_name, arrays,
                                                admission=admission), row)


def _classify(manager: ModelManager, spec: model_pb2.ModelSpec, request: dict,
              admission: Admission) -> dict:
    examples = request.get("examples")
    if not isinstance(examples, list) or not examples:
        raise invalid("'examples' must be a non-empty list of JSON tf.Examples")
    request_input = input_pb2.Input()
    if "context" in request:
        with_context = request_input.example_list_with_context
        with_context.context.CopyFrom(json_to_example(request["context"]))
        with_context.examples.extend(json_to_example(e) for e in examples)
    else:
        request_input.example_list.examples.extend(json_to_example(e) for e in examples)
    response = inference.classify(manager.get(spec), classification_pb2.ClassificationRequest(
        model_spec=spec, input=request_input), admission)
    return {"results": [[[c.label, c.score] for c in result.classes]
                        for result in response.result.classifications]}


class _RestServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, manager: ModelManager, max_request_bytes: int,
                 admission: Admission, timeout_seconds: float):
        super().__init__(address, _RestHandler)
        self.manager = manager
        self.max_request_bytes, self.admission = max_request_bytes, admission
        self.timeout_seconds = timeout_seconds

    def server_bind(self):
        # HTTPServer's own looks the host up with socket.getfqdn, which hangs without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class ModelServer:
    """The manager of `configs` (ModelConfig protos) behind gRPC and REST.

    Port 0 picks a free port (read `grpc_port` / `rest_port` after `start()`); `rest_port=None`
    serves no REST. `start()` loads the models, then listens; `stop()` ends everything.

    Args:
        configs: the ModelConfig protos, one per model.
        grpc_port: the gRPC port; 0 for a free one.
        rest_port: the REST port; 0 for a free one, None for no REST.
        host: the address both listen on (127.0.0.1: this machine only; 0.0.0.0: every
            interface, as in a container).
        poll_wait_seconds: seconds between two polls of the model folders (`ModelManager`).
        grpc_max_threads: the threads of the gRPC server's pool.
        enable_warmup: replay each version's warmup requests (`inference.replay_warmup`) after
            it loads and before it serves.
        intra_op_parallelism: TensorFlow's threads for one op (TF Serving's
            `--tensorflow_intra_op_parallelism`); 0 lets TensorFlow choose.
        inter_op_parallelism: TensorFlow's threads running ops side by side (TF Serving's
            `--tensorflow_inter_op_parallelism`); 0 lets TensorFlow choose.
        max_request_bytes: the largest REST body (HTTP 413 above it) or gRPC message
            (RESOURCE_EXHAUSTED) of a request.
        max_batch_size: the most rows of a request's input (INVALID_ARGUMENT above it); None:
            no limit.
        rest_api_timeout_in_ms: a REST connection idle this long while the server waits for
            its request is closed (TF Serving's flag of that name).
        max_inflight_examples: the most rows of all requests being run at once (UNAVAILABLE,
            HTTP 503, above it); None: no limit.
        ssl_config: a TF Serving SSLConfig (`tls.read_ssl_config`): gRPC over TLS with its key
            and certificate; None: plain gRPC.

    Raises:
        RuntimeError: a thread count other than 0 is given after TensorFlow's runtime started
            in this process (it can be set only before).
        ValueError: MAX_INFLIGHT_EXAMPLES is below MAX_BATCH_SIZE.
    """

    def __init__(self, configs: Iterable[model_server_config_pb2.ModelConfig], *,
                 grpc_port: int = 8500, rest_port: int | None = 8501,
                 host: str = HOST, poll_wait_seconds: float = 1.0,
                 grpc_max_threads: int = 16, enable_warmup: bool = True,
                 intra_op_parallelism: int = 0, inter_op_parallelism: int = 0,
                 max_request_bytes: int = MAX_REQUEST_BYTES,
                 max_batch_size: int | None = MAX_BATCH_SIZE,
                 rest_api_timeout_in_ms: int = REST_API_TIMEOUT_MS,
                 max_inflight_examples: int | None = MAX_INFLIGHT_EXAMPLES,
                 ssl_config=None) -> None:
        self.admission = Admission(max_batch_size, max_inflight_examples, max_request_bytes)
        if intra_op_parallelism:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op_parallelism)
        if inter_op_parallelism:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op_parallelism)
        self.manager = ModelManager(configs, poll_wait_seconds,
                                    inference.replay_warmup if enable_warmup else None)
        self.host, self.grpc_port, self.rest_port = host, grpc_port, rest_port
        self._grpc_max_threads = grpc_max_threads
        self._max_request_bytes = max_request_bytes
        self._ssl_config = ssl_config
        self._timeout_seconds = rest_api_timeout_in_ms / 1000
        self._grpc: grpc.Server | None = None
        self._rest: _RestServer | None = None
        self._stopped = threading.Event()

    def start(self) -> "ModelServer":
        """Loads the models, then listens for gRPC and, unless `rest_port` is None, REST.

        Returns:
            The server itself, its `grpc_port` and `rest_port` the ports it listens on.

        Raises:
            OSError: it cannot listen for gRPC on `host:grpc_port`.
        """
        self.manager.start()
        options = [("grpc.max_receive_message_length", self._max_request_bytes),
                   ("grpc.max_send_message_length", -1)]
        self._grpc = grpc.server(futures.ThreadPoolExecutor(self._grpc_max_threads,
                                                            thread_name_prefix="grpc"),
                                 options=options)
        _add_service(self._grpc, prediction_service_pb2,
                     _PredictionService(self.manager, self.admission))
        _add_service(self._grpc, model_service_pb2, _ModelService(self.manager))
        address = f"{self.host}:{self.grpc_port}"
        try:
            if self._ssl_config is None:
                port = self._grpc.add_insecure_port(address)
            else:
                port = self._grpc.add_secure_port(address, server_credentials(self._ssl_config))
        except RuntimeError as e:
            raise OSError(f"cannot listen for gRPC on {address}: {e}") from e
        if not port:
            raise OSError(f"cannot listen for gRPC on {address}")
        self.grpc_port = port
        self._grpc.start()
        log.info("gRPC (TF Serving API%s) listening on %s:%d",
                 ", TLS" if self._ssl_config is not None else "", self.host, port)
        if self.rest_port is not None:
            self._rest = _RestServer((self.host, self.rest_port), self.manager,
                                     self._max_request_bytes, self.admission,
                                     self._timeout_seconds)
            self.rest_port = self._rest.server_address[1]
            threading.Thread(target=self._rest.serve_forever, name="rest", daemon=True).start()
            log.info("REST API listening on http://%s:%d/v1/models/...", self.host,
                     self.rest_port)
        return self

    def stop(self, grace: float = 1.0) -> None:
        """Ends everything: the REST server, the gRPC server, then the manager's polling.

        Args:
            grace: seconds the gRPC server leaves running calls to finish.
        """
        if self._rest is not None:
            self._rest.shutdown()
            self._rest.server_close()
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
        self.manager.stop()
        self._stopped.set()

    def wait(self) -> None:
        """Blocks until `stop()` (Ctrl-C raises KeyboardInterrupt here)."""
        while not self._stopped.wait(0.5):
            pass
