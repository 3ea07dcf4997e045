"""Tensor conversions and input validation for the server, following TF Serving's rules.

TensorProto <-> numpy, TF Serving's REST JSON ("instances" rows, "inputs" columns, {"b64": ...}
for binary strings) <-> numpy, JSON tf.Examples for :classify, and the checks of a request's inputs
against a signature's input specs. Every bad input raises `ServingError` (INVALID_ARGUMENT) naming
the input; every message is bounded (`excerpt`): a short, escaped excerpt of the input at most.
"""

import base64
import binascii
import contextlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework.tensor_pb2 import TensorProto

_CODES = {code.value[0]: code for code in grpc.StatusCode}
MAX_MESSAGE_CHARS = 500  # the longest error message sent to a client (or logged of one)


def excerpt(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """TEXT with what is not printable escaped, cut at LIMIT characters (its length said).

    Args:
        text: a message, perhaps quoting a client's input.
        limit: the most characters kept.

    Returns:
        The bounded text.
    """
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text[:limit + 1])
    return text if len(text) <= limit else f"{text[:limit]}... (cut at {limit} characters)"


class ServingError(Exception):
    """An error for the client: a gRPC status code (mapped to HTTP for REST) and a message.

    Args:
        code: the gRPC status code.
        message: the error message (bounded by `excerpt`).
        http_status: the REST answer's status; None: the one TF Serving maps CODE to.
    """

    def __init__(self, code: grpc.StatusCode, message: str,
                 http_status: int | None = None) -> None:
        message = excerpt(message)
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def grpc_code(number: int) -> grpc.StatusCode:
    """The gRPC status code of a canonical code number (as in `tf.errors.OpError.error_code`).

    Args:
        number: the canonical code number.

    Returns:
        The status code; UNKNOWN for a number that is none.
    """
    return _CODES.get(number, grpc.StatusCode.UNKNOWN)


def invalid(message: str) -> ServingError:
    """An INVALID_ARGUMENT error.

    Args:
        message: the error message.

    Returns:
        The ServingError (to raise).
    """
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def input_specs(fn: tf.types.experimental.ConcreteFunction) -> dict[str, tf.TensorSpec]:
    """A concrete function's (a loaded signature's) inputs, by name.

    Args:
        fn: the concrete function.

    Returns:
        {input name: its TensorSpec}.
    """
    return dict(fn.structured_input_signature[1])


def check_inputs(specs: dict[str, tf.TensorSpec], names: Iterable[str]) -> None:
    """Unknown or missing input names -> INVALID_ARGUMENT naming them.

    Args:
        specs: the signature's inputs (`input_specs`).
        names: the input names of a request.

    Raises:
        ServingError: INVALID_ARGUMENT naming an unknown input, or the missing ones.
    """
    names = set(names)
    expected = ",".join(sorted(specs))
    for name in sorted(names - set(specs)):
        raise invalid(f"input tensor alias not found in signature: {name}. "
                      f"Inputs expected to be in the set {{{expected}}}.")
    missing = sorted(set(specs) - names)
    if missing:
        raise invalid(f"missing but required input(s): {', '.join(missing)}. Inputs expected "
                      f"to be the set {{{expected}}}.")


def check_array(name: str, spec: tf.TensorSpec, array: np.ndarray) -> None:
    """Wrong dtype or a shape incompatible with the spec -> INVALID_ARGUMENT naming the input.

    Args:
        name: the input's name.
        spec: the input's spec in the signature.
        array: the input's value.

    Raises:
        ServingError: INVALID_ARGUMENT when the dtype or the shape does not match SPEC.
    """
    dtype = tf.string if array.dtype.kind in "OSU" else tf.as_dtype(array.dtype)
    if dtype != spec.dtype:
        raise invalid(f"input '{name}': expected {spec.dtype.name}, got {dtype.name}")
    if not spec.shape.is_compatible_with(array.shape):
        raise invalid(f"input '{name}': shape {list(array.shape)} is incompatible with the "
                      f"signature's {spec.shape}")


