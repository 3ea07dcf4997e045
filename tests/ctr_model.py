"""A tiny CTR-like tf.Module saved with the exporter's signatures (serving_default on
serialized tf.Examples, predict_raw, probability_only, classify) and a warmup request: the small
real export the server tests serve."""

import os

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from ihas_keras.export.signatures import CLASSIFY_METHOD, set_method_name

FEATURES = {"x": tf.io.FixedLenFeature([], tf.int64), "c": tf.io.FixedLenFeature([], tf.string)}


class _Ctr(tf.Module):
    """A tiny CTR-like model with the exporter's signatures."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = tf.Variable(scale)

    def _score(self, x, c):
        logit = self.scale * tf.cast(x, tf.float32) + tf.cast(tf.strings.length(c), tf.float32)
        return tf.sigmoid(logit / 10.0), tf.cast(x % 3, tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples):
        parsed = tf.io.parse_example(examples, FEATURES)
        probability, cluster = self._score(parsed["x"], parsed["c"])
        return {"probability": probability, "cluster": cluster}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="x"),
                                  tf.TensorSpec([None], tf.string, name="c")])
    def predict_raw(self, x, c):
        probability, cluster = self._score(x, c)
        return {"probability": probability, "cluster": cluster}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="x")])
    def probability_only(self, x):
        return {"probability": self._score(x, tf.fill(tf.shape(x), "ab"))[0]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        parsed = tf.io.parse_example(inputs, FEATURES)
        p, _ = self._score(parsed["x"], parsed["c"])
        classes = tf.tile(tf.constant([["0", "1"]]), [tf.shape(p)[0], 1])
        return {"classes": classes, "scores": tf.stack([1.0 - p, p], axis=1)}


def example(x: int, c: str) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(int64_list=tf.train.Int64List(value=[x])),
        "c": tf.train.Feature(bytes_list=tf.train.BytesList(value=[c.encode()])),
    })).SerializeToString()


EXAMPLES = [example(x, c) for x, c in [(1, "a"), (7, "bcd"), (-4, ""), (30, "zz")]]


def save_ctr(export_dir: str, scale: float) -> None:
    module = _Ctr(scale)
    tf.saved_model.save(module, export_dir, signatures={
        "serving_default": module.serve_examples, "predict_raw": module.predict_raw,
        "probability_only": module.probability_only, "classify": module.classify})
    set_method_name(export_dir, "classify", CLASSIFY_METHOD)
    request = predict_pb2.PredictRequest()
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(EXAMPLES[:2]))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(
        request=request))
    os.makedirs(os.path.join(export_dir, "assets.extra"))
    with tf.io.TFRecordWriter(
            os.path.join(export_dir, "assets.extra", "tf_serving_warmup_requests")) as w:
        w.write(log.SerializeToString())
