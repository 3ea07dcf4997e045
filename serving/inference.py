"""Predict, Classify, GetModelMetadata and GetModelStatus on protos, and the warmup replay.

The logic both transports (gRPC and REST) share; errors are `ServingError`s with the status codes
TF Serving answers (predict_util.cc, classifier.cc, get_model_metadata_impl.cc).
"""

import os
from collections.abc import Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
)

from ihas_keras.export.signatures import CLASSIFY_METHOD, WARMUP_FILE
from serving.admission import Admission
from serving.models import ModelManager, ServedVersion
from serving.tensors import (
    ServingError,
    array_to_tensor,
    check_inputs,
    input_specs,
    invalid,
    run_signature,
    tensor_to_array,
)

DEFAULT_SIGNATURE = "serving_default"
MAX_WARMUP_RECORDS = 1000  # as TF Serving


def _model_spec(served: ServedVersion, signature_name: str) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=served.name, signature_name=signature_name)
    spec.version.value = served.version
    return spec


# The caps of a request run without any (warmup replay): the same checks, no limits.
_UNLIMITED = Admission(None, None, None)


def predict_signature(served: ServedVersion,
                      signature_name: str) -> tf.types.experimental.ConcreteFunction:
    """The callable signature for Predict.

    Args:
        served: the loaded version.
        signature_name: the signature's name; "" for `serving_default`.

    Returns:
        The signature's concrete function.

    Raises:
        ServingError: FAILED_PRECONDITION when there is no such signature, as TF Serving.
    """
    name = signature_name or DEFAULT_SIGNATURE
    if name not in served.signatures:
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                           f'Serving signature key "{name}" not found.')
    return served.signatures[name]


def run_predict(served: ServedVersion, signature_name: str, arrays: dict[str, np.ndarray],
                output_filter: Sequence[str] = (),
                admission: Admission | None = None) -> dict[str, np.ndarray]:
    """Runs a signature on arrays; `output_filter` picks outputs (all by default).

    Args:
        served: the loaded version.
        signature_name: the signature's name; "" for `serving_default`.
        arrays: the inputs, by name.
        output_filter: the output aliases to answer, in order; empty for all of them.
        admission: the caps on rows (per request and in flight); None: none.

    Returns:
        The outputs, by alias.

    Raises:
        ServingError: the signature is missing (FAILED_PRECONDITION); an alias of OUTPUT_FILTER
            is unknown or repeated, or the inputs do not match the signature (INVALID_ARGUMENT);
            the run fails (TF's status code); the errors of `Admission.admit`.
    """
    fn = predict_signature(served, signature_name)
    aliases = list(fn.structured_outputs)
    for i, alias in enumerate(output_filter):
        if alias not in aliases:
            raise invalid(f"output tensor alias not found in signature: {alias} Outputs "
                          f"expected to be in the set {{{','.join(sorted(aliases))}}}.")
        if alias in output_filter[:i]:
            raise invalid(f"duplicate output tensor alias: {alias}")
    outputs = run_signature(fn, arrays, admission and admission.admit)
    return {k: outputs[k] for k in output_filter} if output_filter else outputs


def predict(served: ServedVersion, request: predict_pb2.PredictRequest,
            admission: Admission | None = None) -> predict_pb2.PredictResponse:
    """Predict: runs the request's signature on its inputs.

    Args:
        served: the loaded version the request's model spec names.
        request: the PredictRequest.
        admission: the caps on the inputs' size and rows; None: none.

    Returns:
        The PredictResponse: the outputs (those of `output_filter`, or all) and the model spec
        that answered.

    Raises:
        ServingError: the signature is missing (FAILED_PRECONDITION), the inputs are unknown,
            missing, malformed, too large or do not match it (INVALID_ARGUMENT), the server is
            busy (UNAVAILABLE), or the run fails.
    """
    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    specs = input_specs(predict_signature(served, name))
    check_inputs(specs, request.inputs)
    admission = admission or _UNLIMITED
    for key, proto in request.inputs.items():  # before anything is expanded
        admission.check_tensor(key, specs[key], proto)
    arrays = {k: tensor_to_array(k, v) for k, v in request.inputs.items()}
    outputs = run_predict(served, name, arrays, list(request.output_filter), admission)
    response = predict_pb2.PredictResponse(model_spec=_model_spec(served, name))
    for alias, array in outputs.items():
        response.outputs[alias].CopyFrom(array_to_tensor(array))
    return response


def serialized_examples(request_input: input_pb2.Input) -> list[bytes]:
    """The request's tf.Examples, serialized; with a context, each is merged over the context.

    Args:
        request_input: a Classify request's input: an `example_list` or an
            `example_list_with_context`.

    Returns:
        The serialized tf.Examples.

    Raises:
        ServingError: INVALID_ARGUMENT when the input holds no examples.
    """
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = request_input.example_list_with_context
        context = with_context.context.SerializeToString()
        examples = [context + e.SerializeToString() for e in with_context.examples]
    else:
        examples = []
    if not examples:
        raise invalid("Input is empty.")
    return examples