def check_tensor(name: str, spec: tf.TensorSpec, proto: TensorProto, max_bytes: int | None
                 ) -> list[int]:
    """A request's TensorProto against the input's spec, before any of it is expanded.

    A TensorProto may hold fewer values than its shape has elements (the last one repeats), so
    a few bytes can ask for gigabytes: the dtype, the shape and the expanded size are checked
    on the proto itself.

    Args:
        name: the input's name.
        spec: the input's spec in the signature.
        proto: its TensorProto.
        max_bytes: the most bytes the input may take once expanded to its shape; None: no
            limit.

    Returns:
        The proto's dimensions.

    Raises:
        ServingError: INVALID_ARGUMENT naming the input: a negative dimension, an unknown rank,
            a dtype other than the spec's, a shape incompatible with it, or an expanded size
            above MAX_BYTES.
    """
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(size < 0 for size in dims):
        raise invalid(f"input '{name}': TensorProto shape {dims} has a negative dimension")
    if proto.tensor_shape.unknown_rank:
        raise invalid(f"input '{name}': TensorProto shape has an unknown rank")
    try:
        dtype = tf.as_dtype(proto.dtype)
    except (TypeError, ValueError):
        raise invalid(f"input '{name}': TensorProto dtype {proto.dtype} is not a dtype"
                      ) from None
    if dtype != spec.dtype:
        raise invalid(f"input '{name}': expected {spec.dtype.name}, got {dtype.name}")
    if not spec.shape.is_compatible_with(dims):
        raise invalid(f"input '{name}': shape {dims} is incompatible with the signature's "
                      f"{spec.shape}")
    elements = int(np.prod(dims, dtype=object))
    if dtype == tf.string and not proto.tensor_content:
        values = proto.string_val
        size = sum(map(len, values)) + max(elements - len(values), 0) * (
            len(values[-1]) if values else 0)
    else:
        size = elements * dtype.size
    if max_bytes is not None and size > max_bytes:
        raise invalid(f"input '{name}': shape {dims} expands to {size} bytes, more than the "
                      f"limit of {max_bytes} (ihas serve --max_request_bytes)")
    return dims


def tensor_to_array(name: str, proto: TensorProto) -> np.ndarray:
    """A request's TensorProto as a numpy array (check it first with `check_tensor`).

    Args:
        name: the input's name.
        proto: its TensorProto.

    Returns:
        The array (`tf.make_ndarray`).

    Raises:
        ServingError: INVALID_ARGUMENT naming the input when the TensorProto is malformed.
    """
    try:
        return tf.make_ndarray(proto)
    except Exception as e:  # unknown dtype, content that does not fill the shape, ...
        raise invalid(f"input '{name}': malformed TensorProto: {e}") from e


def array_to_tensor(array: np.ndarray) -> TensorProto:
    """A numpy array as a TensorProto (`tf.make_tensor_proto`).

    Args:
        array: an output's value.

    Returns:
        The TensorProto.
    """
    return tf.make_tensor_proto(array)


def run_signature(fn: tf.types.experimental.ConcreteFunction, arrays: dict[str, np.ndarray],
                  admit: Callable[[dict], AbstractContextManager] | None = None
                  ) -> dict[str, np.ndarray]:
    """Validates `arrays` against `fn`'s inputs, runs it; TF's errors keep their status code.

    Args:
        fn: a loaded signature.
        arrays: its inputs, by name.
        admit: checked inputs -> the context the run happens in (`Admission.admit`: the caps
            on rows); None: no caps.

    Returns:
        Its outputs, by name.

    Raises:
        ServingError: INVALID_ARGUMENT when ARRAYS do not match the inputs, or when
            TensorFlow's message about them is not UTF-8 (a malformed serialized input); the
            errors of ADMIT; TF's status code when the run fails.
    """
    specs = input_specs(fn)
    check_inputs(specs, arrays)
    for name, array in arrays.items():
        check_array(name, specs[name], array)
    with admit(arrays) if admit is not None else contextlib.nullcontext():
        try:
            outputs = fn(**{k: tf.convert_to_tensor(v, specs[k].dtype)
                            for k, v in arrays.items()})
        except tf.errors.OpError as e:
            raise ServingError(grpc_code(e.error_code), e.message) from e
        except UnicodeDecodeError as e:  # TF quoted the input's bytes in its error message
            message = e.object.decode("utf-8", "replace") if isinstance(e.object, bytes) else ""
            raise invalid("the inputs could not be run (malformed serialized input?): "
                          f"{message}") from None
        return {name: tensor.numpy() for name, tensor in outputs.items()}


