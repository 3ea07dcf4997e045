"""The serving export: a Keras model behind the TF Transform graph, as a SavedModel for TF Serving.

Signatures (standard TF ops only, so `tensorflow_model_server` loads it as it is):
- `serving_default` (predict): "examples", [B] serialized raw tf.Examples (the TFX convention; a
  label feature, if present, is ignored) -> "probability" float32 [B], "cluster" int32 [B];
- `predict_raw` (predict): one [B] string tensor per raw input column, named and written as in the
  raw file ("" = missing; Avazu takes `hour` as YYMMDDHH) -> the same outputs;
- `classify` (classify, for TF Serving's Classify API): "inputs", [B] serialized raw tf.Examples
  -> "classes" string [B, 2] ("0", "1") and "scores" float32 [B, 2].
A model without clusters (the base model) answers cluster 0. Warmup requests for TF Serving are
written to `assets.extra/tf_serving_warmup_requests`.
"""

import os

import keras
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from ihas_keras.data.formats import TableFormat
from ihas_keras.data.parse import INTEGER_PATTERN, REASON_CODE, parse_columns
from ihas_keras.data.preprocess import raw_feature_spec
from ihas_keras.export.signatures import CLASSIFY_METHOD, WARMUP_FILE, set_method_name

WARMUP_BATCH_SIZES = (1, 64)


def raw_input_columns(fmt: TableFormat) -> list[str]:
    """The raw columns `predict_raw` takes: every column but the label and dropped ones.

    Args:
        fmt: the data's format.

    Returns:
        The column names, in file order.
    """
    return [c for c in fmt.columns if c != fmt.label and c not in fmt.dropped]


class ServingModule(tf.Module):
    """Tracks the model's variables and the TFT layer (its vocabulary tables and assets).

    It also holds the three signature functions. Only what serving reads is saved: the model's
    variables, not the model object, whose optimizer (moments and, for lazy Adam, each table row's
    last step: about three times the embedding tables) serving never needs.

    Args:
        model: the Keras model to serve (a `RoutedModel` or `Recommender`).
        transform_graph_dir: the TF Transform output whose graph turns raw features into the
            model's inputs.
        fmt: the raw data's format.

    Attributes:
        model_variables: {Keras variable path: variable}, the model's variables (what the
            signatures read; on the loaded SavedModel too).
        tft_layer: the TF Transform graph as a Keras layer.
        serve_examples: the `serving_default` function: [B] serialized raw tf.Examples ->
            {"probability", "cluster"}.
        classify: the `classify` function: [B] serialized raw tf.Examples -> {"classes",
            "scores"}.
        predict_raw: the `predict_raw` function: {raw column: [B] string} -> {"probability",
            "cluster"}.
    """

    def __init__(self, model: keras.Model, transform_graph_dir: str, fmt: TableFormat) -> None:
        super().__init__()
        self._score_model = _untracked(model)
        self.model_variables = {v.path: v for v in model.variables}
        if len(self.model_variables) != len(model.variables):
            raise ValueError(f"export: {model.name} has two variables of one path")
        self.tft_layer = tft.TFTransformOutput(transform_graph_dir).transform_features_layer()
        self._fmt = fmt.unlabeled()
        self._raw_spec = {k: v for k, v in raw_feature_spec(fmt).items() if k != fmt.label}
        examples = tf.TensorSpec([None], tf.string)
        self.serve_examples = tf.function(self._serve_examples, input_signature=[examples])
        self.classify = tf.function(self._classify, input_signature=[examples])
        self.predict_raw = tf.function(self._predict_raw, input_signature=[
            {c: tf.TensorSpec([None], tf.string, name=c) for c in raw_input_columns(fmt)}
        ])

    def signatures(self) -> dict:
        """The concrete signature functions by signature name, for `tf.saved_model.save`."""
        return {
            "serving_default": self.serve_examples.get_concrete_function(),
            "predict_raw": self.predict_raw.get_concrete_function(),
            "classify": self.classify.get_concrete_function(),
        }

    def score(self, raw_features: dict) -> dict:
        """Scores raw feature tensors.

        Args:
            raw_features: raw feature tensors (the raw feature spec's layout).

        Returns:
            {"probability": float32 [B], "cluster": int32 [B]}; cluster 0 for a model without
            clusters.
        """
        model = self._score_model()
        transformed = self.tft_layer(raw_features)
        outputs = model({f: transformed[f] for f in model.fields})
        if not isinstance(outputs, dict):
            outputs = {"probability": outputs, "cluster": tf.zeros_like(outputs, tf.int32)}
        return {"probability": tf.cast(outputs["probability"], tf.float32),
                "cluster": tf.cast(outputs["cluster"], tf.int32)}

    def _serve_examples(self, examples):
        return self.score(tf.io.parse_example(examples, self._raw_spec))

    def _classify(self, inputs):
        probability = self._serve_examples(inputs)["probability"]
        classes = tf.tile(tf.constant([["0", "1"]]), [tf.shape(probability)[0], 1])
        return {"classes": classes, "scores": tf.stack([1 - probability, probability], axis=1)}

    def _predict_raw(self, columns):
        parsed = parse_columns(columns, self._fmt)
        checks = [_bad_cells_assert(name, columns[name], (columns[name] != "") & ~tf.strings
                                    .regex_full_match(columns[name], INTEGER_PATTERN), "integers")
                  for name in self._fmt.numeric]
        if self._fmt.hour:
            bad = parsed["reason"] == REASON_CODE["bad_hour"]
            checks.append(_bad_cells_assert(self._fmt.hour, columns[self._fmt.hour], bad,
                                            "YYMMDDHH hours"))
        with tf.control_dependencies(checks):
            return self.score({
                name: _present_values(parsed["values"][name], parsed["present"][name])
                for name in self._fmt.feature_fields
            })