def _classify_signature(served: ServedVersion, signature_name: str):
    name = signature_name or DEFAULT_SIGNATURE
    signature_def = served.signature_defs.get(name)
    if signature_def is None or name not in served.signatures:
        raise invalid(f"No signature was found with the name: {name}")
    if signature_def.method_name != CLASSIFY_METHOD:
        raise invalid(f"Expected classification signature method_name to be {CLASSIFY_METHOD}. "
                      f"Was: {signature_def.method_name}")
    if len(signature_def.inputs) != 1:
        raise invalid("Expected one input Tensor.")
    if "inputs" not in signature_def.inputs:
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                           f"No classification inputs ('inputs') found in signature {name}")
    if not {"classes", "scores"} & set(signature_def.outputs):
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                           'Expected classification signature outputs to contain at least one '
                           f'of "classes" or "scores"; signature {name} has '
                           f"{sorted(signature_def.outputs)}")
    return name, served.signatures[name]


def _check_2d(name: str, array: np.ndarray, kind: str, n: int) -> None:
    if array.ndim != 2:
        raise invalid(f"Expected {name} Tensor shape: [batch_size num_classes] but got "
                      f"{list(array.shape)}")
    if array.dtype.kind != kind:
        raise invalid(f"Expected {name} Tensor of {'DT_STRING' if kind == 'O' else 'DT_FLOAT'}. "
                      f"Got: {array.dtype}")
    if array.shape[0] != n:
        raise invalid(f"Expected {name} output batch size of {n}. Got: {array.shape[0]}")


def classify(served: ServedVersion, request: classification_pb2.ClassificationRequest,
             admission: Admission | None = None) -> classification_pb2.ClassificationResponse:
    """Classify: runs a classification signature on the request's serialized tf.Examples.

    Args:
        served: the loaded version the request's model spec names.
        request: the ClassificationRequest.
        admission: the caps on rows (per request and in flight); None: none.

    Returns:
        The ClassificationResponse: per example, the (label, score) of every class.

    Raises:
        ServingError: the signature is not a usable classification signature, the input is
            empty, or its "classes" and "scores" outputs have the wrong type, shape or batch
            size (INVALID_ARGUMENT or FAILED_PRECONDITION, as TF Serving); the errors of
            `Admission.admit`.
    """
    name, fn = _classify_signature(served, request.model_spec.signature_name)
    examples = serialized_examples(request.input)
    outputs = run_signature(fn, {"inputs": np.array(examples, dtype=object)},
                            admission and admission.admit)
    classes, scores = outputs.get("classes"), outputs.get("scores")
    n = len(examples)
    if classes is not None:
        _check_2d("classes", classes, "O", n)
    if scores is not None:
        _check_2d("scores", scores, "f", n)
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid(f"Tensors class and score should match in dim_size(1). Got "
                      f"{classes.shape[1]} vs. {scores.shape[1]}")
    num_classes = (classes if classes is not None else scores).shape[1]
    response = classification_pb2.ClassificationResponse(model_spec=_model_spec(served, name))
    for i in range(n):
        result = response.result.classifications.add()
        for c in range(num_classes):
            cls = result.classes.add()
            if classes is not None:
                cls.label = classes[i, c].decode("utf-8", "replace")
            if scores is not None:
                cls.score = float(scores[i, c])
    return response


def model_metadata(manager: ModelManager,
                   request: get_model_metadata_pb2.GetModelMetadataRequest
                   ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadata: the SignatureDefs of the version the request names.

    Args:
        manager: the models being served.
        request: the GetModelMetadataRequest; "signature_def" is its only supported field.

    Returns:
        The GetModelMetadataResponse: the version's model spec and its SignatureDefMap.

    Raises:
        ServingError: INVALID_ARGUMENT without a model spec or metadata fields, or for a field
            other than "signature_def"; the errors of `ModelManager.get`.
    """
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")
    if not request.metadata_field:
        raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != "signature_def":
            raise invalid(f"Metadata field {field} is not supported")
    served = manager.get(request.model_spec)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = served.name
    response.model_spec.version.value = served.version
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in served.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature_def)
    response.metadata["signature_def"].Pack(signature_map)
    return response


def model_status(manager: ModelManager, request: get_model_status_pb2.GetModelStatusRequest
                 ) -> get_model_status_pb2.GetModelStatusResponse:
    """GetModelStatus: the state of the versions of the model the request names.

    Args:
        manager: the models being served.
        request: the GetModelStatusRequest: a model name, and a version or a version label.

    Returns:
        The GetModelStatusResponse, one status per version (highest first).

    Raises:
        ServingError: INVALID_ARGUMENT without a model name; the errors of `ModelManager.get`
            (for a label) and `ModelManager.model_status`.
    """
    spec = request.model_spec
    if not spec.name:
        raise invalid("Missing model name in request.")
    if spec.WhichOneof("version_choice") == "version_label":
        version = manager.get(spec).version
    else:
        version = spec.version.value if spec.HasField("version") else None
    response = get_model_status_pb2.GetModelStatusResponse()
    response.model_version_status.extend(manager.model_status(spec.name, version))
    return response


def replay_warmup(served: ServedVersion) -> None:
    """Replays `assets.extra/tf_serving_warmup_requests` (PredictionLog records) on a version.

    TF Serving does so before it serves a version; a failing record fails the load. At most
    MAX_WARMUP_RECORDS records are replayed; a version without the file has nothing to replay.

    Args:
        served: the version just loaded.

    Raises:
        ValueError: a record is neither a predict log nor a classify log.
    """
    path = os.path.join(served.path, WARMUP_FILE)
    if not os.path.exists(path):
        return
    for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            predict(served, log.predict_log.request)
        elif kind == "classify_log":
            classify(served, log.classify_log.request)
        else:
            raise ValueError(f"warmup record of type {kind} is not supported")