# REST JSON -> arrays


def _is_b64(value) -> bool:
    return isinstance(value, dict) and list(value) == ["b64"]


def _leaf_converter(name: str, dtype: tf.DType):
    def fail(value):
        return invalid(f"input '{name}': JSON value {value!r} is not of the expected type "
                       f"{dtype.name}")

    def to_bytes(value):
        if isinstance(value, str):
            return value.encode()
        if _is_b64(value) and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except binascii.Error as e:
                raise invalid(f"input '{name}': bad base64 in {{'b64': ...}}: {e}") from e
        raise fail(value)

    def number(kinds):
        def convert(value):
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise fail(value)
            return value
        return convert

    def to_bool(value):
        if not isinstance(value, bool):
            raise fail(value)
        return value

    if dtype == tf.string:
        return to_bytes
    if dtype == tf.bool:
        return to_bool
    if dtype.is_integer:
        return number(int)
    if dtype.is_floating:
        return number((int, float))
    raise invalid(f"input '{name}': dtype {dtype.name} is not supported in JSON")


def _flatten(value, leaf, name: str) -> tuple[list, tuple]:
    if not isinstance(value, list):
        return [leaf(value)], ()
    flat, shapes = [], set()
    for item in value:
        items, shape = _flatten(item, leaf, name)
        flat.extend(items)
        shapes.add(shape)
    if len(shapes) > 1:
        raise invalid(f"input '{name}': the JSON list is ragged, its elements have shapes "
                      f"{sorted(shapes)}")
    return flat, (len(value), *(shapes.pop() if shapes else ()))


def json_to_array(name: str, spec: tf.TensorSpec, value: Any) -> np.ndarray:
    """One input's JSON value (nested lists of leaves) as an array of the spec's dtype.

    Args:
        name: the input's name.
        spec: the input's spec in the signature.
        value: a leaf, or nested lists of leaves; strings may be {"b64": ...}.

    Returns:
        The array, shaped as the nested lists.

    Raises:
        ServingError: INVALID_ARGUMENT naming the input: a leaf of another type, bad base64, a
            ragged list, a dtype not supported in JSON, or a value the dtype cannot hold.
    """
    flat, shape = _flatten(value, _leaf_converter(name, spec.dtype), name)
    np_dtype = object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
    try:
        return np.array(flat, dtype=np_dtype).reshape(shape)
    except (OverflowError, ValueError) as e:
        raise invalid(f"input '{name}': {e}") from e


def json_to_arrays(body: dict, specs: dict[str, tf.TensorSpec]) -> tuple[dict, bool]:
    """A :predict body's inputs as arrays and whether it used the row ("instances") format.

    Args:
        body: the request's JSON object: "instances" (rows) or "inputs" (columns).
        specs: the signature's inputs (`input_specs`).

    Returns:
        ({input name: array}, whether the body used the row format).

    Raises:
        ServingError: INVALID_ARGUMENT when the body has both or neither of "instances" and
            "inputs", malformed instances, bare values for a signature of several inputs, or
            inputs that do not match SPECS.
    """
    if ("instances" in body) == ("inputs" in body):
        raise invalid("the request must have exactly one of 'instances' (row format) or "
                      "'inputs' (columnar format)")
    row = "instances" in body
    value = body["instances" if row else "inputs"]
    if row:
        if not isinstance(value, list) or not value:
            raise invalid("'instances' must be a non-empty list")
        named = [isinstance(v, dict) and not _is_b64(v) for v in value]
        if any(named) and not all(named):
            raise invalid("'instances' mixes objects (named inputs) and bare values")
        if named[0]:
            columns = {}
            for i, instance in enumerate(value):
                try:
                    check_inputs(specs, instance)
                except ServingError as e:
                    raise invalid(f"instance {i}: {e.message}") from None
                for key, item in instance.items():
                    columns.setdefault(key, []).append(item)
        else:
            columns = {_single_input(specs, "instances"): value}
    elif isinstance(value, dict) and not _is_b64(value):
        columns = value
    else:
        columns = {_single_input(specs, "inputs"): value}
    check_inputs(specs, columns)
    arrays = {k: json_to_array(k, specs[k], v) for k, v in columns.items()}
    for name, array in arrays.items():
        check_array(name, specs[name], array)
    return arrays, row