def _untracked(model: keras.Model):
    """A function returning MODEL, which `tf.Module` does not track: saving skips its optimizer."""
    return lambda: model


def _bad_cells_assert(name: str, cells, bad, kind: str):
    """An assertion that fails, naming input NAME and its first bad cell, where BAD is set."""
    return tf.debugging.Assert(
        ~tf.reduce_any(bad),
        [f"predict_raw: input {name} takes {kind} or empty strings; got", cells[bad][:1]],
    )


def _present_values(values, present) -> tf.SparseTensor:
    """[B] values and a [B] presence mask -> the [B, 1] SparseTensor a VarLenFeature parses to."""
    rows = tf.where(present)[:, 0]
    return tf.SparseTensor(
        indices=tf.stack([rows, tf.zeros_like(rows)], axis=1),
        values=tf.gather(values, rows),
        dense_shape=tf.stack([tf.shape(values, out_type=tf.int64)[0], 1]),
    )


def write_warmup_requests(export_dir: str, examples: list[bytes]) -> str:
    """Writes TF Serving's warmup requests into a SavedModel folder.

    The file `assets.extra/tf_serving_warmup_requests` holds `serving_default` PredictRequests of
    EXAMPLES, one at each batch size of WARMUP_BATCH_SIZES (examples repeated as needed).

    Args:
        export_dir: the SavedModel folder.
        examples: serialized raw tf.Examples (at least one).

    Returns:
        The warmup file's path.
    """
    path = os.path.join(export_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for size in WARMUP_BATCH_SIZES:
            batch = [examples[i % len(examples)] for i in range(size)]
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name="serving_default"),
                inputs={"examples": tf.make_tensor_proto(batch, tf.string)},
            )
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def export_serving_model(model: keras.Model, transform_graph_dir: str, fmt: TableFormat,
                         export_dir: str, warmup_examples: list[bytes] | None = None) -> str:
    """Saves MODEL behind a transform graph to EXPORT_DIR, for TF Serving.

    The export has the signatures above and warmup requests of WARMUP_EXAMPLES.

    Args:
        model: a `RoutedModel` or `Recommender`.
        transform_graph_dir: the transform graph's folder (a Transform component's output or
            `ihas data prepare`'s OUT/transformed).
        fmt: the raw data's format.
        export_dir: the SavedModel folder to write.
        warmup_examples: serialized raw tf.Examples for the warmup requests; by default one empty
            example, every field missing.

    Returns:
        EXPORT_DIR.
    """
    module = ServingModule(model, transform_graph_dir, fmt)
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
    set_method_name(export_dir, "classify", CLASSIFY_METHOD)
    write_warmup_requests(export_dir, warmup_examples or [tf.train.Example().SerializeToString()])
    return export_dir
