"""SignatureDef protos of a SavedModel, read from and written to its `saved_model.pb`."""

import os

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

CLASSIFY_METHOD = "tensorflow/serving/classify"
SERVING_TAG = "serve"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")  # TF Serving's name


def _pb_path(export_dir: str) -> str:
    return os.path.join(export_dir, "saved_model.pb")


def read_saved_model(export_dir: str) -> saved_model_pb2.SavedModel:
    """The parsed `saved_model.pb` of a SavedModel folder.

    Args:
        export_dir: the SavedModel folder.

    Returns:
        The SavedModel proto.

    Raises:
        ValueError: the file is not a SavedModel proto, or holds no MetaGraphDef.
    """
    with tf.io.gfile.GFile(_pb_path(export_dir), "rb") as f:
        data = f.read()
    model = saved_model_pb2.SavedModel()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError
        raise ValueError(f"{_pb_path(export_dir)} is not a SavedModel proto: {e}") from e
    if not model.meta_graphs:
        raise ValueError(f"{_pb_path(export_dir)} holds no MetaGraphDef")
    return model


def _serving_meta_graph(model: saved_model_pb2.SavedModel) -> meta_graph_pb2.MetaGraphDef:
    for meta_graph in model.meta_graphs:
        if SERVING_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ValueError(f"no MetaGraphDef with the tag {SERVING_TAG!r}")


def read_signature_defs(export_dir: str) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs of the "serve" MetaGraphDef, by signature name.

    Args:
        export_dir: the SavedModel folder.

    Returns:
        {signature name: SignatureDef}.

    Raises:
        ValueError: `saved_model.pb` is not a SavedModel proto, or has no "serve" MetaGraphDef.
    """
    return dict(_serving_meta_graph(read_saved_model(export_dir)).signature_def)


def set_method_name(export_dir: str, signature: str, method: str) -> None:
    """Rewrites `saved_model.pb` so that SignatureDef `signature` has the method name `method`.

    TF2's `tf.saved_model.save` writes every signature as "tensorflow/serving/predict"; TF
    Serving's Classify and Regress need "tensorflow/serving/classify" / ".../regress".

    Args:
        export_dir: the SavedModel folder.
        signature: the signature's name.
        method: the method name, such as `CLASSIFY_METHOD`.

    Raises:
        ValueError: `saved_model.pb` is not a SavedModel proto, or has no "serve" MetaGraphDef.
        KeyError: the "serve" MetaGraphDef has no signature SIGNATURE.
    """
    model = read_saved_model(export_dir)
    meta_graph = _serving_meta_graph(model)
    if signature not in meta_graph.signature_def:
        raise KeyError(f"{export_dir} has no signature {signature!r}")
    meta_graph.signature_def[signature].method_name = method
    tmp = _pb_path(export_dir) + ".tmp"
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(model.SerializeToString())
    tf.io.gfile.rename(tmp, _pb_path(export_dir), overwrite=True)