def _single_input(specs: dict, key: str) -> str:
    if len(specs) != 1:
        raise invalid(f"'{key}' holds bare values but the signature has {len(specs)} inputs "
                      f"({', '.join(sorted(specs))}): name them in JSON objects")
    return next(iter(specs))


# arrays -> REST JSON


def _json_leaf(name: str):
    def convert(value):
        if not isinstance(value, bytes):
            return value
        if not name.endswith("_bytes"):
            try:
                return value.decode()
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(value).decode()}
    return convert


def _to_json(array: np.ndarray, name: str):
    if array.dtype != object:
        return array.tolist()
    leaf = _json_leaf(name)

    def walk(value):
        return [walk(v) for v in value] if isinstance(value, list) else leaf(value)
    return walk(array.tolist())


def arrays_to_json(outputs: dict[str, np.ndarray], row: bool) -> dict:
    """{"predictions": [...]} (row format) or {"outputs": ...} (columnar), as TF Serving writes.

    One output is written bare; several as objects by name. String outputs are UTF-8 text, or
    {"b64": ...} when the output's name ends in "_bytes" or the bytes are not UTF-8.

    Args:
        outputs: a signature's outputs, by name.
        row: write the row format (the request used "instances").

    Returns:
        The response's JSON object.

    Raises:
        ServingError: INVALID_ARGUMENT in the row format when the outputs do not share a batch
            size.
    """
    if not row:
        if len(outputs) == 1:
            ((name, array),) = outputs.items()
            return {"outputs": _to_json(array, name)}
        return {"outputs": {name: _to_json(a, name) for name, a in outputs.items()}}
    sizes = {name: (a.shape[0] if a.ndim else None) for name, a in outputs.items()}
    if None in sizes.values() or len(set(sizes.values())) > 1:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"outputs {sizes} do not share a batch size: the row format needs one; "
                           "use the columnar format ('inputs')")
    columns = {name: _to_json(a, name) for name, a in outputs.items()}
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    n = next(iter(sizes.values()))
    return {"predictions": [{name: col[i] for name, col in columns.items()} for i in range(n)]}


# JSON tf.Examples (:classify)


def json_to_example(obj: Any) -> tf.train.Example:
    """A JSON object as a tf.Example.

    Strings and {"b64"} -> bytes_list, ints -> int64_list, numbers with a fraction ->
    float_list; a value may be one leaf or a list of them (an empty list adds no feature).

    Args:
        obj: the JSON value, a {feature: value} object.

    Returns:
        The tf.Example.

    Raises:
        ServingError: INVALID_ARGUMENT when OBJ is not an object, a {"b64"} value is not
            base64, an integer is out of int64 range, or a feature's values are not all
            strings, all integers or all numbers.
    """
    if not isinstance(obj, dict):
        raise invalid(f"an example must be a JSON object of features, got {obj!r}")
    example = tf.train.Example()
    for key, value in obj.items():
        values = value if isinstance(value, list) else [value]
        if not values:
            continue
        feature = example.features.feature[key]
        if all(isinstance(v, str) or _is_b64(v) for v in values):
            feature.bytes_list.value.extend(_leaf_converter(key, tf.string)(v) for v in values)
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            if not all(-(2**63) <= v < 2**63 for v in values):
                raise invalid(f"feature '{key}': value out of int64 range")
            feature.int64_list.value.extend(values)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            feature.float_list.value.extend(values)
        else:
            raise invalid(f"feature '{key}': values must be all strings, all integers or all "
                          f"numbers, got {value!r}")
    return example
